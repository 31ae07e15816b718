"""The sandbox HTTP server: Klaviyo's endpoints, their checks, limits and faults.

Endpoints: /api/metrics, /api/events, /api/lists[/id], /api/segments[/id], /api/profiles and
POST /api/metric-aggregates here; campaigns, flows, templates, tags and list/segment members in
entities.py; the report endpoints in reports.py.
Admin (tests only): GET /__sandbox/dump, GET /__sandbox/stats, POST /__sandbox/stats/reset,
POST /__sandbox/events (an item with "held": true is held back: served nowhere until revealed),
POST /__sandbox/events/reveal; in entities.py POST /__sandbox/profiles/touch, /__sandbox/members/add,
/__sandbox/members/remove, /__sandbox/suppression/lift, /__sandbox/touch and /__sandbox/delete.
"""
import base64
import bisect
import calendar
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, time as clock_time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec
import orjson

from . import data as sandbox_data
from . import fragments
from . import spec
from . import entities
from . import reports
from . import attributions     # issue 22 (events): include=attributions on /api/events

API_KEY = "pk_sandbox_4f1c2e9a7b3d5f60a8e1c4b7d2f9e6a3c1"
NO_EVENTS_KEY = "pk_sandbox_noevents_9d8c7b6a5f4e3d2c1b0a"
NO_CAMPAIGNS_FLOWS_KEY = "pk_sandbox_nocampaignsflows_7a6b5c4d3e2f1a0b9c8d"     # lacks campaigns:read, flows:read
NO_SCOPES_KEY = "pk_sandbox_noscopes_3e4f5a6b7c8d9e0f1a2b"    # a valid key with no scope: every scoped request is a 403
# lacks profiles:read, and its 403s name no scope (as Klaviyo's "You do not have permission" ones)
NO_PROFILES_KEY = "pk_sandbox_noprofiles_5b6c7d8e9f0a1b2c3d4e"
ALL_SCOPES = {"metrics:read", "events:read", "profiles:read", "lists:read", "segments:read", "campaigns:read",
              "flows:read", "templates:read", "tags:read",
              # issue 22
              "coupons:read", "coupon-codes:read", "catalogs:read", "reviews:read", "images:read", "push-tokens:read",
              "accounts:read", "forms:read"}
REVISIONS = ("2024-02-15", "2024-06-15", "2024-07-15", "2024-10-15", "2025-01-15", "2025-04-15", "2025-07-15",
             "2025-10-15", "2026-01-15", "2026-04-15", "2026-07-15", "2026-10-15")
TIERS = {"XS": (1, 15), "S": (3, 60), "M": (10, 150), "L": (75, 700), "XL": (350, 3500)}
AGGREGATES = "/api/metric-aggregates"
FAULT_KINDS = ("500", "502html", "503", "504", "524", "reset", "truncated", "slow", "429", "200array")
# maybe_fault also knows "400" (a JSON:API `invalid` error), "404" and "stall" (a 200 whose body never completes:
# half of it is sent, then nothing, the connection held open), drawn only when Options.fault_kinds names them


