"""Klaviyo's Reporting API in the sandbox: the campaign-values, flow-values, flow-series,
segment-values, segment-series, form-values and form-series reports (POST /api/...-reports), their
figures computed from the account's own events, segment members and form activity.

spec.py has already refused a body the published spec refuses (type, attributes, statistics,
timeframe, interval, group_by and its prerequisites, filter) before a report gets here. This module
adds what the spec only describes in words: the limits (1/s and 2/min per endpoint, scaled by the
sandbox's rate_scale, and a daily cap, Options.report_daily_cap, over a rolling 24 hours and shared
by every report endpoint, answered with a 429 whose Retry-After runs to hours), paging by page_cursor
(Options.report_page_size groupings a page; the campaign and flow reports only: the segment and form
reports take no page_cursor in the spec), and the figures.

How the figures are counted (the sandbox's reading of Klaviyo's statistics; tests/test_reports.py
and tests/test_reports_more.py recompute them from the dump on their own):
- an event counts for the message its event_properties name in "$message" (a campaign message or a
  flow message of the account), in the timeframe (flow series: in the day it falls in);
- delivered: Received Email / SMS / Push; bounced: Bounced Email; failed: Dropped Email; opens:
  Opened Email / Push; clicks: Clicked Email / SMS; spam_complaints: Marked Email as Spam;
  unsubscribes: Unsubscribed from Email Marketing (metrics of the Klaviyo integration only);
- conversions: events of the request's conversion metric whose "$attributed_message" names the
  message; conversion_value sums their "$value";
- *_unique / *_uniques count distinct profiles; recipients = delivered + bounced + failed; the rates
  divide by recipients (delivery, bounce, failed), by delivered (open, click, unsubscribe, spam,
  conversion, revenue per recipient), by unique opens (click to open) or by conversions (average
  order value); 0 where the divisor is 0. Rates are rounded to 4 places, money to 2;
- SMS costs (2025-10-15 on): each delivered text is one segment (message_segment_count_sum), one
  credit (text_message_credit_usage_amount) at SEGMENT_PRICE (text_message_spend);
  text_message_roi = (conversion_value - spend) / spend; 0 for other channels;
- a values report has one result per message and channel with any such event in the timeframe; a
  series has the same results with one value per day (zeros included) and `date_times`;
- segments: one result per segment of the account; members_added counts joins in the timeframe
  (the members' joined_group_at, and former members' joins), members_removed the former members'
  departures, total_members the members at the timeframe's (or day's) end (former_members());
- forms: one result per form (or version, grouped by form_version_id) with activity in the
  timeframe, counted from forms.py's activity; the *_uniques count distinct profiles; submit_rate
  = submits / viewed_form_uniques.

populate() adds report-shaped events to a generated account (sends of the sent campaigns and of
the live flows, with opens, clicks, conversions...), drawn from a random stream of its own, after
the classic account and the entities exist; nothing already there is changed.
"""
import bisect
import calendar
import collections
import random
import threading
import time
import uuid

import orjson

from . import data as sandbox_data
from . import entities as sandbox_entities
from . import server as api
from . import spec

DAY = 86400
KLAVIYO = "Klaviyo"
CHANNEL_NAMES = {"email": "email", "sms": "sms", "mobile_push": "push-notification", "push": "push-notification"}
EVENT_STATISTIC = {
    "Received Email": "delivered", "Received SMS": "delivered", "Received Push": "delivered",
    "Bounced Email": "bounced", "Dropped Email": "failed", "Opened Email": "opens", "Opened Push": "opens",
    "Clicked Email": "clicks", "Clicked SMS": "clicks", "Marked Email as Spam": "spam_complaints",
    "Unsubscribed from Email Marketing": "unsubscribes",
}
UNIQUE = {"opens": "opens_unique", "clicks": "clicks_unique", "unsubscribes": "unsubscribe_uniques",
          "conversions": "conversion_uniques"}


