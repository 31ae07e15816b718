"""Event streams: the ten classic metric tables (one unit per Klaviyo metric) and `events` (every
metric, or the ones config names)."""
import functools
import logging

from .. import revisions, timeutil
from .. import state as bookmarks
from ..engine import Watermark
from ..pages import EventGlance, EventPage, decode_typed
from ..rows import EVENT_FIELDS, PROFILE_FIELDS, api_event_rows, event_rows, event_times
from ..streams import KLAVIYO_INTEGRATION
from .ranges import RangeReader, RangeScan

LOGGER = logging.getLogger("tap_klaviyo")


def all_metrics(context):
    """(id, name, integration name) of every metric of the account, fetched once per run."""
    def fetch():
        found = []
        params = {"fields[metric]": "name,integration"}
        for document in context.client.pages("metrics", "/api/metrics", params):
            for metric in document["data"]:
                attributes = metric.get("attributes") or {}
                found.append((metric["id"], attributes.get("name"),
                              (attributes.get("integration") or {}).get("name")))
        return found
    return context.once("metrics", fetch)


def _datetime_filter(lower, upper, metric_id=None):
    window = (f"greater-or-equal(datetime,{timeutil.to_filter(lower)}),"
              f"less-than(datetime,{timeutil.to_filter(upper)})")
    return f'equals(metric_id,"{metric_id}"),{window}' if metric_id else window


def _event_params(config, **more):
    return {"sort": "datetime", **more, **revisions.page_param("events", config.revision)}


def _page_size(config):
    return revisions.page_size("events", config.revision) or 200


def _parts_allowed(config, units):
    # enough cursors per unit that the pool stays busy, never fewer than two where data is dense
    return max(2, config.concurrency // max(1, units))


def _begin(context, stream, legacy_keys=()):
    config = context.config
    begin = bookmarks.since(context.state, stream.name, legacy_keys)
    begin = config.start_date if begin is None else begin
    if begin > context.started:
        LOGGER.warning("stream %s: bookmark %s is after the sync start; reading from %s",
                       stream.name, timeutil.to_bookmark(begin), timeutil.to_bookmark(context.started))
        begin = context.started
    return begin


# Rows of a page, as RangeReader wants them: module-level, their arguments bound by partial, so
# that a page may be decoded in a helper process (see decoding).
def _classic_rows(metric_id, metric_name, document, lo, hi):
    return [(row["timestamp"], row) for row in event_rows(document, metric_id, metric_name, lo, hi)]


def _api_rows(names, keep, document, lo, hi):
    pairs = [(row["timestamp"], row) for row in api_event_rows(document, names, lo, hi)]
    if keep is None:
        return pairs
    return [(instant, {k: v for k, v in row.items() if k in keep}) for instant, row in pairs]


def _glance(body, lo, hi):
    page = decode_typed(body, EventGlance)
    return page.next_url, (event_times(page, lo, hi) if page.data is not None else [])


def plan_classic(stream, context):
    config = context.config
    chosen = [(mid, name) for mid, name, integration in all_metrics(context)
              if integration == KLAVIYO_INTEGRATION and name in stream.metric_names]
    if not chosen:
        LOGGER.warning("stream %s: the account has no Klaviyo metric named %s; no rows, bookmark unchanged",
                       stream.name, " or ".join(repr(n) for n in stream.metric_names))
        return []
    begin = _begin(context, stream, [mid for mid, _ in chosen])
    lower = begin - config.lookback_minutes * 60
    watermark = context.watermarks[stream.name] = Watermark(begin, context.started)
    parts = _parts_allowed(config, 10)
    tasks = []
    for metric_id, metric_name in chosen:
        rows = functools.partial(_classic_rows, metric_id, metric_name)
        reader = RangeReader("events", "/api/events", _event_params(
            config, include="profile,metric", **{"fields[event]": EVENT_FIELDS, "fields[profile]": PROFILE_FIELDS,
                                                  "fields[metric]": "name"}),
            lambda lo, hi, metric_id=metric_id: _datetime_filter(lo, hi, metric_id), rows, _page_size(config),
            EventPage, _glance)
        scan = RangeScan(stream, metric_id, lower, context.started, reader, parts)
        watermark.plan(metric_id, [scan])
        tasks.append((scan, scan.lower))
    LOGGER.info("stream %s: metrics %s, from %s to %s", stream.name,
                ", ".join(f"{name} ({mid})" for mid, name in chosen), timeutil.to_bookmark(lower),
                timeutil.to_bookmark(context.started))
    return tasks


def plan_events(stream, context):
    """All events, or those of config event_metrics (names or ids), as API-shaped rows."""
    config = context.config
    metrics = all_metrics(context)
    names = {mid: name for mid, name, _ in metrics}
    wanted = config.event_metrics
    if wanted:
        units = [mid for mid, name, _ in metrics if mid in wanted or name in wanted]
        unknown = [w for w in wanted if w not in names and w not in names.values()]
        if unknown:
            LOGGER.warning("stream events: config event_metrics names %s, which the account does not have",
                           ", ".join(repr(u) for u in unknown))
        if not units:
            LOGGER.warning("stream events: no metric of event_metrics exists; no rows, bookmark unchanged")
            return []
    else:
        units = [None]      # one cursor over every metric: the fewest requests
    begin = _begin(context, stream)
    lower = begin - config.lookback_minutes * 60
    watermark = context.watermarks[stream.name] = Watermark(begin, context.started)
    chosen = context.columns.get(stream.name)      # None: every column
    # timestamp and datetime place an event in its range: asked for even when deselected
    fields = ",".join(["timestamp", "datetime"] + [f for f in ("uuid", "event_properties")
                                                    if chosen is None or f in chosen])
    keep = None if chosen is None else frozenset(chosen) | {"id", "datetime"}
    rows = functools.partial(_api_rows, names, keep)
    tasks = []
    for unit in units:
        reader = RangeReader("events", "/api/events", _event_params(config, **{"fields[event]": fields}),
                             lambda lo, hi, unit=unit: _datetime_filter(lo, hi, unit), rows, _page_size(config),
                             EventPage, _glance)
        scan = RangeScan(stream, unit or "all", lower, context.started, reader,
                         _parts_allowed(config, len(units) + 10))
        watermark.plan(unit or "all", [scan])
        tasks.append((scan, scan.lower))
    return tasks
