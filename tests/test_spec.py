"""The sandbox refuses what Klaviyo's published spec refuses, revision by revision, as Klaviyo does.

Each refusal is a real HTTP request to a sandbox on loopback, answered 400 with a JSON:API error
whose source.parameter names the offending query parameter (source.pointer the body attribute).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.sandbox import spec
from tests.sandbox.data import generate
from tests.sandbox.server import Options

ROOT = Path(__file__).resolve().parent.parent
# a git clone of klaviyo/openapi (all revision branches); the check is skipped where there is none
MIRROR = Path(os.environ.get("KLAVIYO_OPENAPI_REPO", "/work/.mirror/klaviyo+openapi/repo"))
REVISIONS = ("2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15", "2026-01-15", "2026-04-15", "2026-07-15",
             "2026-10-15")
BEFORE_EVENT_PAGES = [r for r in REVISIONS if r < "2026-01-15"]
WITH_EVENT_PAGES = [r for r in REVISIONS if r >= "2026-01-15"]
BEFORE_GROUP_PAGES = [r for r in REVISIONS if r < "2026-04-15"]
WITH_GROUP_PAGES = [r for r in REVISIONS if r >= "2026-04-15"]
WINDOW = 'equals(metric_id,"{metric}"),greater-or-equal(datetime,2020-01-01T00:00:00Z),less-than(datetime,2030-01-01T00:00:00Z)'


def call(sandbox, path, query, revision, body=None):
    return sandbox.api(path, query, revision=revision, body=body)[:2]


def refused(sandbox, path, query, revision, parameter, mentions):
    status, document = call(sandbox, path, query, revision)
    assert status == 400, (status, document)
    error = document["errors"][0]
    assert error["code"] == "invalid" and error["title"] == "Invalid input."
    assert error["source"] == {"parameter": parameter}, error
    assert mentions in error["detail"], error["detail"]
    return error["detail"]


def accepted(sandbox, path, query, revision):
    status, document = call(sandbox, path, query, revision)
    assert status == 200, (status, document)
    return document


@pytest.fixture(scope="module")
def small():
    # one sandbox for the module: nothing here changes its account, and stopping a server costs
    # up to half a second (its poll interval), which per test would dominate the run
    sandbox = Sandbox(generate(events=60, seed=7, lists=2, segments=2), Options(rate_scale=20.0))
    yield sandbox
    sandbox.close()


def _metric(sandbox):
    return sandbox.account.metric_by_name("Received Email")["id"]


# --- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("revision", REVISIONS)
def test_a_field_outside_the_sparse_fieldset_list_is_refused(small, revision):
    refused(small, "/api/events", {"fields[event]": "timestamp,event_name"}, revision, "fields[event]", "'event_name'")
    refused(small, "/api/events", {"fields[profile]": "email,subscriptions"}, revision, "fields[profile]",
            "'subscriptions'")
    # profile_count is a field of one list (with additional-fields), never of the collection
    refused(small, "/api/lists", {"fields[list]": "name,profile_count"}, revision, "fields[list]", "'profile_count'")


@pytest.mark.parametrize("revision", REVISIONS)
def test_id_is_a_sparse_field_only_from_2026_04_15(small, revision):
    query = {"fields[event]": "id,timestamp"}
    if revision < "2026-04-15":
        refused(small, "/api/events", query, revision, "fields[event]", "'id'")
    else:
        accepted(small, "/api/events", query, revision)


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-10-15"])
def test_a_filter_on_a_field_the_spec_does_not_list_is_refused(small, revision):
    refused(small, "/api/events", {"filter": 'equals(event_name,"Opened Email")'}, revision, "filter", "'event_name'")
    refused(small, "/api/metrics", {"filter": 'equals(name,"Opened Email")'}, revision, "filter", "'name'")
    refused(small, "/api/profiles", {"filter": 'equals(first_name,"Ann")'}, revision, "filter", "'first_name'")


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-10-15"])
def test_an_operator_the_spec_does_not_list_for_the_field_is_refused(small, revision):
    metric = _metric(small)
    refused(small, "/api/events", {"filter": f'equals(metric_id,"{metric}"),equals(datetime,2024-01-01T00:00:00Z)'},
            revision, "filter", "'equals'")
    refused(small, "/api/events", {"filter": f'contains(metric_id,"{metric}")'}, revision, "filter", "'contains'")
    # profiles' updated takes greater-than and less-than only: a boundary has to be handled client side
    refused(small, "/api/profiles", {"filter": "greater-or-equal(updated,2024-01-01T00:00:00Z)"}, revision, "filter",
            "'greater-or-equal'")
    refused(small, "/api/metrics", {"filter": 'any(integration.name,["Klaviyo","API"])'}, revision, "filter", "'any'")


def test_a_filter_that_does_not_parse_or_uses_or_is_refused(small):
    refused(small, "/api/events", {"filter": "equals(metric_id"}, "2026-10-15", "filter", "Invalid filter")
    refused(small, "/api/events", {"filter": 'or(equals(metric_id,"a"),equals(metric_id,"b"))'}, "2026-10-15",
            "filter", "'or'")


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-10-15"])
def test_a_sort_the_spec_does_not_list_is_refused(small, revision):
    refused(small, "/api/events", {"sort": "id"}, revision, "sort", "'id'")
    refused(small, "/api/lists", {"sort": "profile_count"}, revision, "sort", "'profile_count'")
    refused(small, "/api/profiles", {"sort": "-first_name"}, revision, "sort", "'-first_name'")


@pytest.mark.parametrize("revision", BEFORE_EVENT_PAGES)
def test_events_have_no_page_size_before_2026_01_15(small, revision):
    refused(small, "/api/events", {"page[size]": "1"}, revision, "page[size]", "'page_size'")
    refused(small, "/api/events", {"page[size]": "200"}, revision, "page[size]", "'page_size'")


@pytest.mark.parametrize("revision", WITH_EVENT_PAGES)
def test_events_page_size_is_1_to_1000_from_2026_01_15(small, revision):
    metric = _metric(small)
    for size in ("0", "1001", "-1", "ten"):
        refused(small, "/api/events", {"page[size]": size}, revision, "page[size]", size)
    for size in ("1", "1000"):
        accepted(small, "/api/events", {"filter": WINDOW.format(metric=metric), "page[size]": size}, revision)


@pytest.mark.parametrize("revision", BEFORE_GROUP_PAGES)
@pytest.mark.parametrize("path", ["/api/lists", "/api/segments"])
def test_lists_and_segments_have_no_page_size_before_2026_04_15(small, revision, path):
    refused(small, path, {"page[size]": "10"}, revision, "page[size]", "'page_size'")


@pytest.mark.parametrize("revision", WITH_GROUP_PAGES)
@pytest.mark.parametrize("path", ["/api/lists", "/api/segments"])
def test_lists_and_segments_page_size_is_1_to_10_from_2026_04_15(small, revision, path):
    refused(small, path, {"page[size]": "11"}, revision, "page[size]", "11")
    assert accepted(small, path, {"page[size]": "10"}, revision)["data"]


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-10-15"])
def test_profiles_page_size_is_1_to_100_and_metrics_have_none(small, revision):
    refused(small, "/api/profiles", {"page[size]": "101"}, revision, "page[size]", "101")
    refused(small, "/api/profiles", {"page[size]": "0"}, revision, "page[size]", "0")
    accepted(small, "/api/profiles", {"page[size]": "100"}, revision)
    refused(small, "/api/metrics", {"page[size]": "10"}, revision, "page[size]", "'page_size'")


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-10-15"])
def test_an_unknown_parameter_is_refused(small, revision):
    refused(small, "/api/events", {"limit": "10"}, revision, "limit", "'limit'")
    refused(small, "/api/lists", {"page[offset]": "10"}, revision, "page[offset]", "'page_offset'")
    refused(small, "/api/lists/" + small.account.lists[0]["id"], {"sort": "name"}, revision, "sort", "'sort'")


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-10-15"])
def test_includes_and_additional_fields_outside_the_spec_are_refused(small, revision):
    refused(small, "/api/events", {"include": "profile,lists"}, revision, "include", "'lists'")
    refused(small, "/api/profiles", {"additional-fields[profile]": "subscriptions,profile_count"}, revision,
            "additional-fields[profile]", "'profile_count'")
    refused(small, "/api/lists/" + small.account.lists[0]["id"], {"additional-fields[list]": "member_count"},
            revision, "additional-fields[list]", "'member_count'")


@pytest.mark.parametrize("revision", REVISIONS)
def test_profile_includes_follow_the_revision(small, revision):
    # include on profiles arrives in 2025-04-15; lists and segments leave it in 2026-01-15
    query = {"include": "lists"}
    if revision < "2025-04-15":
        refused(small, "/api/profiles", query, revision, "include", "'include'")
    elif revision < "2026-01-15":
        accepted(small, "/api/profiles", query, revision)
    else:
        refused(small, "/api/profiles", query, revision, "include", "'lists'")


def test_a_beta_revision_follows_its_base(small):
    refused(small, "/api/events", {"page[size]": "10"}, "2025-10-15.pre", "page[size]", "'page_size'")
    accepted(small, "/api/events", {"filter": WINDOW.format(metric=_metric(small)), "page[size]": "10"},
             "2026-01-15.pre")


def test_a_path_without_rules_is_left_to_the_router(small):
    status, document = call(small, "/api/webhooks", {"whatever": "1"}, "2026-10-15")
    assert status == 404 and document["errors"][0]["code"] == "not_found"


# --- what the tap sends passes ---------------------------------------------------------------

@pytest.mark.parametrize("revision", REVISIONS)
def test_the_classic_requests_pass_at_every_revision(small, revision):
    metric = _metric(small)
    events = {"filter": WINDOW.format(metric=metric), "sort": "datetime", "include": "profile,metric",
              "fields[event]": "timestamp,uuid,event_properties", "fields[metric]": "name",
              "fields[profile]": "email,first_name,last_name,phone_number,organization,title,external_id,location,"
                                 "properties,created,updated"}
    if revision >= "2026-01-15":
        events["page[size]"] = "1000"
    assert accepted(small, "/api/events", events, revision)["data"]
    accepted(small, "/api/metrics", {"filter": 'equals(integration.name,"Klaviyo")',
                                     "fields[metric]": "name,integration"}, revision)
    for kind in ("list", "segment"):
        collection = {f"fields[{kind}]": "name,created,updated"}
        if revision >= "2026-04-15":
            collection["page[size]"] = "10"
        group = accepted(small, f"/api/{kind}s", collection, revision)["data"][0]
        counted = accepted(small, f"/api/{kind}s/{group['id']}", {
            f"additional-fields[{kind}]": "profile_count", f"fields[{kind}]": "profile_count"}, revision)
        assert "profile_count" in counted["data"]["attributes"]
    accepted(small, "/api/profiles", {
        "filter": 'equals(subscriptions.email.marketing.suppression.reason,"UNSUBSCRIBE")',
        "additional-fields[profile]": "subscriptions", "fields[profile]": "email,subscriptions", "page[size]": "100"},
        revision)


# --- the endpoints of the new streams and the reports -----------------------------------------

@pytest.mark.parametrize("revision", ["2025-01-15", "2026-07-15"])
def test_campaigns_need_a_channel_filter(small, revision):
    detail = refused(small, "/api/campaigns", {}, revision, "filter", "channel filter is required")
    assert refused(small, "/api/campaigns", {"filter": 'equals(status,"Sent")'}, revision, "filter",
                   "channel filter is required") == detail
    accepted(small, "/api/campaigns", {"filter": "equals(messages.channel,'sms')"}, revision)


def test_omnichannel_campaigns_have_no_channel_filter(small):
    # 2026-10-15's campaign rules come from the beta spec (inferred): no channel filter, none required
    refused(small, "/api/campaigns", {"filter": "equals(messages.channel,'sms')"}, "2026-10-15", "filter",
            "'messages.channel'")
    accepted(small, "/api/campaigns", {}, "2026-10-15")


@pytest.mark.parametrize("revision", REVISIONS)
def test_collection_page_sizes_follow_the_revision(small, revision):
    channel = {"filter": "equals(messages.channel,'email')"} if revision < "2026-10-15" else {}
    for path, extra, since, most in [("/api/campaigns", channel, "2026-04-15", 100), ("/api/templates", {}, "2026-04-15", 10),
                                     ("/api/tags", {}, "2026-04-15", 50), ("/api/flows", {}, "2025-01-15", 50)]:
        if revision < since:
            refused(small, path, {**extra, "page[size]": "1"}, revision, "page[size]", "'page_size'")
        else:
            accepted(small, path, {**extra, "page[size]": str(most)}, revision)
            refused(small, path, {**extra, "page[size]": str(most + 1)}, revision, "page[size]", str(most + 1))


def _report(kind, **attributes):
    body = {"statistics": ["opens", "clicks", "conversion_value"], "conversion_metric_id": "RESQ6t",
            "timeframe": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-02-01T00:00:00+00:00"}}
    if kind == "flow-series-report":
        body["interval"] = "daily"
    body.update(attributes)
    return {"data": {"type": kind, "attributes": {k: v for k, v in body.items() if v is not None}}}


def refused_body(sandbox, path, body, revision, pointer, mentions=""):
    status, document = call(sandbox, path, {}, revision, body)
    assert status == 400, (status, document)
    error = document["errors"][0]
    assert error["code"] == "invalid" and error["source"] == {"pointer": pointer}, error
    assert mentions in error["detail"], error["detail"]


def passes_spec(path, body, revision):
    # until the sandbox serves the reports an accepted body has no answer of its own over HTTP,
    # so acceptance is asked of the rules the server applies
    spec.check_request("POST", path, {}, revision, body)


CAMPAIGN_VALUES = ("/api/campaign-values-reports", "campaign-values-report", ["campaign_id", "campaign_message_id",
                                                                              "send_channel"])
FLOW_SERIES = ("/api/flow-series-reports", "flow-series-report", ["flow_id", "flow_message_id", "send_channel"])


@pytest.mark.parametrize("path, kind, group_by", [CAMPAIGN_VALUES, FLOW_SERIES])
@pytest.mark.parametrize("revision", REVISIONS)
def test_report_bodies_follow_the_spec(small, path, kind, group_by, revision):
    passes_spec(path, _report(kind), revision)
    grouped = _report(kind, group_by=group_by)
    if revision < "2025-10-15":     # group_by arrives in 2025-10-15
        refused_body(small, path, grouped, revision, "/data/attributes/group_by", "'group_by'")
    else:
        passes_spec(path, grouped, revision)
        refused_body(small, path, _report(kind, group_by=["send_channel"]), revision, "/data/attributes/group_by",
                     "required")
    for broken, pointer, mentions in [
        (_report(kind, conversion_metric_id=None), "/data/attributes/conversion_metric_id", "required"),
        (_report(kind, statistics=["opens", "revenue"]), "/data/attributes/statistics", "'revenue'"),
        (_report(kind, timeframe={"key": "last_decade"}), "/data/attributes/timeframe/key", "'last_decade'"),
        (_report(kind, timeframe={"key": "last_365_days", "start": "2026-01-01T00:00:00+00:00",
                                  "end": "2026-02-01T00:00:00+00:00"}), "/data/attributes/timeframe/key",
         "custom_timeframe"),
        (_report(kind, timeframe={"start": "2025-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"}),
         "/data/attributes/timeframe", "1 year"),
        (_report(kind, filter='equals(send_channel,"fax")'), "/data/attributes/filter", "'fax'"),
        ({"data": {"type": "campaign", "attributes": {}}}, "/data/type", "'campaign'"),
    ]:
        refused_body(small, path, broken, revision, pointer, mentions)
    # the reports page with page_cursor, not page[cursor]
    status, document = call(small, path, {"page[cursor]": "abc"}, revision, _report(kind))
    assert status == 400 and document["errors"][0]["source"] == {"parameter": "page[cursor]"}, document


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-10-15"])
def test_flow_series_intervals_bound_the_timeframe(small, revision):
    path, kind, _ = FLOW_SERIES
    sixty = {"start": "2026-01-01T00:00:00+00:00", "end": "2026-03-02T00:00:00+00:00"}
    sixty_one = {"start": "2026-01-01T00:00:00+00:00", "end": "2026-03-03T00:00:00+00:00"}
    passes_spec(path, _report(kind, timeframe=sixty), revision)
    passes_spec(path, _report(kind, interval="weekly", timeframe={"key": "last_365_days"}), revision)
    pointer = "/data/attributes/timeframe"
    refused_body(small, path, _report(kind, timeframe=sixty_one), revision, pointer, "60 days")
    refused_body(small, path, _report(kind, timeframe={"key": "last_90_days"}), revision, pointer, "60 days")
    refused_body(small, path, _report(kind, interval="yearly"), revision, "/data/attributes/interval", "'yearly'")


# --- tiers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("revision", REVISIONS)
def test_tiers_follow_the_spec(revision):
    large = (75, 700) if revision < "2026-01-15" else (75, 750)
    for path in ("/api/lists", "/api/segments/x", "/api/profiles", "/api/lists/x/profiles"):
        assert spec.rate_limit("GET", path, {}, revision) == large
    assert spec.rate_limit("GET", "/api/lists/x", {"additional-fields[list]": "profile_count"}, revision) == (1, 15)
    assert spec.rate_limit("GET", "/api/profiles", {"additional-fields[profile]": "subscriptions,predictive_analytics"},
                           revision) == (10, 150)
    assert spec.rate_limit("GET", "/api/events", {}, revision) == (350, 3500)
    assert spec.rate_limit("GET", "/api/metrics", {}, revision) == (10, 150)
    assert spec.limits("POST", "/api/flow-series-reports", {}, revision)["daily"] == 225
    assert spec.rate_limit("GET", "/api/webhooks", {}, revision) is None


# --- the data file is what the script makes ----------------------------------------------------

@pytest.mark.skipif(not MIRROR.exists(), reason="no klaviyo/openapi clone on this machine")
def test_spec_rules_json_is_what_the_script_writes():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "extract_spec_rules.py"), "--mirror", str(MIRROR),
                           "--output", "-"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == spec.RULES_FILE.read_text(), "rerun scripts/extract_spec_rules.py and commit the result"
