"""Throughput machinery: same rows at any concurrency, a watermark that never runs ahead, a limiter
that keeps a burst under the documented limits."""
import calendar
import threading
import time

from tap_klaviyo.config import load_config
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.ratelimit import RateLimiter, RateLimiters
from tap_klaviyo.engine import Span
from tap_klaviyo.state import Mark, Watermark
from tests import expected
from tests.conftest import START_DATE, assert_state_never_passes_unemitted, run_tap


def rows_by_stream(run):
    return {stream: sorted(rows, key=lambda r: r.get("id") or r.get("email"))
            for stream, rows in run.by_stream().items()}


def test_concurrency_gives_exactly_the_rows_of_concurrency_one(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=3000)
    serial = run_tap(tmp_path, sandbox.config(concurrency=1))
    parallel = run_tap(tmp_path, sandbox.config(concurrency=24))
    assert rows_by_stream(serial) == rows_by_stream(parallel)
    assert sum(len(v) for v in rows_by_stream(serial).values()) > 1500


def _spans(unit, bounds):
    return [Span(None, unit, a, b) for a, b in bounds]


def test_watermark_never_passes_an_unfinished_span():
    watermark = Watermark(begin=100, end=400)
    watermark.expect("a")
    watermark.expect("b")
    a = _spans("a", [(100, 200), (200, 300), (300, 400)])
    b = _spans("b", [(150, 400)])
    watermark.plan("a", a)
    assert watermark.value() == 100            # b not planned yet: holds at the start
    watermark.plan("b", b)
    a[2].progress, a[2].done = 400, True        # a later span finishes first
    a[1].progress, a[1].done = 300, True
    assert watermark.value() == 100            # a's first span not begun
    a[0].progress = 180                         # part of the first span emitted
    assert watermark.value() == 150            # b's span not begun
    b[0].progress = 390
    assert watermark.value() == 180
    a[0].progress, a[0].done = 200, True
    assert watermark.value() == 390            # a is complete; b still reading
    b[0].progress, b[0].done = 400, True
    assert watermark.value() == 400


def test_watermark_follows_a_split_span_part_by_part():
    watermark = Watermark(begin=0, end=1000)
    whole = Span(None, "a", 0, 1000)
    watermark.plan("a", [whole])
    whole.progress = 300
    assert watermark.value() == 300
    # the span stops at 300 and three parts take the rest; the last part finishes first
    whole.upper, whole.done = 300, True
    parts = _spans("a", [(300, 500), (500, 800), (800, 1000)])
    watermark.split(whole, parts)
    parts[2].progress, parts[2].done = 1000, True
    assert watermark.value() == 300
    parts[0].progress = 450
    assert watermark.value() == 450
    parts[0].progress, parts[0].done = 500, True
    assert watermark.value() == 500             # the middle part has not begun
    parts[1].progress, parts[1].done = 800, True
    assert watermark.value() == 1000


def test_watermark_with_lookback_never_moves_a_bookmark_back():
    watermark = Watermark(begin=1000, end=2000)
    watermark.plan("a", _spans("a", [(400, 2000)]))
    assert watermark.value() == 1000


def test_state_never_names_data_not_yet_emitted(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=3000)
    run = run_tap(tmp_path, sandbox.config(concurrency=16))
    dump = sandbox.dump()
    start = calendar.timegm(time.strptime(START_DATE, "%Y-%m-%dT%H:%M:%SZ"))
    wanted = {stream: sorted((row["timestamp"], event_id) for event_id, row in
                             expected.event_rows(dump, stream, start, 2 ** 40).items())
              for stream in expected.CLASSIC_METRICS}
    checked = assert_state_never_passes_unemitted(run.messages, wanted)
    assert checked > 1500


def test_limiter_keeps_a_burst_under_the_documented_limits(make_sandbox):
    # the sandbox at the documented limits (no scaling): 10/s burst on /api/metrics
    sandbox = make_sandbox(events=100, rate_scale=1.0)
    config = load_config(sandbox.config(max_retry_seconds=5))
    client = KlaviyoClient(config)
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: client.get("metrics", client.url("/api/metrics")))
               for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stats = sandbox.stats()
    assert stats["by_family"]["metrics"] == 25
    assert stats["throttled"] == 0
    assert elapsed >= 2.0          # 25 requests at 10 a second cannot finish sooner


