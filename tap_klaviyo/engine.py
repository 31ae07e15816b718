"""The sync engine: a pool of fetch threads, the watermark, and the one writer of stdout.

Tasks (tap_klaviyo/tasks/) turn pages into serialized RECORD lines on worker threads. The main
thread alone writes to stdout, in the order pages arrive, and applies what each page says: rows
written, a span's progress, a span split into parts, child tasks to run. An incremental stream's
bookmark is its watermark: the instant before which every span of every unit (metric, or the
whole stream) has been emitted, so a span finishing early never moves the bookmark past a slower
one before it. STATE goes out at most once a second and at the end.
"""
import collections
import copy
import ctypes
import gc
import hashlib
import heapq
import logging
import os
import queue
import threading
import time

import msgspec

from . import metrics, watchdog
from . import state as bookmarks
from .decoding import Decoders
from . import timeutil
from .discovery import schema
from .output import read_in_full
from .ratelimit import family_limits
from .streams import STREAMS, at_revision, available, detail_columns, reads_in_full, root_of

LOGGER = logging.getLogger("tap_klaviyo")
PROGRESS_SECONDS = 5.0
STATE_SECONDS = 1.0
PAGES_WAITING = 4
CHANGE_MARGIN_SECONDS = 300


class Page(msgspec.Struct):
    """What a task hands the writer: RECORD lines and how many rows they hold, the tasks to run
    next, whether the task is done, and one value its stream's state interprets (state.Mark for the
    spans of incremental streams; StreamState.apply)."""
    task: object
    lines: bytes = b""
    count: int = 0
    done: bool = False              # the task has nothing more to send
    spawn: list = msgspec.field(default_factory=list)   # (task, rank) pairs to run next
    mark: object = None
    also: tuple = ()                # (stream name, rows) of rows of other streams among the lines (Included)


class Failure(msgspec.Struct):
    task: object
    error: BaseException


class Span:
    """Base of tasks that read [lower, upper) of one unit of an incremental stream.

    progress is only ever changed by the main thread, from the pages the task sends.
    """

    def __init__(self, stream, unit, lower, upper):
        self.stream = stream
        self.unit = unit
        self.lower = lower
        self.upper = upper
        self.progress = lower
        self.done = False
        self.stopped = False

    def describe(self):
        return f"{timeutil.to_bookmark(self.progress)}..{timeutil.to_bookmark(self.upper)}"