class ApiFailure(Exception):
    def __init__(self, status, code, detail, parameter=None, headers=None, pointer=None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.parameter = status, code, detail, parameter
        self.headers = headers or {}
        self.pointer = pointer      # a request-body error names its attribute, as Klaviyo's do

    def body(self):
        error = {"id": str(uuid.uuid4()), "status": self.status, "code": self.code,
                 "title": {400: "Invalid input.", 401: "Not authenticated.", 403: "Permission denied.",
                           404: "Not found.", 410: "Gone.", 429: "Request was throttled."}.get(self.status, "Error"),
                 "detail": self.detail, "source": {"parameter": self.parameter} if self.parameter else
                 {"pointer": self.pointer} if self.pointer else {}}
        return orjson.dumps({"errors": [error]})


@dataclass
class Options:
    latency: float = 0.0          # seconds added to each API answer
    rate_scale: float = 1.0       # multiplies every documented limit (tests relax them)
    fault_rate: float = 0.0       # share of API requests answered with an injected fault
    fault_seed: int = 0
    slow_seconds: float = 3.0     # how long a "slow" fault stalls (beyond the client's timeout)
    faults_per_target: int = 0    # > 0: a URL is faulted at most this many times, then answered
    throttle_seconds: int = 1     # the Retry-After of an injected 429
    fault_kinds: tuple = FAULT_KINDS  # the kinds drawn from (a test narrows them to what it asserts)
    fault_families: tuple = ()    # non-empty: only requests of these rate families are faulted
    today: str | None = None      # date that decides which revisions are retired (default: _calendar_day)
    report_daily_cap: int = 225   # report requests in 24 hours, all report endpoints together (reports.py); not scaled
    report_page_size: int = 500   # report results (groupings) per page
    indent: int = 0               # > 0: answers indented across lines (as a proxy may re-encode them)


def _calendar_day(anchor):
    """The day whose Klaviyo the sandbox plays: the anchor's, but never past the last day the oldest
    revision it holds rules for is served. A revision retires two years after its date
    (../shared/reference/klaviyo-api.md, "Revisions"), so on a later day the sandbox would refuse
    revisions the tap still supports and the suite would fail on a date, with no change to the code.
    Dropping a retired revision from the tap and the rules (docs/revisions.md) moves the calendar on;
    the tests that want a 410 set `retired_before` themselves."""
    oldest = spec.oldest_revision()
    last_served = f"{int(oldest[:4]) + 2}{oldest[4:]}"
    return min(time.strftime("%Y-%m-%d", time.gmtime(anchor)), last_served)


def _retired_before(today):
    """Revisions dated before this are retired on `today` (YYYY-MM-DD): two years after their date."""
    return f"{int(today[:4]) - 2}{today[4:]}"


class RateCounter:
    """Klaviyo's fixed windows: per family, a per-second and a per-minute count."""

    def __init__(self, scale):
        self.scale = scale
        self.lock = threading.Lock()
        self.windows = {}

    def take(self, family, tier):
        burst, steady = TIERS[tier] if isinstance(tier, str) else tier    # a tier name or the spec's (burst, steady)
        burst, steady = max(1, int(burst * self.scale)), max(1, int(steady * self.scale))
        now = time.time()
        second, minute = int(now), int(now // 60)
        with self.lock:
            state = self.windows.setdefault(family, [second, 0, minute, 0])
            if state[0] != second:
                state[0], state[1] = second, 0
            if state[2] != minute:
                state[2], state[3] = minute, 0
            if state[1] >= burst or state[3] >= steady:
                wait = (second + 1 - now) if state[1] >= burst else (minute * 60 + 60 - now)
                raise ApiFailure(429, "throttled", f"Request was throttled. Expected available in "
                                 f"{math.ceil(wait)} second{'s' if math.ceil(wait) != 1 else ''}.",
                                 headers={"Retry-After": str(math.ceil(wait))})
            state[1] += 1
            state[3] += 1
            remaining = min(burst - state[1], steady - state[3])
            reset = math.ceil(second + 1 - now) if burst - state[1] <= steady - state[3] else math.ceil(minute * 60 + 60 - now)
            return {"RateLimit-Limit": str(burst), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset)}


_CALL = re.compile(r'([a-z-]+)\(([^(),]+),([^()]*)\)')


def parse_filter(text):
    """'equals(a,"x"),less-than(b,2024-01-01T00:00:00Z)' -> [(op, field, raw value)]; 400 when malformed."""
    calls, position = [], 0
    while position < len(text):
        match = _CALL.match(text, position)
        if not match:
            raise ApiFailure(400, "invalid", f"Invalid filter provided: could not parse {text[position:]!r}", "filter")
        calls.append((match.group(1), match.group(2).strip(), match.group(3).strip()))
        position = match.end()
        if position < len(text):
            if text[position] != ",":
                raise ApiFailure(400, "invalid", "Invalid filter provided", "filter")
            position += 1
    return calls


def _quoted(raw):
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    raise ApiFailure(400, "invalid", f"Invalid filter provided: {raw} must be a quoted string", "filter")


def _instant(raw):
    if raw.startswith('"'):
        raise ApiFailure(400, "invalid", f"Invalid filter provided: datetimes are not quoted ({raw})", "filter")
    try:
        return _parse_z(raw)
    except ValueError:
        raise ApiFailure(400, "invalid", f"Invalid filter provided: {raw!r} is not a datetime", "filter") from None


def _parse_z(raw):
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(raw, fmt))
        except ValueError:
            continue
    raise ValueError(raw)


