"""Klaviyo's Reporting API: `campaign_values` and `flow_series`, the numbers Klaviyo's own dashboards
show (its attribution, deduplication and bot filtering, which raw events cannot reproduce).

Both endpoints allow 1 request a second, 2 a minute and 225 a day per account, shared with every
other app using it. So each stream asks for as little as it can: one values report covers every
campaign, one daily series covers every flow message for 60 days (the longest a daily series may
span). The client paces the first two limits. The daily one only Klaviyo knows: when it says the
day's budget is spent (client.BudgetSpent, a 429 asking to wait for hours), the stream stops for
this run with a warning saying when it can resume, `flow_series` keeps its bookmark at the first
day it did not load, and the other streams go on.
"""
import logging

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

# What every report asks for: each statistic the spec of every supported revision lists for both
# reports. The spec says nothing of channels; these apply to email, SMS and push alike (a channel
# without opens reports 0). The SMS cost figures (text_message_spend, text_message_credit_usage_amount,
# text_message_roi, message_segment_count_sum), listed from 2025-10-15 on, concern SMS alone and
# are left out: the reports cover every channel in one request.
COUNTS = ("recipients", "delivered", "opens", "opens_unique", "clicks", "clicks_unique", "bounced", "failed",
          "bounced_or_failed", "unsubscribes", "unsubscribe_uniques", "spam_complaints", "conversions",
          "conversion_uniques")
AMOUNTS = ("conversion_value", "average_order_value", "revenue_per_recipient")
RATES = ("delivery_rate", "open_rate", "click_rate", "click_to_open_rate", "bounce_rate", "failed_rate",
         "bounced_or_failed_rate", "unsubscribe_rate", "spam_complaint_rate", "conversion_rate")
STATISTICS = COUNTS + AMOUNTS + RATES


class _Report(msgspec.Struct, frozen=True):
    group_by: tuple             # the row's first columns, in this order
    interval: str | None = None


REPORTS = {
    "campaign-values-report": _Report(("campaign_id", "campaign_message_id", "send_channel")),
    "flow-series-report": _Report(("flow_id", "flow_message_id", "send_channel"), "daily"),
}


def _report_streams(context):
    return [s.name for s in STREAMS if s.family == REPORT and s.name in context.selected]


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


def _asked(columns):
    """The statistics a report asks for: those the catalog selects (one, if none is: the API needs one)."""
    chosen = [name for name in STATISTICS if columns is None or name in columns]
    return chosen or [STATISTICS[0]]


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
        "conversion_metric_id": metric_id,
    }
    if report.interval:
        attributes["interval"] = report.interval
    if apispec.report_takes(stream.operation, config.revision, "group_by"):
        attributes["group_by"] = list(report.group_by)
    return {"data": {"type": stream.resource, "attributes": attributes}}


def _number(name, value):
    # a count sent as 12.0 still fits the schema's integer column
    if name in COUNTS and isinstance(value, float) and value.is_integer():
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


class ValuesReport:
    """campaign_values: one report over [lower, upper) for every campaign message and channel."""

    def __init__(self, stream, metric_id, lower, upper, columns=None):
        self.stream = stream
        self.metric_id = metric_id
        self.lower = lower
        self.upper = upper
        self.columns = columns
        self.statistics = _asked(columns)

    def run(self, client, config):
        group_by = REPORTS[self.stream.resource].group_by
        frame = {"timeframe_start": timeutil.to_api(self.lower), "timeframe_end": timeutil.to_api(self.upper)}

        def rows(document):
            out = []
            for result in document["data"]["attributes"]["results"]:
                groupings, statistics = result["groupings"], result.get("statistics") or {}
                row = {name: groupings.get(name) for name in group_by}
                row.update((name, _number(name, statistics.get(name))) for name in self.statistics)
                row.update(frame)
                out.append(row)
            return _selected(out, self.columns)

        written = 0
        try:
            for lines, count, last in _pages(client, self.stream, _body(self.stream, config, self.metric_id,
                                                                       self.lower, self.upper, self.statistics),
                                             _decoder(self.stream, rows)):
                written += count
                yield Page(self, lines, count, done=last)
        except BudgetSpent as spent:
            LOGGER.warning("stream %s: %s. The stream stops for this run (%d rows of the report written); a run "
                           "from %s on reads it again", self.stream.name, spent, written,
                           timeutil.to_bookmark(spent.resume_at))
            yield Page(self, done=True)


class SeriesScan(Span):
    """flow_series: days [lower, upper) in daily series of at most 60 days, one after the other."""

    def __init__(self, stream, metric_id, lower, upper, begin, columns=None):
        super().__init__(stream, "all", lower, upper)
        self.metric_id = metric_id
        self.begin = begin          # the bookmark this run started from
        self.columns = columns
        self.statistics = _asked(columns)

    def run(self, client, config):
        start = self.lower
        while start < self.upper:
            stop = min(start + SERIES_DAYS * DAY, self.upper)
            body = _body(self.stream, config, self.metric_id, start, stop, self.statistics)
            try:
                for lines, count, last in _pages(client, self.stream, body, _decoder(self.stream, self._rows)):
                    # a page holds every day of some messages: the window counts as read after its last
                    yield Page(self, lines, count, done=last and stop >= self.upper,
                               mark=Mark(progress=stop if last else None))
            except BudgetSpent as spent:
                LOGGER.warning("stream %s: %s. The stream stops for this run: days from %s on are not loaded and "
                               "its bookmark stays at %s; a run from %s on resumes there", self.stream.name, spent,
                               _day(start), timeutil.to_bookmark(max(self.begin, start)),
                               timeutil.to_bookmark(spent.resume_at))
                yield Page(self, done=True, mark=Mark(stopped=True))
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
            series = {name: statistics.get(name) or () for name in self.statistics}
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
    metric_id = conversion_metric(context)
    if metric_id is None:
        return []
    config = context.config
    today = context.started // DAY * DAY
    if stream.replication_key is None:
        # the rolling timeframe ends at the sync's start: its length is report_days exactly
        upper = context.started
        lower = upper - config.report_days * DAY
        LOGGER.info("stream %s: one report over %s..%s, conversions by metric %s", stream.name,
                    timeutil.to_bookmark(lower), timeutil.to_bookmark(upper), metric_id)
        return [(ValuesReport(stream, metric_id, lower, upper, context.columns.get(stream.name)), 0)]
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
    scan = SeriesScan(stream, metric_id, lower, upper, begin, context.columns.get(stream.name))
    watermark.plan("all", [scan])
    requests = -(-(upper - lower) // (SERIES_DAYS * DAY))
    LOGGER.info("stream %s: days %s to %s in %d daily series of up to %d days, conversions by metric %s",
                stream.name, _day(lower), _day(today), requests, SERIES_DAYS, metric_id)
    return [(scan, 0)]
