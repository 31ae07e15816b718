"""Event streams: the classic metric tables (one unit per Klaviyo metric) and `events` (every
metric, or the ones config names), with `event_attributions` from the same pages."""
import functools
import logging

from .. import apispec, daycounts, timeutil, watchdog
from .. import state as bookmarks
from ..engine import Page, Span
from ..state import Mark
from ..output import envelope
from ..pages import AttributedEventPage, EventPage
from ..rows import EVENT_FIELDS, PROFILE_FIELDS, api_event_rows, attribution_rows, event_rows
from ..streams import BY_NAME
from .ranges import Included, MetricColumn, RangeReader, RangeScan
from .recount import Recount

LOGGER = logging.getLogger("tap_klaviyo")
CHECK_UNIT = "metric list"      # the watermark's unit of a MetricCheck: no metric id has a space


def list_metrics(client):
    """(id, name, integration name) of every metric of the account."""
    found = []
    for document in client.pages("metrics", "/api/metrics", {"fields[metric]": "name,integration"}):
        for metric in document["data"]:
            attributes = metric.get("attributes") or {}
            found.append((metric["id"], attributes.get("name"), (attributes.get("integration") or {}).get("name")))
    return found


def all_metrics(context):
    """list_metrics, fetched once per run (whichever thread asks first; the others wait for it:
    holding nothing its requests need, which the lock order checks, see watchdog)."""
    watchdog.waiting("metric list")
    return context.once("metrics", functools.partial(_fetch_metrics, context.client))


def _fetch_metrics(client):
    watchdog.hold("metric list")
    try:
        return list_metrics(client)
    finally:
        watchdog.let_go("metric list")


def _datetime_filter(lower, upper, metric_id=None):
    window = (f"greater-or-equal(datetime,{timeutil.to_filter(lower)}),"
              f"less-than(datetime,{timeutil.to_filter(upper)})")
    return f'equals(metric_id,"{metric_id}"),{window}' if metric_id else window


def _event_params(config, **more):
    return {"sort": "datetime", **more, **apispec.page_param("GET /api/events", config.revision)}


def _page_size(config):
    return apispec.page_size("GET /api/events", config.revision) or 200