class _Kind:
    def __init__(self, family, scope, resource, series, group_by, relationships, owner):
        self.family, self.scope, self.resource, self.series = family, scope, resource, series
        self.group_by = group_by            # the API's default grouping
        self.relationships = relationships  # relationship name -> (resource type, grouping key)
        self.owner = owner                  # what a result is of: campaign, flow, segment or form
        self.paged = owner in ("campaign", "flow")      # the segment and form reports take no page_cursor


_FLOW_RELATIONSHIPS = {"flows": ("flow", "flow_id"), "flow-messages": ("flow-message", "flow_message_id")}
_FLOW_GROUPS = ("flow_id", "flow_message_id", "send_channel")
KINDS = {
    "/api/campaign-values-reports": _Kind("campaign_values_reports", "campaigns:read", "campaign-values-report",
                                          False, ("campaign_id", "campaign_message_id", "send_channel"),
                                          {"campaigns": ("campaign", "campaign_id")}, "campaign"),
    "/api/flow-series-reports": _Kind("flow_series_reports", "flows:read", "flow-series-report", True,
                                      _FLOW_GROUPS, _FLOW_RELATIONSHIPS, "flow"),
    # Issue 22: the other report endpoints (spec 2024-10-15 on)
    "/api/flow-values-reports": _Kind("flow_values_reports", "flows:read", "flow-values-report", False,
                                      _FLOW_GROUPS, _FLOW_RELATIONSHIPS, "flow"),
    "/api/segment-values-reports": _Kind("segment_values_reports", "segments:read", "segment-values-report", False,
                                         ("segment_id",), {}, "segment"),
    "/api/segment-series-reports": _Kind("segment_series_reports", "segments:read", "segment-series-report", True,
                                         ("segment_id",), {}, "segment"),
    "/api/form-values-reports": _Kind("form_values_reports", "forms:read", "form-values-report", False,
                                      ("form_id",), {}, "form"),
    "/api/form-series-reports": _Kind("form_series_reports", "forms:read", "form-series-report", True,
                                      ("form_id",), {}, "form"),
}
PATHS = frozenset(KINDS)


# --- the account's messages -------------------------------------------------------------------
def messages(account):
    """message id -> its groupings: campaign messages and flow messages that send (not webhooks)."""
    entities = sandbox_entities.of(account)
    found = {}
    for message in entities.campaign_messages:
        campaign_id = ((message["relationships"].get("campaign") or {}).get("data") or {}).get("id")
        definition = message["attributes"].get("definition") or {}
        found[message["id"]] = {"campaign_id": campaign_id, "campaign_message_id": message["id"],
                                "campaign_message_name": definition.get("label"),
                                "send_channel": CHANNEL_NAMES[entities.channel[campaign_id]]}
    flow_of_action = {a["id"]: a["relationships"]["flow"]["data"]["id"] for a in entities.flow_actions}
    flow_names = {f["id"]: f["attributes"]["name"] for f in entities.flows}
    for message in entities.flow_messages:
        channel = CHANNEL_NAMES.get(message["attributes"]["channel"])
        if channel is None:
            continue
        flow_id = flow_of_action[message["relationships"]["flow-action"]["data"]["id"]]
        found[message["id"]] = {"flow_id": flow_id, "flow_name": flow_names[flow_id],
                                "flow_message_id": message["id"],
                                "flow_message_name": (message["attributes"].get("definition") or {}).get("name"),
                                "send_channel": channel}
    return found


# --- the figures --------------------------------------------------------------------------------
def _ratio(part, whole, places=4):
    return round(part / whole, places) if whole else 0.0


