"""The sandbox's endpoints beyond the classic tables, over HTTP: paging, filters, sorts, includes,
required filters, scopes and tiers, and the admin calls that change the account during a run.
Expected values come from /__sandbox/dump, computed here."""
import calendar
import time

import pytest

from tests.conftest import Sandbox
from tests.sandbox.data import generate
from tests.sandbox.server import API_KEY, NO_CAMPAIGNS_FLOWS_KEY, NO_EVENTS_KEY, Options

REVISION = "2026-07-15"     # the campaign shapes here; 2026-10-15's omnichannel ones: test_sandbox_omnichannel.py


@pytest.fixture(scope="module")
def shared():
    sandbox = Sandbox(generate(events=1200, seed=11, lists=3, segments=2), Options(rate_scale=20.0))
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def dump(shared):
    return shared.dump()


def call(sandbox, path, params=None, key=API_KEY, revision=REVISION):
    return sandbox.api(path, params, key=key, revision=revision)


def pages(sandbox, path, params=None, revision=REVISION):
    """Every page, following links.next exactly as given."""
    found, url, params = [], path, params
    while url:
        status, body, _ = call(sandbox, url, params, revision=revision)
        assert status == 200, body
        found.append(body)
        url, params = body["links"].get("next"), None
        if url:
            assert url.startswith(sandbox.base_url + "/api/"), url      # absolute, on the same host
    return found


def ids_of(found):
    return [item["id"] for page in found for item in page["data"]]


