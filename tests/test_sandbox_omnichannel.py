"""The sandbox's omnichannel campaigns (revision 2026-10-15 on), over HTTP: the same account's campaigns
and messages in their new shape, their audiences and variations, the endpoints that serve them, and
the spec rules that refuse what 2026-10-15 no longer takes (the channel filter, the old fields) and
filter values of the wrong kind. Expected values come from /__sandbox/dump's "omnichannel" part."""
import json

import pytest

from tests.conftest import Sandbox
from tests.sandbox.data import generate
from tests.sandbox.entities import dump as entities_dump
from tests.sandbox.server import API_KEY, NO_CAMPAIGNS_FLOWS_KEY, Options

OMNI = "2026-10-15"
BEFORE = "2026-07-15"
MESSAGE_STATUS = {"Sent": "sent", "Variations Sent": "sent", "Draft": "draft", "Scheduled": "scheduled",
                  "Cancelled": "cancelled", "Sending": "sending"}


@pytest.fixture(scope="module")
def shared():
    sandbox = Sandbox(generate(events=600, seed=11, lists=3, segments=2), Options(rate_scale=20.0))
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def dump(shared):
    return shared.dump()


@pytest.fixture(scope="module")
def omni(dump):
    return dump["omnichannel"]


def call(sandbox, path, params=None, revision=OMNI, key=API_KEY):
    return sandbox.api(path, params, key=key, revision=revision)[:2]


def ok(sandbox, path, params=None, revision=OMNI):
    status, body = call(sandbox, path, params, revision)
    assert status == 200, body
    return body


def pages(sandbox, path, params=None, revision=OMNI):
    """Every page, following links.next exactly as given."""
    found, url = [], path
    while url:
        body = ok(sandbox, url, params, revision)
        found.append(body)
        url, params = body["links"].get("next"), None
    return found


def refused(sandbox, path, params, parameter, mentions, revision=OMNI):
    status, body = call(sandbox, path, params, revision)
    assert status == 400, (status, body)
    error = body["errors"][0]
    assert error["code"] == "invalid" and error["source"] == {"parameter": parameter}, error
    assert mentions in error["detail"], error["detail"]
    return error["detail"]


def not_found(sandbox, path, params=None, revision=OMNI):
    status, body = call(sandbox, path, params, revision)
    assert status == 404 and body["errors"][0]["code"] == "not_found", (status, body)


def ids_of(found):
    return [item["id"] for page in found for item in page["data"]]


def by_id(items):
    return {item["id"]: item for item in items}


def same_resource(served, stored, with_data=()):
    """The served resource is the stored one: its attributes, and relationship data only for `with_data`."""
    assert served["type"] == stored["type"] and served["id"] == stored["id"]
    assert served["attributes"] == stored["attributes"], served["id"]
    assert set(served["relationships"]) == set(stored["relationships"]), served["id"]
    for name, relation in served["relationships"].items():
        assert set(relation["links"]) == {"self", "related"}
        if name in with_data:
            assert relation["data"] == stored["relationships"][name]["data"], (served["id"], name)
        else:
            assert "data" not in relation, (served["id"], name)
    assert served["links"]["self"].endswith(f"/{served['id']}/")


# --- the spec rules of 2026-10-15 ----------------------------------------------------------------
def test_the_channel_filter_and_the_old_fields_are_refused(shared):
    refused(shared, "/api/campaigns", {"filter": "equals(messages.channel,'email')"}, "filter", "'messages.channel'")
    refused(shared, "/api/campaigns", {"filter": 'equals(status,"Sent")'}, "filter", "'status'")
    refused(shared, "/api/campaigns", {"fields[campaign]": "name"}, "fields[campaign]", "'name'")
    refused(shared, "/api/campaigns", {"fields[campaign-message]": "definition.channel"}, "fields[campaign-message]",
            "'definition.channel'")
    refused(shared, "/api/campaigns", {"include": "campaign-messages,template"}, "include", "'template'")
    # the per-campaign message list takes no include and no page[size] any more
    campaign = ok(shared, "/api/campaigns")["data"][0]["id"]
    refused(shared, f"/api/campaigns/{campaign}/campaign-messages", {"include": "campaign"}, "include", "'include'")
    refused(shared, "/api/campaign-messages", {"page[size]": "101"}, "page[size]", "101")


