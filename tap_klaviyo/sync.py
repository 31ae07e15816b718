"""Sync: plan the work as tasks, fetch them side by side, emit records and bookmarks safely.

Workers run tasks (one event window, one list collection, one suppression reason), turning each
page into serialized RECORD lines. The main thread alone writes to stdout, in the order pages
arrive, and after each page writes STATE. An event stream's bookmark is its watermark: the
instant before which every window of every metric of the stream has been emitted, so a window
finishing early never moves the bookmark past a slower window before it.
"""
import ctypes
import logging
import queue
import threading
import time
from dataclasses import dataclass

from singer import metrics

from . import state as bookmarks
from . import timeutil
from .discovery import schema
from .output import record_lines, time_extracted
from .rows import EVENT_FIELDS, PROFILE_FIELDS, SUPPRESSION_REASONS, event_rows, exclusion_row, list_row
from .streams import EVENT, EXCLUSION, KLAVIYO_INTEGRATION, LIST

LOGGER = logging.getLogger("tap_klaviyo")
PROGRESS_SECONDS = 5.0


@dataclass
class Page:
    task: object
    lines: bytes
    count: int
    progress: int | None = None   # event windows: every event before this instant is emitted
    done: bool = False
    plan: list | None = None      # metric scans: the windows to fetch


@dataclass
class Failure:
    task: object
    error: BaseException


@dataclass(eq=False)
class MetricScan:
    """Plans one metric's windows over [lower, upper). A long range first asks for its earliest
    event, so years of history before a metric's first event cost one request, not one per window."""

    stream: object
    metric_id: str
    metric_name: str
    lower: int
    upper: int
    width: int

    def run(self, client, config):
        lower = self.lower
        if self.upper - self.lower > 2 * self.width:
            document = client.get("events", client.url("/api/events"), {
                "filter": _event_filter(self.metric_id, self.lower, self.upper),
                "sort": "datetime", "page[size]": 1, "fields[event]": "timestamp"})
            first = [e.get("attributes", {}).get("timestamp") for e in document["data"]]
            if not first:
                lower = self.upper
            elif isinstance(first[0], int):
                lower = max(self.lower, min(first[0], self.upper))
        windows = [EventWindow(self.stream, self.metric_id, self.metric_name, a, b)
                   for a, b in timeutil.windows(lower, self.upper, self.width)]
        yield Page(self, b"", 0, done=True, plan=windows)


def _event_filter(metric_id, lower, upper):
    return (f'equals(metric_id,"{metric_id}"),greater-or-equal(datetime,{timeutil.to_filter(lower)}),'
            f"less-than(datetime,{timeutil.to_filter(upper)})")


@dataclass(eq=False)
class EventWindow:
    """Events of one metric in [lower, upper), read page after page with the cursor."""

    stream: object
    metric_id: str
    metric_name: str
    lower: int
    upper: int
    progress: int = None      # every event of the window before this instant is emitted
    done: bool = False

    def __post_init__(self):
        self.progress = self.lower

    def run(self, client, config):
        params = {
            "filter": _event_filter(self.metric_id, self.lower, self.upper),
            "sort": "datetime",
            "include": "profile,metric",
            "page[size]": config.event_page_size,
            "fields[event]": EVENT_FIELDS,
            "fields[profile]": PROFILE_FIELDS,
            "fields[metric]": "name",
        }
        self._previous_ids = set()
        yield from client.pages("events", "/api/events", params, self._page)

    def _page(self, document, last):
        rows = event_rows(document, self.metric_id, self.metric_name, self.lower, self.upper)
        seen = set(self._previous_ids)    # a cursor page may repeat events of the page before it
        fresh = []
        for row in rows:
            if row["id"] not in seen:
                seen.add(row["id"])
                fresh.append(row)
        self._previous_ids = set() if last else {row["id"] for row in rows}
        progress = self.upper if last else max([self.lower] + [row["timestamp"] for row in rows])
        return Page(self, record_lines(self.stream.name, fresh, time_extracted()), len(fresh),
                    min(progress, self.upper), last)

    def describe(self):
        return f"{timeutil.to_bookmark(self.progress)}..{timeutil.to_bookmark(self.upper)}"


