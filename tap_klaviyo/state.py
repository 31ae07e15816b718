"""Bookmarks in and out, and each stream's state during a run.

The classic shape is kept: {"bookmarks": {"<stream>": {"since": "YYYY-MM-DDTHH:MM:SSZ"}}}.
singer-io tap-klaviyo 1.1.4+ keyed the same thing by metric id; that is read too. Every key the
tap does not know is carried through unchanged.

During a run each stream has one StreamState, kept by the writer thread alone: where the stream
begins, what each of its pages tells it (Page.mark), whether the stream is complete, and the
bookmark it writes to STATE.
"""
import copy
import logging

import msgspec

from . import daycounts, timeutil
from .errors import ConfigError

LOGGER = logging.getLogger("tap_klaviyo")


def read(path):
    """The state in the file at path. A file not there yet, or empty, is a first run: no bookmarks."""
    from .config import read_json_file
    try:
        with open(path, "rb") as handle:
            empty = not handle.read(4096).strip()
    except FileNotFoundError:
        LOGGER.info("state file %s does not exist yet: a first run, every stream starts at start_date", path)
        return {}
    except OSError:
        empty = False       # a directory or an unreadable file: read_json_file says what is wrong
    if empty:
        LOGGER.info("state file %s is empty: a first run, every stream starts at start_date", path)
        return {}
    return validate(read_json_file(path, "state"), f"state file {path}")


# Top-level keys of a Singer state this tap reads or knows (currently_syncing: other taps' way of
# saying where a run stopped; this tap does not need it, and keeps it).
KNOWN_KEYS = ("bookmarks", "currently_syncing")


def _unwrap(raw, source):
    """The state inside the envelopes that tools save around it: a whole STATE message
    ({"type": "STATE", "value": ...}), the shape that `grep STATE | tail -1 > state.json` saves, and
    Meltano's {"singer_state": ...}, the shape `meltano state get` prints. Taken as the state, either
    lost every bookmark (a full re-read from start_date) and the STATE written next nested it once
    more, each run."""
    messages = meltano = 0
    while isinstance(raw, dict):
        if raw.get("type") == "STATE" and "value" in raw:
            raw, messages = raw["value"], messages + 1
        elif "singer_state" in raw and "bookmarks" not in raw:
            raw, meltano = raw["singer_state"], meltano + 1
        else:
            break
    if messages:
        nested = f", nested {messages} deep" if messages > 1 else ""
        LOGGER.warning("%s holds a whole Singer STATE message ({\"type\": \"STATE\", \"value\": ...}%s); "
                       "using its value, bookmarks included. To save only the value: "
                       "`grep '\"type\":\"STATE\"' tap-output | tail -1 | jq -c .value > state.json`",
                       source, nested)
    if meltano:
        LOGGER.warning("%s holds a state as Meltano prints it ({\"singer_state\": ...}, from `meltano state "
                       "get`); using its singer_state, bookmarks included. To save only the tap's state: "
                       "`meltano state get STATE_ID | jq -c .singer_state > state.json`", source)
    return raw


def _warn_unknown_shape(state, source):
    """A state object none of whose top-level keys this tap knows is read as no bookmarks at all:
    every stream starts again at start_date. Most likely another tool's wrapper or a hand-made
    file; say so instead of re-reading the account in silence."""
    if state and not any(key in state for key in KNOWN_KEYS):
        shown = ", ".join(repr(key) for key in list(state)[:5]) + (", ..." if len(state) > 5 else "")
        LOGGER.warning("%s has no 'bookmarks' (its top-level keys: %s), so every stream starts at start_date; "
                       "a state this tap reads looks like {\"bookmarks\": {\"receive\": {\"since\": "
                       "\"2024-01-01T00:00:00Z\"}}}, the value of the last STATE message the tap wrote",
                       source, shown)


