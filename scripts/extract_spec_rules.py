"""Extract the request rules the sandbox enforces from Klaviyo's published OpenAPI spec.

Reads `openapi/stable.json` of each revision branch of a local clone of klaviyo/openapi and writes
tap_klaviyo/spec_rules.json: per operation the query parameters each revision accepts (with
their enums and bounds), filter fields and operators, what a filter value must look like (from the
spec's `x-klaviyo-filters`, 2026-04-15 on), required filters, rate limits, scopes and, for the two
report operations and the metric-aggregate query, the request-body rules. Consecutive revisions with
identical rules are merged into one range so the file stays small and a diff shows what a revision
changed.

Revision 2026-10-15 has no branch in the copies read so far (its reference pages link one: once
it can be fetched, map 2026-10-15 to it in BRANCHES and drop the beta). Its rules are the 2026-07-15 branch's, except for the
omnichannel campaign operations it made GA: those are inferred from the `2026-07-15.pre` beta spec
(`openapi/beta.json`, whose operations say they "will be released in GA in our 2026-10-15
revision") and then corrected by what Klaviyo's 2026-10-15 reference pages verify (CORRECTIONS).

    .venv/bin/python scripts/extract_spec_rules.py                 # rewrite the committed file
    .venv/bin/python scripts/extract_spec_rules.py --output -      # print instead

Everything comes from the spec text; where a rule lives only in prose (filter operators, the
campaign channel filter, tiers that change with additional-fields, report group-by and interval
limits, the metric-aggregate time range and the time zones it refuses) the prose is parsed and a
change in its wording fails loudly here rather than silently loosening the sandbox.
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = Path("/work/.mirror/klaviyo+openapi/repo")
DEFAULT_OUTPUT = ROOT / "tap_klaviyo" / "spec_rules.json"
SPEC_FILE = "openapi/stable.json"

# Revision -> branch whose stable spec gives its rules. No copy read here has a 2026-10-15 branch:
# its 2026-10-15 reference pages list every operation read here, except the campaign ones, as
# unchanged from 2026-07-15 or changed only additively, so 2026-10-15 takes the 2026-07-15 branch's
# rules for them (the campaign operations: OMNICHANNEL below).
BRANCHES = {
    "2025-01-15": "2025-01-15",
    "2025-04-15": "2025-04-15",
    "2025-07-15": "2025-07-15",
    "2025-10-15": "2025-10-15",
    "2026-01-15": "2026-01-15",
    "2026-04-15": "2026-04-15",
    "2026-07-15": "2026-07-15",
    "2026-10-15": "2026-07-15",
}

# Every operation the tap sends (its streams table says which), and those only the sandbox serves.
sys.path.insert(0, str(ROOT))
from tap_klaviyo.streams import operations as tap_operations  # noqa: E402

SANDBOX_ONLY = ("GET /api/campaign-messages/{id}/campaign-variations", "GET /api/campaigns/{id}/campaign-audiences")
OPERATIONS = tuple(tuple(key.split(" ", 1)) for key in dict.fromkeys((*tap_operations(), *SANDBOX_ONLY)))

# 2026-10-15 made the omnichannel Campaigns API GA (campaigns -> audiences -> messages ->
# variations). No GA spec of it is published; the beta spec's operations are the best evidence, so
# in 2026-10-15 these operations take the beta's rules (operation -> the beta's operationId, which
# is checked) and are marked inferred in the file. Revisions whose stable spec lacks an operation
# get an `absent` entry.
OMNICHANNEL_REVISION = "2026-10-15"
BETA_BRANCH = "2026-07-15.pre"
BETA_FILE = "openapi/beta.json"
OMNICHANNEL = {
    ("GET", "/api/campaigns"): "get_campaigns_beta",
    ("GET", "/api/campaign-messages"): "get_campaign_messages_beta",
    ("GET", "/api/campaigns/{id}/campaign-messages"): "get_messages_for_campaign_beta",
    ("GET", "/api/campaign-messages/{id}/campaign-variations"): "get_variations_for_campaign_message_beta",
    ("GET", "/api/campaigns/{id}/campaign-audiences"): "get_campaign_audiences_for_campaign_beta",
}

# What Klaviyo's 2026-10-15 reference pages verify beyond the beta spec: values a parameter's enum
# gains. (operation, parameter, values added, the reference page that lists them.) A correction
# the beta already holds, or whose parameter the beta lacks, fails the extraction: revisit it then.
_REFERENCE = "https://developers.klaviyo.com/en/reference/"
_AB_TEST = ("definition.ab_test", "definition.ab_test.winner_metric", "definition.ab_test.winner_percentage",
            "definition.ab_test.winner_wait_hours")
CORRECTIONS = (
    # the GA page's jsonApi include list: campaign-audiences, campaign-messages, tags
    ("GET /api/campaigns", "include", ("tags",), _REFERENCE + "get_campaigns.md"),
    # the GA campaign-message field list gains ab_test; it is the resource's one list, so every
    # operation offering fields[campaign-message] takes it
    ("GET /api/campaign-messages", "fields[campaign-message]", _AB_TEST, _REFERENCE + "get_campaign_messages.md"),
    ("GET /api/campaigns", "fields[campaign-message]", _AB_TEST, _REFERENCE + "get_campaign_messages.md"),
    ("GET /api/campaigns/{id}/campaign-messages", "fields[campaign-message]", _AB_TEST,
     _REFERENCE + "get_campaign_messages.md"),
)

# Klaviyo's published tiers (burst per second, steady per minute); L's steady limit moved from
# 700 to 750 in 2026-01-15.
TIER_NAMES = {(1, 15): "XS", (3, 60): "S", (10, 150): "M", (75, 700): "L", (75, 750): "L", (350, 3500): "XL"}

_ALLOWED_FILTERS = re.compile(r"Allowed field\(s\)/operator\(s\):<br>(.*)$", re.S)
_FILTER_ENTRY = re.compile(r"^`([^`]+)`: (`[^`]+`(?:, `[^`]+`)*)$")
_CONDITIONAL_LIMIT = re.compile(
    r"Rate limits when using the `([^`=]+)=([^`]+)` parameter in your API request:<br>"
    r"Burst: `(\d+)/s`<br>Steady: `(\d+)/m`")
_REQUIRED_FILTER_SENTENCE = re.compile(r"(A [a-z ]+ filter is required[^.\n]*\.)")
_EITHER_REQUIRED = re.compile(r"A ([a-z]+)/\1s or a ([a-z]+)/\2s must be provided as required filter params\.")
_EXAMPLE_CALL = re.compile(r"^([a-z-]+)\(([^,()]+),")
_SIZE_DESCRIPTION = re.compile(r"Default: (\d+)\. Min: (\d+)\. Max: (\d+)\.")
_TIME_RANGE = re.compile(r"providing a `([a-z-]+)` and a `([a-z-]+)` filter on the `(\w+)` field")
_TIMEZONE_EXCEPTIONS = re.compile(r"notable exceptions are (`[^`]+`(?:(?:, | and )`[^`]+`)*)")


class SpecError(Exception):
    pass


def git(mirror, *args):
    return subprocess.run(["git", "-C", str(mirror), *args], check=True, capture_output=True, text=True).stdout


def load_spec(mirror, branch, path=SPEC_FILE):
    return json.loads(git(mirror, "show", f"{branch}:{path}"))


class Resolver:
    """Follows the spec's local $refs."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            seen += 1
            if seen > 50:
                raise SpecError(f"$ref loop at {node['$ref']}")
            target = self.spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node


