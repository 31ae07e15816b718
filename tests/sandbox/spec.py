"""What Klaviyo's published spec allows, revision by revision: the sandbox refuses everything else.

tap_klaviyo/spec_rules.json (written by scripts/extract_spec_rules.py from klaviyo/openapi; the tap
reads its page sizes, rate limits and scopes from it too) holds, per
operation and revision range, the query parameters, their enums and bounds, filter fields and
operators, what each filter value must look like (where the spec says: 2026-04-15 on), required
filters, rate limits, scopes and the report and metric-aggregate body rules. check_request()
answers a request the real API would refuse with the 400 Klaviyo gives: a JSON:API error naming the
parameter (or, for a body, pointing at the attribute).
"""
import functools
import json
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from . import server  # circular on purpose: the server calls in here, errors are its ApiFailure

RULES_FILE = Path(__file__).resolve().parent.parent.parent / "tap_klaviyo" / "spec_rules.json"
BOOLEAN_OPERATORS = ("and", "or", "not")
METRIC_AGGREGATE = "metric-aggregate"

# Shortest and longest span (days) of each named report timeframe: a key is refused for an
# interval only when even its shortest span is over the interval's limit ("this_month" on the
# 2nd of the month is two days long).
TIMEFRAME_DAYS = {
    "today": (1, 1), "yesterday": (1, 1), "this_week": (1, 7), "last_week": (7, 7), "last_7_days": (7, 7),
    "this_month": (1, 31), "last_month": (28, 31), "last_30_days": (30, 30), "last_90_days": (90, 90),
    "last_3_months": (89, 92), "this_year": (1, 366), "last_year": (365, 366), "last_12_months": (365, 366),
    "last_365_days": (365, 365),
}


@functools.cache
def _rules():
    document = json.loads(RULES_FILE.read_text())
    enums = document["enums"]
    operations = []
    for key, ranges in document["operations"].items():
        method, template = key.split(" ", 1)
        pattern = re.compile("^" + re.sub(r"\\\{[^/]+\\\}", "[^/]+", re.escape(template)) + "/?$")
        for entry in ranges:
            for rule in entry.get("params", {}).values():
                if isinstance(rule.get("enum"), str):
                    rule["enum"] = enums[rule["enum"]]
        operations.append((method, pattern, key, ranges))
    return document["revisions"], operations


def oldest_revision():
    """The oldest revision whose rules this sandbox holds (the oldest the tap supports)."""
    return _rules()[0][0]


def operation(method, path):
    """'GET /api/lists/{id}' for ('GET', '/api/lists/Y6nRLr'); None for a path the rules do not cover."""
    for candidate_method, pattern, key, _ranges in _rules()[1]:
        if candidate_method == method and pattern.match(path):
            return key
    return None


def rules_for(method, path, revision):
    """The spec's rules for this request at this revision; None when the rules do not cover the path."""
    revisions, operations = _rules()
    for candidate_method, pattern, key, ranges in operations:
        if candidate_method != method or not pattern.match(path):
            continue
        if revision not in revisions:
            raise server.ApiFailure(400, "invalid", f"The sandbox has no spec rules for revision {revision} (spec_rules.json "
                             f"covers {revisions[0]} to {revisions[-1]}); rerun scripts/extract_spec_rules.py",
                             "revision")
        for entry in ranges:
            first, last = entry["revisions"]
            if first <= revision <= last:
                if entry.get("absent"):
                    raise server.ApiFailure(404, "not_found", "No valid revisions found for method.")
                return entry
    return None


def scopes(method, path):
    """The scopes the spec's newest revision lists for the operation (no operation here changes them)."""
    for candidate_method, pattern, _key, ranges in _rules()[1]:
        if candidate_method == method and pattern.match(path):
            return next(entry["scopes"] for entry in reversed(ranges) if not entry.get("absent"))
    return []


def limits(method, path, query, revision):
    """{burst, steady[, daily][, tier]} for the request, or None when the rules do not cover it.

    Some operations drop to a lower tier when an additional field is asked for (a list's
    profile_count, a profile's predictive_analytics); the spec says so per operation.
    """
    rules = rules_for(method, path, revision)
    if rules is None:
        return None
    chosen = rules["rate_limit"]
    for conditional in rules.get("rate_limit_when", []):
        if conditional["value"] in _items(query.get(conditional["parameter"], "")):
            if conditional["steady"] < chosen["steady"]:
                chosen = conditional
    return chosen