def validate(raw, source="state"):
    """Check a parsed state object; return it (a deep copy) or raise one clear line."""
    raw = _unwrap(raw, source)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a JSON object like {{\"bookmarks\": {{\"receive\": "
                          f"{{\"since\": \"2024-01-01T00:00:00Z\"}}}}}}, got {type(raw).__name__}")
    state = copy.deepcopy(raw)
    _warn_unknown_shape(state, source)
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return state
    if not isinstance(bookmarks, dict):
        raise ConfigError(f"{source} 'bookmarks' must be an object keyed by stream name, got "
                          f"{type(bookmarks).__name__}")
    for key, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            raise ConfigError(f"{source} bookmark for {key!r} must be an object like "
                              f"{{\"since\": \"2024-01-01T00:00:00Z\"}}, got {bookmark!r}")
        if "since" in bookmark:
            try:
                timeutil.parse_instant(bookmark["since"])
            except ValueError as exc:
                raise ConfigError(f"{source} bookmark {key!r} has since={bookmark['since']!r}: {exc}; "
                                  "fix or delete that bookmark") from None
    return state


def since(state, stream_name, metric_ids=()):
    """The stream's bookmark as epoch seconds, or None when the state holds none.

    The stream-name key wins; else the earliest of the metric-id keys of the stream's metrics.
    """
    bookmarks = state.get("bookmarks") or {}
    own = (bookmarks.get(stream_name) or {}).get("since")
    if own is not None:
        return timeutil.parse_instant(own)
    legacy = [timeutil.parse_instant(bookmarks[m]["since"]) for m in metric_ids
              if "since" in (bookmarks.get(m) or {})]
    return min(legacy) if legacy else None


def set_since(state, stream_name, epoch):
    bookmark = state.setdefault("bookmarks", {}).setdefault(stream_name, {})
    bookmark["since"] = timeutil.to_bookmark(epoch)


FULL_READ_SLACK = 3600      # seconds a full read may come early (see StreamState.full_read_due)


class Mark(msgspec.Struct):
    """What a page of an incremental stream's span tells its stream's state (Page.mark)."""
    progress: int | None = None     # every row of the span before this instant is emitted
    split_at: int | None = None     # the span stops at this instant; the page's new spans cover the rest
    stopped: bool = False           # ended before its upper (a daily budget spent): the watermark holds at
                                    # its progress for the rest of the run
    unread: bool = False            # the stream has nothing to read this run
    partial: bool = False           # rows the stream has are missing from this page: its full read is no
                                    # proof of what Klaviyo no longer has
    counted: dict | None = None     # (metric id, UTC day) -> rows the page wrote, to add to the day's count
    recount: tuple | None = None    # (metric id, [UTC days]) whose counts start again: re-read this run, and
                                    # maybe Klaviyo's counts {UTC day: count} of the days compared
    held: tuple | None = None       # (stream, instant): rows of that stream (read in these pages, Included) are
                                    # missing from the event at instant: its bookmark stays at or before it


class Watermark:
    """Per incremental stream: every row before value() has been emitted.

    Each unit's spans tile its range in time order; a unit with no span yet holds the mark at the
    stream's start.
    """

    def __init__(self, begin, end):
        self.begin = begin
        self.end = end
        self._spans = {}            # unit -> its spans in time order, None until planned
        self._held = {}             # stream -> the earliest instant its rows are missing from (Mark.held)
        self._first_open = {}
        # A task found mid-run that the stream has nothing to read (a metric table whose metric
        # the account lacks; Mark.unread): the state's bookmark is left as it is, none if none, as
        # when a planner finds so before planning, so a lower start_date still reaches back.
        self.unread = False

    def expect(self, unit):
        self._spans.setdefault(unit, None)
        self._first_open[unit] = 0

    def plan(self, unit, spans):
        self._spans[unit] = list(spans)
        self._first_open[unit] = 0

    def split(self, span, children):
        """span now ends where children begin; children follow it, in time order."""
        spans = self._spans[span.unit]
        at = spans.index(span, self._first_open[span.unit])
        spans[at + 1:at + 1] = children

    def hold(self, stream, instant):
        """Rows of stream (one that follows this watermark) are missing from instant on: its
        bookmark stays at or before it for the rest of the run, whatever the spans' progress."""
        self._held[stream] = min(instant, self._held.get(stream, instant))

    def value(self, stream=None):
        """Every row before this instant has been emitted (for stream, when given: its holds too)."""
        held = self._held.get(stream)
        value = self._value()
        return value if held is None else min(value, held)

    def _value(self):
        marks = []
        for unit, spans in self._spans.items():
            if spans is None:
                marks.append(self.begin)
                continue
            if spans and spans[-1].upper <= self.begin:
                continue    # days before the bookmark read again (late events): they never hold it back
            index = self._first_open[unit]
            while index < len(spans) and spans[index].done and not spans[index].stopped:
                index += 1
            self._first_open[unit] = index
            marks.append(spans[index].progress if index < len(spans) else self.end)
        # re-reading the lookback never moves a bookmark backwards
        return max(self.begin, min(marks)) if marks else self.begin

    def reading(self):
        for unit, spans in self._spans.items():
            index = self._first_open[unit]
            if spans and index < len(spans):
                return spans[index]
        return None


class StreamState:
    """One stream's state during a run (see the module's docstring). parent: the state of the stream
    this one is read under, whose completion it waits for."""

    def __init__(self, name, state, parent=None):
        self.name = name
        self._state = state         # the run's state object, which STATE messages write
        self.parent = parent
        self.watermark = None       # incremental streams: what their bookmark follows
        self.floor = None           # incremental streams: where this run began (begin()); the bookmark never
                                    # goes below it, even under a watermark that begins earlier (one shared)
        self.pending = 0            # its tasks queued or running
        self.complete = False
        self.tally = None           # event streams: their per-day counts (daycounts.Tally)
        # resource streams (docs/full-reads.md): read in full now and then, else what changed
        self.cycled = False         # the stream is one
        self.version = None         # read in full this run: the table version its rows carry
        self.partial = False        # a page of it said rows are missing
        self.finished = False
        self.columns = None         # a digest of the columns its rows carry this run (engine.columns_digest)

    def bookmark(self, legacy_keys=()):
        """The bookmark the run began with (epoch seconds), None when the state holds none."""
        return since(self._state, self.name, legacy_keys)

    def begin(self, start_date, started, legacy_keys=()):
        """Where an incremental stream's range begins: its bookmark, else start_date; never after
        the sync's start (a bookmark from a clock ahead of this one)."""
        begin = self.bookmark(legacy_keys)
        begin = start_date if begin is None else begin
        if begin > started:
            LOGGER.warning("stream %s: bookmark %s is after the sync start; reading from %s",
                           self.name, timeutil.to_bookmark(begin), timeutil.to_bookmark(started))
            begin = started
        self.floor = begin
        return begin

    def track(self, begin, end):
        """The stream's bookmark follows a watermark over [begin, end), which its planner fills."""
        self.watermark = Watermark(begin, end)
        return self.watermark

    def counts(self, first, begin):
        """The stream keeps per-day counts of what it writes (see daycounts) for the days from the
        one holding first, on from begin (where it reads on); returns those the state holds. Counts
        that run past begin (a bookmark moved back by hand, or counts kept without one) lose the days
        from begin's on, which this run counts again."""
        bookmark = (self._state.get("bookmarks") or {}).get(self.name)
        ours, seen = daycounts.loaded(bookmark, self.name), daycounts.loaded(bookmark, self.name, "klaviyo_counts")
        try:
            counted_to = timeutil.parse_instant((bookmark or {}).get("counted_to"))
        except ValueError:
            counted_to = None
        if counted_to is None or counted_to > begin:
            ours, seen = daycounts.up_to(ours, daycounts.day_of(begin)), daycounts.up_to(seen, daycounts.day_of(begin))
        self.tally = daycounts.Tally(ours, seen, first, isinstance(bookmark, dict) and "counts" in bookmark)
        return self.tally.before

    def full_read_due(self, now, days, revision):
        """Whether this run reads the stream in full: its last full read (bookmark full_read_at) is
        days old or more (within an hour: a daily run that starts a little earlier than the last is
        not put off a day), there has been none, or it read another API revision (whose requests
        may differ)."""
        bookmark = (self._state.get("bookmarks") or {}).get(self.name) or {}
        last = bookmark.get("full_read_at")
        if days == 0 or last is None or bookmark.get("revision") != revision:
            return True
        try:
            return now - timeutil.parse_instant(last) >= days * 86400 - FULL_READ_SLACK
        except ValueError as exc:
            LOGGER.warning("state bookmark %s: full_read_at %r is no date-time (%s); reading the stream in full",
                           self.name, last, exc)
            return True

    def columns_changed(self, columns):
        """Whether the stream's last full read carried other columns than this run's (bookmark
        columns, a digest engine.columns_digest makes): a column selected since then holds nothing in
        the rows that read left unchanged. A bookmark without one (a state written before the tap
        kept it) is taken to match, and adopts this run's when the run finishes the stream."""
        self.columns = columns
        stored = ((self._state.get("bookmarks") or {}).get(self.name) or {}).get("columns")
        return stored is not None and stored != columns

    def changed_since(self, started):
        """Where this run's read of changes begins: the start of the last run that read the
        stream to its end (bookmark since), never after this run's; None when there is none."""
        since = self.bookmark()
        return None if since is None else min(since, started)

    def read_in_full(self, version):
        self.cycled, self.version = True, version

    def read_changes(self):
        self.cycled = True

    def finish(self, started, revision):
        """Once the stream is complete, what its bookmark keeps: a read with no row missing moves
        since to the run's start (the next run's changes begin there), and a full read is dated,
        keeps the revision and the columns it read (a bookmark that has no columns yet takes this
        run's), and may activate its version. Returns whether it activates."""
        if not self.cycled or self.finished or not self.complete:
            return False
        self.finished = True
        if self.partial:
            LOGGER.warning("stream %s: some rows were missing from this read (see the warnings above): %s", self.name,
                           "no ACTIVATE_VERSION, so no row is marked deleted; the next run reads it in full again"
                           if self.version is not None else "the next run reads its changes from the same point")
            return False
        bookmark = self._state.setdefault("bookmarks", {}).setdefault(self.name, {})
        bookmark["since"] = timeutil.to_bookmark(started)
        if self.version is not None:
            bookmark["full_read_at"] = timeutil.to_bookmark(started)
            bookmark["revision"] = revision
        if self.columns is not None and (self.version is not None or "columns" not in bookmark):
            bookmark["columns"] = self.columns
        return self.version is not None

    def apply(self, task, mark, spans):
        """What a page of one of the stream's tasks tells: mark (a Mark, or None), and spans, the
        page's new tasks that are spans of this stream (a split's parts, or units found mid-run)."""
        if mark is not None and mark.partial:
            self.partial = True
        watermark = self.watermark
        if watermark is None:       # a full-table stream: nothing to follow
            return
        if mark is not None and mark.split_at is not None:
            task.upper = mark.split_at
            watermark.split(task, spans)
        else:
            for span in spans:
                self.adopt(span)
        if mark is None:
            return
        if self.tally is not None:
            if mark.recount is not None:
                self.tally.recount(*mark.recount)
            if mark.counted:
                self.tally.add(mark.counted)
        if mark.progress is not None:
            task.progress = mark.progress
        if mark.stopped:
            task.stopped = True
        if mark.unread:
            watermark.unread = True
        if mark.held is not None:
            watermark.hold(*mark.held)

    def adopt(self, span):
        """A span found during the run (a metric the catalog lacked) becomes a unit of the stream's
        watermark now, before the page that found it can move it."""
        if self.watermark is not None:
            self.watermark.plan(span.unit, [span])

    def settle(self):
        """Whether the stream is complete now: nothing of its own left to run, and the stream it
        is read under complete (which could still queue more of its tasks)."""
        if not self.complete and self.pending == 0 and (self.parent is None or self.parent.complete):
            self.complete = True
        return self.complete

    def write(self, final=False):
        """Writes the stream's bookmark into the state: its watermark. During the run it is written
        once the mark has moved or the state had one, so a stream whose reading has not begun (or
        finds it has nothing to read) pins no start_date in a STATE a kill would leave. At the end
        every incremental stream's is written, but for one with nothing to read this run
        (Watermark.unread), whose state is left as it is."""
        watermark = self.watermark
        if watermark is None or watermark.unread:
            return
        value = watermark.value(self.name)
        if self.floor is not None and value < self.floor <= watermark.end:
            # a watermark this stream shares may begin before this stream's own bookmark (events with
            # event_attributions selected later): never moved back, even in a STATE a kill would leave
            value = self.floor
        if final or value > watermark.begin or self.bookmark() is not None:
            set_since(self._state, self.name, value)
        if final and self.tally is not None and value == watermark.end:
            # only a run that read all it set out to has counts that match its bookmark
            bookmark = self._state["bookmarks"][self.name]
            bookmark["counts"], klaviyo = self.tally.result()
            bookmark["counted_to"] = timeutil.to_bookmark(value)
            if klaviyo:
                bookmark["klaviyo_counts"] = klaviyo
            else:
                bookmark.pop("klaviyo_counts", None)
