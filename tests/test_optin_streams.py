"""The opt-in streams (issue 11): every field of every row against the sandbox's own data, the
incremental `events` and `profiles` across runs, config `event_metrics` and
`profiles_predictive_analytics`, deselected columns left out of rows, schemas and requests, an
older revision's shapes, scope failures, and the README's table against STREAMS.

Expected rows are built here from /__sandbox/dump, as the issue defines the row shape: `id`, the
parent's id for a child, then each attribute under its API name exactly as the API holds it.
"""
import datetime as dt
import json
import re
import time

import jsonschema
import pytest

from tap_klaviyo import revisions
from tap_klaviyo.ratelimit import family_limits
from tap_klaviyo.streams import BY_NAME, COLLECTION, EVENTS, MEMBERS, STREAMS
from tests.conftest import ROOT, catalog_selecting, error_lines, log_lines, logged_sandbox, run_tap
from tests.sandbox.server import NO_CAMPAIGNS_FLOWS_KEY

# issue 11's twelve: Klaviyo's resources as the API shapes them (the reports are tested elsewhere)
# (at the default revision: the campaign streams 2026-10-15 added are tested in test_campaigns_omnichannel.py)
OPT_IN = [stream.name for stream in STREAMS if stream.family in (EVENTS, COLLECTION, MEMBERS)
          and (stream.since is None or stream.since <= revisions.DEFAULT)]
CLASSIC = [stream.name for stream in STREAMS if stream.selected_by_default]
SPEC_RULES = json.loads((ROOT / "tap_klaviyo" / "spec_rules.json").read_text())
PARENT_OF = {   # child stream -> how the sandbox's resource names its parent
    "campaign_messages": lambda r: r["relationships"]["campaign"]["data"]["id"],
    "flow_actions": lambda r: r["relationships"]["flow"]["data"]["id"],
    "flow_messages": lambda r: r["relationships"]["flow-action"]["data"]["id"],
    "push_tokens": lambda r: r["relationships"]["profile"]["data"]["id"],     # issue 22
    "form_versions": lambda r: r["relationships"]["form"]["data"]["id"],      # Issue 22: forms
}


