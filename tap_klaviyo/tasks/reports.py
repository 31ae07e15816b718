"""Klaviyo's Reporting API: `campaign_values`, `flow_values`, `flow_series`, `segment_values`,
`segment_series`, `form_values` and `form_series`, the numbers Klaviyo's own dashboards show (its
attribution, deduplication and bot filtering, which raw events cannot reproduce).

Each endpoint allows 1 request a second and 2 a minute, and the reports share 225 a day per account
with every other app using it. So each stream asks for as little as it can: one values report covers
every campaign (flow, segment, form version), one daily series covers all of them for 60 days (the
longest a daily series may span). The client paces the first two limits. The daily one only Klaviyo
knows: when it says the day's budget is spent (client.BudgetSpent, a 429 asking to wait for hours),
every report stream stops for this run with a warning saying when it can resume, a series keeps its
bookmark at the first day it did not load, and the other streams go on.

The report streams are read one after another, in ORDER, so that a budget running out stops them in a
known order: the last of ORDER first (docs/reports.md). They are chained (Chain): only the first report
task is queued when the run starts, and each, once done (read to its end or stopped by the budget), hands
the writer the next one with its last page. No worker waits inside a task for another report to end.
"""
import logging
import threading

import msgspec

from .. import apispec, timeutil
from ..client import BudgetSpent
from ..engine import Page, Span
from ..state import Mark
from ..output import envelope
from ..streams import REPORT, STREAMS
from .events import all_metrics

LOGGER = logging.getLogger("tap_klaviyo")

DAY = 86400
SERIES_DAYS = 60        # the spec: "If daily is used, the timeframe cannot be longer than 60 days"

# The statistics of the campaign and flow reports: those the spec of every supported revision lists,
# then the SMS cost figures it lists from 2025-10-15 on (SMS_COSTS; a revision before leaves those
# columns null and does not ask for them). The spec says nothing of channels; these apply to email,
# SMS and push alike (a channel without opens reports 0, an email no SMS spend).
COUNTS = ("recipients", "delivered", "opens", "opens_unique", "clicks", "clicks_unique", "bounced", "failed",
          "bounced_or_failed", "unsubscribes", "unsubscribe_uniques", "spam_complaints", "conversions",
          "conversion_uniques")
AMOUNTS = ("conversion_value", "average_order_value", "revenue_per_recipient")
RATES = ("delivery_rate", "open_rate", "click_rate", "click_to_open_rate", "bounce_rate", "failed_rate",
         "bounced_or_failed_rate", "unsubscribe_rate", "spam_complaint_rate", "conversion_rate")
SMS_COSTS = ("text_message_spend", "text_message_credit_usage_amount", "text_message_roi",
             "message_segment_count_sum")
STATISTICS = COUNTS + AMOUNTS + RATES + SMS_COSTS
# the segment reports' statistics (spec: query_segment_values / query_segment_series, every revision)
SEGMENT_STATISTICS = ("members_added", "members_removed", "net_members_changed", "total_members")
# the form reports' (query_form_values / query_form_series): counts, and submit_rate a fraction
FORM_STATISTICS = ("viewed_form", "viewed_form_uniques", "viewed_form_step", "viewed_form_step_uniques",
                   "submitted_form_step", "submitted_form_step_uniques", "submits", "closed_form",
                   "closed_form_uniques", "qualified_form", "qualified_form_uniques", "submit_rate")
INTEGERS = frozenset(COUNTS + ("message_segment_count_sum",) + SEGMENT_STATISTICS + FORM_STATISTICS[:-1])


class _Report(msgspec.Struct, frozen=True):
    group_by: tuple             # the row's first columns, in this order
    statistics: tuple = STATISTICS
    interval: str | None = None
    conversions: bool = True    # the body names a conversion metric (the campaign and flow reports)