def statistics(tally):
    """Every statistic of the spec's enum from one tally of counts, profile sets and order value."""
    counts = {name: tally.get(name, 0) for name in ("delivered", "bounced", "failed", "opens", "clicks",
                                                     "spam_complaints", "unsubscribes", "conversions")}
    for name, unique in UNIQUE.items():
        counts[unique] = len(tally.get(("profiles", name), ()))
    value = round(tally.get("conversion_value", 0.0), 2)
    recipients = counts["delivered"] + counts["bounced"] + counts["failed"]
    delivered = counts["delivered"]
    figures = dict(counts, recipients=recipients, bounced_or_failed=counts["bounced"] + counts["failed"],
                   conversion_value=value)
    figures.update({
        "delivery_rate": _ratio(delivered, recipients), "bounce_rate": _ratio(counts["bounced"], recipients),
        "failed_rate": _ratio(counts["failed"], recipients),
        "bounced_or_failed_rate": _ratio(figures["bounced_or_failed"], recipients),
        "open_rate": _ratio(counts["opens_unique"], delivered), "click_rate": _ratio(counts["clicks_unique"], delivered),
        "click_to_open_rate": _ratio(counts["clicks_unique"], counts["opens_unique"]),
        "unsubscribe_rate": _ratio(counts["unsubscribe_uniques"], delivered),
        "spam_complaint_rate": _ratio(counts["spam_complaints"], delivered),
        "conversion_rate": _ratio(counts["conversion_uniques"], delivered),
        "revenue_per_recipient": _ratio(value, delivered, 2), "average_order_value": _ratio(value, counts["conversions"], 2),
    })
    figures.update(sms_costs(tally.get("sms_segments", 0), value))
    return figures


SEGMENT_PRICE = 0.01    # the sandbox's price of one SMS segment (each of its texts is one segment)


def sms_costs(segments, conversion_value):
    """The SMS cost statistics (spec 2025-10-15 on): every delivered text is one segment costing one
    credit of SEGMENT_PRICE; ROI = (conversion value - spend) / spend, 0 without spend."""
    spend = round(segments * SEGMENT_PRICE, 2)
    return {"message_segment_count_sum": segments, "text_message_credit_usage_amount": float(segments),
            "text_message_spend": spend,
            "text_message_roi": round((conversion_value - spend) / spend, 4) if spend else 0.0}


def _add(tally, statistic, profile_id, value=0.0):
    tally[statistic] = tally.get(statistic, 0) + 1
    if statistic in UNIQUE and profile_id is not None:
        tally.setdefault(("profiles", statistic), set()).add(profile_id)
    if statistic == "conversions" and isinstance(value, (int, float)) and not isinstance(value, bool):
        tally["conversion_value"] = tally.get("conversion_value", 0.0) + value


def _merge(tally, more):
    """Add one message's tally into a grouping's (a grouping coarser than the message)."""
    for key, value in more.items():
        if isinstance(value, set):
            tally[key] = tally.get(key, set()) | value
        else:
            tally[key] = tally.get(key, 0) + value


def _events(account, metric_ids, lower, upper):
    """(event, statistic) of the metrics' events in [lower, upper)."""
    with account.lock:
        for metric_id, statistic in metric_ids.items():
            keys = account.keys.get(metric_id, [])
            events = account.events.get(metric_id, [])
            start, stop = bisect.bisect_left(keys, (lower, "")), bisect.bisect_left(keys, (upper, ""))
            for event in events[start:stop]:
                yield event, statistic


def tallies(account, conversion_metric_id, lower, upper, buckets=None):
    """{message id: tally} over [lower, upper), or with buckets (sorted starts) {(message id, bucket): tally}."""
    known = messages(account)
    metric_ids = {m["id"]: EVENT_STATISTIC[m["attributes"]["name"]] for m in account.metrics
                  if m["attributes"]["integration"]["name"] == KLAVIYO and m["attributes"]["name"] in EVENT_STATISTIC}
    metric_ids[conversion_metric_id] = "conversions"
    found = {}
    for event, statistic in list(_events(account, metric_ids, lower, upper)):
        properties = event.properties or {}
        message_id = properties.get("$attributed_message" if statistic == "conversions" else "$message")
        if message_id not in known:
            continue
        key = message_id if buckets is None else (message_id, bisect.bisect_right(buckets, event.timestamp) - 1)
        tally = found.setdefault(key, {})
        _add(tally, statistic, event.profile_id, properties.get("$value"))
        if statistic == "delivered" and known[message_id]["send_channel"] == "sms":
            tally["sms_segments"] = tally.get("sms_segments", 0) + 1
    return known, found


