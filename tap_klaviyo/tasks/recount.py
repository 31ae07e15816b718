"""The days an event stream reads again: those whose events Klaviyo counts differently from the
stream (see daycounts), found with one POST /api/metric-aggregates per metric."""
import logging

from .. import daycounts, timeutil, watchdog
from ..client import BudgetSpent, RefusedError
from ..errors import ApiError
from ..engine import Page, Span
from ..state import Mark

LOGGER = logging.getLogger("tap_klaviyo")
PATH = "/api/metric-aggregates"


class Recount(Span):
    """One metric's days of a stream in [lower, upper), upper being the stream's bookmark: Klaviyo's
    counts against the stream's (ours, and Klaviyo's of the last run: seen), then one range scan
    (scan_for(lo, hi, unit)) per run of days that differ. Its scans are spans of its own unit, so the
    bookmark waits for them."""

    def __init__(self, stream, context, metric_id, lower, upper, ours, seen, scan_for, confirm=None):
        super().__init__(stream, f"{metric_id} recount", lower, upper)
        self.context = context
        self.metric_id = metric_id
        self.ours = ours
        self.seen = seen
        self.scan_for = scan_for
        self.confirm = confirm      # None, or confirm() -> whether the metric is still the stream's

    def run(self, client, config):
        if self.confirm is not None and not self.confirm():
            yield Page(self, done=True, mark=Mark(progress=self.upper))
            return
        klaviyo, why = klaviyo_counts(self.context, self.metric_id, self.lower, self.upper)
        if klaviyo is None:
            self.context.once("day counts unusable", lambda: LOGGER.warning(
                "late events: %s; each metric asked re-reads its last %d days in full this run instead",
                why, config.late_event_days))
            ranges = [(self.lower, self.upper)]     # no counts to go by: the plain re-read of the window
        else:
            ranges = daycounts.differing(klaviyo, self.ours, self.seen, self.lower, self.upper)
        days = daycounts.days_in(ranges)
        recount = (self.metric_id, days, klaviyo)
        if not ranges:
            yield Page(self, done=True, mark=Mark(progress=self.upper, recount=recount))
            return
        if klaviyo is not None:
            LOGGER.info("stream %s: metric %s: Klaviyo counts %s differently than this stream has read them; "
                        "reading %s again", self.stream.name, self.metric_id,
                        ", ".join(f"{daycounts.day_text(day)} ({klaviyo.get(day, 0)} against "
                                  f"{self.ours.get(day, 0)})" for day in days[:5])
                        + (f" and {len(days) - 5} more days" if len(days) > 5 else ""),
                        "that day" if len(days) == 1 else "those days")
        scans = [self.scan_for(lo, hi, self.unit) for lo, hi in ranges]
        yield Page(self, done=True, spawn=[(scan, scan.lower) for scan in scans],
                   mark=Mark(progress=self.lower, split_at=self.lower, recount=recount))


def klaviyo_counts(context, metric_id, lower, upper):
    """({UTC day: events} of metric in [lower, upper) as Klaviyo counts them, None), asked once per run
    for every stream that wants the same; (None, why) when Klaviyo gives no usable answer."""
    watchdog.waiting("day counts")
    return context.once(("day counts", metric_id, lower, upper), lambda: _held(context, metric_id, lower, upper))


def _held(context, metric_id, lower, upper):
    watchdog.hold("day counts")
    try:
        return _ask(context, metric_id, lower, upper)
    finally:
        watchdog.let_go("day counts")


def _naive(epoch):
    # the spec's form for this body: "ISO 8601 format (YYYY-MM-DDTHH:MM:SS.mmmmmm)", in `timezone`
    return timeutil.to_bookmark(epoch)[:-1]


def _ask(context, metric_id, lower, upper):
    body = {"data": {"type": "metric-aggregate", "attributes": {
        "metric_id": metric_id,
        "measurements": ["count"],
        "interval": "day",
        "timezone": "UTC",
        "filter": [f"greater-or-equal(datetime,{_naive(lower)})", f"less-than(datetime,{_naive(upper)})"],
    }}}
    try:
        document = context.client.post("metric_aggregates", PATH, body)
        return _per_day(document), None
    except RefusedError as exc:
        return None, f"Klaviyo refused the count query ({exc.status}: {exc.detail})"
    except BudgetSpent as exc:
        return None, f"the count queries' budget is spent ({exc})"
    except ApiError as exc:     # retries run out, or an answer that is no JSON:API document
        return None, f"the count query failed ({exc})"
    except _Unreadable as exc:
        return None, f"its answer to the count query is not as the spec describes it ({exc})"


class _Unreadable(Exception):
    pass


def _per_day(document):
    """{day: count} of a metric-aggregate answer with no `by`: `dates` are the buckets' starts and each
    measurement a list of one value per date (inferred: the spec types measurements only as an
    object; Klaviyo's guide to this endpoint shows the lists). No row at all: no events."""
    try:
        attributes = document["data"]["attributes"]
        dates, rows = attributes["dates"], attributes["data"]
        days = []
        for text in dates:
            instant = timeutil.parse_instant(text)
            if instant % daycounts.DAY:
                raise _Unreadable(f"bucket {text!r} does not start a UTC day")
            days.append(daycounts.day_of(instant))
        if (document.get("links") or {}).get("next") or ((document["data"].get("links") or {}).get("next")):
            raise _Unreadable("it says more pages follow, which a count with no `by` never needs")
        counts = dict.fromkeys(days, 0)
        for row in rows:
            values = row["measurements"]["count"]
            if len(values) != len(days):
                raise _Unreadable(f"{len(values)} counts for {len(days)} dates")
            for day, value in zip(days, values):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
                    raise _Unreadable(f"count {value!r} is no whole number")
                counts[day] += int(value)
        return counts
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from None