def rate_limit(method, path, query, revision):
    """(burst per second, steady per minute), or None when the rules do not cover the request."""
    chosen = limits(method, path, query, revision)
    return (chosen["burst"], chosen["steady"]) if chosen else None


def check_request(method, path, query, revision, body=None):
    """Raise the 400 Klaviyo answers when the request breaks the spec's rules for `revision`."""
    rules = rules_for(method, path, revision)
    if rules is None:
        return
    params, resource = rules["params"], rules["resource"]
    for name in query:
        if name not in params:
            raise server.ApiFailure(400, "invalid", f"'{_snake(name)}' is not a valid field for the resource '{resource}'.",
                             name)
    for name, rule in params.items():
        if rule.get("required") and name not in query:
            detail = rule.get("required_detail") or f"'{name}' is a required parameter."
            raise server.ApiFailure(400, "invalid", detail, name)
    for name, raw in query.items():
        rule = params[name]
        if name == "filter":
            _check_filter(raw, rule, resource)
        elif name == "page[size]":
            _check_page_size(raw, rule)
        elif name == "sort":
            if raw not in rule["enum"]:
                raise server.ApiFailure(400, "invalid", f"'{raw}' is not a valid sort field for the resource '{resource}'.",
                                 name)
        elif "enum" in rule:
            _check_list(name, raw, rule["enum"], resource)
    if "body" in rules:
        _check_body(body, rules["body"])


def _snake(name):
    # Klaviyo names a query parameter by its serializer field: page[size] -> page_size.
    return re.sub(r"\[([^\]]*)\]", r"_\1", name).replace("-", "_")


def _items(raw):
    return raw.split(",") if raw else [""]


def _check_list(name, raw, allowed, resource):
    kind = name[name.index("[") + 1:-1] if "[" in name else resource
    for item in _items(raw):
        if item in allowed:
            continue
        if name.startswith("fields["):
            detail = f"'{item}' is not a valid field for the resource '{kind}'."
        elif name.startswith("additional-fields["):
            detail = f"'{item}' is not a valid additional field for the resource '{kind}'."
        elif name == "include":
            detail = f"'{item}' is not a valid relationship for the resource '{resource}'."
        else:
            detail = f"'{item}' is not a valid value for '{name}'."
        raise server.ApiFailure(400, "invalid", detail, name)


def _check_page_size(raw, rule):
    if not re.fullmatch(r"-?\d+", raw or ""):
        raise server.ApiFailure(400, "invalid", f"'{raw}' is not a valid integer for page size.", "page[size]")
    if not rule["min"] <= int(raw) <= rule["max"]:
        raise server.ApiFailure(400, "invalid", f"Page size must be between {rule['min']} and {rule['max']}; got {raw}.",
                         "page[size]")


# --- filter expressions ------------------------------------------------------------------------

class _FilterSyntax(Exception):
    pass


def parse_filter(text):
    """'equals(a,"x"),and(any(b,["p","q"]),has(c))' -> [(operator, field, raw value or None)], flattened.

    Only the structure is read here (operator, field, where a value starts and ends); what a value
    must look like is each endpoint's concern.
    """
    calls, position = _calls(text, 0)
    if position != len(text):
        raise _FilterSyntax(f"unexpected {text[position:]!r}")
    return calls


_NAME = re.compile(r"[a-z][a-z-]*")
_FIELD = re.compile(r"[A-Za-z_$][\w.$-]*")


def _calls(text, position):
    calls = []
    while True:
        found, position = _call(text, position)
        calls.extend(found)
        if position < len(text) and text[position] == ",":
            position += 1
            continue
        return calls, position


def _call(text, position):
    name = _NAME.match(text, position)
    if not name or not text.startswith("(", name.end()):
        raise _FilterSyntax(f"expected an operator call at {text[position:]!r}")
    operator, position = name.group(0), name.end() + 1
    if operator in BOOLEAN_OPERATORS:
        if operator != "and":
            raise _FilterSyntax(f"'{operator}' is not supported; only 'and' combines conditions")
        inner, position = _calls(text, position)
    else:
        field = _FIELD.match(text, position)
        if not field:
            raise _FilterSyntax(f"expected a field name at {text[position:]!r}")
        position, value = field.end(), None
        if text.startswith(",", position):
            start = position + 1
            position = _value_end(text, start)
            value = text[start:position]
        inner = [(operator, field.group(0), value)]
    if not text.startswith(")", position):
        raise _FilterSyntax(f"expected ')' at {text[position:]!r}")
    return inner, position + 1