def resource_type(resolve, operation, method):
    """The JSON:API type the operation serves (or, for a POST, accepts): names it in error details."""
    if method == "POST":
        schema = resolve(operation["requestBody"]["content"]["application/vnd.api+json"]["schema"])
    else:
        schema = resolve(operation["responses"]["200"]["content"]["application/vnd.api+json"]["schema"])
    data = resolve(resolve(schema["properties"]["data"]))
    if data.get("type") == "array":
        data = resolve(data["items"])
    for part in [data] + [resolve(member) for member in data.get("allOf", [])]:
        if "type" in part.get("properties", {}):
            return resolve(part["properties"]["type"])["enum"][0]
    raise SpecError(f"{operation['operationId']}: no resource type in its document schema")


def filter_fields(parameter):
    """'`metric_id`: `equals`<br>`datetime`: `greater-or-equal`, ...' -> {field: [operators]}."""
    match = _ALLOWED_FILTERS.search(parameter.get("description", ""))
    if not match:
        raise SpecError(f"filter description without an 'Allowed field(s)/operator(s)' list: {parameter!r}")
    fields = {}
    for entry in match.group(1).split("<br>"):
        entry_match = _FILTER_ENTRY.match(entry.strip())
        if not entry_match:
            raise SpecError(f"unreadable filter entry {entry!r}")
        fields[entry_match.group(1)] = sorted(op.strip("` ") for op in entry_match.group(2).split(","))
    return fields