def _dumps(document):
    if isinstance(document, bytes):     # already JSON (/api/events: fragments.py)
        return document
    try:
        return orjson.dumps(document)
    except TypeError:       # the account holds integers wider than 64 bits, as real ones do
        return fragments.encode(document)


def _cursor(text):
    return base64.b64encode(text.encode()).decode()


def _uncursor(token):
    try:
        return base64.b64decode(token.encode(), validate=True).decode()
    except ValueError:
        raise ApiFailure(400, "invalid", "Invalid cursor provided", "page[cursor]") from None


def _sparse(attributes, fields):
    if fields is None:
        return attributes
    return {name: attributes[name] for name in fields if name in attributes}


def _dumped(event):
    return {"id": event.id, "timestamp": event.timestamp, "uuid": event.uuid, "profile_id": event.profile_id,
            "metric_id": event.metric_id, "event_properties": event.properties}


def aggregate_buckets(interval, zone, lower, upper):
    """The start (aware, in zone) of each bucket from the one holding lower to the one holding the
    last instant before upper: clock hours, or days, ISO weeks (from Monday) and months from the
    zone's midnight."""
    if interval == "hour":
        # stepped in absolute time: a clock hour lived twice when clocks go back is two buckets
        first = int(lower.astimezone(zone).replace(minute=0, second=0, microsecond=0).timestamp())
        return [datetime.fromtimestamp(at, zone) for at in range(first, math.ceil(upper.timestamp()), 3600)]
    day = lower.astimezone(zone).date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    starts = []
    while (start := _midnight(day, zone)) < upper:
        starts.append(start)
        if interval == "month":
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            day += timedelta(days=7 if interval == "week" else 1)
    return starts


def _midnight(day, zone):
    # through a timestamp: where clocks skip midnight the day starts at the first instant that exists
    return datetime.fromtimestamp(datetime.combine(day, clock_time(), zone).timestamp(), zone)


def _measure(name, events, start, stop):
    """One measurement of events[start:stop], a float as Klaviyo sends them."""
    if name == "count":
        return float(stop - start)
    if name == "unique":
        return float(len({e.profile_id for e in events[start:stop]} - {None}))
    values = ((e.properties or {}).get("$value") for e in events[start:stop])
    return float(sum(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)))