def _value_end(text, position):
    """Index just after one value: a quoted string, a [list], or a bare literal (date, number, bool)."""
    if position < len(text) and text[position] in "\"'":
        quote, position = text[position], position + 1
        while position < len(text) and text[position] != quote:
            position += 2 if text[position] == "\\" else 1
        if position >= len(text):
            raise _FilterSyntax("unterminated string")
        return position + 1
    if text.startswith("[", position):
        position += 1
        while not text.startswith("]", position):
            position = _value_end(text, position)
            if text.startswith(",", position):
                position += 1
            elif not text.startswith("]", position):
                raise _FilterSyntax(f"expected ',' or ']' at {text[position:]!r}")
        return position + 1
    bare = re.compile(r"[^,()\[\]\"']+").match(text, position)
    if not bare:
        raise _FilterSyntax(f"expected a value at {text[position:]!r}")
    return bare.end()


def _check_filter(raw, rule, resource):
    try:
        calls = parse_filter(raw)
    except _FilterSyntax as error:
        raise server.ApiFailure(400, "invalid", f"Invalid filter provided: {error}.", "filter") from None
    allowed = rule["fields"]
    values = rule.get("values", {})
    for operator, field, value in calls:
        if field not in allowed:
            raise server.ApiFailure(400, "invalid", f"Invalid filter provided: '{field}' is not a valid filter field for the "
                             f"resource '{resource}'.", "filter")
        if operator not in allowed[field]:
            raise server.ApiFailure(400, "invalid", f"Invalid filter provided: operator '{operator}' is not allowed for the "
                             f"field '{field}' (allowed: {', '.join(allowed[field])}).", "filter")
        if field in values:
            _check_filter_value(operator, field, value, values[field])
    required = rule.get("required_field")
    named = {field for _, field, _ in calls}
    if rule.get("required_any"):        # one of several will do (coupon codes: a coupon or a profile)
        if not named & set(rule["required_any"]):
            raise server.ApiFailure(400, "invalid", rule.get("required_detail"), "filter")
    elif required and required not in named:
        raise server.ApiFailure(400, "invalid", rule.get("required_detail") or f"A filter on '{required}' is required.",
                         "filter")


def _refuse_filter(detail):
    raise server.ApiFailure(400, "invalid", f"Invalid filter provided: {detail}", "filter")


def _check_filter_value(operator, field, raw, described):
    """The value against the spec's x-klaviyo-filters entry: whether the operator takes one value, a
    list or none there, and each value's type, format and enum."""
    operators = described["operators"]
    if raw is None:
        if operator not in operators.get("none", ()):
            _refuse_filter(f"operator '{operator}' needs a value for the field '{field}'.")
        return
    if raw.startswith("["):
        if operator not in operators.get("list", ()):
            _refuse_filter(f"operator '{operator}' takes a single value for the field '{field}', not a list.")
        items = _list_items(raw)
    else:
        if operator not in operators.get("single", ()):
            wanted = "a list of values" if operator in operators.get("list", ()) else "no value"
            _refuse_filter(f"operator '{operator}' takes {wanted} for the field '{field}'.")
        items = [raw]
    for item in items:
        _check_literal(item.strip(), field, described.get("value", {}))


def _list_items(raw):
    """'["a",'b']' -> ['"a"', "'b'"] (parse_filter has checked the list's structure)."""
    items, position = [], 1
    while not raw.startswith("]", position):
        end = _value_end(raw, position)
        items.append(raw[position:end])
        position = end + 1 if raw.startswith(",", end) else end
    return items