def _bookmark(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _api_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def _epoch(text):
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


# --- what the rows must be, from the sandbox's dump --------------------------------------------------
def expected_rows(dump, stream, synced_before):
    """{key: row} of one opt-in stream for a full first sync that started at synced_before."""
    from tests import test_catalog_streams as catalog_streams
    if stream == "events":
        names = {m["id"]: m["attributes"]["name"] for m in dump["metrics"]}
        return {e["id"]: {"id": e["id"], "uuid": e["uuid"], "timestamp": e["timestamp"],
                          "datetime": _api_time(e["timestamp"]), "metric_id": e["metric_id"],
                          "metric_name": names[e["metric_id"]], "profile_id": e["profile_id"],
                          "event_properties": e["event_properties"]}
                for e in dump["events"] if e["timestamp"] < synced_before}
    if stream in catalog_streams.STREAMS:       # issue 22's catalog streams carry owner ids from relationships
        return catalog_streams.expected(dump, stream)
    if stream == "event_attributions":      # issue 22: the attributions of the events read
        times = {e["id"]: e["timestamp"] for e in dump["events"]}
        return {r["id"]: r for r in dump[stream] if times[r["event_id"]] < synced_before}
    if stream in ("list_members", "segment_members"):
        group = stream.replace("_members", "_id")
        return {(m[group], m["profile_id"]): m for m in dump[stream]}
    source = dump[stream]
    if stream == "profiles":     # profiles with an `updated` before the sync, subscriptions asked for
        source = [p for p in source if p["attributes"]["updated"] and _epoch(p["attributes"]["updated"]) < synced_before]
    rows = {}
    for resource in source:
        row = {"id": resource["id"]}
        if stream in PARENT_OF:
            row[BY_NAME[stream].parent_column] = PARENT_OF[stream](resource)
        row.update(resource["attributes"])
        if stream == "segments":    # issue 22: the sandbox's segments also hold a list's attributes
            row = {k: v for k, v in row.items() if k not in ("opt_in_process", "profile_count")}
        if stream == "campaign_messages":   # the message's name, under its 2026-10-15 column name
            row["name"] = (resource["attributes"]["definition"] or {}).get("label")
        rows[resource["id"]] = row
    return rows


def leading(stream):
    """The columns a row starts with: its id and its parent's id, or a member's two ids."""
    described = BY_NAME[stream]
    return list(described.key) if described.key != ("id",) else ["id", described.parent_column][:1 + bool(described.parent_column)]


def keyed(stream, records):
    key = BY_NAME[stream].key
    out = {}
    for record in records:
        value = record[key[0]] if len(key) == 1 else tuple(record[k] for k in key)
        assert value not in out, f"{stream}: {value} emitted twice"
        out[value] = record
    return out


def schemas_of(run):
    return {m["stream"]: m for m in run.messages if m["type"] == "SCHEMA"}


def check_against_schema(stream, schema, records):
    """Every row validates against the SCHEMA the tap sent; date-time columns hold ISO 8601 datetimes."""
    validator = jsonschema.Draft4Validator(schema)
    times = [name for name, column in schema["properties"].items() if column.get("format") == "date-time"]
    for record in records:
        errors = [e.message for e in validator.iter_errors(record)]
        assert not errors, (stream, record.get("id"), errors[:3])
        for name in times:
            if record.get(name) is not None:
                assert dt.datetime.fromisoformat(record[name].replace("Z", "+00:00")).tzinfo, (stream, name)


def deselecting(catalog, columns):
    """catalog with columns ({stream: [column, ...]}) marked "selected": false."""
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"][:1] == ["properties"] and item["breadcrumb"][1] in columns.get(entry["tap_stream_id"], ()):
                item["metadata"]["selected"] = False
    return catalog


# --- one account for the tests that only read -------------------------------------------------------
@pytest.fixture(scope="module")
def account():
    with logged_sandbox(events=600, seed=11, lists=3, segments=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def full(account, tmp_path_factory):
    """Every opt-in stream, one first sync."""
    account.post("/__sandbox/stats/reset", {})
    started = int(time.time())
    run = run_tap(tmp_path_factory.mktemp("full"), account.config(), catalog=catalog_selecting(*OPT_IN))
    return run, started, account.dump(), account.stats()


def test_every_field_of_every_opt_in_stream(full):
    run, started, dump, stats = full
    got = run.by_stream()
    schemas = schemas_of(run)
    assert set(schemas) == set(OPT_IN) and [m["stream"] for m in run.messages if m["type"] == "SCHEMA"] == OPT_IN
    for stream in OPT_IN:
        rows = keyed(stream, got.get(stream, []))
        want = expected_rows(dump, stream, started)
        assert want, f"{stream}: the sandbox holds nothing to compare"
        assert set(rows) == set(want), f"{stream}: keys differ"
        for key, row in rows.items():
            assert row == want[key], f"{stream} {key}"
            assert list(row)[:len(leading(stream))] == leading(stream), f"{stream}: column order"
        check_against_schema(stream, schemas[stream]["schema"], rows.values())
        assert schemas[stream]["key_properties"] == list(BY_NAME[stream].key)
    assert stats["throttled"] == 0
    # what the data exercises: other integrations and channels, an event without a profile, a
    # campaign per channel, flows with several actions, an empty list, a profile never predicted
    events = got["events"]
    assert any(r["profile_id"] is None for r in events)
    integrations = {m["id"]: m["attributes"]["integration"]["name"] for m in dump["metrics"]}
    assert {"Klaviyo", "API", "Shopify", "WooCommerce"} <= {integrations[r["metric_id"]] for r in events}
    assert set(dump["campaign_channels"].values()) == {"email", "sms", "mobile_push"}
    assert max(sum(r["flow_id"] == f["id"] for r in got["flow_actions"]) for f in dump["flows"]) > 3
    assert not any("predictive_analytics" in r for r in got["profiles"])
    assert all("subscriptions" in r for r in got["profiles"])


def test_each_endpoint_in_its_own_rate_family_with_the_largest_page(full, account):
    run, _, dump, stats = full
    families = stats["by_family"]
    # one request per campaign, per flow, per flow action, per list and segment (all fit a page)
    assert families["campaign_messages"] == len(dump["campaigns"])
    assert families["flow_actions"] == len(dump["flows"])
    assert families["flow_messages"] == len(dump["flow_actions"])
    assert families["list_profiles"] == len({g["id"] for g in dump["lists"]})
    assert families["segment_profiles"] == len(dump["segments"])
    # once per channel, archived or not (each fits a page of 100)
    assert families["campaigns"] == 6
    assert families["templates"] == -(-len(dump["templates"]) // 10)
    assert families["tags"] == 1 and families["flows"] == 2     # archived or not
    for path, size in (("/api/profiles", "100"), ("/api/flows", "50"), ("/api/tags", "50"), ("/api/templates", "10"),
                       ("/api/lists/[^/]+/profiles", "100"), ("/api/campaigns", "100")):
        queries = account.log.queries(path)
        assert queries and all(q.get("page[size]") == size for q in queries if "page[cursor]" not in q), path


def test_events_and_profiles_resume_from_their_bookmarks(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600, seed=5)
    catalog = catalog_selecting("events", "profiles")
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    state = first.last_state
    assert set(state["bookmarks"]) == {"events", "profiles"}
    since = {name: _epoch(state["bookmarks"][name]["since"]) for name in ("events", "profiles")}
    assert len(first.records("profiles")) == len(sandbox.dump()["profiles"])

    # an event exactly at the bookmark is new; one a second before it is not (no lookback, and the
    # late-event counts, which would find it, off: tests/test_late_events.py)
    added = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Placed Order", "integration": "Shopify", "timestamp": since["events"]},
        {"metric_name": "Received SMS", "timestamp": since["events"]},
        {"metric_name": "Opened Email", "timestamp": since["events"] - 1}]})["ids"]
    profiles = sorted(p["id"] for p in sandbox.dump()["profiles"])
    touched = profiles[:3]
    sandbox.post("/__sandbox/profiles/touch", {"ids": touched, "updated": _bookmark(since["profiles"])})
    sandbox.post("/__sandbox/profiles/touch", {"ids": profiles[3:4], "updated": _bookmark(since["profiles"] - 1)})
    while int(time.time()) <= max(since.values()):     # the next sync starts after both bookmarks
        time.sleep(0.1)

    second = run_tap(tmp_path, sandbox.config(late_event_days=0), catalog=catalog, state=state)
    dump = sandbox.dump()
    events = keyed("events", second.records("events"))
    assert set(events) == set(added[:2])
    want = expected_rows(dump, "events", since["events"] + 1)
    assert all(events[i] == want[i] for i in events)
    assert {r["metric_name"] for r in events.values()} == {"Placed Order", "Received SMS"}
    rows = keyed("profiles", second.records("profiles"))
    assert set(rows) == set(touched)
    want = expected_rows(dump, "profiles", since["profiles"] + 1)
    assert all(rows[i] == want[i] and rows[i]["updated"] == _api_time(since["profiles"]) for i in rows)
    for name in ("events", "profiles"):
        assert _epoch(second.last_state["bookmarks"][name]["since"]) > since[name]