def _tune_memory():
    """glibc gives each thread its own malloc arena; 32 fetch threads each keeping freed response
    buffers tripled peak RSS in the benchmark, so one arena (a no-op off glibc). A page parses into
    hundreds of thousands of objects that die together, so the collector's default thresholds ran
    it over and over for nothing (16% of CPU on the dense benchmark); the long-lived start-up
    objects are frozen out of its scans."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 1)     # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class Pool:
    """Daemon worker threads running tasks by rank (the earliest span first, so all watermarks move
    forward together). Pages come back through a queue to the writer; memory stays flat because a
    page is not decoded while the writer has PAGES_WAITING pages to write (wait_for_room)."""

    def __init__(self, client, config):
        self._client = client
        self._config = config
        self._tasks = queue.PriorityQueue()
        self._serial = 0
        # tasks of one endpoint family running at once are capped at its burst limit: a thread
        # waiting on a rate limit holds its task, and 600 queued flow-message requests (3/s, 60/min)
        # took every thread for ten minutes while campaign messages, members and reports waited
        self._family_lock = threading.Lock()
        self._running = collections.Counter()
        self._parked = {}       # family -> heap of (rank, serial, task) over its cap
        self._caps = {}
        self.results = queue.Queue()
        self.stop = threading.Event()
        self._taken = threading.Condition()     # notified when the writer takes a page
        self._writer = None
        client.wait_to_decode = self.wait_for_room
        self._threads = [threading.Thread(target=self._work, name=f"fetch-{n}", daemon=True)
                         for n in range(config.concurrency)]

    def submit(self, task, rank=0):
        self._serial += 1
        self._tasks.put((rank, self._serial, task))

    def start(self):
        gc.freeze()     # what planning made lives to the end: out of the collector's scans
        self._writer = threading.current_thread()
        for thread in self._threads:
            thread.start()

    def take(self, timeout):
        watchdog.writing(False)     # the writer is back; writing a page to stdout was the target's time
        item = self.results.get(timeout=timeout)
        watchdog.writing(True)
        with self._taken:
            self._taken.notify_all()
        return item

    def wait_for_room(self):
        """Called before a page is decoded: waits while the writer has PAGES_WAITING pages to
        write, so the pages in memory stay bounded (PAGES_WAITING, plus the client's BODIES_HELD
        answers read and not yet decoded). A bounded queue did not bound them: each worker blocked
        on it held its page (11 pages of lines, 30 MB, at the dense benchmark's peak)."""
        if threading.current_thread() is self._writer:
            return      # the writer waiting for itself would wait forever
        watchdog.waiting("writer room")
        with self._taken:
            while self.results.qsize() >= PAGES_WAITING and not self.stop.is_set():
                self._taken.wait(0.5)

    def _work(self):
        while not self.stop.is_set():
            try:
                item = self._tasks.get(timeout=0.5)
            except queue.Empty:
                continue
            task = item[2]
            family = getattr(task, "family", None)     # resource tasks name their endpoint family
            if family is not None and not self._admit(family, item):
                continue
            try:
                running = self._run(task)
            finally:
                if family is not None:
                    self._release(family)
            if not running:
                return

    def _cap(self, family):
        cap = self._caps.get(family)
        if cap is None:
            cap = self._caps[family] = max(1, family_limits(family, self._config.revision)[0])
        return cap

    def _admit(self, family, item):
        """Whether a task may run now; one over its family's cap waits, parked, for one to end."""
        with self._family_lock:
            if self._running[family] >= self._cap(family):
                heapq.heappush(self._parked.setdefault(family, []), item)
                return False
            self._running[family] += 1
            return True

    def _release(self, family):
        with self._family_lock:
            self._running[family] -= 1
            parked = self._parked.get(family)
            if parked:
                self._tasks.put(heapq.heappop(parked))

    def _run(self, task):
        """One task's pages to the writer; False when the worker is to stop. A page's lines take
        megabytes: once handed over, neither this frame nor the task's generators refer to them,
        while they fetch the next page or sit idle (each worker kept one: the dense benchmark's peak
        fell from 99 to 68 MB without them)."""
        try:
            for page in task.run(self._client, self._config):
                if self.stop.is_set():
                    return False
                self.results.put(page)
                watchdog.progress()     # a page handed to the writer
                del page    # else held while the task fetches its next page
        except BaseException as exc:   # handed to the main thread, which ends the run
            self.results.put(Failure(task, exc))
            return False
        return True


class _Progress:
    """Stitch-style extraction logs: record_count metrics and a short line per stream."""

    def __init__(self, streams):
        self.rows = {stream.name: 0 for stream in streams}
        self._logged = dict(self.rows)
        self._last = time.monotonic()

    def add(self, stream_name, count):
        if count:       # a parent read only for its children's sake writes no rows
            self.rows[stream_name] += count

    def maybe_log(self, states, force=False):
        now = time.monotonic()
        elapsed = now - self._last
        if not force and elapsed < PROGRESS_SECONDS:
            return
        for name, total in self.rows.items():
            new = total - self._logged[name]
            if new or force:
                metrics.record_count(new, name)
            if new and not force:
                watermark = states[name].watermark if name in states else None
                span = watermark.reading() if watermark is not None else None
                where = f", reading {span.describe()}" if span else ""
                LOGGER.info("progress %s: %d rows (%.0f rows/s)%s", name, total, new / elapsed, where)
        self._logged = dict(self.rows)
        self._last = now


class SyncContext:
    """What the per-family planners share: settings, the client, the incoming state, the sync's
    upper bound, each stream's state (StreamState, which planners give a watermark), and lookups
    made once per run."""

    def __init__(self, config, client, state, started, streams, columns=None, catalog_metrics=None):
        self.config = config
        self.client = client
        self.state = state
        self.started = started
        # every stream's row as the configured revision has it (see streams.Stream.revised)
        self.rows = {stream.name: at_revision(stream, config.revision) for stream in STREAMS}
        self.selected = {stream.name for stream in streams}
        self.needed = set()                     # selected streams and the parents they are read under
        for stream in streams:
            stream = self.rows[stream.name]
            if not available(stream, config.revision):
                continue
            self.needed.add(stream.name)
            while stream.parent:
                self.needed.add(stream.parent)
                stream = self.rows[stream.parent]
        self.columns = columns or {}            # stream name -> selected columns (None: all)
        self.catalog_metrics = catalog_metrics or {}    # classic table -> [(metric id, name)] discovery noted
        # resource streams read for their changes: root stream name -> the instant changes are read from
        self.changed_since = {}
        self.states = {}                # stream name -> its StreamState, kept by the writer thread
        self._cache = {}
        self._claimed = set()
        self._locks = {}                # key -> the lock its computation runs under
        self._locks_lock = threading.Lock()

    def state_of(self, name):
        """The stream's StreamState (made on first use; planning and the writer thread only)."""
        stream_state = self.states.get(name)
        if stream_state is None:
            row = self.rows[name]
            parent = self.state_of(row.parent) if row.parent else None
            stream_state = self.states[name] = bookmarks.StreamState(name, self.state, parent)
        return stream_state

    def claim(self, key):
        """True the first time key is claimed in this run (a plan made once for several streams)."""
        if key in self._claimed:
            return False
        self._claimed.add(key)
        return True

    def once(self, key, compute):
        """compute() the first time key is asked for; the same value after (any thread)."""
        if key in self._cache:
            return self._cache[key]
        # one lock per key: a computation (the metric list, retried for minutes maybe) holds up
        # only those who want its value, and may itself ask for another key
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = compute()
            return self._cache[key]


class _Output:
    """SCHEMA messages go out only once a request has succeeded (a bad key writes nothing), then
    records, and STATE at a bounded rate."""

    def __init__(self, writer, streams, columns=None):
        self._writer = writer
        self._streams = streams
        self._columns = columns or {}
        self._schemas_written = False
        self._last_state = None
        self._last_state_at = 0.0

    def _schemas(self):
        if self._schemas_written:
            return
        self._schemas_written = True
        for stream in self._streams:
            stream_schema = schema(stream)
            chosen = self._columns.get(stream.name)
            if chosen is not None:      # a deselected column is no column of the table at all
                stream_schema["properties"] = {name: column for name, column in stream_schema["properties"].items()
                                               if name in chosen}
            self._writer.schema(stream.name, stream_schema, stream.key,
                                [stream.replication_key] if stream.replication_key else None)

    def records(self, lines):
        self._schemas()
        self._writer.write(lines)

    def activate(self, stream_name, version):
        self._schemas()
        self._writer.activate_version(stream_name, version)

    def state(self, state, force=False):
        now = time.monotonic()
        if not force and now - self._last_state_at < STATE_SECONDS:
            return
        self._schemas()
        if state != self._last_state or force:
            self._writer.state(state)
            self._last_state = copy.deepcopy(state)
        self._last_state_at = now


def decode_helpers(config):
    """How many helper processes decode pages (see decoding): the setting, else one when the
    machine has a core to spare. A single connection decodes one page at a time: none."""
    if config.concurrency == 1:
        return 0
    if config.decode_processes is not None:
        return config.decode_processes
    try:
        cores = len(os.sched_getaffinity(0))     # the cores this process may use, not the machine's
    except AttributeError:
        cores = os.cpu_count() or 1
    return 1 if cores >= 2 else 0


def _settle(states, output, started, revision):
    """Marks the streams that are complete, parents before their children; a stream read in full
    activates its version once complete, after its last row."""
    changed = True
    while changed:
        changed = False
        for stream_state in states.values():
            if not stream_state.complete and stream_state.settle():
                changed = True
    for stream_state in states.values():
        if stream_state.finish(started, revision):
            output.activate(stream_state.name, stream_state.version)


def columns_digest(stream, columns):
    """A short stable digest of the columns a resource stream's rows carry (columns: the catalog's
    selection, stream name -> set or None for every column but the detail ones, as
    discovery.selected_columns gives it). Its bookmark keeps the last full read's (docs/full-reads.md):
    when this run's differs, a column was selected (or dropped) since, and the tree is read in full."""
    chosen = columns.get(stream.name)
    if chosen is None:
        chosen = set(schema(stream)["properties"]) - set(detail_columns(stream))
    return hashlib.sha256(",".join(sorted(chosen)).encode()).hexdigest()[:12]


def _plan_cycles(context):
    """Which selected resource streams this run reads in full, and from when the others read what
    changed (docs/full-reads.md). The streams under one root share its read: in full when the root
    has no filter for changes, when one of them is due a full read (full_refresh_days), has no
    bookmark yet, or carries other columns than its last full read did; else changes since the
    earliest of their bookmarks. A stream read in full has its rows carry a table version (the
    sync's start in milliseconds, Singer's convention), activated once the stream is complete. A
    stream the revision lacks is not read at all: an empty full read would have the target drop its
    rows."""
    version = int(context.started * 1000)
    config = context.config
    days = config.full_refresh_days
    # a change Klaviyo dates a little before the last run's start may show only after it: re-read a
    # margin (inferred: Klaviyo documents no such delay; lookback_minutes widens it)
    margin = max(CHANGE_MARGIN_SECONDS, config.lookback_minutes * 60)
    trees = {}
    for name in sorted(context.selected):
        row = context.rows[name]
        if reads_in_full(row) and available(row, context.config.revision):
            trees.setdefault(root_of(row, context.rows).name, []).append(context.state_of(name))
    versions = {}
    for root, members in trees.items():
        marks = [member.changed_since(context.started) for member in members]
        # every member's columns are compared (no short cut): each keeps this run's digest for its bookmark
        recolumned = [member.name for member in members
                      if member.columns_changed(columns_digest(context.rows[member.name], context.columns))]
        if recolumned and None not in marks:
            LOGGER.info("stream%s %s: selected columns differ from those of the last full read; reading %s in full",
                        "s" if len(recolumned) > 1 else "", ", ".join(recolumned),
                        ", ".join(member.name for member in members))
        if context.rows[root].changes is None or None in marks or recolumned or \
                any(member.full_read_due(context.started, days, config.revision) for member in members):
            for member in members:
                member.read_in_full(version)
                versions[member.name] = version
        else:
            context.changed_since[root] = min(marks) - margin
            for member in members:
                member.read_changes()
    read_in_full(versions)


def run(config, client, streams, state, writer, planners, columns=None, catalog_metrics=None):
    """Extract the selected streams; returns the final state.

    planners maps a stream family to plan(stream, context) -> [(task, rank)]; columns and
    catalog_metrics are what the catalog says of the streams (see SyncContext).
    """
    _tune_memory()      # first: forked helpers inherit it
    # forked before any thread or connection exists (the client opens its sessions lazily)
    client.decoders = Decoders(decode_helpers(config))
    watchdog.start(config.watchdog_seconds)     # after the fork: no helper inherits its thread
    try:
        return _run(config, client, streams, state, writer, planners, columns, catalog_metrics)
    finally:
        watchdog.stop()
        client.decoders.close()


def _run(config, client, streams, state, writer, planners, columns, catalog_metrics):
    started_clock = time.monotonic()
    context = SyncContext(config, client, state, timeutil.now(), streams, columns, catalog_metrics)
    output = _Output(writer, streams, columns)
    pool = Pool(client, config)
    pending = 0

    def submit(task, rank):
        nonlocal pending
        pool.submit(task, rank)
        context.state_of(task.stream.name).pending += 1
        pending += 1

    _plan_cycles(context)
    for stream in streams:
        stream = context.rows[stream.name]
        context.state_of(stream.name)
        for task, rank in planners[stream.family](stream, context):
            submit(task, rank)
    states = context.states
    _settle(states, output, context.started, config.revision)

    progress = _Progress(streams)
    pool.start()
    try:
        while pending:
            try:
                item = pool.take(timeout=1.0)
            except queue.Empty:
                progress.maybe_log(states)
                continue
            if isinstance(item, Failure):
                raise item.error
            task = item.task
            stream_state = context.state_of(task.stream.name)
            output.records(item.lines)
            progress.add(task.stream.name, item.count)
            for name, count in item.also:       # rows of another stream in the same pages (event_attributions)
                progress.add(name, count)
            spans = [child for child, _ in item.spawn if isinstance(child, Span)]
            stream_state.apply(task, item.mark, [span for span in spans if span.stream.name == task.stream.name])
            for span in spans:
                if span.stream.name != task.stream.name:
                    context.state_of(span.stream.name).adopt(span)
            for child, rank in item.spawn:
                submit(child, rank)
            if item.done:
                task.done = True
                stream_state.pending -= 1
                pending -= 1
                _settle(states, output, context.started, config.revision)
            stream_state.write()
            output.state(state)
            progress.maybe_log(states)
    finally:
        pool.stop.set()
    _settle(states, output, context.started, config.revision)
    for stream_state in states.values():
        stream_state.write(final=True)
    output.state(state, force=True)
    progress.maybe_log(states, force=True)
    LOGGER.info("sync done in %.1f s: %s; %d requests, %d throttled", time.monotonic() - started_clock,
                ", ".join(f"{n} {c}" for n, c in progress.rows.items()), client.requests_made, client.throttled)
    return state