def zulu(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def epoch(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S+00:00"))


def by_key(rows, key):
    """Sorted as the API sorts: nulls first, ties broken by id."""
    return [r["id"] for r in sorted(rows, key=lambda r: (key(r) is not None, key(r) or 0, r["id"]))]


def channel_filter(channel):
    return f"equals(messages.channel,'{channel}')"


# --- paging ---------------------------------------------------------------------------------------
def test_each_collection_pages_to_every_entity_once(shared, dump):
    channels = dump["campaign_channels"]
    for channel in ("email", "sms", "mobile_push"):
        # archived campaigns are left out unless the filter asks for them, as Klaviyo does
        found = pages(shared, "/api/campaigns", {"filter": channel_filter(channel), "page[size]": "3"})
        archived = ids_of(pages(shared, "/api/campaigns", {"filter": channel_filter(channel) + ",equals(archived,true)"}))
        got = ids_of(found)
        assert len(found) > 1 and all(len(p["data"]) <= 3 for p in found)
        assert len(got) == len(set(got)) and archived and not set(got) & set(archived)
        mine = [c for c in dump["campaigns"] if channels[c["id"]] == channel]
        assert set(got) == {c["id"] for c in mine if not c["attributes"]["archived"]}
        assert set(archived) == {c["id"] for c in mine if c["attributes"]["archived"]}

    got = ids_of(pages(shared, "/api/flows", {"page[size]": "2"}))
    archived = ids_of(pages(shared, "/api/flows", {"filter": "equals(archived,true)"}))
    assert sorted(got) == sorted(f["id"] for f in dump["flows"] if not f["attributes"]["archived"])
    assert archived and sorted(archived) == sorted(f["id"] for f in dump["flows"] if f["attributes"]["archived"])
    for flow in dump["flows"]:
        got = ids_of(pages(shared, f"/api/flows/{flow['id']}/flow-actions", {"page[size]": "2"}))
        assert got == [a["id"] for a in flow["relationships"]["flow-actions"]["data"]]   # default: the flow's order
    assert any(not f["relationships"]["flow-actions"]["data"] for f in dump["flows"])     # an empty child too
    for action in dump["flow_actions"]:
        got = ids_of(pages(shared, f"/api/flow-actions/{action['id']}/flow-messages", {"page[size]": "1"}))
        assert got == [m["id"] for m in action["relationships"]["flow-messages"]["data"]]
    for campaign in dump["campaigns"]:
        found = pages(shared, f"/api/campaigns/{campaign['id']}/campaign-messages")
        assert len(found) == 1                      # the spec pages nothing here
        assert ids_of(found) == [m["id"] for m in campaign["relationships"]["campaign-messages"]["data"]]

    found = pages(shared, "/api/templates")
    assert [len(p["data"]) for p in found][:-1] == [10] * (len(found) - 1)     # 10 a page by default
    assert ids_of(found) == [t["id"] for t in dump["templates"]]
    assert ids_of(pages(shared, "/api/tags", {"page[size]": "5"})) == [t["id"] for t in dump["tags"]]

    for kind in ("list", "segment"):
        for group in dump[f"{kind}s"]:
            members = [m for m in dump[f"{kind}_members"] if m[f"{kind}_id"] == group["id"]]
            found = pages(shared, f"/api/{kind}s/{group['id']}/profiles", {"page[size]": "7"})
            got = ids_of(found)
            assert len(got) == len(set(got))
            in_order = sorted(members, key=lambda m: (m["joined_group_at"], m["profile_id"]))
            assert got == [m["profile_id"] for m in in_order]
            joined = {m["profile_id"]: m["joined_group_at"] for m in members}
            assert all(p["attributes"]["joined_group_at"] == joined[p["id"]] for page in found for p in page["data"])
    assert any(not any(m["list_id"] == g["id"] for m in dump["list_members"]) for g in dump["lists"])  # an empty list

    found = pages(shared, "/api/profiles", {"sort": "updated", "page[size]": "9"})
    assert ids_of(found) == by_key(dump["profiles"], lambda p: epoch(p["attributes"]["updated"]))


def test_page_sizes_follow_the_spec(shared, dump):
    group = dump["lists"][0]["id"]
    bounds = [("/api/campaigns", {"filter": channel_filter("email")}, 100),
              ("/api/flows", {}, 50), ("/api/tags", {}, 50), ("/api/templates", {}, 10),
              (f"/api/lists/{group}/profiles", {}, 100), ("/api/profiles", {}, 100)]
    for path, params, largest in bounds:
        assert call(shared, path, dict(params, **{"page[size]": str(largest)}))[0] == 200
        for wrong in (0, largest + 1):
            status, body, _ = call(shared, path, dict(params, **{"page[size]": str(wrong)}))
            assert status == 400 and body["errors"][0]["source"]["parameter"] == "page[size]", path
    # defaults: 20 profiles, 100 campaigns
    sizes = {g["id"]: sum(m["segment_id"] == g["id"] for m in dump["segment_members"]) for g in dump["segments"]}
    biggest = max(sizes, key=sizes.get)
    assert sizes[biggest] > 20
    assert len(call(shared, f"/api/segments/{biggest}/profiles")[1]["data"]) == 20
    email = [c for c in dump["campaigns"] if dump["campaign_channels"][c["id"]] == "email"
             and not c["attributes"]["archived"]]
    assert len(call(shared, "/api/campaigns", {"filter": channel_filter("email")})[1]["data"]) == len(email)


# --- filters and sorts ----------------------------------------------------------------------------
def test_campaign_filters_and_sorts(shared, dump):
    # without an archived filter, as Klaviyo, the list leaves archived campaigns out
    sms = [c for c in dump["campaigns"] if dump["campaign_channels"][c["id"]] == "sms" and not c["attributes"]["archived"]]
    middle = sorted(epoch(c["attributes"]["updated_at"]) for c in sms)[len(sms) // 2]
    cut = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(middle))
    params = {"filter": f"{channel_filter('sms')},greater-or-equal(updated_at,{cut}),equals(status,\"Sent\")",
              "sort": "-updated_at", "page[size]": "2"}
    want = [c for c in sms if epoch(c["attributes"]["updated_at"]) >= middle and c["attributes"]["status"] == "Sent"]
    assert want
    assert ids_of(pages(shared, "/api/campaigns", params)) == \
        list(reversed(by_key(want, lambda c: epoch(c["attributes"]["updated_at"]))))
    # nullable sort field: drafts have no scheduled_at and come first
    email = [c for c in dump["campaigns"] if dump["campaign_channels"][c["id"]] == "email"]
    shown = [c for c in email if not c["attributes"]["archived"]]
    got = ids_of(pages(shared, "/api/campaigns", {"filter": channel_filter("email"), "sort": "scheduled_at"}))
    assert got == by_key(shown, lambda c: c["attributes"]["scheduled_at"] and epoch(c["attributes"]["scheduled_at"]))
    assert any(c["attributes"]["scheduled_at"] is None for c in shown)
    archived = ids_of(pages(shared, "/api/campaigns", {"filter": f"{channel_filter('email')},equals(archived,true)"}))
    assert archived and set(archived) == {c["id"] for c in email if c["attributes"]["archived"]}


def test_campaigns_require_the_channel_filter(shared):
    for params in ({}, {"filter": "equals(status,\"Sent\")"}):
        status, body, _ = call(shared, "/api/campaigns", params)
        assert status == 400
        assert body["errors"][0]["source"]["parameter"] == "filter"
        assert "channel" in body["errors"][0]["detail"]


def test_flow_template_and_tag_filters_and_sorts(shared, dump):
    live = [f for f in dump["flows"] if f["attributes"]["status"] == "live" and not f["attributes"]["archived"]]
    got = ids_of(pages(shared, "/api/flows", {"filter": "equals(status,\"live\")", "sort": "name", "page[size]": "2"}))
    assert got == by_key(live, lambda f: f["attributes"]["name"])
    welcome = next(f for f in dump["flows"] if f["attributes"]["name"] == "Welcome Series")
    actions = [a for a in dump["flow_actions"] if a["relationships"]["flow"]["data"]["id"] == welcome["id"]]
    got = ids_of(pages(shared, f"/api/flows/{welcome['id']}/flow-actions",
                       {"filter": "equals(action_type,\"send-email\")"}))
    assert got == [a["id"] for a in actions if a["attributes"]["definition"]["type"] == "send-email"] and len(got) == 3

    templates = dump["templates"]
    cut = sorted(epoch(t["attributes"]["created"]) for t in templates)[5]
    got = ids_of(pages(shared, "/api/templates", {"filter": f"greater-than(created,{zulu(cut)})", "sort": "-created"}))
    want = [t for t in templates if epoch(t["attributes"]["created"]) > cut]
    assert got == list(reversed(by_key(want, lambda t: epoch(t["attributes"]["created"]))))

    got = ids_of(pages(shared, "/api/tags", {"filter": "starts-with(name,\"S\")", "sort": "-name"}))
    want = [t for t in dump["tags"] if t["attributes"]["name"].startswith("S")]
    assert len(want) == 2 and got == list(reversed(by_key(want, lambda t: t["attributes"]["name"])))


def test_member_filters_and_sorts(shared, dump):
    group = dump["lists"][1]["id"]
    members = sorted((m for m in dump["list_members"] if m["list_id"] == group),
                     key=lambda m: (m["joined_group_at"], m["profile_id"]))
    low, high = members[3]["joined_group_at"], members[-3]["joined_group_at"]
    params = {"filter": f"greater-or-equal(joined_group_at,{low[:19]}Z),less-than(joined_group_at,{high[:19]}Z)",
              "sort": "-joined_group_at", "page[size]": "4"}
    want = [m["profile_id"] for m in members if low <= m["joined_group_at"] < high]
    assert ids_of(pages(shared, f"/api/lists/{group}/profiles", params)) == list(reversed(want))
    # many joined in one second (a bulk import): greater-than leaves them all out, greater-or-equal keeps them
    stamps = [m["joined_group_at"] for m in members]
    tied = max(set(stamps), key=stamps.count)
    assert stamps.count(tied) > 1
    after = ids_of(pages(shared, f"/api/lists/{group}/profiles",
                         {"filter": f"greater-than(joined_group_at,{tied[:19]}Z)"}))
    assert after == [m["profile_id"] for m in members if m["joined_group_at"] > tied]
    segment = dump["segments"][0]["id"]
    email = next(dump_profile["attributes"]["email"] for dump_profile in dump["profiles"]
                 if any(m["profile_id"] == dump_profile["id"] and m["segment_id"] == segment
                        for m in dump["segment_members"]) and dump_profile["attributes"]["email"])
    got = call(shared, f"/api/segments/{segment}/profiles", {"filter": f"equals(email,[\"{email}\"])"})[1]["data"]
    assert [p["attributes"]["email"] for p in got] == [email]


def test_profile_filters_sorts_and_additional_fields(shared, dump):
    profiles = dump["profiles"]
    stamps = sorted(epoch(p["attributes"]["updated"]) for p in profiles)
    low, high = stamps[5], stamps[-5]
    iso = lambda e: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e))
    params = {"filter": f"greater-than(updated,{iso(low)}),less-than(updated,{iso(high)})", "sort": "-updated",
              "page[size]": "6", "additional-fields[profile]": "subscriptions,predictive_analytics"}
    found = pages(shared, "/api/profiles", params)
    want = [p for p in profiles if low < epoch(p["attributes"]["updated"]) < high]
    assert ids_of(found) == list(reversed(by_key(want, lambda p: epoch(p["attributes"]["updated"]))))
    predictive = dump["predictive_analytics"]
    for profile in (p for page in found for p in page["data"]):
        assert profile["attributes"]["predictive_analytics"] == predictive[profile["id"]]
        assert "subscriptions" in profile["attributes"] and "locale" in profile["attributes"]
    assert any(v is None for v in predictive.values()) and any(v for v in predictive.values())
    plain = call(shared, "/api/profiles", {"sort": "id"})[1]["data"]
    assert all("subscriptions" not in p["attributes"] and "predictive_analytics" not in p["attributes"] for p in plain)
    assert [p["id"] for p in plain] == sorted(p["id"] for p in profiles)[:20]
    # the spec takes only greater-than and less-than on updated
    assert call(shared, "/api/profiles", {"filter": f"greater-or-equal(updated,{iso(low)})"})[0] == 400