def filter_values(operation, fields):
    """The spec's x-klaviyo-filters (2026-04-15 on): per field, which operators take one value, a
    list or none, and the value's type, format and enum. They must name the same fields and
    operators as the parameter's prose, or the two sources disagree and the extraction stops."""
    declared = operation.get("x-klaviyo-filters")
    if not declared:
        return None
    values = {}
    for name, entry in declared.items():
        operators = {kind: sorted(names) for kind, names in sorted(entry.get("operators", {}).items())}
        if set(operators) - {"single", "list", "none"}:
            raise SpecError(f"{operation['operationId']}: unknown operator kinds for {name}: {sorted(operators)}")
        union = sorted({op for names in operators.values() for op in names})
        if union != fields.get(name):
            raise SpecError(f"{operation['operationId']}: x-klaviyo-filters gives {name} {union}, the filter's "
                            f"description {fields.get(name)}")
        value = {key: entry["value"][key] for key in ("type", "format", "enum") if key in entry.get("value", {})}
        if set(entry.get("value", {})) - {"type", "format", "enum"}:
            raise SpecError(f"{operation['operationId']}: unreadable filter value for {name}: {entry['value']}")
        if value.get("type") not in (None, "string", "boolean", "integer", "number"):
            raise SpecError(f"{operation['operationId']}: filter value type {value['type']!r} for {name}")
        values[name] = {"operators": operators, "value": value} if value else {"operators": operators}
    if set(values) != set(fields):
        raise SpecError(f"{operation['operationId']}: x-klaviyo-filters names {sorted(values)}, the filter's "
                        f"description {sorted(fields)}")
    return values


def query_parameter(resolve, parameter):
    schema = resolve(parameter.get("schema", {}))
    name = parameter["name"]
    rule = {}
    if parameter.get("required"):
        rule["required"] = True
    if name == "filter":
        rule["fields"] = filter_fields(parameter)
    elif name == "page[size]":
        rule.update(default=schema.get("default"), min=schema.get("minimum"), max=schema.get("maximum"))
        described = _SIZE_DESCRIPTION.search(parameter.get("description", ""))
        if described and [int(x) for x in described.groups()] != [rule["default"], rule["min"], rule["max"]]:
            raise SpecError(f"page[size] description disagrees with its schema: {parameter!r}")
        if None in (rule["min"], rule["max"]):
            raise SpecError(f"page[size] without bounds: {parameter!r}")
    elif schema.get("type") == "array":
        items = resolve(schema.get("items", {}))
        if "enum" in items:
            rule["enum"] = sorted(items["enum"])
    elif "enum" in schema:
        rule["enum"] = sorted(schema["enum"])
    elif schema.get("type") not in (None, "string"):
        rule["type"] = schema["type"]
    return rule