def _parts_allowed(config, units):
    # enough cursors per unit that the pool stays busy, never fewer than two where data is dense
    return max(2, config.concurrency // max(1, units))


# Rows of a page, as RangeReader wants them: module-level, their arguments bound by partial, so
# that a page may be decoded in a helper process (see decoding).
def _classic_rows(metric_id, metric_name, document, lo, hi):
    return [(row["timestamp"], row) for row in event_rows(document, metric_id, metric_name, lo, hi)]


def _api_rows(names, document, lo, hi):
    return [(row["timestamp"], row) for row in api_event_rows(document, names, lo, hi)]


def plan_classic(stream, context):
    """One range scan per metric of the table. The metrics come from the catalog when discovery
    noted them there: their scans then start at once, beside a MetricCheck that fetches the
    account's metric list, instead of after it (a round trip less on every run); a scan writes
    nothing until the list confirms its metric."""
    config = context.config
    noted = context.catalog_metrics.get(stream.name)
    if noted is not None and _legacy_bookmarks(context.state, stream):
        noted = None    # the metric-id bookmarks are those of the account's metrics, maybe not noted ones
    chosen = stream.metrics_in(all_metrics(context)) if noted is None else noted
    if not chosen and noted is None:
        _no_metric(stream)
        return []
    stream_state = context.state_of(stream.name)
    begin = stream_state.begin(config.start_date, context.started, [mid for mid, _ in chosen])
    lower = begin - config.lookback_minutes * 60
    watermark = stream_state.track(begin, context.started)
    late = LateEvents(stream, context, begin, stream_state.bookmark([mid for mid, _ in chosen]) is not None)
    tasks = []
    for metric_id, metric_name in chosen:
        confirm = None if noted is None else functools.partial(_confirmed, stream, context, (metric_id, metric_name))
        start, counted_from, recount = late.start([metric_id], lower)
        late.register(metric_id)
        scan = _classic_scan(stream, context, metric_id, metric_name, start, confirm, counted_from)
        watermark.plan(metric_id, [scan])
        tasks.append((scan, scan.lower))
        if recount:
            tasks += late.recount(metric_id, functools.partial(_classic_range, stream, context, metric_id,
                                                               metric_name), confirm)
    if noted is not None:
        check = MetricCheck(stream, context, noted, lower, late)
        watermark.plan(CHECK_UNIT, [check])
        # One check fetches the list, before any other task; the others find it fetched, and run
        # after the scans of their rank, so that no worker waits for the list while a scan could
        # send its first request.
        tasks.append((check, -1 if context.claim("metric list") else lower))
    # the list is not in yet when the catalog noted the metrics: MetricCheck warns if they are stale
    LOGGER.info("stream %s: metrics %s%s, from %s to %s", stream.name,
                ", ".join(f"{name} ({mid})" for mid, name in chosen) or "none",
                " as the catalog notes them" if noted is not None else "",
                timeutil.to_bookmark(lower), timeutil.to_bookmark(context.started))
    return tasks


def _classic_reader(stream, context, metric_id, metric_name):
    config = context.config
    rows = functools.partial(_classic_rows, metric_id, metric_name)
    return RangeReader("events", "/api/events", _event_params(
        config, include="profile,metric", **{"fields[event]": EVENT_FIELDS, "fields[profile]": PROFILE_FIELDS,
                                              "fields[metric]": "name"}),
        lambda lo, hi: _datetime_filter(lo, hi, metric_id), rows, _page_size(config), EventPage,
        metric_of=metric_id if config.late_event_days else None)


def _classic_scan(stream, context, metric_id, metric_name, lower, confirm=None, counted_from=None):
    reader = _classic_reader(stream, context, metric_id, metric_name)
    return RangeScan(stream, metric_id, lower, context.started, reader, _parts_allowed(context.config, 10),
                     confirm=confirm, counted_from=counted_from)


def _classic_range(stream, context, metric_id, metric_name, lower, upper, unit):
    """A re-read of [lower, upper) of one metric (see Recount), each row counted."""
    reader = _classic_reader(stream, context, metric_id, metric_name)
    return RangeScan(stream, unit, lower, upper, reader, _parts_allowed(context.config, 10), counted_from=lower)


class LateEvents:
    """How a stream's plan catches events Klaviyo shows late (daycounts). Nothing when config
    late_event_days is 0, nor on a stream's first run, which reads everything anyway. Otherwise, per
    metric, the window's days before the bookmark are looked at in one of two ways, neither of which
    sends a row again unless Klaviyo has shown one late:

    - a metric whose window the stream counted empty is read there again: its cursor starts at the
      window's first day (a table's own cursor: no request more), or, under the cursor over every
      metric, one request of its own (an events request: no wait on the counts' 3 a second);
    - any other, or one the state has no counts for (the first run of this version), costs one
      Recount: Klaviyo's per-day counts, and a re-read of the days that differ.
    """

    def __init__(self, stream, context, begin, resumed):
        config = context.config
        self.stream = stream
        self.context = context
        self.begin = begin
        self.on = config.late_event_days > 0
        self.first = daycounts.window_start(context.started, config.late_event_days, config.start_date)
        self.tally = None
        if self.on:
            stream_state = context.state_of(stream.name)
            stream_state.counts(self.first, begin)
            self.tally = stream_state.tally
        self.resumed = resumed and self.on and self.first < begin

    def start(self, metric_ids, lower):
        """(where the cursor over metric_ids starts, where its counting starts, whether its metrics
        are still to be looked at by recount() or reread()). metric_ids None: a cursor over every
        metric."""
        if not self.on:
            return lower, None, False
        if not self.resumed:
            return lower, self.begin, False
        if metric_ids is None or not all(map(self.empty, metric_ids)):
            return lower, self.begin, True
        for metric_id in metric_ids:
            self.tally.recount(metric_id, self._days())
        return min(lower, self.first), self.first, False

    def empty(self, metric_id, every_metric=False):
        """Whether the stream counted no event of the metric in the window. A stream names each metric
        it read, but a cursor over every metric names none it saw no event of."""
        before = self.tally.before
        if metric_id not in before and not (every_metric and self.tally.had_counts):
            return False
        return not any(before.get(metric_id, {}).values())

    def _days(self):
        return daycounts.days_in([(self.first, self.begin)])

    def register(self, metric_id):
        """A metric the stream reads: its counts are kept, none or not."""
        if self.tally is not None:
            self.tally.metrics.add(metric_id)

    def recount(self, metric_id, scan_for, confirm=None, adopted=False):
        """[(task, rank)]: the metric's Recount, a unit of the stream's watermark (planned here, or
        adopted from the page that spawns it). It runs after the reads on from the bookmark: a count
        query waits on its endpoint's 3 a second, and a worker waiting there reads nothing."""
        task = Recount(self.stream, self.context, metric_id, self.first, self.begin,
                       self.tally.before.get(metric_id, {}), self.tally.seen.get(metric_id, {}), scan_for, confirm)
        if not adopted:
            self.context.state_of(self.stream.name).watermark.plan(task.unit, [task])
        return [(task, self.context.started)]

    def reread(self, metric_id, scan_for):
        """[(task, rank)]: the metric's window read again, each day counted afresh."""
        scan = scan_for(self.first, self.begin, f"{metric_id} recount")
        self.tally.recount(metric_id, self._days())
        self.context.state_of(self.stream.name).watermark.plan(scan.unit, [scan])
        return [(scan, scan.lower)]


def _legacy_bookmarks(state, stream):
    """Whether the table's bookmark would come from metric-id keys (singer-io tap-klaviyo 1.1.4+)."""
    marks = state.get("bookmarks") or {}
    return bookmarks.since(state, stream.name) is None and any(key not in BY_NAME for key in marks)


def _no_metric(stream):
    LOGGER.warning("stream %s: the account has no Klaviyo metric named %s; no rows, bookmark unchanged",
                   stream.name, " or ".join(repr(n) for n in stream.metric_names))


def _confirmed(stream, context, metric):
    """Whether the account's list holds the noted metric (waits for the list if it is not in yet)."""
    return metric in stream.metrics_in(all_metrics(context))


class MetricCheck(Span):
    """The account's metric list against the ones a catalog noted for a classic table: a noted
    metric gone (or renamed) has its scan write nothing (see _confirmed); one the catalog lacks is
    read as well, by a scan planned here. Until this ends, the table's bookmark stays where it was;
    when the account has none of the table's metrics, the state's is left as it is (as when looked
    up first: no rows, bookmark unchanged)."""

    def __init__(self, stream, context, noted, lower, late):
        super().__init__(stream, CHECK_UNIT, lower, context.started)
        self.context = context
        self.noted = noted
        self.late = late

    def run(self, client, config):
        found = self.stream.metrics_in(all_metrics(self.context))
        gone = [metric for metric in self.noted if metric not in found]
        new = [metric for metric in found if metric not in self.noted]
        if gone or new:
            LOGGER.warning("stream %s: the catalog's metrics are out of date (%s); run --discover for a fresh "
                           "catalog", self.stream.name, "; ".join(
                               [f"{name} ({mid}) is not in the account's list" for mid, name in gone]
                               + [f"{name} ({mid}) is new, read as well" for mid, name in new]))
        if not found:
            _no_metric(self.stream)
            yield Page(self, done=True, mark=Mark(stopped=True, unread=True))
            return
        # a metric new to the catalog: read from the bookmark, counted from there, and its window's
        # days checked (it has no counts: Klaviyo's are asked)
        late = self.late
        spawn = []
        for mid, name in new:
            scan = _classic_scan(self.stream, self.context, mid, name, self.lower,
                                 counted_from=late.begin if late.on else None)
            spawn.append((scan, scan.lower))
            if late.resumed:
                spawn += late.recount(mid, functools.partial(_classic_range, self.stream, self.context, mid, name),
                                      adopted=True)
        # the new spans are units of the table's watermark, adopted before this span ends
        yield Page(self, done=True, spawn=spawn, mark=Mark(progress=self.upper))


ATTRIBUTIONS = "event_attributions"


def _attributions(stream, context):
    """Issue 22: the Included of event_attributions, when this plan reads it (None otherwise): the
    events' own plan when both are selected, else event_attributions' plan, which reads the events
    without writing them."""
    if ATTRIBUTIONS not in context.selected:
        return None
    row = context.rows[ATTRIBUTIONS]
    chosen = context.columns.get(ATTRIBUTIONS)
    keep = None if chosen is None else frozenset(chosen) | {"id", "event_id"}
    return Included(ATTRIBUTIONS, envelope(ATTRIBUTIONS), attribution_rows, (row.columns, keep),
                    emit=stream.name != ATTRIBUTIONS)


def plan_events(stream, context):
    """All events, or those of config event_metrics (names or ids), as API-shaped rows; and the
    events' attributions (event_attributions) from the same pages when that stream is selected."""
    config = context.config
    if stream.name == ATTRIBUTIONS and "events" in context.selected:
        return []       # read from the events' own pages (their plan below)
    included = _attributions(stream, context)
    metrics = all_metrics(context)
    names = {mid: name for mid, name, _ in metrics}
    wanted = config.event_metrics
    if wanted:
        units = [mid for mid, name, _ in metrics if mid in wanted or name in wanted]
        unknown = [w for w in wanted if w not in names and w not in names.values()]
        if unknown:
            LOGGER.warning("stream %s: config event_metrics names %s, which the account does not have",
                           stream.name, ", ".join(repr(u) for u in unknown))
        if not units:
            LOGGER.warning("stream %s: no metric of event_metrics exists; no rows, bookmark unchanged", stream.name)
            return []
        if included is not None:
            # Decision (review 1.3): event_metrics narrows the attributions too, selected with events
            # or alone: the stream holds the attributions of the events the tap reads, whichever
            # streams are selected (alone, naming the conversion metrics, e.g. "Placed Order", is
            # the cheap way to read them). Said once per run, as a metric with no conversions has none.
            LOGGER.info("stream %s: config event_metrics narrows it to the attributions of the events of %s",
                        ATTRIBUTIONS, ", ".join(f"{names[mid]} ({mid})" for mid in units))
    else:
        units = [None]      # one cursor over every metric: the fewest requests
    stream_state = context.state_of(stream.name)
    begin = stream_state.begin(config.start_date, context.started)
    sharing = included is not None and included.emit
    if sharing:
        # event_attributions follows the events read: from the earlier of the two bookmarks (one
        # selected later reaches back for its rows), under one watermark, which both bookmarks follow
        begin = min(begin, context.state_of(ATTRIBUTIONS).begin(config.start_date, context.started))
    lower = begin - config.lookback_minutes * 60
    watermark = stream_state.track(begin, context.started)
    if sharing:
        context.state_of(ATTRIBUTIONS).watermark = watermark
    late = LateEvents(stream, context, begin, stream_state.bookmark() is not None)
    chosen = context.columns.get(stream.name)      # None: every column
    if included is not None and not included.emit:
        chosen = ()         # the events are read for their attributions only
    # timestamp and datetime place an event in its range: asked for even when deselected
    fields = ",".join(["timestamp", "datetime"] + [f for f in ("uuid", "event_properties")
                                                    if chosen is None or f in chosen])
    keep = None if chosen is None else frozenset(chosen) | {"id", "datetime"}
    parts = _parts_allowed(config, len(units) + 10)
    more = {} if included is None else {"include": "attributions"}

    def reader(metric_id):
        return RangeReader("events", "/api/events", _event_params(config, **{"fields[event]": fields}, **more),
                           lambda lo, hi: _datetime_filter(lo, hi, metric_id), functools.partial(_api_rows, names),
                           _page_size(config), EventPage if included is None else AttributedEventPage, keep=keep,
                           metric_of=(metric_id or MetricColumn("metric_id")) if late.on else None,
                           included=included)

    def recount_range(metric_id, lo, hi, unit):
        return RangeScan(stream, unit, lo, hi, reader(metric_id), parts, counted_from=lo)

    tasks = []
    for unit in units:
        start, counted_from, look = late.start(None if unit is None else [unit], lower)
        scan = RangeScan(stream, unit or "all", start, context.started, reader(unit), parts, counted_from=counted_from)
        watermark.plan(unit or "all", [scan])
        tasks.append((scan, scan.lower))
        for metric_id in (names if unit is None else [unit]):
            if unit is not None:
                late.register(metric_id)
            if not look:
                continue
            scan_for = functools.partial(recount_range, metric_id)
            empty = late.empty(metric_id, every_metric=unit is None)
            tasks += late.reread(metric_id, scan_for) if empty else late.recount(metric_id, scan_for)
    return tasks