def test_2026_07_15_is_unchanged_and_has_no_omnichannel_paths(shared, dump, omni):
    # a channel outside the spec's enum is a 400 now (the enum comes from x-klaviyo-filters)
    refused(shared, "/api/campaigns", {"filter": "equals(messages.channel,'push')"}, "filter", "'push'",
            revision=BEFORE)
    not_found(shared, "/api/campaign-messages", revision=BEFORE)
    campaign = dump["campaigns"][0]["id"]
    message = dump["campaign_messages"][0]["id"]
    not_found(shared, f"/api/campaigns/{campaign}/campaign-audiences", revision=BEFORE)
    not_found(shared, f"/api/campaign-messages/{message}/campaign-variations", revision=BEFORE)
    # today's campaign requests answer as before: the older shape, the channel filter required
    refused(shared, "/api/campaigns", {}, "filter", "channel filter is required", revision=BEFORE)
    stored = by_id(dump["campaigns"])
    for channel in ("email", "sms", "mobile_push"):
        found = pages(shared, "/api/campaigns", {"filter": f"equals(messages.channel,'{channel}')"}, BEFORE)
        got = [item for page in found for item in page["data"]]
        # archived campaigns are left out unless the filter asks for them, as Klaviyo does
        assert {c["id"] for c in got} == {c for c, ch in dump["campaign_channels"].items()
                                         if ch == channel and not stored[c]["attributes"]["archived"]}
        for item in got:
            assert item["attributes"] == stored[item["id"]]["attributes"]
            assert set(item["relationships"]) == {"campaign-messages", "tags"}
    messages = by_id(dump["campaign_messages"])
    body = ok(shared, f"/api/campaigns/{campaign}/campaign-messages", revision=BEFORE)
    assert [m["id"] for m in body["data"]] == [r["id"] for r in stored[campaign]["relationships"]["campaign-messages"]["data"]]
    for item in body["data"]:
        assert item["attributes"] == messages[item["id"]]["attributes"]
    # the omnichannel resources are not what 2026-07-15 serves
    assert omni["campaigns"][0]["attributes"] != stored[omni["campaigns"][0]["id"]]["attributes"]


@pytest.mark.parametrize("revision, path, params, mentions", [
    # a quoted boolean, a list to equals, a single value to any, a quoted datetime, a bare string
    (OMNI, "/api/campaigns", {"filter": "equals(archived,'true')"}, "true or false"),
    (OMNI, "/api/campaigns", {"filter": "equals(archived,[true])"}, "single value"),
    (OMNI, "/api/campaigns", {"filter": "any(id,'01ABC')"}, "list"),
    (OMNI, "/api/campaigns", {"filter": "greater-than(created_at,'2025-01-01T00:00:00Z')"}, "unquoted"),
    (OMNI, "/api/campaigns", {"filter": "greater-than(updated_at,last-week)"}, "ISO 8601"),
    (OMNI, "/api/campaigns", {"filter": "contains(name,Sale)"}, "quoted string"),
    (OMNI, "/api/campaign-messages", {"filter": "equals(status,['sent'])"}, "single value"),
    (BEFORE, "/api/campaigns", {"filter": "equals(messages.channel,'email'),equals(archived,\"false\")"},
     "true or false"),
    (BEFORE, "/api/campaigns", {"filter": "equals(messages.channel,['email'])"}, "single value"),
    (BEFORE, "/api/events", {"filter": "greater-than(timestamp,'1700000000')"}, "number"),
])
def test_a_filter_value_of_the_wrong_type_or_form_is_refused(shared, revision, path, params, mentions):
    refused(shared, path, params, "filter", mentions, revision=revision)


def _shown(campaigns):
    """The campaigns a list without an archived filter shows: the archived ones are left out."""
    return [c for c in campaigns if not c["attributes"]["definition"]["archived"]]


def test_filter_values_of_the_right_form_pass(shared, omni):
    first = _shown(omni["campaigns"])[0]["id"]
    assert ids_of([ok(shared, "/api/campaigns", {"filter": f"any(id,['{first}',\"nope\"])"})]) == [first]
    message = omni["campaign_messages"][0]["id"]
    for value in (f"'{message}'", f"['{message}']"):      # the spec lets equals take one id or a list
        assert ids_of([ok(shared, "/api/campaign-messages", {"filter": f"equals(id,{value})"})]) == [message]