def limit(burst, steady, daily=None):
    value = {"burst": burst, "steady": steady}
    if daily is not None:
        value["daily"] = daily
    tier = TIER_NAMES.get((burst, steady))
    if tier:
        value["tier"] = tier
    return value


def rate_limits(operation):
    declared = operation.get("x-klaviyo-ratelimit")
    if not declared:
        raise SpecError(f"{operation['operationId']} has no x-klaviyo-ratelimit")

    def per(text, unit):
        number, _, got = text.partition("/")
        if got != unit:
            raise SpecError(f"{operation['operationId']}: rate {text!r} is not per {unit}")
        return int(number)

    base = limit(per(declared["burst"], "s"), per(declared["steady"], "m"),
                 per(declared["daily"], "d") if "daily" in declared else None)
    conditional = []
    for name, value, burst, steady in _CONDITIONAL_LIMIT.findall(operation.get("description", "")):
        entry = limit(int(burst), int(steady))
        entry.update(parameter=name, value=value)
        conditional.append(entry)
    if "additional-fields" in operation.get("description", "").split("*Rate limits*")[-1] and not conditional:
        raise SpecError(f"{operation['operationId']}: unreadable additional-fields rate limit")
    return base, conditional


def _names(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def report_filter(description, operation_id):
    """The report body's `filter` prose -> {attribute: [operators]} and allowed send_channel values."""
    fields = {}
    old = re.search(r"Allowed filters are ([^.]+)\.\nAllowed operators are ([^.]+)\.", description)
    if old:
        for name in _names(old.group(1)):
            fields[name] = sorted(_names(old.group(2)))
    for _kind, names, ops in re.findall(r"(Scalar|List) attributes \(([^)]*)\): Supported operators: ([^.]+)\.",
                                         description):
        for name in _names(names):
            fields[name] = sorted(_names(ops))
    if not fields:
        raise SpecError(f"{operation_id}: unreadable report filter description {description!r}")
    channels = re.search(r"When filtering on send_channel, allowed values are ([^.]+)\.", description)
    items = re.search(r"Max of (\d+) (?:items|messages) per", description)
    rule = {"fields": fields, "one_per_attribute": "Only one filter can be used per attribute" in description}
    if channels:
        rule["send_channel"] = sorted(_names(channels.group(1)))
    if items:
        rule["max_list_items"] = int(items.group(1))
    return rule


def body_attributes(resolve, operation):
    """(the body's JSON:API type, {attribute: its schema}, the attributes it requires) of a POST."""
    request = resolve(operation["requestBody"]["content"]["application/vnd.api+json"]["schema"])
    data = resolve(request["properties"]["data"])
    attributes = resolve(data["properties"]["attributes"])
    properties = {name: resolve(value) for name, value in attributes["properties"].items()}
    return resolve(data["properties"]["type"])["enum"][0], properties, sorted(attributes.get("required", []))


def report_body(resolve, operation):
    operation_id = operation["operationId"]
    kind, properties, required = body_attributes(resolve, operation)
    body = {
        "type": kind,
        "attributes": sorted(properties),
        "required": required,
        "statistics": sorted(resolve(properties["statistics"]["items"])["enum"]),
    }
    timeframe = properties["timeframe"]
    years = re.search(r"(\d+) year", timeframe.get("description", ""))
    if not years:
        raise SpecError(f"{operation_id}: timeframe without a maximum length")
    body["timeframe_max_years"] = int(years.group(1))
    for choice in map(resolve, timeframe["oneOf"]):
        members = {name: resolve(value) for name, value in choice["properties"].items()}
        if "key" in members:
            body["timeframe_keys"] = sorted(members["key"]["enum"])
        else:
            body["custom_timeframe"] = {"fields": sorted(members), "required": sorted(choice.get("required", []))}
    if "interval" in properties:
        interval = properties["interval"]
        body["interval"] = sorted(interval["enum"])
        body["interval_max_days"] = {}
        for name, count, unit in re.findall(r"If (\w+) is used, the timeframe cannot be longer than (\d+) (day|week)s",
                                            interval.get("description", "")):
            body["interval_max_days"][name] = int(count) * (7 if unit == "week" else 1)
    if "group_by" in properties:
        group_by = properties["group_by"]
        description = group_by.get("description", "")
        required = re.search(r"The following group by attributes are required: ([^.\n]+)", description)
        default = re.search(r"If not passed in, the data will be grouped by ([^.\n]+)", description)
        # the form reports state no required group-by, but prerequisites: "The prerequisites for
        # form_version_id is form_id" (a group-by that needs another beside it)
        prerequisites = re.findall(r"The prerequisites for (\w+) (?:is|are) ([\w, ]+)", description)
        if not default or not (required or prerequisites):
            raise SpecError(f"{operation_id}: unreadable group_by description {description!r}")
        body["group_by"] = sorted(resolve(group_by["items"])["enum"])
        body["group_by_required"] = sorted(_names(required.group(1))) if required else []
        body["group_by_default"] = _names(default.group(1))
        if prerequisites:
            body["group_by_prerequisites"] = {name: sorted(_names(needs)) for name, needs in prerequisites}
    if "filter" in properties:
        body["filter"] = report_filter(properties["filter"].get("description", ""), operation_id)
    return body


def _attribute_type(schema, name, operation_id, resolve):
    """'string', 'integer' or 'array of string': the types the metric-aggregate body uses."""
    kind = schema.get("type")
    if kind == "array":
        kind = f"array of {resolve(schema['items']).get('type')}"
    if kind not in ("string", "integer", "array of string"):
        raise SpecError(f"{operation_id}: attribute {name} of type {kind!r}")
    return kind


def metric_aggregate_body(resolve, operation):
    """The metric-aggregate query's rules: each attribute's type, which may be null and their
    defaults, the enums, and two rules stated only in prose: the time range the filter list must
    hold, and the IANA time zones the timezone attribute does not accept."""
    operation_id = operation["operationId"]
    kind, properties, required = body_attributes(resolve, operation)
    time_range = _TIME_RANGE.search(properties["filter"].get("description", ""))
    if not time_range or not (time_range.group(1).startswith("greater") and time_range.group(2).startswith("less")):
        raise SpecError(f"{operation_id}: unreadable time range in the filter description")
    exceptions = _TIMEZONE_EXCEPTIONS.search(properties["timezone"].get("description", ""))
    if not exceptions:
        raise SpecError(f"{operation_id}: unreadable timezone description")
    return {
        "type": kind,
        "attributes": sorted(properties),
        "required": required,
        "types": {name: _attribute_type(schema, name, operation_id, resolve)
                  for name, schema in sorted(properties.items())},
        "nullable": sorted(name for name, schema in properties.items() if schema.get("nullable")),
        "defaults": {name: schema["default"] for name, schema in sorted(properties.items()) if "default" in schema},
        "measurements": sorted(resolve(properties["measurements"]["items"])["enum"]),
        "interval": sorted(properties["interval"]["enum"]),
        "by": sorted(resolve(properties["by"]["items"])["enum"]),
        "sort": sorted(properties["sort"]["enum"]),
        "time_range": {"field": time_range.group(3), "lower": time_range.group(1), "upper": time_range.group(2)},
        "timezone_unsupported": sorted(re.findall(r"`([^`]+)`", exceptions.group(1))),
    }


def operation_rules(spec, method, path):
    """The rules of one operation in one revision's spec, or None when the revision lacks it."""
    operation = spec["paths"].get(path, {}).get(method.lower())
    if operation is None:
        return None
    resolve = Resolver(spec)
    params = {}
    for parameter in map(resolve, operation.get("parameters", [])):
        if parameter["in"] == "query":
            params[parameter["name"]] = query_parameter(resolve, parameter)
    if "filter" in params:
        values = filter_values(operation, params["filter"]["fields"])
        if values is not None:
            params["filter"]["values"] = values
    base, conditional = rate_limits(operation)
    rules = {
        "operation_id": operation["operationId"],
        "resource": resource_type(resolve, operation, method),
        "params": params,
        "rate_limit": base,
        "scopes": sorted(operation.get("x-klaviyo-scopes", [])),
    }
    if conditional:
        rules["rate_limit_when"] = conditional
    filter_parameter = next((resolve(p) for p in operation.get("parameters", [])
                             if resolve(p)["name"] == "filter" and resolve(p).get("required")), None)
    if filter_parameter is not None:
        # The spec states which filter is required only in prose and in the parameter's example
        # ("equals(messages.channel,'email')"); both are recorded so the sandbox can say it as Klaviyo does.
        example = _EXAMPLE_CALL.match(resolve(filter_parameter.get("schema", {})).get("example", ""))
        sentence = _REQUIRED_FILTER_SENTENCE.search(operation.get("description", ""))
        if not example or example.group(2) not in params["filter"]["fields"]:
            raise SpecError(f"{operation['operationId']}: required filter without a usable example")
        params["filter"]["required_field"] = example.group(2)
        if sentence:
            params["filter"]["required_detail"] = sentence.group(1)
        either = _EITHER_REQUIRED.search(operation.get("description", ""))
        if either:
            # "A coupon/coupons or a profile/profiles must be provided as required filter params."
            # (get_coupon_codes): a filter on either relationship's id will do
            fields = [f"{name}.id" for name in either.group(1, 2)]
            if example.group(2) not in fields or not set(fields) <= set(params["filter"]["fields"]):
                raise SpecError(f"{operation['operationId']}: required filters {fields} do not match its filter fields")
            params["filter"]["required_any"] = fields
            params["filter"]["required_detail"] = either.group(0)
    if method == "POST":
        body = metric_aggregate_body if rules["resource"] == "metric-aggregate" else report_body
        rules["body"] = body(resolve, operation)
    return rules


def merged(per_revision):
    """[(revision, rules)] in revision order -> ranges of consecutive identical rules."""
    ranges = []
    for revision, rules in per_revision:
        if ranges and ranges[-1][1] == rules:
            ranges[-1][0][1] = revision
        else:
            ranges.append(([revision, revision], rules))
    out = []
    for span, rules in ranges:
        entry = {"revisions": span}
        if rules is None:
            entry["absent"] = True
        else:
            entry.update(rules)
        out.append(entry)
    return out


def omnichannel_rules(beta, method, path, corrections):
    """2026-10-15's rules of a campaign operation: the beta spec's, corrected, marked inferred."""
    rules = operation_rules(beta, method, path)
    expected = OMNICHANNEL[(method, path)]
    if rules is None or rules["operation_id"] != expected:
        raise SpecError(f"{BETA_BRANCH}:{BETA_FILE}: {method} {path} is not {expected}")
    verified = {}
    for parameter, added, page in corrections:
        rule = rules["params"].get(parameter)
        if rule is None or "enum" not in rule:
            raise SpecError(f"{expected}: no {parameter} enum to correct")
        already = sorted(set(added) & set(rule["enum"]))
        if already:
            raise SpecError(f"{expected}: {parameter} already allows {already}; drop the correction")
        rule["enum"] = sorted(rule["enum"] + list(added))
        verified[parameter] = {"added": list(added), "page": page}
    rules["evidence"] = {"inferred_from": f"{BETA_BRANCH}:{BETA_FILE} {expected}"}
    if verified:
        rules["evidence"]["verified"] = verified
    return rules


def build(mirror):
    specs, commits = {}, {}
    for branch in dict.fromkeys(BRANCHES.values()):
        specs[branch] = load_spec(mirror, branch)
        commits[branch] = git(mirror, "rev-parse", branch).strip()
    beta = load_spec(mirror, BETA_BRANCH, BETA_FILE)
    beta_commit = git(mirror, "rev-parse", BETA_BRANCH).strip()
    known = {f"{method} {path}" for method, path in OPERATIONS}
    for operation, _parameter, _added, _page in CORRECTIONS:
        if operation not in known or tuple(operation.split(" ", 1)) not in OMNICHANNEL:
            raise SpecError(f"a correction for {operation}, which is not an omnichannel operation read here")
    branches = {revision: {"branch": branch, "commit": commits[branch]} for revision, branch in BRANCHES.items()}
    branches[OMNICHANNEL_REVISION]["note"] = (
        f"no {OMNICHANNEL_REVISION} branch is published; Klaviyo's {OMNICHANNEL_REVISION} reference pages list "
        f"these operations as unchanged or additive from {BRANCHES[OMNICHANNEL_REVISION]}, whose rules they take "
        f"(all but the campaign operations: see omnichannel_campaigns)")
    provenance = {
        "source": f"github.com/klaviyo/openapi, {SPEC_FILE} of each revision branch; {BETA_FILE} of "
                  f"{BETA_BRANCH} for the campaign operations of {OMNICHANNEL_REVISION}",
        "generated_by": "scripts/extract_spec_rules.py",
        "branches": branches,
        "omnichannel_campaigns": {
            "revision": OMNICHANNEL_REVISION, "branch": BETA_BRANCH, "file": BETA_FILE, "commit": beta_commit,
            "confidence": f"inferred: the beta spec, whose operations say they will be released in GA in the "
                          f"{OMNICHANNEL_REVISION} revision; no GA spec of them is published",
            "operations": {f"{method} {path}": operation_id for (method, path), operation_id in OMNICHANNEL.items()},
            "corrections": [{"operation": operation, "parameter": parameter, "added": list(added),
                             "verified_by": page} for operation, parameter, added, page in CORRECTIONS],
        },
    }
    operations = {}
    for method, path in OPERATIONS:
        key = f"{method} {path}"
        per_revision = []
        for revision, branch in BRANCHES.items():
            if revision == OMNICHANNEL_REVISION and (method, path) in OMNICHANNEL:
                corrections = [(p, added, page) for operation, p, added, page in CORRECTIONS if operation == key]
                per_revision.append((revision, omnichannel_rules(beta, method, path, corrections)))
            else:
                per_revision.append((revision, operation_rules(specs[branch], method, path)))
        operations[key] = merged(per_revision)
    return {"provenance": provenance, "revisions": list(BRANCHES), "enums": shared_enums(operations),
            "operations": operations}


def shared_enums(operations, longest_inline=12):
    """Moves each long enum into one table entry and leaves its name in its place.

    The same profile and flow-action field lists recur across operations and revision ranges;
    stored once, they no longer dominate the file. An entry is named after where it first appears.
    """
    table, names = {}, {}
    for key, ranges in operations.items():
        for entry in ranges:
            for name, rule in entry.get("params", {}).items():
                values = rule.get("enum")
                if values is None or len(values) <= longest_inline:
                    continue
                frozen = tuple(values)
                if frozen not in names:
                    names[frozen] = f"{key} {name} {entry['revisions'][0]}"
                    table[names[frozen]] = values
                rule["enum"] = names[frozen]
    return table


def render(value, indent=0):
    """JSON with objects indented and lists of scalars on one line: small, and diffs stay readable."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad} {json.dumps(key)}: {render(item, indent + 1)}' for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        items = [f"{pad} {render(item, indent + 1)}" for item in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="git directory of a klaviyo/openapi clone")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="file to write, or - for stdout")
    args = parser.parse_args(argv)
    if not args.mirror.exists():
        print(f"extract_spec_rules: no klaviyo/openapi clone at {args.mirror}; pass --mirror", file=sys.stderr)
        return 1
    try:
        text = render(build(args.mirror)) + "\n"
    except (SpecError, subprocess.CalledProcessError) as error:
        detail = error.stderr.strip() if isinstance(error, subprocess.CalledProcessError) else error
        print(f"extract_spec_rules: {detail}", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
