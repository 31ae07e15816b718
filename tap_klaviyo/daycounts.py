"""Events Klaviyo shows late: how many events of each UTC day the tap has written, per metric.

Klaviyo's event store is eventually consistent over days: Estuary saw events appear in
GET /api/events up to 17 days after their datetime (estuary/connectors PR #5158), and mobile SDKs,
imports and POST /api/events write events with old times. An event that appears dated before the
bookmark is never read by a plain incremental run; re-reading a trailing week every run catches it
at the cost of the whole week, every run.

So each event stream keeps, in its bookmark, the number of events it has written for each UTC day of
the last `late_event_days` days, per metric ({"counts": {"<metric id>": {"2026-11-30": 1234}}}). A
run asks Klaviyo for the same numbers (POST /api/metric-aggregates, tasks/recount.py) and re-reads
only the days whose numbers differ. A day whose count Klaviyo gives higher than the tap's holds
events the tap has not seen; lower, events deleted since (or a count the tap never had): either way
the day is read again and its count becomes what that read found.

Counts are written only by a run that read everything it set out to read: a run killed half-way
leaves the counts of the run before, and the bookmark it reached, so the next run finds the days in
between counted short and reads them again. Stale counts cost a re-read, never an event.
"""
import calendar
import logging
import time

LOGGER = logging.getLogger("tap_klaviyo")
DAY = 86400


def day_of(epoch):
    """The UTC day holding epoch, as days since 1970-01-01."""
    return epoch // DAY


def day_text(day):
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


def _parse_day(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%d")) // DAY


def window_start(started, days, start_date):
    """The first instant whose day is compared: the UTC day `days` days before the one holding
    started (so an event up to `days` days late is in), and never a day that began before start_date
    (the tap reads nothing before it, so Klaviyo's count of such a day is never the tap's)."""
    first = (day_of(started) - days) * DAY
    first_whole_day = -(-start_date // DAY) * DAY
    return max(first, first_whole_day)


def loaded(bookmark, stream_name, key="counts"):
    """{metric id: {day: count}} that a stream's bookmark holds under key ("counts": the stream's;
    "klaviyo_counts": Klaviyo's, where they differed). The counts only spare re-reads, so a malformed
    entry is dropped with a warning (its days are then read again) rather than ending the run."""
    raw = (bookmark or {}).get(key)
    if raw is None:
        return {}
    out = {}
    if not isinstance(raw, dict):
        raw = {}
        _malformed(stream_name, f"{key} is not an object")
    for metric_id, days in raw.items():
        if not isinstance(days, dict):
            _malformed(stream_name, f"{key}[{metric_id!r}] is not an object")
            continue
        parsed = {}
        for text, count in days.items():
            try:
                day = _parse_day(text)
            except (TypeError, ValueError):
                _malformed(stream_name, f"{key}[{metric_id!r}] has day {text!r}, not YYYY-MM-DD")
                continue
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                parsed[day] = count
            else:
                _malformed(stream_name, f"{key}[{metric_id!r}][{text!r}] is {count!r}, not a count")
        if len(parsed) == len(days):    # a metric with a bad day is a metric without counts
            out[metric_id] = parsed
    return out


def up_to(counts, day):
    """counts without the days from day on (what a bookmark earlier than the counts' end re-reads)."""
    return {metric_id: {d: n for d, n in days.items() if d < day} for metric_id, days in counts.items()}


def _malformed(stream_name, what):
    LOGGER.warning("state bookmark %s: %s; ignored, so those days are read again this run", stream_name, what)


def differing(klaviyo, ours, seen, lower, upper):
    """The ranges [lo, hi) within [lower, upper) whose days are to be read again, consecutive days
    merged into one range (one cursor each): where Klaviyo's count differs from ours, or from its own
    count of the last run (seen; where absent, it was ours). The second catches a late event that
    brings a count Klaviyo keeps off what its API lists level with ours."""
    ranges = []
    for day in range(day_of(lower), day_of(upper - 1) + 1):
        now, mine = klaviyo.get(day, 0), ours.get(day, 0)
        if now == mine and now == seen.get(day, mine):
            continue
        lo, hi = max(day * DAY, lower), min((day + 1) * DAY, upper)
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def days_in(ranges):
    return [day for lo, hi in ranges for day in range(day_of(lo), day_of(hi - 1) + 1)]


class Tally:
    """A stream's counts during a run (kept by the writer thread): those the run began with, the days
    it re-reads (whose counts start again from zero), what its pages counted, which adds to them, and
    Klaviyo's counts of the days compared."""

    def __init__(self, before, seen, first, had_counts=False):
        self.before = before            # {metric id: {day: count}} from the state
        self.seen = seen                # {metric id: {day: Klaviyo's count}} where it differed from ours
        self.had_counts = had_counts    # the state held counts (maybe of no metric at all)
        self.first = first              # the first instant of the window kept
        self.recounted = set()          # (metric id, day) re-read this run
        self.counted = {}               # (metric id, day) -> events written this run
        self.klaviyo = {}               # metric id -> {day: Klaviyo's count} asked this run
        self.metrics = set()            # the metrics read this run: their counts are kept, even none

    def recount(self, metric_id, days, klaviyo=None):
        self.metrics.add(metric_id)
        self.recounted.update((metric_id, day) for day in days)
        if klaviyo is not None:
            self.klaviyo[metric_id] = klaviyo

    def add(self, counted):
        for key, count in counted.items():
            self.counted[key] = self.counted.get(key, 0) + count
            self.metrics.add(key[0])

    def result(self):
        """(ours, Klaviyo's) counts to keep: per metric, each day of the window the run knows a count
        for; Klaviyo's only where they differ from ours. A metric this run did not read keeps its
        counts (another run may read it again); one it read is kept even with none, so that the next
        run knows its window is empty."""
        first_day = day_of(self.first)
        days_of = {}
        for metric_id, day in list(self.counted) + list(self.recounted):
            if day >= first_day:
                days_of.setdefault(metric_id, set()).add(day)
        ours, theirs = {}, {}
        for metric_id in sorted(self.metrics | set(self.before), key=str):
            before = self.before.get(metric_id, {})
            days = {day for day in before if day >= first_day} | days_of.get(metric_id, set())
            counts = {}
            for day in sorted(days):
                base = 0 if (metric_id, day) in self.recounted else before.get(day, 0)
                count = base + self.counted.get((metric_id, day), 0)
                if count:
                    counts[day] = count
            if counts or metric_id in self.metrics:
                ours[metric_id] = {day_text(day): n for day, n in counts.items()}
            # Klaviyo's count of a day read again without asking it is no longer news
            seen = {day: n for day, n in self.seen.get(metric_id, {}).items() if (metric_id, day) not in self.recounted}
            seen.update(self.klaviyo.get(metric_id, {}))
            differ = {day_text(day): n for day, n in sorted(seen.items())
                      if day >= first_day and n != counts.get(day, 0)}
            if differ:
                theirs[metric_id] = differ
        return ours, theirs