def test_limiter_alone_spaces_requests():
    clock = [0.0]
    limiter = RateLimiter(burst=3, steady=5, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    times = []
    for _ in range(7):
        limiter.acquire()
        times.append(clock[0])
    for i in range(len(times)):
        in_second = [t for t in times if times[i] - 1.0 < t <= times[i]]
        in_minute = [t for t in times if times[i] - 60.0 < t <= times[i]]
        assert len(in_second) <= 3 and len(in_minute) <= 5
    assert times[5] >= 60.0


def test_limiter_obeys_retry_after():
    clock = [0.0]
    limiter = RateLimiter(burst=100, steady=1000, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    limiter.pause(7.0)
    limiter.acquire()
    assert clock[0] >= 7.0
    assert RateLimiters()["list_count"].burst == 1


class _Quiet:
    """A writer that keeps nothing."""

    def schema(self, *args):
        pass

    def write(self, lines):
        pass

    def state(self, value):
        pass

    def activate_version(self, stream, version):
        pass


def test_a_unit_spawned_mid_run_holds_the_bookmark_from_the_page_that_spawns_it():
    """A span spawned without a split (a metric the catalog lacked) is a new unit of its stream's
    watermark before the STATE that follows the page spawning it: that STATE may not pass it."""
    from tap_klaviyo import engine
    from tap_klaviyo.streams import BY_NAME, CLASSIC_EVENT
    stream, states, released = BY_NAME["receive"], [], threading.Event()

    class Late(Span):       # writes only once the first STATE is out
        def run(self, client, config):
            released.wait(30)
            yield engine.Page(self, done=True, mark=Mark(progress=self.upper))

    class Spawning(Span):
        def run(self, client, config):
            yield engine.Page(self, done=True, mark=Mark(progress=self.upper),
                              spawn=[(Late(self.stream, "late", self.lower, self.upper), self.lower)])

    class Writer(_Quiet):
        def state(self, value):
            states.append(value.get("bookmarks", {}).get("receive", {}).get("since"))
            released.set()

    def plan(stream, context):
        begin = calendar.timegm((2024, 1, 1, 0, 0, 0))
        first = Spawning(stream, "first", begin, context.started)
        context.state_of(stream.name).track(begin, context.started).plan("first", [first])
        return [(first, begin)]

    config = load_config({"api_key": "pk_test_0000000000", "start_date": START_DATE, "concurrency": 2,
                          "decode_processes": 0})
    engine.run(config, KlaviyoClient(config), [stream], {}, Writer(), {CLASSIC_EVENT: plan})
    # held by the spawned unit (so not written yet, or at the start), not moved by the done span
    assert states[0] in (None, "2024-01-01T00:00:00Z")
    assert states[-1] > "2024-01-01T00:00:00Z"


def test_the_engine_knows_when_each_stream_is_complete():
    """A stream is complete once none of its tasks is left and the stream it is read under is
    complete: a child stream whose tasks all ended is not, while its parent may still spawn more."""
    from tap_klaviyo import engine
    from tap_klaviyo.streams import BY_NAME, COLLECTION
    parent, child = BY_NAME["flows"], BY_NAME["flow_actions"]
    seen, go_on, child_ran = [], threading.Event(), threading.Event()

    class Task:
        def __init__(self, stream, name, spawn=()):
            self.stream, self.name, self.spawn = stream, name, list(spawn)

        def run(self, client, config):
            if self.stream is child:
                child_ran.set()
            yield engine.Page(self, done=not self.spawn, spawn=[(task, 0) for task in self.spawn[:1]])
            if self.spawn:      # the parent's second page: after its first child is done
                go_on.wait(30)
                yield engine.Page(self, done=True, spawn=[(task, 0) for task in self.spawn[1:]])

    contexts = []

    def plan(stream, context):
        contexts.append(context)
        if stream.name != "flows":
            return []
        return [(Task(parent, "flows", spawn=[Task(child, "a1"), Task(child, "a2")]), 0)]

    config = load_config({"api_key": "pk_test_0000000000", "start_date": START_DATE, "concurrency": 2,
                          "decode_processes": 0})
    # each stream's completion as the writer applies pages; the parent's second page waits for
    # its first child task to end
    real_settle = engine._settle

    def settle(states, *more):
        real_settle(states, *more)
        # the first child task's page applied, its stream has nothing left; the parent runs on
        if child_ran.is_set() and states["flow_actions"].pending == 0 and not go_on.is_set():
            seen.append({name: s.complete for name, s in states.items()})
            go_on.set()
    engine._settle = settle
    try:
        engine.run(config, KlaviyoClient(config), [parent, child], {}, _Quiet(), {COLLECTION: plan})
    finally:
        engine._settle = real_settle
    states = contexts[0].states
    assert states["flows"].complete and states["flow_actions"].complete
    # when the first child task had ended, the parent was still running: the child stream not complete
    assert seen == [{"flows": False, "flow_actions": False}]


def test_the_pool_runs_at_most_a_familys_burst_of_its_tasks_at_once_and_every_task_in_the_end():
    """A thread waiting on a rate limit holds its task: without a cap, 600 queued flow-message
    requests (3/s) held every thread for ten minutes while other endpoints waited (docs/concurrency.md)."""
    import types
    from tap_klaviyo import revisions
    from tap_klaviyo.engine import Pool
    from tap_klaviyo.ratelimit import family_limits
    lock, running, peak, done = threading.Lock(), {}, {}, []

    class Task:
        def __init__(self, family, number):
            self.family, self.number = family, number

        def run(self, client, config):
            with lock:
                running[self.family] = running.get(self.family, 0) + 1
                peak[self.family] = max(peak.get(self.family, 0), running[self.family])
            time.sleep(0.02)
            with lock:
                running[self.family] -= 1
                done.append(self.number)
            return iter(())

    class Unfamiliar(Task):     # an event span names no family: uncapped
        family = None

        def __init__(self, number):
            self.number = number

    config = types.SimpleNamespace(concurrency=16, revision=revisions.DEFAULT)
    pool = Pool(types.SimpleNamespace(), config)
    for number in range(30):
        pool.submit(Task("flow_messages", number), 60)
    for number in range(30, 60):
        pool.submit(Task("list_profiles", number), 750)
    for number in range(60, 76):
        pool.submit(Unfamiliar(number), 10 ** 9)
    pool.start()
    deadline = time.monotonic() + 30
    while len(done) < 76 and time.monotonic() < deadline:
        time.sleep(0.05)
    pool.stop.set()
    assert sorted(done) == list(range(76))
    assert peak["flow_messages"] == family_limits("flow_messages", revisions.DEFAULT)[0] == 3
    # the rest of the threads took other work while three waited on flow messages
    assert peak["list_profiles"] > 3 and peak[None] > 3