class Sandbox:
    def __init__(self, account, options=None):
        self.account = account
        self.options = options or Options()
        self.rates = RateCounter(self.options.rate_scale)
        self.stats_lock = threading.Lock()
        self.stats = {"requests": 0, "throttled": 0, "faults": 0, "by_family": {}}
        self.fault_seen = {}
        self.pages = fragments.Pages(account)
        self.retired_before = _retired_before(self.options.today or _calendar_day(account.anchor))

    # --- checks -------------------------------------------------------------------------------
    def authenticate(self, headers, scope):
        auth = headers.get("Authorization") or ""
        prefix = "Klaviyo-API-Key "
        key = auth[len(prefix):] if auth.startswith(prefix) else None
        scopes = {API_KEY: ALL_SCOPES, NO_EVENTS_KEY: ALL_SCOPES - {"events:read"},
                  NO_CAMPAIGNS_FLOWS_KEY: ALL_SCOPES - {"campaigns:read", "flows:read"}, NO_SCOPES_KEY: set(),
                  NO_PROFILES_KEY: ALL_SCOPES - {"profiles:read"}}.get(key)
        if scopes is None:
            raise ApiFailure(401, "not_authenticated", "Incorrect authentication credentials.")
        for needed in (scope,) if isinstance(scope, str) else scope:      # some endpoints need two
            if needed not in scopes:
                if key == NO_PROFILES_KEY:
                    raise ApiFailure(403, "permission_denied", "You do not have permission to perform this action.")
                raise ApiFailure(403, "permission_denied", f"Missing scope: {needed}. Give the key {needed} access.")
        revision = headers.get("revision")
        if not revision:
            raise ApiFailure(400, "invalid", "Missing required header: revision", "revision")
        base = revision[:-4] if revision.endswith(".pre") else revision
        if base not in REVISIONS:
            raise ApiFailure(400, "invalid", f"Invalid revision header: {revision!r} is not a published revision",
                             "revision")
        if base < self.retired_before:
            raise ApiFailure(410, "gone", f"Revision {revision} has been retired; use a newer revision.")
        return base

    def check_spec(self, method, path, query, headers, body=None):
        """Refuse what the published spec refuses at the request's revision (see spec.py): the key
        must hold every scope the spec lists, and every parameter (and report body) must pass its
        rules. A path the rules do not cover is left to the router."""
        if spec.operation(method, path) is None:
            return
        revision = None
        for scope in spec.scopes(method, path):
            revision = self.authenticate(headers, scope)
        spec.check_request(method, path, query, revision, body)

    def maybe_fault(self, handler, family, target):
        if self.options.fault_rate <= 0 or (self.options.fault_families and family not in self.options.fault_families):
            return False
        with self.stats_lock:
            seen = self.fault_seen.get(target, 0)
            self.fault_seen[target] = seen + 1
        if self.options.faults_per_target and seen >= self.options.faults_per_target:
            return False
        digest = hashlib.sha256(f"{self.options.fault_seed}|{target}|{seen}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2 ** 64 >= self.options.fault_rate:
            return False
        kinds = self.options.fault_kinds
        kind = kinds[digest[8] % len(kinds)]
        with self.stats_lock:
            self.stats["faults"] += 1
        if kind == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            handler.close_connection = True
            handler.connection.close()
            return True
        if kind == "slow":
            time.sleep(self.options.slow_seconds)
            return False        # then answers normally, long after the client gave up
        if kind in ("truncated", "stall"):
            return kind
        if kind == "429":
            wait = self.options.throttle_seconds
            raise ApiFailure(429, "throttled", f"Request was throttled. Expected available in {wait} "
                             f"second{'s' if wait != 1 else ''}.", headers={"Retry-After": str(wait)})
        if kind == "200array":      # a 200 that is JSON but no JSON:API document (a confused proxy)
            handler.send_raw(200, b"[]", "application/vnd.api+json")
            return True
        if kind == "502html":
            handler.send_raw(502, b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
                             "text/html")
            return True
        if kind == "400":       # as Klaviyo refuses a parameter it does not (or no longer) accept
            raise ApiFailure(400, "invalid", "'messages.channel' is not a valid field for the resource.", "filter")
        if kind == "404":
            raise ApiFailure(404, "not_found", f"No endpoint at {urlsplit(target).path}.")
        status = int(kind)
        raise ApiFailure(status, "error", f"A server error occurred ({status}).")

    # --- endpoints ----------------------------------------------------------------------------
    def route(self, path, query):
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["api"] or len(parts) < 2:
            raise ApiFailure(404, "not_found", f"No endpoint at {path}")
        name = parts[1]
        if name == "metrics" and len(parts) == 2:
            return "metrics", "M", "metrics:read", self.metrics
        if name == "events" and len(parts) == 2:
            return "events", "XL", "events:read", self.events
        if name in ("lists", "segments") and len(parts) == 2:
            return name, "L", f"{name}:read", lambda q, r, b: self.groups(name, q, r, b)
        if name in ("lists", "segments") and len(parts) == 3:
            kind = name[:-1]
            counted = "profile_count" in (query.get(f"additional-fields[{kind}]") or "")
            return (f"{kind}_count" if counted else name, "XS" if counted else "L", f"{name}:read",
                    lambda q, r, b: self.group(name, parts[2], q))
        if name == "profiles" and len(parts) == 2:
            return entities.profiles_route(self, query)
        return entities.route(self, parts, query)

    def route_post(self, path, payload):
        """(family, tier, scope, endpoint) of a POST answered as the GETs are (the reports: reports.py)."""
        if path == AGGREGATES:
            return "metric_aggregates", "S", "metrics:read", lambda q, r, b: self.metric_aggregates(payload, q, r, b)
        raise ApiFailure(404, "not_found", f"No endpoint at {path}")

    def _page_size(self, query, default, maximum):
        raw = query.get("page[size]")
        if raw is None:
            return default
        try:
            size = int(raw)
        except ValueError:
            raise ApiFailure(400, "invalid", "page[size] must be an integer", "page[size]") from None
        if not 1 <= size <= maximum:
            raise ApiFailure(400, "invalid", f"page[size] must be between 1 and {maximum}", "page[size]")
        return size

    def _links(self, base, query, token):
        nxt = None
        if token is not None:
            params = {k: v for k, v in query.items() if k != "page[cursor]"}
            params["page[cursor]"] = token
            nxt = base + "?" + urlencode(params)
        return {"self": base + ("?" + urlencode(query) if query else ""), "next": nxt, "prev": None}

    def metrics(self, query, revision, base):
        filters = parse_filter(query["filter"]) if "filter" in query else []
        fields = query["fields[metric]"].split(",") if "fields[metric]" in query else None
        chosen = self.account.metrics
        for op, name, raw in filters:
            if op != "equals" or name not in ("integration.name", "integration.category"):
                raise ApiFailure(400, "invalid", f"Unsupported filter on metrics: {op}({name})", "filter")
            member = name.split(".")[1]
            chosen = [m for m in chosen if m["attributes"]["integration"][member] == _quoted(raw)]
        offset = int(_uncursor(query["page[cursor]"])) if "page[cursor]" in query else 0
        page = chosen[offset:offset + 200]
        token = _cursor(str(offset + 200)) if offset + 200 < len(chosen) else None
        return {"data": [{"type": "metric", "id": m["id"], "attributes": _sparse(m["attributes"], fields)}
                         for m in page], "links": self._links(base, query, token)}

    def events(self, query, revision, base):
        maximum = 1000 if revision >= "2026-01-15" else 200     # the spec: page[size] up to 1000 from 2026-01-15
        size = self._page_size(query, 200, maximum)
        metric_id, lower, upper = None, -math.inf, math.inf
        for op, name, raw in parse_filter(query.get("filter", "")) if query.get("filter") else []:
            if op == "equals" and name == "metric_id":
                metric_id = _quoted(raw)
            elif name in ("datetime", "timestamp") and op in ("greater-or-equal", "greater-than", "less-than",
                                                               "less-or-equal"):
                value = _instant(raw) if name == "datetime" else int(raw)
                if op == "greater-or-equal":
                    lower = max(lower, value)
                elif op == "greater-than":
                    lower = max(lower, value + 1)
                elif op == "less-than":
                    upper = min(upper, value)
                else:
                    upper = min(upper, value + 1)
            else:
                raise ApiFailure(400, "invalid", f"Unsupported filter on events: {op}({name})", "filter")
        sort = query.get("sort", "datetime")
        if sort not in ("datetime", "-datetime", "timestamp", "-timestamp"):
            raise ApiFailure(400, "invalid", f"Invalid sort field: {sort}", "sort")
        descending = sort.startswith("-")
        includes = set(filter(None, query.get("include", "").split(",")))
        if includes - {"profile", "metric", "attributions"}:     # attributions: see attributions.py
            raise ApiFailure(400, "invalid", f"Invalid include: {query['include']}", "include")
        cursor = None
        if "page[cursor]" in query:
            ts, _, eid = _uncursor(query["page[cursor]"]).partition(":")
            cursor = (int(ts), eid)
        with self.account.lock:
            # the memo is taken with the events: both are of the same account state
            memo = self.pages.memo(self.base_url)
            if metric_id:
                keys, events = self.account.keys.get(metric_id, []), self.account.events.get(metric_id, [])
            else:
                keys, events = memo.all_events(self.account)
            lo = bisect.bisect_left(keys, (lower, "")) if lower != -math.inf else 0
            hi = bisect.bisect_left(keys, (upper, "")) if upper != math.inf else len(keys)
            if descending:      # the page ends just before the cursor and is served newest first
                end = hi if cursor is None else bisect.bisect_left(keys, cursor, lo, hi)
                page, more = events[max(lo, end - size):end][::-1], end - size > lo
            else:
                start = lo if cursor is None else bisect.bisect_right(keys, cursor, lo, hi)
                page, more = events[start:min(hi, start + size)], start + size < hi
        token = _cursor(f"{page[-1].timestamp}:{page[-1].id}") if more else None
        event_fields = fragments.fieldset(query, "event")
        profile_fields = fragments.fieldset(query, "profile")
        metric_fields = query["fields[metric]"].split(",") if "fields[metric]" in query else None
        event_json, events_asked = memo.events.json, memo.events.fieldset(event_fields)
        profile_json, profiles_asked = memo.profiles.json, memo.profiles.fieldset(profile_fields)
        # an event without a profile includes none; deleted resources are never included
        seen = {"profile": {None}, "metric": set()}
        for kind, rid in self.account.not_included:
            seen.setdefault(kind, set()).add(rid)
        seen_profiles = seen["profile"] if "profile" in includes else None
        seen_metrics = seen["metric"] if "metric" in includes else None
        data, included = [], []
        served_null, profiles = self.account.served_null, self.account.profiles
        metrics = {m["id"]: m for m in self.account.metrics}
        for event in page:
            data.append(event_json(event.id, event, served_null, event_fields, events_asked))
            if seen_profiles is not None and event.profile_id not in seen_profiles:
                seen_profiles.add(event.profile_id)
                included.append(profile_json(event.profile_id, profiles[event.profile_id], served_null,
                                             profile_fields, profiles_asked))
            if seen_metrics is not None and event.metric_id not in seen_metrics:
                seen_metrics.add(event.metric_id)
                metric = metrics[event.metric_id]      # a few a page, and metrics change: not memoized
                included.append(fragments.encode({"type": "metric", "id": metric["id"],
                                                  "attributes": _sparse(metric["attributes"], metric_fields)}))
        if "attributions" in includes:
            attributions.serve(self.account, page, data, included, self.base_url)
        return fragments.page(data, self._links(base, query, token), included if includes else None)

    def groups(self, name, query, revision, base):
        # filters, sorts and keyset paging per the spec: see entities.groups
        return entities.groups(self, name, query, revision, base)

    def group(self, name, group_id, query):
        kind = name[:-1]
        items = self.account.lists if kind == "list" else self.account.segments
        found = next((g for g in items if g["id"] == group_id), None)
        if found is None:
            raise ApiFailure(404, "not_found", f"{kind} {group_id} not found")
        attributes = dict(found["attributes"])
        if "profile_count" not in (query.get(f"additional-fields[{kind}]") or ""):
            attributes.pop("profile_count")
        fields = query[f"fields[{kind}]"].split(",") if f"fields[{kind}]" in query else None
        return {"data": {"type": kind, "id": found["id"], "attributes": _sparse(attributes, fields)}}

    def profiles(self, query, revision, base):
        # filters on updated/created, sorts, predictive_analytics: see entities.profiles
        return entities.profiles(self, query, revision, base)

    def metric_aggregates(self, payload, query, revision, base):
        """One metric's visible events counted per bucket of the query's interval, in its timezone,
        over its [lower, upper) (spec.py has checked the body and fills in the spec's defaults)."""
        attributes = payload["data"]["attributes"]
        # the spec allows these; the sandbox does not compute them, and refuses rather than answer
        # what Klaviyo would answer differently
        if attributes.get("by"):
            raise ApiFailure(400, "invalid", "The sandbox does not serve dimensions ('by'): it answers one row "
                             "per query, over the whole metric.", pointer="/data/attributes/by")
        if attributes.get("return_fields"):
            raise ApiFailure(400, "invalid", "The sandbox does not serve return_fields.",
                             pointer="/data/attributes/return_fields")
        if attributes.get("page_cursor") is not None:
            raise ApiFailure(400, "invalid", "Invalid page_cursor: the sandbox's answers are one page and name no "
                             "next one.", pointer="/data/attributes/page_cursor")
        asked = spec.metric_aggregate(AGGREGATES, payload, revision)
        if not any(m["id"] == asked.metric_id for m in self.account.metrics):
            raise ApiFailure(404, "not_found", f"Metric {asked.metric_id} does not exist.",
                             pointer="/data/attributes/metric_id")
        starts = aggregate_buckets(asked.interval, asked.zone, asked.lower, asked.upper)
        bounds = [asked.lower.timestamp(), *(start.timestamp() for start in starts[1:]), asked.upper.timestamp()]
        with self.account.lock:
            keys = self.account.keys.get(asked.metric_id, [])
            events = self.account.events.get(asked.metric_id, [])
            at = [bisect.bisect_left(keys, (bound, "")) for bound in bounds]
            values = {name: [_measure(name, events, start, stop) for start, stop in zip(at, at[1:])]
                      for name in asked.measurements}
        fields = query["fields[metric-aggregate]"].split(",") if "fields[metric-aggregate]" in query else None
        attributes = _sparse({"dates": [start.isoformat() for start in starts],
                              "data": [{"dimensions": [], "measurements": values}]}, fields)
        return {"data": {"type": "metric-aggregate", "id": str(uuid.uuid4()), "attributes": attributes,
                         "links": {"self": base}},
                "links": self._links(base, query, None)}

    # --- admin --------------------------------------------------------------------------------
    def dump(self):
        account = self.account
        return {
            "anchor": account.anchor,
            "metrics": account.metrics,
            "profiles": list(account.profiles.values()),
            "lists": account.lists,
            "segments": account.segments,
            "events": [_dumped(e) for e in account.all_events()],
            "held_events": [_dumped(e) for e in account.held_events()],
            **entities.dump(account),
            **attributions.dump(account),
        }

    def count(self, key, family=None):
        with self.stats_lock:
            self.stats[key] += 1
            if family:
                self.stats["by_family"][family] = self.stats["by_family"].get(family, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # else each answer waits out a delayed ACK (~40 ms)
    server_version = "KlaviyoSandbox/1.0"

    def log_message(self, *args):      # quiet: tests and the benchmark read their own output
        pass

    @property
    def sandbox(self):
        return self.server.sandbox

    def send_raw(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_stalled(self, body, headers):
        """A 200 announcing the whole body, half of it sent, then nothing more: the handler holds the
        connection open until the sandbox is closed (or an hour has passed)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.api+json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.server.closing.wait(3600)
        self.close_connection = True

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path.startswith("/__sandbox/"):
            return self.admin_get(parts.path)
        self.serve_api("GET", parts)

    def serve_api(self, method, parts, payload=None):
        """Answer a GET, or a POST routed by Sandbox.route_post: checks, stats, faults, limits, latency."""
        sandbox = self.sandbox
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        # a POST's faults are drawn per body: the tap posts many different queries to one URL
        target = self.path if payload is None else \
            f"{self.path}#{hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]}"
        try:
            family, tier, scope, endpoint = (sandbox.route(parts.path, query) if method == "GET"
                                             else sandbox.route_post(parts.path, payload))
            revision = sandbox.authenticate(self.headers, scope)
            sandbox.check_spec(method, parts.path, query, self.headers, payload)
            sandbox.count("requests", family)
            fault = sandbox.maybe_fault(self, family, target)
            if fault is True:
                return
            rate_headers = sandbox.rates.take(family, spec.rate_limit(method, parts.path, query, revision) or tier)
            if sandbox.options.latency:
                time.sleep(sandbox.options.latency)
            body = _dumps(endpoint(query, revision, sandbox.base_url + parts.path))
            if sandbox.options.indent:
                body = msgspec.json.format(body, indent=sandbox.options.indent)
            if fault == "truncated":
                body = body[: max(1, len(body) // 2)]
            if fault == "stall":
                return self.send_stalled(body, rate_headers)
            self.send_raw(200, body, "application/vnd.api+json", rate_headers)
        except ApiFailure as failure:
            if failure.status == 429:
                sandbox.count("throttled")
            if sandbox.options.latency and failure.status != 429:
                time.sleep(sandbox.options.latency)
            self.send_raw(failure.status, failure.body(), "application/vnd.api+json", failure.headers)

    def admin_get(self, path):
        sandbox = self.sandbox
        if path == "/__sandbox/dump":
            return self.send_raw(200, _dumps(sandbox.dump()), "application/json")
        if path == "/__sandbox/stats":
            with sandbox.stats_lock:
                return self.send_raw(200, orjson.dumps(sandbox.stats), "application/json")
        self.send_raw(404, b"{}", "application/json")

    def do_POST(self):
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}")
        if parts.path == AGGREGATES:
            return self.serve_api("POST", parts, payload)
        if parts.path.startswith("/api/"):
            try:
                self.sandbox.check_spec("POST", parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                                        self.headers, payload)
            except ApiFailure as failure:
                return self.send_raw(failure.status, failure.body(), "application/vnd.api+json", failure.headers)
        if parts.path in reports.PATHS:
            return reports.answer(self, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)), payload)
        if parts.path == "/__sandbox/events":
            created = [sandbox_data.new_event(self.sandbox.account, item["metric_name"], item["timestamp"],
                                              item.get("integration", "Klaviyo"), held=item.get("held", False))
                       for item in payload.get("events", [])]
            return self.send_raw(200, orjson.dumps({"ids": [e.id for e in created]}), "application/json")
        if parts.path == "/__sandbox/events/reveal":
            try:
                revealed = self.sandbox.account.reveal(payload.get("ids"))
            except KeyError as error:
                return self.send_raw(404, orjson.dumps({"error": f"no held event {error.args[0]}"}), "application/json")
            return self.send_raw(200, orjson.dumps({"revealed": revealed}), "application/json")
        if parts.path == "/__sandbox/stats/reset":
            with self.sandbox.stats_lock:
                self.sandbox.stats.update({"requests": 0, "throttled": 0, "faults": 0, "by_family": {}})
            return self.send_raw(200, b"{}", "application/json")
        answer = entities.admin_post(self.sandbox.account, parts.path, payload) or \
            entities.catalog.admin(self.sandbox.account, parts.path, payload) or \
            attributions.admin(self.sandbox.account, parts.path, payload)
        if answer is not None:
            return self.send_raw(answer[0], orjson.dumps(answer[1]), "application/json")
        self.send_raw(404, b"{}", "application/json")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, *args, **kwargs):
        self.closing = threading.Event()    # releases stalled answers
        super().__init__(*args, **kwargs)

    def server_close(self):
        self.closing.set()
        super().server_close()

    def handle_error(self, request, client_address):
        import sys
        kind, value = sys.exc_info()[:2]
        if not isinstance(value, (ConnectionError, TimeoutError)):
            print(f"sandbox: {kind.__name__}: {value}", file=sys.stderr)


def serve(account, options=None, host="127.0.0.1", port=0):
    """Start the sandbox in a background thread; returns (server, base_url). server.shutdown() stops it."""
    server = _Server((host, port), Handler)
    server.sandbox = Sandbox(account, options)
    base_url = f"http://{host}:{server.server_address[1]}"
    server.sandbox.base_url = base_url
    thread = threading.Thread(target=server.serve_forever, name="klaviyo-sandbox", daemon=True)
    thread.start()
    return server, base_url
