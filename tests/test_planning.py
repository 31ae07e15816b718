"""The adaptive plan (issue 10): a range is read with the fewest pages and split only where the
data is dense; whatever the split, rows are exactly once, the bookmark never passes an unemitted
event, and a killed run resumes with nothing lost."""
import calendar
import math
import time

import pytest

from tests import expected
from tests.conftest import assert_state_never_passes_unemitted, catalog_selecting, run_killed, run_tap

# pages of 200 (no page[size] before 2026-01-15) make a dense range out of a few thousand events
SMALL_PAGES = "2025-10-15"
DENSE_STREAMS = ("receive", "open", "click")


def _dense_day(sandbox, per_metric=3000, cluster=300):
    """A day, two days before the account's anchor, holding per_metric events of each of three
    classic metrics. Each metric's day starts with 150 events a second apart, then `cluster` events
    in one second, so the first page of 200 ends inside the cluster: the split lands there."""
    day = (sandbox.account.anchor // 86400 - 2) * 86400
    events = []
    for stream in DENSE_STREAMS:
        name = expected.CLASSIC_METRICS[stream][0]
        events += [{"metric_name": name, "timestamp": day + 1 + n} for n in range(150)]
        events += [{"metric_name": name, "timestamp": day + 200}] * cluster
        rest = per_metric - 150 - cluster
        events += [{"metric_name": name, "timestamp": day + 300 + n * (86000 - 300) // rest} for n in range(rest)]
    sandbox.post("/__sandbox/events", {"events": events})
    return day


def _bookmarks(day):
    """Bookmarks made by hand, without the per-day counts a run keeps: the runs that resume from them
    turn late_event_days off, else they would re-read the days before (tests/test_late_events.py)."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day))
    return {"bookmarks": {stream: {"since": since} for stream in DENSE_STREAMS}}


def _rows(run):
    out = {}
    for stream, rows in run.by_stream().items():
        ids = [row["id"] for row in rows]
        assert len(ids) == len(set(ids)), f"{stream}: an event written twice in one run"
        out[stream] = sorted(rows, key=lambda r: r["id"])
    return out


def _expected(sandbox, streams, since):
    """Rows from since up to the sync's start (the sandbox also holds events dated days ahead)."""
    dump = sandbox.dump()
    until = dump["anchor"] + 3600
    return {s: sorted(expected.event_rows(dump, s, since, until).values(), key=lambda r: r["id"]) for s in streams}


@pytest.fixture
def dense(make_sandbox):
    sandbox = make_sandbox(events=600)
    return sandbox, _dense_day(sandbox)


def test_a_dense_day_is_split_and_gives_exactly_the_rows_at_any_concurrency(dense, tmp_path):
    sandbox, day = dense
    catalog = catalog_selecting(*DENSE_STREAMS)
    runs = {}
    for concurrency in (1, 32):
        sandbox.post("/__sandbox/stats/reset", {})
        run = run_tap(tmp_path, sandbox.config(concurrency=concurrency, revision=SMALL_PAGES, late_event_days=0),
                      catalog=catalog, state=_bookmarks(day))
        assert "parts side by side" in run.stderr, "the dense day was not split"
        requests = sandbox.stats()["by_family"]["events"]
        want = _expected(sandbox, DENSE_STREAMS, day)
        minimum = sum(math.ceil(len(rows) / 200) for rows in want.values())
        assert requests <= 1.2 * minimum + 2 * len(DENSE_STREAMS), (requests, minimum)
        runs[concurrency] = _rows(run)
        assert runs[concurrency] == want
    assert runs[1] == runs[32]


def test_a_sparse_year_costs_about_a_request_per_page(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=4000)
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting(*expected.CLASSIC_METRICS))
    start = calendar.timegm(time.strptime("2020-01-01", "%Y-%m-%d"))
    want = _expected(sandbox, expected.CLASSIC_METRICS, start)
    assert _rows(run) == {s: rows for s, rows in want.items() if rows}
    metrics = sum(len(names) for names in expected.CLASSIC_METRICS.values())
    minimum = sum(math.ceil(len(rows) / 1000) for rows in want.values())
    requests = sandbox.stats()["by_family"]["events"]
    assert requests <= 1.2 * minimum + 2 * metrics, (requests, minimum)


def test_mixed_account_rows_match_across_concurrency(dense, tmp_path):
    sandbox, day = dense
    catalog = catalog_selecting(*expected.CLASSIC_METRICS)
    serial = run_tap(tmp_path, sandbox.config(concurrency=1, revision=SMALL_PAGES), catalog=catalog)
    parallel = run_tap(tmp_path, sandbox.config(revision=SMALL_PAGES), catalog=catalog)
    assert _rows(serial) == _rows(parallel)
    start = calendar.timegm(time.strptime("2020-01-01", "%Y-%m-%d"))
    want = _expected(sandbox, expected.CLASSIC_METRICS, start)
    assert _rows(parallel) == {s: rows for s, rows in want.items() if rows}


def test_state_never_passes_an_unemitted_event_under_splits(dense, tmp_path):
    sandbox, day = dense
    run = run_tap(tmp_path, sandbox.config(concurrency=8, revision=SMALL_PAGES, late_event_days=0),
                  catalog=catalog_selecting(*DENSE_STREAMS), state=_bookmarks(day))
    assert "parts side by side" in run.stderr
    wanted = {s: sorted((r["timestamp"], r["id"]) for r in rows) for s, rows in _expected(sandbox, DENSE_STREAMS, day).items()}
    checked = assert_state_never_passes_unemitted(run.messages, wanted)
    assert checked == sum(len(v) for v in wanted.values())


@pytest.mark.parametrize("kill_after", [1.0, 3.0])
def test_a_kill_during_split_reading_resumes_with_nothing_lost(make_sandbox, tmp_path, kill_after):
    # about 6 s of run: ~60 requests of 200 ms, two at a time
    sandbox = make_sandbox(events=600, latency=0.2)
    day = _dense_day(sandbox, per_metric=4000)
    config = sandbox.config(concurrency=2, revision=SMALL_PAGES, late_event_days=0)
    catalog = catalog_selecting(*DENSE_STREAMS)
    first = run_killed(tmp_path, config, catalog, kill_after, state=_bookmarks(day))
    states = [m["value"] for m in first if m["type"] == "STATE"]
    first_ids = {m["record"]["id"] for m in first if m["type"] == "RECORD"}
    second = run_tap(tmp_path, config, catalog=catalog, state=states[-1] if states else _bookmarks(day))
    want = {r["id"] for rows in _expected(sandbox, DENSE_STREAMS, day).values() for r in rows}
    assert want <= first_ids | {r["id"] for r in second.records()}
    assert len(first_ids) < len(want), "the kill came after the run had finished; nothing was tested"