_FLOW = ("flow_id", "flow_message_id", "send_channel")
_FORM = ("form_id", "form_version_id")     # the spec: form_version_id's group-by needs form_id beside it
REPORTS = {
    "campaign-values-report": _Report(("campaign_id", "campaign_message_id", "send_channel")),
    "flow-series-report": _Report(_FLOW, interval="daily"),
    "flow-values-report": _Report(_FLOW),
    "segment-values-report": _Report(("segment_id",), SEGMENT_STATISTICS, conversions=False),
    "segment-series-report": _Report(("segment_id",), SEGMENT_STATISTICS, "daily", conversions=False),
    "form-values-report": _Report(_FORM, FORM_STATISTICS, conversions=False),
    "form-series-report": _Report(_FORM, FORM_STATISTICS, "daily", conversions=False),
}

# The order the report streams are read in, one after another: the two the tap has had longest,
# then flow_values and the segment and form reports. When the day's budget runs out, the stream
# reading stops and those after it stop without a request: form_series stops first, campaign_values
# last.
ORDER = ("campaign_values", "flow_series", "flow_values", "segment_values", "segment_series", "form_values",
         "form_series")


class Chain:
    """The report tasks of a run, one after another in ORDER. The first planned is queued at once
    (add returns it); the others wait here, not in the pool's queue, and then() gives the one to queue
    next when a report task is done. Planning ends before any task runs, so every report is here by
    the time a task asks; the planners are called in the order of STREAMS, which is ORDER's (asserted
    below), so the first planned is the first in ORDER.

    A report stream waiting its turn has no task queued: its state settles as complete at once, which
    changes nothing (a report stream has no children and no full-read cycle), while its watermark,
    planned with the waiting task, holds its bookmark where it was until the task reads on.
    A task that fails (any error but a spent budget) ends the whole run (engine.Failure): there is no
    next task to run then."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting = {}          # rank (_rank: in ORDER) -> task, of the reports not queued yet
        self._queued = False

    def add(self, name, task):
        """[(task, rank)] to queue now: the first report of the run; [] for those that wait."""
        rank = _rank(name)
        with self._lock:
            if self._queued:
                self._waiting[rank] = task
                return []
            self._queued = True
        return [(task, rank)]

    def then(self):
        """[(task, rank)] of the next report in ORDER (a Page's spawn), [] when none is left."""
        with self._lock:
            if not self._waiting:
                return []
            rank = min(self._waiting)
            return [(self._waiting.pop(rank), rank)]


def _rank(name):
    """A report task's place in the pool's queue: before every other task (their ranks are 0 or an
    epoch). The reports are the run's slowest chain, 2 requests a minute one stream after another;
    queued behind hundreds of rate-limited collection requests, the next report waited minutes while
    its own endpoint sat idle (the whole-account benchmark: 8.5 minutes)."""
    return ORDER.index(name) - len(ORDER)


assert tuple(s.name for s in STREAMS if s.family == REPORT) == ORDER, "Chain queues the first planned first"


def _chain(context):
    return context.once("report_chain", Chain)


def _then(chain):
    return chain.then() if chain is not None else []


def _report_streams(context):
    return [s.name for s in STREAMS if s.family == REPORT and s.name in context.selected
            and REPORTS[s.resource].conversions]


def conversion_metric(context):
    """The id of config conversion_metric (a metric id, or a name of any integration), looked up
    once per run; None, after one warning naming the setting, when the account has no such metric."""
    metrics = all_metrics(context)

    def find():
        wanted = context.config.conversion_metric
        found = [m for m in metrics if m[0] == wanted] or [m for m in metrics if m[1] == wanted]
        names = ", ".join(_report_streams(context))
        if not found:
            LOGGER.warning("config conversion_metric = %r: the account has no metric of that name or id, and "
                           "Klaviyo's reports need one; %s write no rows this run. Set conversion_metric to the "
                           "name or id of the metric conversions are counted by (GET /api/metrics lists them)",
                           wanted, names)
            return None
        if len(found) > 1:
            LOGGER.warning("config conversion_metric = %r names %d metrics (%s); %s use %s, the first Klaviyo "
                           "lists. Set conversion_metric to one of the ids to choose", wanted, len(found),
                           ", ".join(f"{mid} of {integration}" for mid, _, integration in found), names, found[0][0])
        return found[0][0]
    return context.once("conversion_metric", find)


def _asked(stream, revision, columns):
    """The statistics a report asks for: those of its columns the catalog selects and the revision's
    spec lists (one, if none is: the API needs one)."""
    offered = set(apispec.rules(stream.operation, revision)["body"]["statistics"])
    chosen = [name for name in REPORTS[stream.resource].statistics
              if (columns is None or name in columns) and name in offered]
    return chosen or [name for name in REPORTS[stream.resource].statistics if name in offered][:1]


def _statistic_columns(stream, columns):
    """The statistic columns a row carries: the selected ones (null where the revision has none)."""
    return [name for name in REPORTS[stream.resource].statistics if columns is None or name in columns]


def _selected(rows, columns):
    # a column deselected in the catalog is not in the stream's SCHEMA: it must not be in a row either
    if columns is None:
        return rows
    return [{name: value for name, value in row.items() if name in columns} for row in rows]


def _body(stream, config, metric_id, lower, upper, statistics):
    report = REPORTS[stream.resource]
    attributes = {
        "statistics": statistics,
        # the spec: the offset is ignored, the account's time zone applies (see README)
        "timeframe": {"start": timeutil.to_api(lower), "end": timeutil.to_api(upper)},
    }
    if report.conversions:
        attributes["conversion_metric_id"] = metric_id
    if report.interval:
        attributes["interval"] = report.interval
    if apispec.report_takes(stream.operation, config.revision, "group_by"):
        attributes["group_by"] = list(report.group_by)
    return {"data": {"type": stream.resource, "attributes": attributes}}


def _number(name, value):
    # a count sent as 12.0 still fits the schema's integer column
    if name in INTEGERS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _decoder(stream, rows):
    """decode(document) -> (next page's URL or None, RECORD lines, row count) for client.post."""
    def decode(document):
        made = rows(document)
        next_url = (document.get("links") or {}).get("next")
        return next_url, envelope(stream.name).lines(made), len(made)
    return decode


def _pages(client, stream, body, decode):
    """(lines, count, is_last) of every page of one report, following links.next as given."""
    url = stream.path
    while url:
        url, lines, count = client.post(stream.rate_family, url, body, decode)
        yield lines, count, url is None


def _statistics(stream, config, columns):
    """(the statistics asked for, the statistic columns of a row) of one run."""
    return _asked(stream, config.revision, columns), _statistic_columns(stream, columns)


class ValuesReport:
    """A values report (campaign_values, flow_values, segment_values, form_values): one report over
    [lower, upper) for every campaign message and channel, flow message and channel, segment or form
    version."""

    def __init__(self, stream, metric_id, lower, upper, columns=None, chain=None):
        self.stream = stream
        self.metric_id = metric_id
        self.lower = lower
        self.upper = upper
        self.columns = columns
        self.chain = chain          # its last page queues the next report (Chain)

    def run(self, client, config):
        group_by = REPORTS[self.stream.resource].group_by
        frame = {"timeframe_start": timeutil.to_api(self.lower), "timeframe_end": timeutil.to_api(self.upper)}
        asked, shown = _statistics(self.stream, config, self.columns)

        def rows(document):
            out = []
            for result in document["data"]["attributes"]["results"]:
                groupings, statistics = result["groupings"], result.get("statistics") or {}
                row = {name: groupings.get(name) for name in group_by}
                row.update((name, _number(name, statistics.get(name)) if name in asked else None) for name in shown)
                row.update(frame)
                out.append(row)
            return _selected(out, self.columns)

        written = 0
        try:
            for lines, count, last in _pages(client, self.stream, _body(self.stream, config, self.metric_id,
                                                                       self.lower, self.upper, asked),
                                             _decoder(self.stream, rows)):
                written += count
                yield Page(self, lines, count, done=last, spawn=_then(self.chain) if last else [])
        except BudgetSpent as spent:
            LOGGER.warning("stream %s: %s. The stream stops for this run (%d rows of the report written); a run "
                           "from %s on reads it again", self.stream.name, spent, written,
                           timeutil.to_bookmark(spent.resume_at))
            yield Page(self, done=True, spawn=_then(self.chain))


class SeriesScan(Span):
    """A daily series (flow_series, segment_series, form_series): days [lower, upper) in series of at
    most 60 days, one after the other."""

    def __init__(self, stream, metric_id, lower, upper, begin, columns=None, chain=None):
        super().__init__(stream, "all", lower, upper)
        self.metric_id = metric_id
        self.begin = begin          # the bookmark this run started from
        self.columns = columns
        self.chain = chain          # its last page queues the next report (Chain)
        self.asked = self.shown = ()

    def run(self, client, config):
        self.asked, self.shown = _statistics(self.stream, config, self.columns)
        start = self.lower
        while start < self.upper:
            stop = min(start + SERIES_DAYS * DAY, self.upper)
            body = _body(self.stream, config, self.metric_id, start, stop, self.asked)
            try:
                for lines, count, last in _pages(client, self.stream, body, _decoder(self.stream, self._rows)):
                    # a page holds every day of some groups: the window counts as read after its last
                    done = last and stop >= self.upper
                    yield Page(self, lines, count, done=done, mark=Mark(progress=stop if last else None),
                               spawn=_then(self.chain) if done else [])
            except BudgetSpent as spent:
                LOGGER.warning("stream %s: %s. The stream stops for this run: days from %s on are not loaded and "
                               "its bookmark stays at %s; a run from %s on resumes there", self.stream.name, spent,
                               _day(start), timeutil.to_bookmark(max(self.begin, start)),
                               timeutil.to_bookmark(spent.resume_at))
                yield Page(self, done=True, mark=Mark(stopped=True), spawn=_then(self.chain))
                return
            start = stop

    def _rows(self, document):
        attributes = document["data"]["attributes"]
        days = [text[:10] for text in attributes["date_times"]]
        group_by = REPORTS[self.stream.resource].group_by
        out = []
        for result in attributes["results"]:
            groupings, statistics = result["groupings"], result.get("statistics") or {}
            keys = {name: groupings.get(name) for name in group_by}
            series = {name: (statistics.get(name) or ()) if name in self.asked else () for name in self.shown}
            for index, day in enumerate(days):
                row = dict(keys)
                row["date"] = day
                row.update((name, _number(name, values[index]) if index < len(values) else None)
                           for name, values in series.items())
                out.append(row)
        return _selected(out, self.columns)


def _day(epoch):
    return timeutil.to_bookmark(epoch)[:10]


def plan_report(stream, context):
    report = REPORTS[stream.resource]
    metric_id = conversion_metric(context) if report.conversions else None
    if report.conversions and metric_id is None:
        return []
    config = context.config
    today = context.started // DAY * DAY
    chain = _chain(context)
    columns = context.columns.get(stream.name)
    conversions = f", conversions by metric {metric_id}" if metric_id else ""
    if stream.replication_key is None:
        # the rolling timeframe ends at the sync's start: its length is report_days exactly
        upper = context.started
        lower = upper - config.report_days * DAY
        LOGGER.info("stream %s: one report over %s..%s%s", stream.name, timeutil.to_bookmark(lower),
                    timeutil.to_bookmark(upper), conversions)
        return chain.add(stream.name, ValuesReport(stream, metric_id, lower, upper, columns, chain))
    stream_state = context.state_of(stream.name)
    since = stream_state.bookmark()
    if since is None:
        # a start_date after today reads today alone
        begin = lower = min(max(config.start_date // DAY * DAY, today - config.report_days * DAY), today)
    else:
        begin = min(since // DAY * DAY, today)
        lower = begin - config.report_lookback_days * DAY
    # today is read as far as it has come, but the bookmark stops at its start: a run reads it again
    upper = today + DAY
    watermark = stream_state.track(begin, today)
    scan = SeriesScan(stream, metric_id, lower, upper, begin, columns, chain)
    watermark.plan("all", [scan])
    requests = -(-(upper - lower) // (SERIES_DAYS * DAY))
    LOGGER.info("stream %s: days %s to %s in %d daily series of up to %d days%s", stream.name, _day(lower),
                _day(today), requests, SERIES_DAYS, conversions)
    return chain.add(stream.name, scan)