_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _check_literal(raw, field, value):
    """One value as Klaviyo reads it: strings quoted (' or "), booleans bare true/false, date-times
    bare ISO 8601, numbers bare."""
    kind, quoted = value.get("type"), len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
    if kind == "string" and value.get("format") == "date-time":
        if quoted:
            _refuse_filter(f"'{field}' takes an unquoted ISO 8601 datetime, not {raw}.")
        try:
            datetime.fromisoformat(raw)
        except ValueError:
            _refuse_filter(f"{raw!r} is not an ISO 8601 datetime (field '{field}').")
    elif kind == "string":
        if not quoted:
            _refuse_filter(f"'{field}' takes a quoted string, not {raw}.")
        if "enum" in value and raw[1:-1] not in value["enum"]:
            _refuse_filter(f"'{raw[1:-1]}' is not a valid value for the field '{field}' "
                           f"(allowed: {', '.join(value['enum'])}).")
    elif kind == "boolean":
        if raw not in ("true", "false"):
            _refuse_filter(f"'{field}' takes true or false (unquoted), not {raw}.")
    elif kind == "integer":
        if not _INTEGER.fullmatch(raw):
            _refuse_filter(f"'{field}' takes an integer, not {raw}.")
    elif kind == "number":
        if not _NUMBER.fullmatch(raw):
            _refuse_filter(f"'{field}' takes a number, not {raw}.")
    if "enum" in value and kind != "string":
        literal = {"true": True, "false": False}.get(raw, raw)
        if literal not in value["enum"]:
            _refuse_filter(f"{raw} is not a valid value for the field '{field}'.")


# --- request bodies ----------------------------------------------------------------------------

def _refuse(detail, pointer):
    raise server.ApiFailure(400, "invalid", detail, pointer=pointer)


def _check_body(body, rules):
    kind = rules["type"]
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        _refuse("The request body must be a JSON:API document with a 'data' object.", "/data")
    if data.get("type") != kind:
        _refuse(f"'{data.get('type')}' is not a valid type; expected '{kind}'.", "/data/type")
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        _refuse("'attributes' is a required field.", "/data/attributes")
    for name in attributes:
        if name not in rules["attributes"]:
            _refuse(f"'{name}' is not a valid field for the resource '{kind}'.", f"/data/attributes/{name}")
    for name in rules["required"]:
        if attributes.get(name) in (None, "", []):
            _refuse(f"'{name}' is a required field.", f"/data/attributes/{name}")
    if kind == METRIC_AGGREGATE:
        _aggregate_query(attributes, rules)
    else:
        _check_report_body(attributes, rules)


# --- report bodies -----------------------------------------------------------------------------

def _check_report_body(attributes, rules):
    statistics = attributes["statistics"]
    if not isinstance(statistics, list):
        _refuse("'statistics' must be a list.", "/data/attributes/statistics")
    for statistic in statistics:
        if statistic not in rules["statistics"]:
            _refuse(f"'{statistic}' is not a valid statistic.", "/data/attributes/statistics")
    # segment and form reports take no conversion metric (their bodies lack the attribute)
    if "conversion_metric_id" in rules["attributes"] and not isinstance(attributes["conversion_metric_id"], str):
        _refuse("'conversion_metric_id' must be a string.", "/data/attributes/conversion_metric_id")
    span = _timeframe_span(attributes["timeframe"], rules)
    if "interval" in rules:
        interval = attributes["interval"]
        if interval not in rules["interval"]:
            _refuse(f"'{interval}' is not a valid interval; use one of {', '.join(rules['interval'])}.",
                    "/data/attributes/interval")
        most = rules["interval_max_days"].get(interval)
        if most is not None and span[0] > timedelta(days=most):
            _refuse(f"If {interval} is used, the timeframe cannot be longer than {most} days.",
                    "/data/attributes/timeframe")
    group_by = attributes.get("group_by")
    if group_by is not None:
        if not isinstance(group_by, list):
            _refuse("'group_by' must be a list.", "/data/attributes/group_by")
        for name in group_by:
            if name not in rules["group_by"]:
                _refuse(f"'{name}' is not a valid group by attribute.", "/data/attributes/group_by")
        missing = [name for name in rules["group_by_required"] if name not in group_by]
        if missing:
            _refuse(f"The following group by attributes are required: {', '.join(rules['group_by_required'])}.",
                    "/data/attributes/group_by")
        for name, needs in rules.get("group_by_prerequisites", {}).items():
            if name in group_by and not set(needs) <= set(group_by):
                _refuse(f"If a group by has prerequisites, they must be passed in together. The prerequisites for "
                        f"{name} is {', '.join(needs)}.", "/data/attributes/group_by")
    if attributes.get("filter") is not None:
        _check_report_filter(attributes["filter"], rules["filter"])