# --- timeframes and intervals ------------------------------------------------------------------
def _naive_epoch(text):
    # the spec: "Offset is ignored and the company timezone is used"; the sandbox's company is on UTC
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def _month_start(epoch, months_back=0):
    year, month = time.gmtime(epoch)[:2]
    month -= months_back
    while month < 1:
        year, month = year - 1, month + 12
    return calendar.timegm((year, month, 1, 0, 0, 0))


def timeframe(value, now):
    """[lower, upper) epoch seconds of a body's timeframe (spec.py has checked its shape)."""
    if "start" in value:
        return _naive_epoch(value["start"]), _naive_epoch(value["end"])
    today = now // DAY * DAY
    week = today - time.gmtime(today).tm_wday * DAY
    year_start = calendar.timegm((time.gmtime(now).tm_year, 1, 1, 0, 0, 0))
    last_days = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90, "last_365_days": 365}
    key = value["key"]
    if key in last_days:
        return today - last_days[key] * DAY, today
    return {
        "today": (today, now), "yesterday": (today - DAY, today), "this_week": (week, now),
        "last_week": (week - 7 * DAY, week), "this_month": (_month_start(now), now),
        "last_month": (_month_start(now, 1), _month_start(now)), "this_year": (year_start, now),
        "last_year": (calendar.timegm((time.gmtime(now).tm_year - 1, 1, 1, 0, 0, 0)), year_start),
        "last_3_months": (_month_start(now, 3), today), "last_12_months": (_month_start(now, 12), today),
    }[key]


def buckets(interval, lower, upper):
    """Start of each interval in the series over [lower, upper)."""
    if interval == "monthly":
        starts, at = [], _month_start(lower)
        while at < upper:
            starts.append(at)
            at = _month_start(at + 32 * DAY)
        return starts
    width = {"hourly": 3600, "daily": DAY, "weekly": 7 * DAY}[interval]
    first = lower // width * width if interval != "weekly" else lower // DAY * DAY
    return list(range(first, upper, width))


# --- the endpoints ------------------------------------------------------------------------------
class _Budget:
    """Report requests answered over the last 24 hours: one budget for every report endpoint (the
    issue and the reference notes: the reports share 225 a day; the spec gives each operation
    `daily: 225/d` without saying, so the sandbox takes the stricter reading)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = collections.defaultdict(collections.deque)


def _budget(sandbox):
    with sandbox.stats_lock:
        if not hasattr(sandbox, "report_budget"):
            sandbox.report_budget = _Budget()
        return sandbox.report_budget


def new_day(sandbox, cap=None):
    """Forget the requests already counted against the daily cap (the next day, for tests); cap
    replaces Options.report_daily_cap when given."""
    budget = _budget(sandbox)
    with budget.lock:
        budget.sent.clear()
    if cap is not None:
        sandbox.options.report_daily_cap = cap


SHARED_BUDGET = "reports"


def _spend(sandbox, family):
    """Count one request against the day's cap, or refuse it with a 429 asking to wait for hours."""
    budget = _budget(sandbox)
    now = time.time()
    with budget.lock:
        sent = budget.sent[SHARED_BUDGET]
        while sent and sent[0] <= now - DAY:
            sent.popleft()
        if len(sent) >= sandbox.options.report_daily_cap:
            wait = max(1, int(sent[0] + DAY - now) + 1)
            raise api.ApiFailure(429, "throttled", f"Request was throttled. Expected available in {wait} seconds.",
                                 headers={"Retry-After": str(wait)})
        sent.append(now)


def _matches(groupings, filters):
    for op, name, values in filters:
        actual = groupings.get(name)
        if name in ("tag_id", "tag_name"):
            continue                # the sandbox's reports carry no tags: such a filter keeps everything
        if actual not in values:
            return False
    return True


def _filters(raw):
    chosen = []
    for op, name, value in spec.parse_filter(raw) if raw else []:
        items = orjson.loads(value.replace("'", '"')) if value else []
        chosen.append((op, name, items if isinstance(items, list) else [items]))
    return chosen