# --- the omnichannel endpoints serve the dump ---------------------------------------------------
def test_campaigns_page_to_every_omnichannel_campaign(shared, omni):
    shown = _shown(omni["campaigns"])
    found = pages(shared, "/api/campaigns", {"page[size]": "4"})
    assert all(len(page["data"]) <= 4 for page in found) and len(found) == -(-len(shown) // 4)
    stored = by_id(omni["campaigns"])
    assert ids_of(found) == [c["id"] for c in shown]
    archived = pages(shared, "/api/campaigns", {"filter": "equals(archived,true)"})
    assert sorted(ids_of(found) + ids_of(archived)) == sorted(stored)
    for page in found:
        assert "included" not in page
        for item in page["data"]:
            same_resource(item, stored[item["id"]])
    assert len(ok(shared, "/api/campaigns")["data"]) == len(shown)     # default page: 100


def test_the_flat_message_list_pages_every_message(shared, omni):
    stored = by_id(omni["campaign_messages"])
    first = ok(shared, "/api/campaign-messages")
    assert len(first["data"]) == min(20, len(stored)) and (first["links"]["next"] is not None) == (len(stored) > 20)
    found = pages(shared, "/api/campaign-messages", {"page[size]": "7"})
    assert all(len(page["data"]) <= 7 for page in found)
    got = ids_of(found)
    assert sorted(got) == sorted(stored) and len(got) == len(set(got))
    for page in found:
        for item in page["data"]:
            same_resource(item, stored[item["id"]])
    # sorted newest first, the same messages again
    newest = ids_of(pages(shared, "/api/campaign-messages", {"sort": "-created", "page[size]": "9"}))
    assert newest == [m["id"] for m in sorted(stored.values(), key=lambda m: (m["attributes"]["created"], m["id"]),
                                              reverse=True)]


def test_the_per_parent_endpoints_serve_each_child(shared, omni):
    messages, audiences = by_id(omni["campaign_messages"]), by_id(omni["campaign_audiences"])
    variations = by_id(omni["campaign_variations"])
    for campaign in omni["campaigns"]:
        relations = campaign["relationships"]
        body = ok(shared, f"/api/campaigns/{campaign['id']}/campaign-messages")
        assert [m["id"] for m in body["data"]] == [r["id"] for r in relations["campaign-messages"]["data"]]
        assert body["links"]["next"] is None
        for item in body["data"]:
            same_resource(item, messages[item["id"]])
        body = ok(shared, f"/api/campaigns/{campaign['id']}/campaign-audiences")
        assert [a["id"] for a in body["data"]] == [r["id"] for r in relations["campaign-audiences"]["data"]]
        for item in body["data"]:
            same_resource(item, audiences[item["id"]])
    for message in omni["campaign_messages"]:
        body = ok(shared, f"/api/campaign-messages/{message['id']}/campaign-variations")
        assert [v["id"] for v in body["data"]] == [r["id"] for r in message["relationships"]["campaign-variations"]["data"]]
        for item in body["data"]:
            same_resource(item, variations[item["id"]])
    not_found(shared, "/api/campaigns/01NOSUCHCAMPAIGN/campaign-messages")
    not_found(shared, "/api/campaigns/01NOSUCHCAMPAIGN/campaign-audiences")
    not_found(shared, "/api/campaign-messages/01NOSUCHMESSAGE/campaign-variations")


def test_includes_give_relationship_data_and_the_included_resources(shared, dump, omni):
    messages, audiences = by_id(omni["campaign_messages"]), by_id(omni["campaign_audiences"])
    campaigns, variations, tags = by_id(omni["campaigns"]), by_id(omni["campaign_variations"]), by_id(dump["tags"])
    body = ok(shared, "/api/campaigns", {"include": "campaign-audiences,campaign-messages,tags"})
    wanted = set()
    for item in body["data"]:
        same_resource(item, campaigns[item["id"]], ("campaign-audiences", "campaign-messages", "tags"))
        for name in ("campaign-audiences", "campaign-messages", "tags"):
            wanted |= {(r["type"], r["id"]) for r in campaigns[item["id"]]["relationships"][name]["data"]}
    assert {(i["type"], i["id"]) for i in body["included"]} == wanted
    assert len(body["included"]) == len(wanted)
    for item in body["included"]:
        if item["type"] == "tag":
            assert item["attributes"] == tags[item["id"]]["attributes"]
        else:
            same_resource(item, (messages if item["type"] == "campaign-message" else audiences)[item["id"]])
    body = ok(shared, "/api/campaign-messages", {"include": "campaign,campaign-variations", "page[size]": "100"})
    wanted = set()
    for item in body["data"]:
        same_resource(item, messages[item["id"]], ("campaign", "campaign-variations"))
        relations = messages[item["id"]]["relationships"]
        wanted |= {("campaign", relations["campaign"]["data"]["id"])}
        wanted |= {("campaign-variation", r["id"]) for r in relations["campaign-variations"]["data"]}
    assert {(i["type"], i["id"]) for i in body["included"]} == wanted
    for item in body["included"]:
        same_resource(item, (campaigns if item["type"] == "campaign" else variations)[item["id"]])
    # without include no included member and no relationship data
    assert "included" not in ok(shared, "/api/campaign-messages")


def test_sparse_fieldsets_take_dotted_paths(shared, omni):
    campaigns, messages = by_id(omni["campaigns"]), by_id(omni["campaign_messages"])
    body = ok(shared, "/api/campaigns", {
        "fields[campaign]": "definition.name,definition.send_settings.send_strategy,updated_at",
        "fields[campaign-audience]": "definition.included", "include": "campaign-audiences"})
    for item in body["data"]:
        definition = campaigns[item["id"]]["attributes"]["definition"]
        assert item["attributes"] == {"definition": {
            "name": definition["name"], "send_settings": {"send_strategy": definition["send_settings"]["send_strategy"]}},
            "updated_at": campaigns[item["id"]]["attributes"]["updated_at"]}
    audiences = by_id(omni["campaign_audiences"])
    for item in body["included"]:
        assert item["attributes"] == {"definition": {"included": audiences[item["id"]]["attributes"]["definition"]["included"]}}
    body = ok(shared, "/api/campaign-messages", {
        "fields[campaign-message]": "definition.status,definition.ab_test.winner_metric", "page[size]": "100"})
    tested = 0
    for item in body["data"]:
        definition = messages[item["id"]]["attributes"]["definition"]
        expected = {"status": definition["status"]}
        if "ab_test" in definition:
            tested += 1
            expected["ab_test"] = {"winner_metric": definition["ab_test"]["winner_metric"]}
        assert item["attributes"] == {"definition": expected}
    assert tested, "no message with an A/B test"
    email = next(v for v in omni["campaign_variations"] if v["attributes"]["definition"]["details"]["channel"] == "email")
    message = email["relationships"]["campaign-message"]["data"]["id"]
    body = ok(shared, f"/api/campaign-messages/{message}/campaign-variations",
              {"fields[campaign-variation]": "definition.details.channel,definition.details.subject"})
    details = email["attributes"]["definition"]["details"]
    assert body["data"][0]["attributes"] == {"definition": {"details": {"channel": "email", "subject": details["subject"]}}}


def test_omnichannel_filters_and_sorts(shared, omni):
    campaigns = omni["campaigns"]
    archived = ids_of(pages(shared, "/api/campaigns", {"filter": "equals(archived,true)"}))
    assert archived == [c["id"] for c in campaigns if c["attributes"]["definition"]["archived"]] and archived
    campaigns = _shown(campaigns)      # the filters below name no archived
    classic = ids_of(pages(shared, "/api/campaigns", {"filter": "equals(builder,'classic')", "sort": "name"}))
    assert classic == [c["id"] for c in sorted((c for c in campaigns if c["attributes"]["definition"]["builder"] == "classic"),
                                               key=lambda c: (c["attributes"]["definition"]["name"], c["id"]))]
    cut = sorted(c["attributes"]["created_at"] for c in campaigns)[len(campaigns) // 2]
    later = ids_of(pages(shared, "/api/campaigns", {"filter": f"greater-or-equal(created_at,{cut})"}))
    assert set(later) == {c["id"] for c in campaigns if c["attributes"]["created_at"] >= cut}
    named = ids_of(pages(shared, "/api/campaigns", {"filter": "contains(name,'sms')"}))
    assert set(named) == {c["id"] for c in campaigns if "sms" in c["attributes"]["definition"]["name"]} and named
    campaign = next(c for c in campaigns if len(c["relationships"]["campaign-messages"]["data"]) > 1)
    got = ids_of(pages(shared, "/api/campaign-messages", {"filter": f"equals(campaign_id,'{campaign['id']}')"}))
    assert sorted(got) == sorted(r["id"] for r in campaign["relationships"]["campaign-messages"]["data"])
    drafts = ids_of(pages(shared, "/api/campaign-messages", {"filter": "equals(status,'draft')"}))
    assert set(drafts) == {m["id"] for m in omni["campaign_messages"] if m["attributes"]["definition"]["status"] == "draft"}
    assert drafts


# --- one account, two views -------------------------------------------------------------------
def test_both_revisions_describe_the_same_campaigns_and_messages(dump, omni):
    old_campaigns, old_messages = by_id(dump["campaigns"]), by_id(dump["campaign_messages"])
    assert [c["id"] for c in omni["campaigns"]] == [c["id"] for c in dump["campaigns"]]
    assert [m["id"] for m in omni["campaign_messages"]] == [m["id"] for m in dump["campaign_messages"]]
    audiences, variations = by_id(omni["campaign_audiences"]), by_id(omni["campaign_variations"])
    for campaign in omni["campaigns"]:
        old = old_campaigns[campaign["id"]]["attributes"]
        definition = campaign["attributes"]["definition"]
        assert (definition["name"], definition["archived"]) == (old["name"], old["archived"])
        assert definition["send_settings"]["send_strategy"] == old["send_strategy"]["method"]
        assert campaign["relationships"]["campaign-messages"] == old_campaigns[campaign["id"]]["relationships"]["campaign-messages"]
        assert campaign["relationships"]["tags"] == old_campaigns[campaign["id"]]["relationships"]["tags"]
        priorities = [audiences[r["id"]]["attributes"]["definition"]["priority"]
                      for r in campaign["relationships"]["campaign-audiences"]["data"]]
        assert priorities == list(range(len(priorities))) and 1 <= len(priorities) <= 2
        assert audiences[campaign["relationships"]["campaign-audiences"]["data"][0]["id"]]["attributes"]["definition"][
            "included"] == old["audiences"]["included"]
    assert any(len(c["relationships"]["campaign-audiences"]["data"]) == 2 for c in omni["campaigns"])
    for message in omni["campaign_messages"]:
        old = old_messages[message["id"]]
        campaign_id = old["relationships"]["campaign"]["data"]["id"]
        campaign = old_campaigns[campaign_id]["attributes"]
        definition = message["attributes"]["definition"]
        assert message["relationships"]["campaign"]["data"]["id"] == campaign_id
        assert definition["status"] == MESSAGE_STATUS[campaign["status"]]
        assert definition["name"] == ((old["attributes"]["definition"] or {}).get("label") or campaign["name"])
        refs = message["relationships"]["campaign-variations"]["data"]
        if old["attributes"]["definition"] is None:         # a draft never started: no content, no variation
            assert refs == []
            continue
        assert len(refs) == 1
        details = variations[refs[0]["id"]]["attributes"]["definition"]["details"]
        channel = {"email": "email", "sms": "sms", "mobile_push": "push"}[dump["campaign_channels"][campaign_id]]
        assert details["channel"] == channel
        if channel == "email":
            template = old["relationships"]["template"]["data"]
            assert details["template_id"] == (template["id"] if template else None)
            assert all(isinstance(details[k], str) for k in ("from_label", "from_email", "reply_to_email", "cc_email",
                                                            "bcc_email", "subject", "preview_text"))
    assert {v["attributes"]["definition"]["details"]["channel"] for v in omni["campaign_variations"]} == {"email", "sms", "push"}


def test_the_omnichannel_view_is_deterministic_and_leaves_the_rest_alone():
    first, second = (entities_dump(generate(events=100, seed=3, lists=2, segments=1)) for _ in range(2))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    other = entities_dump(generate(events=100, seed=4, lists=2, segments=1))
    assert other["omnichannel"]["campaign_audiences"] != first["omnichannel"]["campaign_audiences"]


# --- limits and scopes --------------------------------------------------------------------------
def test_rate_families_and_scope(shared, omni):
    shared.post("/__sandbox/stats/reset", {})
    campaign, message = omni["campaigns"][0]["id"], omni["campaign_messages"][0]["id"]
    paths = {"campaigns": "/api/campaigns", "campaign_message_list": "/api/campaign-messages",
             "campaign_messages": f"/api/campaigns/{campaign}/campaign-messages",
             "campaign_audiences": f"/api/campaigns/{campaign}/campaign-audiences",
             "campaign_variations": f"/api/campaign-messages/{message}/campaign-variations"}
    for family, path in paths.items():
        status, body = call(shared, path, key=NO_CAMPAIGNS_FLOWS_KEY)
        assert status == 403 and "campaigns:read" in body["errors"][0]["detail"], (path, body)
        ok(shared, path)
    assert {family: count for family, count in shared.stats()["by_family"].items() if family in paths} == \
        dict.fromkeys(paths, 1)