def _timeframe_span(timeframe, rules):
    """(shortest, longest) span of the timeframe, refusing one the spec does not allow."""
    pointer = "/data/attributes/timeframe"
    if not isinstance(timeframe, dict):
        _refuse("'timeframe' must be an object.", pointer)
    if "start" in timeframe or "end" in timeframe:
        custom = rules["custom_timeframe"]
        for name in timeframe:
            if name not in custom["fields"]:
                _refuse(f"'{name}' is not a valid field for the resource 'custom_timeframe'.", f"{pointer}/{name}")
        for name in custom["required"]:
            if name not in timeframe:
                _refuse(f"'{name}' is a required field.", f"{pointer}/{name}")
        try:
            # the spec: "Offset is ignored and the company timezone is used"
            start, end = (datetime.fromisoformat(timeframe[name]).replace(tzinfo=None) for name in ("start", "end"))
        except (TypeError, ValueError):
            _refuse("'start' and 'end' must be ISO 8601 datetimes.", pointer)
        if end <= start:
            _refuse("The timeframe's 'start' must be before its 'end'.", pointer)
        years = rules["timeframe_max_years"]
        try:
            latest_end = start.replace(year=start.year + years)
        except ValueError:      # 29 February
            latest_end = start.replace(year=start.year + years, day=28) + timedelta(days=1)
        if end > latest_end:
            _refuse(f"The timeframe cannot be longer than {years} year{'s' if years != 1 else ''}.", pointer)
        return end - start, end - start
    for name in timeframe:
        if name != "key":
            _refuse(f"'{name}' is not a valid field for the resource 'timeframe'.", f"{pointer}/{name}")
    key = timeframe.get("key")
    if key not in rules["timeframe_keys"]:
        _refuse(f"'{key}' is not a valid timeframe key.", f"{pointer}/key")
    shortest, longest = TIMEFRAME_DAYS.get(key, (0, 366))
    return timedelta(days=shortest), timedelta(days=longest)


def _check_report_filter(raw, rules):
    pointer = "/data/attributes/filter"
    if not isinstance(raw, str):
        _refuse("'filter' must be a string.", pointer)
    try:
        calls = parse_filter(raw)
    except _FilterSyntax as error:
        _refuse(f"Invalid filter provided: {error}.", pointer)
    seen = set()
    for operator, field, value in calls:
        if field not in rules["fields"]:
            _refuse(f"Invalid filter provided: '{field}' is not a valid filter field.", pointer)
        if operator not in rules["fields"][field]:
            _refuse(f"Invalid filter provided: operator '{operator}' is not allowed for the field '{field}' "
                    f"(allowed: {', '.join(rules['fields'][field])}).", pointer)
        if rules.get("one_per_attribute") and field in seen:
            _refuse(f"Invalid filter provided: only one filter can be used per attribute ('{field}').", pointer)
        seen.add(field)
        values = _literal_values(value)
        if len(values) > rules.get("max_list_items", len(values)):
            _refuse(f"Invalid filter provided: at most {rules['max_list_items']} items per list filter.", pointer)
        if field == "send_channel" and "send_channel" in rules:
            for channel in values:
                if channel not in rules["send_channel"]:
                    _refuse(f"Invalid filter provided: '{channel}' is not a valid send_channel; allowed: "
                            f"{', '.join(rules['send_channel'])}.", pointer)


def _literal_values(raw):
    if raw is None:
        return []
    try:
        value = json.loads(raw.replace("'", '"'))
    except ValueError:
        return [raw]
    return value if isinstance(value, list) else [value]


# --- metric-aggregate bodies -------------------------------------------------------------------

@dataclass(frozen=True)
class AggregateQuery:
    """What a metric-aggregate body asks for, the spec's defaults filled in: [lower, upper) are
    aware datetimes, buckets of `interval` are counted in `zone`."""
    metric_id: str
    measurements: tuple
    interval: str
    zone: zoneinfo.ZoneInfo
    lower: datetime
    upper: datetime


def metric_aggregate(path, body, revision):
    """The query of a metric-aggregate body check_request has accepted."""
    return _aggregate_query(body["data"]["attributes"], rules_for("POST", path, revision)["body"])


_TYPES = {"string": str, "integer": int, "array of string": list}