# --- includes, sparse fieldsets, shapes by revision -----------------------------------------------
def test_includes_and_sparse_fieldsets(shared, dump):
    status, body, _ = call(shared, "/api/campaigns", {
        "filter": channel_filter("email"), "include": "campaign-messages,tags", "fields[campaign]": "name,send_time",
        "fields[campaign-message]": "definition.channel,send_times"})
    assert status == 200
    campaigns = {c["id"]: c for c in dump["campaigns"]}
    messages = {m["id"]: m for m in dump["campaign_messages"]}
    wanted_included = set()
    for item in body["data"]:
        assert set(item["attributes"]) == {"name", "send_time"}
        related = campaigns[item["id"]]["relationships"]
        assert item["relationships"]["campaign-messages"]["data"] == related["campaign-messages"]["data"]
        refs = related["campaign-messages"]["data"] + related["tags"]["data"]
        wanted_included |= {(r["type"], r["id"]) for r in refs}
    assert {(i["type"], i["id"]) for i in body["included"]} == wanted_included
    for item in body["included"]:
        if item["type"] == "campaign-message":
            definition = messages[item["id"]]["attributes"]["definition"]
            assert item["attributes"] == {"definition": definition and {"channel": definition["channel"]},
                                          "send_times": messages[item["id"]]["attributes"]["send_times"]}
    # without include, a relationship carries links only
    plain = call(shared, "/api/campaigns", {"filter": channel_filter("sms")})[1]["data"][0]
    assert set(plain["relationships"]["tags"]) == {"links"}

    email = next(m for m in dump["campaign_messages"] if m["relationships"]["template"]["data"])
    campaign_id = email["relationships"]["campaign"]["data"]["id"]
    body = call(shared, f"/api/campaigns/{campaign_id}/campaign-messages", {"include": "campaign,template"})[1]
    template_id = email["relationships"]["template"]["data"]["id"]
    assert {(i["type"], i["id"]) for i in body["included"]} >= {("campaign", campaign_id), ("template", template_id)}
    assert all("definition" not in i["attributes"] for i in body["included"] if i["type"] == "template")

    templates = {t["id"]: t for t in dump["templates"]}
    for params, with_definition in (({}, False), ({"additional-fields[template]": "definition"}, True)):
        for item in (i for page in pages(shared, "/api/templates", params) for i in page["data"]):
            stored = templates[item["id"]]["attributes"]
            assert item["attributes"] == {k: v for k, v in stored.items() if k != "definition" or with_definition}
    kinds = {t["attributes"]["editor_type"]: "definition" in t["attributes"] for t in dump["templates"]}
    assert kinds == {"SYSTEM_DRAGGABLE": True, "SIMPLE": True, "CODE": False, "USER_DRAGGABLE": False}

    body = call(shared, "/api/tags", {"include": "tag-group"})[1]
    groups = {g["id"]: g for g in dump["tag_groups"]}
    assert {i["id"] for i in body["included"]} == {t["relationships"]["tag-group"]["data"]["id"] for t in body["data"]}
    assert all(i["attributes"] == groups[i["id"]]["attributes"] for i in body["included"])