def test_event_metrics_restricts_events_to_named_metrics(account, tmp_path):
    dump = account.dump()
    received_sms = next(m["id"] for m in dump["metrics"] if m["attributes"]["name"] == "Received SMS")
    started = int(time.time())
    run = run_tap(tmp_path, account.config(event_metrics=["Placed Order", received_sms, "No Such Metric"]),
                  catalog=catalog_selecting("events"))
    wanted = {m["id"] for m in dump["metrics"] if m["attributes"]["name"] == "Placed Order"} | {received_sms}
    assert len(wanted) == 3        # "Placed Order" of Shopify and of WooCommerce: names are not unique
    rows = keyed("events", run.records("events"))
    want = {k: r for k, r in expected_rows(dump, "events", started).items() if r["metric_id"] in wanted}
    assert want and rows == want
    assert any("No Such Metric" in line for line in log_lines(run.stderr) if line.startswith("WARNING "))


def test_predictive_analytics_when_config_asks(account, tmp_path):
    account.post("/__sandbox/stats/reset", {})
    started = int(time.time())
    run = run_tap(tmp_path, account.config(profiles_predictive_analytics=True), catalog=catalog_selecting("profiles"))
    dump = account.dump()
    rows = keyed("profiles", run.records("profiles"))
    want = expected_rows(dump, "profiles", started)
    assert set(rows) == set(want)
    for key, row in rows.items():
        assert row == {**want[key], "predictive_analytics": dump["predictive_analytics"][key]}
    assert any(r["predictive_analytics"] is None for r in rows.values())
    check_against_schema("profiles", schemas_of(run)["profiles"]["schema"], rows.values())
    # the lower tier is a limiter family of its own
    assert set(account.stats()["by_family"]) == {"profiles_predictive"}


DESELECTED = {"profiles": ["subscriptions", "location", "properties"], "templates": ["html", "definition"],
              "events": ["event_properties", "uuid"], "list_members": ["joined_group_at"], "tags": ["name"]}