def _aggregate_query(attributes, rules):
    """Refuse what the spec refuses in a metric-aggregate body; the query it asks for otherwise."""
    for name, value in attributes.items():
        _check_attribute_type(name, value, rules)
    chosen = dict(rules["defaults"])
    chosen.update((name, value) for name, value in attributes.items() if value is not None)
    for name in ("measurements", "by"):
        for item in chosen.get(name, ()):
            if item not in rules[name]:
                _refuse(f"'{item}' is not a valid value for '{name}'; use one of {', '.join(rules[name])}.",
                        f"/data/attributes/{name}")
    for name in ("interval", "sort"):
        if name in chosen and chosen[name] not in rules[name]:
            _refuse(f"'{chosen[name]}' is not a valid {name}.", f"/data/attributes/{name}")
    zone = _zone(chosen["timezone"], rules)
    lower, upper = _time_range(chosen["filter"], rules["time_range"], zone)
    return AggregateQuery(chosen["metric_id"], tuple(dict.fromkeys(chosen["measurements"])), chosen["interval"],
                          zone, lower, upper)


def _check_attribute_type(name, value, rules):
    pointer = f"/data/attributes/{name}"
    if value is None:
        if name not in rules["nullable"]:
            _refuse(f"'{name}' may not be null.", pointer)
        return
    kind = rules["types"][name]
    # bool is an int to Python, never to JSON
    if not isinstance(value, _TYPES[kind]) or isinstance(value, bool):
        _refuse(f"'{name}' must be {'an' if kind[0] in 'ai' else 'a'} {kind}.", pointer)
    if kind == "array of string" and not all(isinstance(item, str) for item in value):
        _refuse(f"'{name}' must be an array of string.", pointer)


@functools.cache
def _timezones():
    return frozenset(zoneinfo.available_timezones())


def _zone(name, rules):
    pointer = "/data/attributes/timezone"
    if name in rules["timezone_unsupported"]:
        _refuse(f"'{name}' is not a supported timezone (the spec's exceptions: "
                f"{', '.join(rules['timezone_unsupported'])}).", pointer)
    # the spec: "validated against a list of common timezones from the IANA Time Zone Database",
    # case-sensitive, as the set is
    if name not in _timezones():
        _refuse(f"'{name}' is not a valid timezone; use an IANA name such as 'America/New_York'.", pointer)
    return zoneinfo.ZoneInfo(name)


def _time_range(filters, time_range, zone):
    """[lower, upper) from the filter list: exactly the spec's two bounds on its datetime field, each
    an unquoted ISO 8601 datetime (one without an offset is in the query's timezone)."""
    pointer = "/data/attributes/filter"
    field, wanted = time_range["field"], (time_range["lower"], time_range["upper"])
    bounds = {}
    for item in filters:
        try:
            calls = parse_filter(item)
        except _FilterSyntax as error:
            _refuse(f"Invalid filter provided: {error}.", pointer)
        for operator, name, raw in calls:
            if name != field:
                _refuse(f"Invalid filter provided: the sandbox does not evaluate filters on '{name}'; it evaluates "
                        f"only the time range on '{field}'.", pointer)
            if operator not in wanted:
                _refuse(f"Invalid filter provided: operator '{operator}' is not allowed for the field '{field}' "
                        f"(the time range is one {' and one '.join(wanted)} filter).", pointer)
            if operator in bounds:
                _refuse(f"Invalid filter provided: more than one {operator} filter on '{field}'.", pointer)
            bounds[operator] = _bound(raw, field, zone, pointer)
    missing = [operator for operator in wanted if operator not in bounds]
    if missing:
        _refuse(f"The filter must include a time range: a {' and a '.join(wanted)} filter on '{field}' "
                f"(missing: {', '.join(missing)}).", pointer)
    lower, upper = (bounds[operator] for operator in wanted)
    if lower >= upper:
        _refuse(f"Invalid filter provided: the {wanted[0]} bound must be before the {wanted[1]} bound.", pointer)
    return lower, upper


def _bound(raw, field, zone, pointer):
    if raw is None or raw[:1] in "\"'[":
        _refuse(f"Invalid filter provided: '{field}' takes an unquoted ISO 8601 datetime, not {raw}.", pointer)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        _refuse(f"Invalid filter provided: {raw!r} is not an ISO 8601 datetime.", pointer)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)