def test_flow_actions_and_messages_in_older_revisions(shared, dump):
    flow = next(f for f in dump["flows"] if f["attributes"]["name"] == "Post-Purchase Thank You")
    new = ids_of(pages(shared, f"/api/flows/{flow['id']}/flow-actions"))
    old = pages(shared, f"/api/flows/{flow['id']}/flow-actions", revision="2025-07-15")
    assert ids_of(old) == new
    actions = {a["id"]: a for a in dump["flow_actions"]}
    for item in (i for page in old for i in page["data"]):
        definition = actions[item["id"]]["attributes"]["definition"]
        assert item["attributes"]["action_type"] == definition["type"].upper().replace("-", "_")
        assert set(item["attributes"]) == {"action_type", "status", "created", "updated", "settings",
                                           "tracking_options", "send_options", "badge_options", "render_options"}
    webhook = next(a for a in actions.values() if a["relationships"]["flow"]["data"]["id"] == flow["id"]
                   and a["attributes"]["definition"]["type"] == "send-webhook")
    assert len(ids_of(pages(shared, f"/api/flow-actions/{webhook['id']}/flow-messages"))) == 1
    assert ids_of(pages(shared, f"/api/flow-actions/{webhook['id']}/flow-messages", revision="2025-07-15")) == []
    email = next(a for a in actions.values() if a["attributes"]["definition"]["type"] == "send-email")
    message = pages(shared, f"/api/flow-actions/{email['id']}/flow-messages", revision="2025-07-15")[0]["data"][0]
    assert set(message["attributes"]) == {"name", "channel", "content", "created", "updated"}
    assert set(pages(shared, f"/api/flow-actions/{email['id']}/flow-messages")[0]["data"][0]["attributes"]) == \
        {"channel", "created", "updated", "definition"}