class ListCollection:
    """All lists (or all segments), each with its profile count from the per-id call."""

    def __init__(self, stream, kind):
        self.stream = stream
        self.kind = kind            # "list" or "segment"

    def run(self, client, config):
        path = f"/api/{self.kind}s"
        params = {f"fields[{self.kind}]": "name,created,updated"}
        if config.revision >= "2026-07-15":
            params["page[size]"] = 10
        for resources, last in client.pages(f"{self.kind}s", path, params, lambda doc, last: (doc["data"], last)):
            # the count calls are requests of their own, made outside the page's decoding
            rows = [list_row(resource, self.kind, self._profile_count(client, config, path, resource["id"]))
                    for resource in resources]
            yield Page(self, record_lines(self.stream.name, rows, time_extracted()), len(rows), done=last)

    def _profile_count(self, client, config, path, resource_id):
        if not config.list_person_count:
            return None
        document = client.get(f"{self.kind}_count", client.url(f"{path}/{resource_id}"), {
            f"additional-fields[{self.kind}]": "profile_count",
            f"fields[{self.kind}]": "profile_count",
        })
        return ((document.get("data") or {}).get("attributes") or {}).get("profile_count")


class SuppressedProfiles:
    """Profiles suppressed for one reason; each profile is emitted only by the query of its latest
    reason, so the five queries never emit the same email twice."""

    def __init__(self, stream, reason):
        self.stream = stream
        self.reason = reason

    def run(self, client, config):
        params = {
            "filter": f'equals(subscriptions.email.marketing.suppression.reason,"{self.reason}")',
            "additional-fields[profile]": "subscriptions",
            "fields[profile]": "email,subscriptions",
            "page[size]": 100,
        }
        classic_reason = SUPPRESSION_REASONS[self.reason]

        def page(document, last):
            rows = [row for row in map(exclusion_row, document["data"])
                    if row is not None and row["reason"] == classic_reason]
            return Page(self, record_lines(self.stream.name, rows, time_extracted()), len(rows), done=last)

        yield from client.pages("profiles", "/api/profiles", params, page)


class Watermark:
    """Per event stream: every event before value() has been emitted.

    A metric whose windows are not planned yet holds the mark at the stream's start.
    """

    def __init__(self, begin, end):
        self.begin = begin
        self.end = end
        self._windows = {}          # metric id -> its windows in time order, None until planned
        self._first_open = {}       # metric id -> index of its first unfinished window

    def expect(self, metric_id):
        self._windows[metric_id] = None
        self._first_open[metric_id] = 0

    def plan(self, metric_id, windows):
        self._windows[metric_id] = windows

    def value(self):
        marks = []
        for metric_id, windows in self._windows.items():
            if windows is None:
                marks.append(self.begin)
                continue
            index = self._first_open[metric_id]
            while index < len(windows) and windows[index].done:
                index += 1
            self._first_open[metric_id] = index
            marks.append(windows[index].progress if index < len(windows) else self.end)
        # re-reading the lookback never moves a bookmark backwards
        return max(self.begin, min(marks)) if marks else self.begin

    def reading(self):
        for metric_id, windows in self._windows.items():
            index = self._first_open[metric_id]
            if windows and index < len(windows):
                return windows[index]
        return None