def test_deselected_columns_are_left_out_of_rows_schemas_and_requests(account, tmp_path):
    catalog = deselecting(catalog_selecting(*DESELECTED), DESELECTED)
    account.log.clear()
    started = int(time.time())
    run = run_tap(tmp_path, account.config(), catalog=catalog)
    dump = account.dump()
    schemas = schemas_of(run)
    for stream, dropped in DESELECTED.items():
        assert not set(dropped) & set(schemas[stream]["schema"]["properties"]), stream
        rows = keyed(stream, run.records(stream))
        want = expected_rows(dump, stream, started)
        assert set(rows) == set(want), stream
        for key, row in rows.items():
            assert row == {k: v for k, v in want[key].items() if k not in dropped}, (stream, key)
        check_against_schema(stream, schemas[stream]["schema"], rows.values())
    # the requests name only what is kept; the additional fields of a dropped column are not asked
    assert all(account.log.queries(path) for path in ("/api/profiles", "/api/templates", "/api/events",
                                                       "/api/lists/[^/]+/profiles"))
    for query in account.log.queries("/api/profiles"):
        fields = set(query["fields[profile]"].split(","))
        assert fields and not fields & set(DESELECTED["profiles"]) and "updated" in fields
        assert "additional-fields[profile]" not in query
    for query in account.log.queries("/api/templates"):
        assert set(query["fields[template]"].split(",")) == {"name", "editor_type", "text", "amp", "created", "updated"}
        assert "additional-fields[template]" not in query
    for query in account.log.queries("/api/events"):
        assert set(query["fields[event]"].split(",")) == {"timestamp", "datetime"}
    assert all(q["fields[profile]"] == "joined_group_at" for q in account.log.queries("/api/lists/[^/]+/profiles"))
    tags = account.log.queries("/api/tags")
    assert tags and all(q["fields[tag]"] == "name" for q in tags)     # no attribute left: the smallest one


def test_an_older_revision_gets_its_own_shapes_and_valid_fieldsets(account, tmp_path):
    # before 2025-10-15 flow actions had no `definition` and templates no additional fields:
    # neither may be asked for (the sandbox refuses what the spec refuses), neither is in the rows
    catalog = deselecting(catalog_selecting("flow_actions", "templates"),
                          {"flow_actions": ["updated"], "templates": ["text"]})
    account.log.clear()
    run = run_tap(tmp_path, account.config(revision="2025-07-15"), catalog=catalog)
    dump = account.dump()
    actions = keyed("flow_actions", run.records("flow_actions"))
    assert set(actions) == {a["id"] for a in dump["flow_actions"]}
    assert all(set(row) == {"id", "flow_id", "created"} for row in actions.values())
    templates = keyed("templates", run.records("templates"))
    assert set(templates) == {t["id"] for t in dump["templates"]}
    assert not any("definition" in row or "text" in row for row in templates.values())
    action_queries, flow_queries = account.log.queries("/api/flows/[^/]+/flow-actions"), account.log.queries("/api/flows")
    assert action_queries and all(q["fields[flow-action]"] == "created" for q in action_queries)
    # read for its ids only: the smallest field the spec lists for the type
    assert flow_queries and all(q["fields[flow]"] == "created" for q in flow_queries)
    template_queries = account.log.queries("/api/templates")
    assert template_queries and all("definition" not in q["fields[template]"] and "page[size]" not in q
                                    and "additional-fields[template]" not in q for q in template_queries)


def test_without_a_catalog_only_the_classic_twelve(account, tmp_path):
    run = run_tap(tmp_path, account.config())
    assert [m["stream"] for m in run.messages if m["type"] == "SCHEMA"] == CLASSIC
    assert set(run.by_stream()) <= set(CLASSIC)


def test_discovery_lists_opt_in_streams_after_the_classic_ones_with_selectable_columns(account, tmp_path):
    run = run_tap(tmp_path, account.config(api_key=NO_CAMPAIGNS_FLOWS_KEY), "--discover")
    catalog = json.loads(run.stdout)
    listed = [e["tap_stream_id"] for e in catalog["streams"]]
    assert listed[:len(CLASSIC)] == CLASSIC and [name for name in listed if name in OPT_IN] == OPT_IN
    for entry in catalog["streams"]:
        stream = BY_NAME[entry["tap_stream_id"]]
        if not (stream.classic or stream.name in OPT_IN):
            continue
        meta = {tuple(m["breadcrumb"]): m["metadata"] for m in entry["metadata"]}
        assert meta[()]["selected"] is stream.selected_by_default
        fixed = {*stream.key, stream.parent_column, stream.replication_key}
        for name in entry["schema"]["properties"]:
            inclusion = meta[("properties", name)]["inclusion"]
            assert inclusion == ("automatic" if stream.classic or name in fixed else "available"), (stream.name, name)
    # a key without campaigns:read and flows:read: one warning per scope, naming every stream that needs it
    warnings = [line for line in log_lines(run.stderr) if line.startswith("WARNING ")]
    assert len(warnings) == 2, warnings
    for scope in ("campaigns:read", "flows:read"):
        needing = [s.name for s in STREAMS if scope in s.scopes]
        assert needing
        said = [line for line in warnings if f"scope {scope} " in line]
        assert len(said) == 1, scope
        assert set(re.findall(r"\b[a-z_]+\b", said[0])) >= set(needing), (scope, said[0])