# --- scopes and tiers -----------------------------------------------------------------------------
def test_scopes_are_enforced(shared, dump):
    flow, action = dump["flows"][0]["id"], dump["flow_actions"][0]["id"]
    campaign = dump["campaigns"][0]["id"]
    refused = {"/api/campaigns": "campaigns:read", f"/api/campaigns/{campaign}/campaign-messages": "campaigns:read",
               "/api/flows": "flows:read", f"/api/flows/{flow}/flow-actions": "flows:read",
               f"/api/flow-actions/{action}/flow-messages": "flows:read"}
    params = {"filter": channel_filter("email")}
    for path, scope in refused.items():
        status, body, _ = call(shared, path, params if path == "/api/campaigns" else None, key=NO_CAMPAIGNS_FLOWS_KEY)
        assert status == 403 and scope in body["errors"][0]["detail"], path
        assert call(shared, path, params if path == "/api/campaigns" else None, key=NO_EVENTS_KEY)[0] == 200
    allowed = ["/api/templates", "/api/tags", f"/api/lists/{dump['lists'][0]['id']}/profiles",
               f"/api/segments/{dump['segments'][0]['id']}/profiles", "/api/profiles"]
    for path in allowed:
        assert call(shared, path, key=NO_CAMPAIGNS_FLOWS_KEY)[0] == 200, path