def _message_results(sandbox, kind, attributes, lower, upper, starts):
    """Results of the campaign and flow reports: figures of the account's message events."""
    account = sandbox.account
    metric_id = attributes["conversion_metric_id"]
    if not any(m["id"] == metric_id for m in account.metrics):
        raise api.ApiFailure(400, "invalid", f"Metric {metric_id} does not exist.",
                             pointer="/data/attributes/conversion_metric_id")
    known, found = tallies(account, metric_id, lower, upper, starts)
    group_by = attributes.get("group_by") or kind.group_by
    filters = _filters(attributes.get("filter"))
    grouped = {}
    for key, tally in found.items():
        message_id, bucket = key if kind.series else (key, None)
        groupings = {name: known[message_id].get(name) for name in group_by}
        if kind.owner != ("flow" if "flow_id" in known[message_id] else "campaign") or \
                not _matches(known[message_id], filters):
            continue
        by_bucket = grouped.setdefault(tuple(sorted(groupings.items(), key=lambda item: item[0])), {})
        _merge(by_bucket.setdefault(bucket, {}), tally)
    return grouped, statistics


# --- segments: joins and departures ----------------------------------------------------------
def former_members(account):
    """segment id -> [(joined, left)] of profiles that were members and left, before the anchor,
    drawn once from a random stream of their own (about a third as many as the segment has now)."""
    found = getattr(account, "report_former_members", None)
    if found is None:
        rng = random.Random(f"reports:segments:{account.anchor}")
        members = sandbox_entities.of(account).members["segment"]
        found = {}
        for segment in account.segments:
            left = []
            for _ in range(len(members.get(segment["id"], {})) // 3 + rng.randrange(3)):
                joined = account.anchor - rng.randrange(DAY, 400 * DAY)
                left.append((joined, joined + rng.randrange(3600, account.anchor - joined)))
            found[segment["id"]] = sorted(left)
        account.report_former_members = found
    return found


def segment_figures(account, segment_id, lower, upper):
    """members_added / _removed / net_members_changed over [lower, upper), total_members at upper:
    joins are the current members' joined_group_at and the former members' joins, removals the
    former members' departures."""
    with account.lock:
        current = list(sandbox_entities.of(account).members["segment"].get(segment_id, {}).values())
    former = former_members(account).get(segment_id, [])
    added = sum(lower <= at < upper for at in current) + sum(lower <= joined < upper for joined, _ in former)
    removed = sum(lower <= left < upper for _, left in former)
    total = sum(at < upper for at in current) + sum(joined < upper <= left for joined, left in former)
    return {"members_added": added, "members_removed": removed, "net_members_changed": added - removed,
            "total_members": total}


def _segment_results(sandbox, kind, attributes, lower, upper, starts):
    """One result per segment of the account (a filter on segment_id keeps those it names)."""
    account = sandbox.account
    filters = _filters(attributes.get("filter"))
    grouped = {}
    for segment in account.segments:
        if not _matches({"segment_id": segment["id"]}, filters):
            continue
        spans = [(lower, upper)] if starts is None else \
            [(start, min(starts[n + 1] if n + 1 < len(starts) else upper, upper)) for n, start in enumerate(starts)]
        grouped[(("segment_id", segment["id"]),)] = {
            (None if starts is None else n): (account, segment["id"], low, high) for n, (low, high) in enumerate(spans)}
    return grouped, lambda args: segment_figures(*args) if args else \
        {"members_added": 0, "members_removed": 0, "net_members_changed": 0, "total_members": 0}


def _form_results(sandbox, kind, attributes, lower, upper, starts):
    """One result per form (or form version, grouped by it) with any activity in the timeframe."""
    group_by = attributes.get("group_by") or kind.group_by
    filters = _filters(attributes.get("filter"))
    grouped = {}
    from . import forms as sandbox_forms    # forms.py imports entities, which imports this module's importer
    for key, tally in sandbox_forms.tallies(sandbox.account, lower, upper, starts).items():
        form_id, version_id = key[:2]
        bucket = key[2] if starts is not None else None
        known = {"form_id": form_id, "form_version_id": version_id}
        if not _matches(known, filters):
            continue
        groupings = tuple((name, known[name]) for name in sorted(group_by))
        _merge(grouped.setdefault(groupings, {}).setdefault(bucket, {}), tally)
    return grouped, sandbox_forms.statistics


RESULTS = {"campaign": _message_results, "flow": _message_results, "segment": _segment_results,
           "form": _form_results}


def report(sandbox, kind, payload, query, base):
    """The whole answer document for one page of a report."""
    attributes = payload["data"]["attributes"]
    lower, upper = timeframe(attributes["timeframe"], int(time.time()))
    starts = buckets(attributes["interval"], lower, upper) if kind.series else None
    grouped, figures_of = RESULTS[kind.owner](sandbox, kind, attributes, lower, upper, starts)
    wanted = attributes["statistics"]
    results = []
    for groups in sorted(grouped, key=lambda items: [str(v) for _, v in items]):
        by_bucket = grouped[groups]
        if kind.series:
            figures = [figures_of(by_bucket.get(n, {})) for n in range(len(starts))]
            values = {name: [f[name] for f in figures] for name in wanted}
        else:
            figures = figures_of(by_bucket[None])
            values = {name: figures[name] for name in wanted}
        results.append({"groupings": dict(groups), "statistics": values})
    offset = int(api._uncursor(query["page_cursor"])) if "page_cursor" in query else 0
    size = sandbox.options.report_page_size if kind.paged else max(1, len(results))
    page = results[offset:offset + size]
    report_id = str(uuid.uuid4())
    data_attributes = {"results": page}
    if kind.series:
        data_attributes["date_times"] = [sandbox_data.iso(start) for start in starts]
    fields = query.get(f"fields[{kind.resource}]")
    if fields:
        data_attributes = {name: data_attributes[name] for name in fields.split(",") if name in data_attributes}
    relationships = {}
    for name, (resource_type, grouping) in kind.relationships.items():
        ids = sorted({r["groupings"].get(grouping) for r in page} - {None})
        relationships[name] = {"data": [{"type": resource_type, "id": i} for i in ids],
                               "links": {"self": f"{base}/{report_id}/relationships/{name}/",
                                         "related": f"{base}/{report_id}/{name}/"}}
    links = {"self": base}
    if offset + size < len(results):
        links["next"] = f"{base}?page_cursor={api._cursor(str(offset + size))}"
    data = {"type": kind.resource, "id": report_id, "attributes": data_attributes}
    if kind.relationships:
        data["relationships"] = relationships
    return {"data": data, "links": links}


def answer(handler, path, query, payload):
    """Serve one report request on handler (spec.py has accepted its body)."""
    sandbox = handler.sandbox
    kind = KINDS[path]
    try:
        revision = sandbox.authenticate(handler.headers, kind.scope)
        sandbox.count("requests", kind.family)
        fault = sandbox.maybe_fault(handler, kind.family, handler.path)
        if fault is True:
            return
        _spend(sandbox, kind.family)
        headers = sandbox.rates.take(kind.family, spec.rate_limit("POST", path, query, revision) or (1, 2))
        if sandbox.options.latency:
            time.sleep(sandbox.options.latency)
        body = orjson.dumps(report(sandbox, kind, payload, query, sandbox.base_url + path))
        if fault == "truncated":
            body = body[: max(1, len(body) // 2)]
        handler.send_raw(200, body, "application/vnd.api+json", headers)
    except api.ApiFailure as failure:
        if failure.status == 429:
            sandbox.count("throttled")
        handler.send_raw(failure.status, failure.body(), "application/vnd.api+json", failure.headers)


# --- report-shaped events -----------------------------------------------------------------------
def populate(account, seed=0, flow_day_share=0.08):
    """Add sends of the account's sent campaigns and live flows with what followed them (opens,
    clicks, bounces, unsubscribes, orders attributed to them), from a random stream of their own.
    Returns the number of events added."""
    rng = random.Random(f"reports:{seed}")
    entities = sandbox_entities.of(account)
    known = messages(account)
    profiles = sorted(account.profiles)
    orders = [m for m in account.metrics if m["attributes"]["name"] == "Placed Order"]
    added = 0
    for message in entities.campaign_messages:
        campaign = entities.get("campaign", known[message["id"]]["campaign_id"])
        send_times = message["attributes"].get("send_times") or []
        if campaign["attributes"]["status"] not in ("Sent", "Variations Sent") or not send_times:
            continue
        sent_at = api._parse_z(send_times[0]["datetime"].replace("+00:00", "Z"))
        added += _send(account, rng, profiles, orders, known[message["id"]], sent_at, rng.randrange(8, 20),
                       {"Campaign Name": campaign["attributes"]["name"], "$flow": ""})
    live = {f["id"] for f in entities.flows if f["attributes"]["status"] == "live"}
    first_day = account.anchor // DAY * DAY - 400 * DAY
    for message_id, groupings in known.items():
        if groupings.get("flow_id") not in live:
            continue
        for day in range(first_day, account.anchor // DAY * DAY + DAY, DAY):
            if rng.random() < flow_day_share:
                at = day + rng.randrange(DAY)
                if at < account.anchor - 3600:
                    added += _send(account, rng, profiles, orders, groupings, at, rng.randrange(1, 4),
                                   {"Campaign Name": groupings["flow_message_name"], "$flow": groupings["flow_id"]})
    return added


def _send(account, rng, profiles, orders, groupings, sent_at, count, base_properties):
    """One send of a message to `count` profiles and what they did after it; returns events added."""
    message_id = groupings.get("campaign_message_id") or groupings["flow_message_id"]
    channel = groupings["send_channel"]
    received = {"email": "Received Email", "sms": "Received SMS", "push-notification": "Received Push"}[channel]
    opened = {"email": "Opened Email", "push-notification": "Opened Push"}.get(channel)
    clicked = {"email": "Clicked Email", "sms": "Clicked SMS"}.get(channel)
    latest = account.anchor - 60
    added = 0

    def event(name, at, profile_id, properties, metric=None):
        nonlocal added
        metric = metric or account.metric_by_name(name)
        account.add_event(sandbox_data.Event(min(at, latest), account.next_id(rng), str(uuid.UUID(int=rng.getrandbits(128))),
                                             profile_id, metric["id"], properties))
        added += 1

    for profile_id in rng.sample(profiles, count):
        properties = dict(base_properties, **{"$message": message_id, "Subject": "Report sandbox send"})
        at = sent_at + rng.randrange(120)
        fate = rng.random()
        if channel == "email" and fate < 0.06:
            event("Bounced Email", at, profile_id, dict(properties, **{"Bounce Type": "hard"}))
            continue
        if channel == "email" and fate < 0.1:
            event("Dropped Email", at, profile_id, properties)
            continue
        event(received, at, profile_id, properties)
        later = at
        if opened and rng.random() < 0.55:
            for _ in range(rng.randrange(1, 4)):
                later = later + rng.randrange(60, DAY)
                event(opened, later, profile_id, properties)
        if clicked and rng.random() < 0.35:
            for _ in range(rng.randrange(1, 3)):
                later = later + rng.randrange(30, 6 * 3600)
                event(clicked, later, profile_id, dict(properties, URL="https://shop.example/sale"))
        if channel == "email" and rng.random() < 0.03:
            event("Marked Email as Spam", later + 600, profile_id, properties)
        if channel == "email" and rng.random() < 0.05:
            event("Unsubscribed from Email Marketing", later + 900, profile_id, properties)
        for metric in orders:
            if rng.random() < 0.2:
                # attributed days after the send: a re-read window exists for these
                event(None, later + rng.randrange(3600, 5 * DAY), profile_id, {
                    "$value": round(rng.uniform(8, 240), 2), "$event_id": f"r{account._serial}",
                    "$attributed_message": message_id, "$attributed_channel": channel}, metric)
    return added