def _share_malloc_arenas():
    """glibc gives each thread its own malloc arena; 32 fetch threads each keeping freed response
    buffers tripled peak RSS in the benchmark. One arena and a fixed mmap threshold (big buffers
    go straight back to the system) keep memory flat; a no-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 1)             # M_ARENA_MAX
        libc.mallopt(-3, 128 * 1024)    # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class _Pool:
    """Daemon worker threads running tasks by rank (window i of every stream before window i+1 of
    any, so all watermarks move forward together). Pages come back through a bounded queue, which
    keeps memory flat: a worker waits when the writer is behind."""

    def __init__(self, client, config):
        self._client = client
        self._config = config
        self._tasks = queue.PriorityQueue()
        self._serial = 0
        self.results = queue.Queue(maxsize=4)
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"fetch-{n}", daemon=True)
                         for n in range(config.concurrency)]

    def submit(self, task, rank=0):
        self._serial += 1
        self._tasks.put((rank, self._serial, task))

    def start(self):
        _share_malloc_arenas()
        for thread in self._threads:
            thread.start()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.results.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _work(self):
        while not self.stop.is_set():
            try:
                _, _, task = self._tasks.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                for page in task.run(self._client, self._config):
                    if self.stop.is_set():
                        return
                    self._put(page)
            except BaseException as exc:   # handed to the main thread, which ends the run
                self._put(Failure(task, exc))
                return


def _klaviyo_metrics(client):
    """(id, name) of every metric of the Klaviyo integration."""
    found = []
    params = {"filter": f'equals(integration.name,"{KLAVIYO_INTEGRATION}")', "fields[metric]": "name,integration"}
    for document in client.pages("metrics", "/api/metrics", params):
        for metric in document["data"]:
            attributes = metric.get("attributes") or {}
            if (attributes.get("integration") or {}).get("name") == KLAVIYO_INTEGRATION:
                found.append((metric["id"], attributes.get("name")))
    return found


class _Progress:
    """Stitch-style extraction logs: record_count metrics and a short line per stream."""

    def __init__(self, streams):
        self.rows = {stream.name: 0 for stream in streams}
        self._logged = dict(self.rows)
        self._last = time.monotonic()

    def add(self, stream_name, count):
        self.rows[stream_name] += count

    def maybe_log(self, watermarks, force=False):
        now = time.monotonic()
        elapsed = now - self._last
        if not force and elapsed < PROGRESS_SECONDS:
            return
        for name, total in self.rows.items():
            new = total - self._logged[name]
            if new or force:
                metrics.log(LOGGER, metrics.Point("counter", metrics.Metric.record_count, new,
                                                  {metrics.Tag.endpoint: name}))
            if new and not force:
                window = watermarks.get(name).reading() if name in watermarks else None
                where = f", reading {window.describe()}" if window else ""
                LOGGER.info("progress %s: %d rows (%.0f rows/s)%s", name, total, new / elapsed, where)
        self._logged = dict(self.rows)
        self._last = now


def sync(config, client, streams, state, writer):
    """Extract the selected streams; returns the final state."""
    started = timeutil.now()
    for stream in streams:
        writer.schema(stream.name, schema(stream), stream.key,
                      [stream.replication_key] if stream.replication_key else None)

    pool = _Pool(client, config)
    pending = 0
    for stream in streams:
        if stream.family == LIST:
            for kind in ("list", "segment"):
                pool.submit(ListCollection(stream, kind))
                pending += 1
        elif stream.family == EXCLUSION:
            for reason in SUPPRESSION_REASONS:
                pool.submit(SuppressedProfiles(stream, reason))
                pending += 1

    watermarks = {}
    event_streams = [s for s in streams if s.family == EVENT]
    metrics_found = _klaviyo_metrics(client) if event_streams else []
    width = max(1, round(config.window_days * 86400))
    for stream in event_streams:
        chosen = [(mid, name) for mid, name in metrics_found if name in stream.metric_names]
        if not chosen:
            LOGGER.warning("stream %s: the account has no Klaviyo metric named %s; no rows, bookmark "
                           "unchanged", stream.name, " or ".join(repr(n) for n in stream.metric_names))
            continue
        begin = bookmarks.since(state, stream.name, [mid for mid, _ in chosen])
        begin = config.start_date if begin is None else begin
        if begin > started:
            LOGGER.warning("stream %s: bookmark %s is after the sync start; reading from %s",
                           stream.name, timeutil.to_bookmark(begin), timeutil.to_bookmark(started))
            begin = started
        lower = begin - config.lookback_minutes * 60
        watermark = watermarks[stream.name] = Watermark(begin, started)
        for metric_id, metric_name in chosen:
            watermark.expect(metric_id)
            pool.submit(MetricScan(stream, metric_id, metric_name, lower, started, width))
            pending += 1
        LOGGER.info("stream %s: metrics %s, from %s to %s", stream.name,
                    ", ".join(f"{name} ({mid})" for mid, name in chosen), timeutil.to_bookmark(lower),
                    timeutil.to_bookmark(started))

    progress = _Progress(streams)
    pool.start()
    try:
        while pending:
            try:
                item = pool.results.get(timeout=1.0)
            except queue.Empty:
                progress.maybe_log(watermarks)
                continue
            if isinstance(item, Failure):
                raise item.error
            task = item.task
            if item.plan is not None:
                watermarks[task.stream.name].plan(task.metric_id, item.plan)
                for rank, window in enumerate(item.plan, start=1):
                    pool.submit(window, rank)
                pending += len(item.plan)
            writer.write(item.lines)
            progress.add(task.stream.name, item.count)
            if item.progress is not None:
                task.progress = item.progress
                task.done = item.done
            if task.stream.name in watermarks:
                bookmarks.set_since(state, task.stream.name, watermarks[task.stream.name].value())
            if item.done:
                pending -= 1
            writer.state(state)
            progress.maybe_log(watermarks)
    finally:
        pool.stop.set()
    for name, watermark in watermarks.items():
        bookmarks.set_since(state, name, watermark.value())
    writer.state(state)
    progress.maybe_log(watermarks, force=True)
    LOGGER.info("sync done in %.1f s: %s; %d requests, %d throttled", time.time() - started,
                ", ".join(f"{n} {c}" for n, c in progress.rows.items()), client.requests_made, client.throttled)
    return state