def test_each_endpoint_has_its_family_and_tier(make_sandbox):
    sandbox = make_sandbox(events=300, lists=2, segments=1, rate_scale=1.0)
    dump = sandbox.dump()
    group, segment = dump["lists"][0]["id"], dump["segments"][0]["id"]
    expected = [("/api/campaigns", {"filter": channel_filter("sms")}, "campaigns", 10),
                (f"/api/campaigns/{dump['campaigns'][0]['id']}/campaign-messages", None, "campaign_messages", 10),
                ("/api/flows", None, "flows", 3),
                (f"/api/flows/{dump['flows'][0]['id']}/flow-actions", None, "flow_actions", 3),
                (f"/api/flow-actions/{dump['flow_actions'][0]['id']}/flow-messages", None, "flow_messages", 3),
                ("/api/templates", None, "templates", 75), ("/api/tags", None, "tags", 3),
                (f"/api/lists/{group}/profiles", None, "list_profiles", 75),
                (f"/api/lists/{group}/profiles", {"additional-fields[profile]": "predictive_analytics"},
                 "list_profiles_predictive", 10),
                (f"/api/segments/{segment}/profiles", None, "segment_profiles", 75),
                ("/api/profiles", {"additional-fields[profile]": "predictive_analytics"}, "profiles_predictive", 10)]
    for path, params, family, burst in expected:
        status, _, headers = call(sandbox, path, params)
        assert status == 200 and headers["RateLimit-Limit"] == str(burst), path
    assert {family for _, _, family, _ in expected} <= set(sandbox.stats()["by_family"])


# --- the account changing during a run -------------------------------------------------------------
def test_profiles_touched_and_members_added_while_paging(make_sandbox):
    sandbox = make_sandbox(events=600, lists=3, segments=1)
    dump = sandbox.dump()
    profiles = dump["profiles"]
    since = zulu(min(epoch(p["attributes"]["updated"]) for p in profiles) - 1)
    params = {"filter": f"greater-than(updated,{since})", "sort": "updated", "page[size]": "10"}
    first = call(sandbox, "/api/profiles", params)[1]
    moved = first["data"][0]["id"]
    touched_at = dump["anchor"] + 60
    answer = sandbox.post("/__sandbox/profiles/touch", {"ids": [moved], "updated": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(touched_at))})
    assert answer["ids"] == [moved]
    rest = ids_of(pages(sandbox, first["links"]["next"]))
    # keyset paging: the touched profile comes again, last, with its new time
    assert rest[-1] == moved and len(rest) == len(profiles) - 10 + 1
    assert next(p for p in sandbox.dump()["profiles"] if p["id"] == moved)["attributes"]["updated"] == \
        time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(touched_at))
    ties = [p["id"] for p in profiles[1:4]]
    sandbox.post("/__sandbox/profiles/touch", {"ids": ties, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                      time.gmtime(touched_at - 30))})
    boundary = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(touched_at - 30))
    after = ids_of(pages(sandbox, "/api/profiles", {"filter": f"greater-than(updated,{boundary})", "sort": "updated"}))
    assert after == [moved]                       # greater-than leaves out the three at the boundary

    group = dump["lists"][0]["id"]
    members = {m["profile_id"] for m in dump["list_members"] if m["list_id"] == group}
    newcomers = [p["id"] for p in profiles if p["id"] not in members][:3]
    first = call(sandbox, f"/api/lists/{group}/profiles", {"page[size]": "5"})[1]
    joined = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(dump["anchor"] + 120))
    answer = sandbox.post("/__sandbox/members/add", {
        "group_id": group, "profile_ids": newcomers + [first["data"][0]["id"]], "joined_group_at": joined})
    assert answer["added"] == newcomers          # a member already in keeps the time it joined
    rest = ids_of(pages(sandbox, first["links"]["next"]))
    assert rest[-3:] == sorted(newcomers) and len(ids_of([first])) + len(rest) == len(members) + 3
    now_in = {m["profile_id"] for m in sandbox.dump()["list_members"] if m["list_id"] == group}
    assert now_in == members | set(newcomers)