@pytest.mark.parametrize("streams, scope, failing", [
    (("campaign_messages", "tags"), "campaigns:read", "campaign_messages"),
    (("flow_messages", "metrics"), "flows:read", "flow_messages"),
])
def test_a_missing_scope_is_one_line_naming_the_stream(account, tmp_path, streams, scope, failing):
    run = run_tap(tmp_path, account.config(api_key=NO_CAMPAIGNS_FLOWS_KEY), catalog=catalog_selecting(*streams),
                  check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1, run.stderr
    named = lines[0].split("(")[0]
    assert failing in named and scope in lines[0] and not (set(streams) - {failing}) & set(re.findall(r"\w+", named))
    assert NO_CAMPAIGNS_FLOWS_KEY not in run.stderr + run.stdout


# --- facts without a sync ---------------------------------------------------------------------------
def _spec_entry(operation, revision):
    return next(e for e in SPEC_RULES["operations"][operation] if e["revisions"][0] <= revision <= e["revisions"][1])


def test_each_stream_endpoint_exists_with_the_spec_tier_at_every_revision():
    from tap_klaviyo.streams import at_revision, available
    checked = set()
    for stream in STREAMS:
        if stream.family not in (EVENTS, COLLECTION, MEMBERS):
            continue
        for revision in revisions.SUPPORTED:
            row = at_revision(stream, revision)
            if not available(row, revision) or row.path is None:    # none, or read through its parent's include
                continue
            entry = _spec_entry(row.operation, revision)
            assert not entry.get("absent"), (stream.name, revision, row.path)
            limit = entry["rate_limit"]
            assert family_limits(row.rate_family, revision) == (limit["burst"], limit["steady"]), (stream.name, revision)
            checked.add((stream.name, row.path))
    assert ("campaign_messages", "/api/campaign-messages") in checked and \
        ("campaign_messages", "/api/campaigns/{id}/campaign-messages") in checked
    predictive = [w for w in _spec_entry("GET /api/profiles", revisions.NEWEST)["rate_limit_when"]
                  if w["value"] == "predictive_analytics"][0]
    assert family_limits("profiles_predictive", revisions.NEWEST) == (predictive["burst"], predictive["steady"]) \
        != family_limits("profiles", revisions.NEWEST)


def test_the_readme_table_of_opt_in_streams_matches_the_streams_table():
    from tap_klaviyo.streams import at_revision
    text = (ROOT / "README.md").read_text()
    section = text.split("## Opt-in streams", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for line in rows:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0].strip("`")] = cells
    assert list(table) == [s.name for s in STREAMS if s.family in (EVENTS, COLLECTION, MEMBERS)]
    for name, (_, source, key, replication, tier, scopes) in table.items():
        stream = BY_NAME[name]
        # a stream read through an include: its parent's request, in the revisions that have it
        reads = at_revision(BY_NAME[stream.parent], stream.since) if stream.include else stream
        assert f"`{reads.operation}`" in source, name
        if stream.include:
            assert f"`include={stream.include}`" in source, name
        for since, changes in stream.revised:
            assert since in source and f"`{dict(changes).get('operation', reads.operation)}`" in source, name
        assert key == ", ".join(f"`{k}`" for k in stream.key), name
        assert replication.startswith(stream.method) and (stream.replication_key is None) == ("`" not in replication)
        if stream.replication_key:
            assert f"`{stream.replication_key}`" in replication, name
        spec_tier = _spec_entry(reads.operation, max(stream.since or "", revisions.DEFAULT))["rate_limit"]["tier"]
        assert tier == spec_tier, name
        assert set(re.findall(r"`([a-z_-]+:read)`", scopes)) == set(stream.scopes), name


def test_metric_times_are_the_plain_strings_the_spec_describes(full):
    # the spec types metric created/updated as strings "in ISO 8601 format (YYYY-MM-DDTHH:MM:SS.mmmmmm)",
    # no offset: the column carries no date-time format a target would misread
    run = full[0]
    schema = schemas_of(run)["metrics"]["schema"]["properties"]
    assert "format" not in schema["created"] and "format" not in schema["updated"]
    rows = run.records("metrics")
    assert rows and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", r["created"]) for r in rows)
