"""The sandbox's deletions and changes, and the filters and sorts that find changes, over HTTP.

Each admin call (delete, members/add and members/remove, suppression/lift, touch) is checked
where its change shows: a deleted item is gone from every listing, per-id read, relationship and
include, with its children; a change is found by the filter of the changed item and, where Klaviyo
does not move the parent, missed by the parent's. Each change-finding filter is checked with every
operator the spec allows at a boundary rows sit on, sorted both ways, across pages, ties broken by
id; what the spec does not allow is refused. Expected values come from /__sandbox/dump."""
import calendar
import json
import time

import pytest


REVISION = "2026-07-15"
OMNICHANNEL = "2026-10-15"
OPS = {"greater-than": lambda a, b: a > b, "greater-or-equal": lambda a, b: a >= b,
       "less-than": lambda a, b: a < b, "less-or-equal": lambda a, b: a <= b, "equals": lambda a, b: a == b}
COMPARE = ("greater-than", "greater-or-equal", "less-than", "less-or-equal")
SUPPRESSED_AT = "subscriptions.email.marketing.suppression.timestamp"
# changes are dated this long after the anchor: a scheduled campaign was last updated up to 20 days
# after it (before its send), so only later is after every generated time
LATER = 40 * 86400


@pytest.fixture
def small(make_sandbox):
    return make_sandbox(events=1200, seed=11, lists=3, segments=2)


def call(sandbox, path, params=None, revision=REVISION):
    return sandbox.api(path, params, revision=revision)[:2]


def admin(sandbox, path, payload):
    return sandbox.admin(path, payload)


def ids(sandbox, path, params=None, revision=REVISION):
    """The ids of every page, following links.next as given."""
    found, url = [], path
    while url:
        status, body = call(sandbox, url, params, revision)
        assert status == 200, body
        found += [item["id"] for item in body["data"]]
        url, params = body["links"].get("next"), None
    return found


def zulu(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def epoch(text):
    return None if text is None else calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S+00:00"))


def channel(dump, campaign_id):
    return f"equals(messages.channel,'{dump['campaign_channels'][campaign_id]}')"


def refused(sandbox, path, params, *words, revision=REVISION):
    """A 400 `invalid` whose detail holds each of the words (the field, the operator)."""
    status, body = call(sandbox, path, params, revision)
    assert status == 400, body
    error = body["errors"][0]
    assert error["code"] == "invalid" and all(word in error["detail"] for word in words), error


def assert_finds(sandbox, path, field, ops, rows, stamps, bound=None, filters=(), size=2, revision=REVISION):
    """Each operator at a boundary rows sit on (the middle time unless given): exactly the rows it
    selects, each once, in the sort's order (ascending and descending, ties broken by id) across
    pages of `size` (None: the endpoint's own, where the revision allows no other).

    stamps(row) -> the row's epochs (a profile may hold several suppressions): a row matches when
    any does, and sorts by its latest."""
    values = sorted({s for row in rows for s in stamps(row) if s is not None})
    assert len(values) > 2, "too few distinct times to test a boundary"
    bound = values[len(values) // 2] if bound is None else bound
    for op in ops:
        chosen = [r for r in rows if any(s is not None and OPS[op](s, bound) for s in stamps(r))]
        assert chosen, op
        ordered = sorted(chosen, key=lambda r: (max(s for s in stamps(r) if s is not None), r["id"]))
        for direction in ("", "-"):
            params = {"filter": ",".join([*filters, f"{op}({field},{zulu(bound)})"]), "sort": direction + field}
            if size is not None:
                params["page[size]"] = str(size)
            want = [r["id"] for r in (ordered[::-1] if direction else ordered)]
            assert ids(sandbox, path, params, revision) == want, (op, direction)


def named(document, *item_ids):
    """Whether the JSON document names any of the ids (as a whole JSON string)."""
    text = json.dumps(document)
    return any(f'"{item_id}"' in text for item_id in item_ids)


def single(name):
    return lambda row: [epoch(row["attributes"][name])]


# --- deletions -----------------------------------------------------------------------------------
def test_a_deleted_campaign_leaves_with_its_messages_audiences_and_variations(small):
    dump = small.dump()
    campaign = next(c for c in dump["campaigns"] if len(c["relationships"]["campaign-messages"]["data"]) == 2
                    and not c["attributes"]["archived"])
    cid, flt = campaign["id"], channel(dump, campaign["id"])
    messages = [m["id"] for m in campaign["relationships"]["campaign-messages"]["data"]]
    omni = next(c for c in dump["omnichannel"]["campaigns"] if c["id"] == cid)
    audiences = [a["id"] for a in omni["relationships"]["campaign-audiences"]["data"]]
    variations = [v["id"] for v in dump["omnichannel"]["campaign_variations"]
                  if v["relationships"]["campaign-message"]["data"]["id"] in messages]
    assert cid in ids(small, "/api/campaigns", {"filter": flt})
    assert cid in ids(small, "/api/campaigns", None, OMNICHANNEL)

    status, answer = admin(small, "/__sandbox/delete", {"kind": "campaign", "id": cid})
    assert status == 200 and answer == {"kind": "campaign", "id": cid, "deleted": {
        "campaign": [cid], "campaign-audience": sorted(audiences), "campaign-message": sorted(messages),
        "campaign-variation": sorted(variations)}}

    for archived in ("true", "false"):
        assert cid not in ids(small, "/api/campaigns", {"filter": f"{flt},equals(archived,{archived})"})
        assert cid not in ids(small, "/api/campaigns", {"filter": f"equals(archived,{archived})"}, OMNICHANNEL)
    assert call(small, f"/api/campaigns/{cid}/campaign-messages")[0] == 404
    assert call(small, f"/api/campaigns/{cid}/campaign-messages", None, OMNICHANNEL)[0] == 404
    assert call(small, f"/api/campaigns/{cid}/campaign-audiences", None, OMNICHANNEL)[0] == 404
    for message in messages:
        assert call(small, f"/api/campaign-messages/{message}/campaign-variations", None, OMNICHANNEL)[0] == 404
    assert not set(messages) & set(ids(small, "/api/campaign-messages", {"page[size]": "100"}, OMNICHANNEL))
    after = small.dump()
    assert cid not in after["campaign_channels"]
    assert not named({k: after[k] for k in ("campaigns", "campaign_messages", "tags", "omnichannel")},
                     cid, *messages, *audiences, *variations)


def test_a_deleted_flow_leaves_with_its_actions_and_their_messages(small):
    dump = small.dump()
    flow = max(dump["flows"], key=lambda f: len(f["relationships"]["flow-actions"]["data"]))
    actions = [a["id"] for a in flow["relationships"]["flow-actions"]["data"]]
    messages = [m["id"] for a in dump["flow_actions"] if a["id"] in actions
                for m in a["relationships"]["flow-messages"]["data"]]
    status, answer = admin(small, "/__sandbox/delete", {"kind": "flow", "id": flow["id"]})
    assert status == 200 and answer["deleted"] == {"flow": [flow["id"]], "flow-action": sorted(actions),
                                                   "flow-message": sorted(messages)}
    archived = str(flow["attributes"]["archived"]).lower()
    assert flow["id"] not in ids(small, "/api/flows", {"filter": f"equals(archived,{archived})"})
    assert call(small, f"/api/flows/{flow['id']}/flow-actions")[0] == 404
    for action in actions:
        assert call(small, f"/api/flow-actions/{action}/flow-messages")[0] == 404
    _, listed = call(small, "/api/flows", {"include": "flow-actions,tags"})
    assert not {i["id"] for i in listed["included"]} & set(actions)
    after = small.dump()
    assert not named({k: after[k] for k in ("flows", "flow_actions", "flow_messages", "tags")},
                     flow["id"], *actions, *messages)


def test_a_deleted_flow_action_leaves_its_flow_whose_links_skip_it(small):
    dump = small.dump()
    flow = next(f for f in dump["flows"] if f["attributes"]["name"] == "Welcome Series")
    chain = [a["id"] for a in flow["relationships"]["flow-actions"]["data"]]
    gone, before, after = chain[2], chain[1], chain[3]      # a send-email with its message, between two
    message = next(a for a in dump["flow_actions"] if a["id"] == gone)["relationships"]["flow-messages"]["data"][0]
    status, answer = admin(small, "/__sandbox/delete", {"kind": "flow-action", "id": gone})
    assert status == 200 and answer["deleted"] == {"flow-action": [gone], "flow-message": [message["id"]]}
    _, body = call(small, f"/api/flows/{flow['id']}/flow-actions")
    assert [a["id"] for a in body["data"]] == [a for a in chain if a != gone]
    previous = next(a for a in body["data"] if a["id"] == before)
    assert previous["attributes"]["definition"]["links"]["next"] == after      # the flow still leads on
    assert call(small, f"/api/flow-actions/{gone}/flow-messages")[0] == 404
    _, listed = call(small, "/api/flows", {"include": "flow-actions"})
    refs = next(f for f in listed["data"] if f["id"] == flow["id"])["relationships"]["flow-actions"]["data"]
    assert gone not in [r["id"] for r in refs] and gone not in [i["id"] for i in listed["included"]]


def test_a_deleted_flow_message_leaves_its_action(small):
    dump = small.dump()
    action = next(a for a in dump["flow_actions"] if a["attributes"]["definition"]["type"] == "send-email")
    message = action["relationships"]["flow-messages"]["data"][0]["id"]
    assert admin(small, "/__sandbox/delete", {"kind": "flow-message", "id": message})[1]["deleted"] == {
        "flow-message": [message]}
    assert ids(small, f"/api/flow-actions/{action['id']}/flow-messages") == []
    flow = action["relationships"]["flow"]["data"]["id"]
    _, body = call(small, f"/api/flows/{flow}/flow-actions")
    served = next(a for a in body["data"] if a["id"] == action["id"])
    assert served["attributes"]["definition"]["data"]["message"] is None
    # the shape before 2025-10-15 took its options from the message: none now
    _, legacy = call(small, f"/api/flows/{flow}/flow-actions", None, "2025-07-15")
    served = next(a for a in legacy["data"] if a["id"] == action["id"])
    assert served["attributes"]["tracking_options"] is None and served["attributes"]["send_options"] is None


def test_a_deleted_template_leaves_the_messages_that_named_it(small):
    dump = small.dump()
    using = [m for m in dump["campaign_messages"] if (m["relationships"]["template"]["data"] or {}).get("id")]
    template = using[0]["relationships"]["template"]["data"]["id"]
    flow_messages = [m["id"] for m in dump["flow_messages"]
                     if m["attributes"]["definition"].get("template_id") == template]
    assert admin(small, "/__sandbox/delete", {"kind": "template", "id": template})[0] == 200
    assert template not in ids(small, "/api/templates")
    campaign = using[0]["relationships"]["campaign"]["data"]["id"]
    _, body = call(small, f"/api/campaigns/{campaign}/campaign-messages", {"include": "template"})
    served = next(m for m in body["data"] if m["id"] == using[0]["id"])
    assert served["relationships"]["template"].get("data") is None
    assert template not in [i["id"] for i in body["included"]]
    after = small.dump()
    assert all(m["attributes"]["definition"].get("template_id") is None
               for m in after["flow_messages"] if m["id"] in flow_messages)
    assert not named({k: after[k] for k in ("campaign_messages", "flow_messages", "flow_actions", "omnichannel")},
                     template)


def test_a_deleted_tag_leaves_what_it_tagged(small):
    dump = small.dump()

    def tagged_by(tag):
        return [r["id"] for r in tag["relationships"]["campaigns"]["data"] + tag["relationships"]["flows"]["data"]]

    tag = max(dump["tags"], key=lambda t: len(tagged_by(t)))
    tagged = tagged_by(tag)
    assert tagged and admin(small, "/__sandbox/delete", {"kind": "tag", "id": tag["id"]})[0] == 200
    assert tag["id"] not in ids(small, "/api/tags")
    _, flows = call(small, "/api/flows", {"include": "tags", "filter": "equals(archived,false)"})
    _, omni = call(small, "/api/campaigns", {"include": "tags", "page[size]": "100"}, OMNICHANNEL)
    for body in (flows, omni):
        assert tag["id"] not in [i["id"] for i in body["included"]]
        assert not named([item["relationships"]["tags"] for item in body["data"]], tag["id"])
    after = small.dump()
    still = [r for item in after["campaigns"] + after["flows"] + after["omnichannel"]["campaigns"]
             if item["id"] in tagged for r in item["relationships"]["tags"]["data"]]
    assert tag["id"] not in [r["id"] for r in still]
    assert not named(after["tag_groups"], tag["id"])
    assert {i["id"] for i in after["campaigns"] + after["flows"]} >= set(tagged)     # the tagged stay


@pytest.mark.parametrize("kind", ["list", "segment"])
def test_a_deleted_list_or_segment_leaves_with_its_memberships(small, kind):
    dump = small.dump()
    group = dump[f"{kind}s"][0]["id"]
    assert any(m[f"{kind}_id"] == group for m in dump[f"{kind}_members"])
    assert admin(small, "/__sandbox/delete", {"kind": kind, "id": group}) == (
        200, {"kind": kind, "id": group, "deleted": {kind: [group]}})
    assert group not in ids(small, f"/api/{kind}s")
    assert call(small, f"/api/{kind}s/{group}")[0] == 404
    assert call(small, f"/api/{kind}s/{group}/profiles")[0] == 404
    after = small.dump()
    assert not any(m[f"{kind}_id"] == group for m in after[f"{kind}_members"])
    assert not named(after["tags"], group)
    other = "segment" if kind == "list" else "list"      # the other kind is not asked for it
    assert admin(small, "/__sandbox/delete", {"kind": other, "id": dump[f"{kind}s"][1]["id"]})[0] == 404


def test_deletions_refuse_what_they_do_not_know(small):
    assert admin(small, "/__sandbox/delete", {"kind": "profile", "id": "x"})[0] == 400
    for kind in ("list", "segment", "campaign", "flow", "flow-action", "flow-message", "template", "tag"):
        status, body = admin(small, "/__sandbox/delete", {"kind": kind, "id": "missing"})
        assert status == 404 and "missing" in body["error"], kind


# --- members and suppressions -------------------------------------------------------------------
def test_removed_members_leave_the_group_and_its_count(small):
    dump = small.dump()
    group = dump["lists"][0]["id"]
    members = [m["profile_id"] for m in dump["list_members"] if m["list_id"] == group]
    outsider = next(p["id"] for p in dump["profiles"] if p["id"] not in members)
    status, answer = admin(small, "/__sandbox/members/remove", {"group_id": group,
                                                                "profile_ids": members[:3] + [outsider]})
    assert status == 200 and answer == {"removed": members[:3]}
    assert sorted(ids(small, f"/api/lists/{group}/profiles", {"page[size]": "7"})) == sorted(members[3:])
    _, body = call(small, f"/api/lists/{group}", {"additional-fields[list]": "profile_count"})
    assert body["data"]["attributes"]["profile_count"] == len(members) - 3
    assert admin(small, "/__sandbox/members/remove", {"group_id": "nope", "profile_ids": []})[0] == 404
    assert admin(small, "/__sandbox/members/remove", {"group_id": group, "profile_ids": ["nope"]})[0] == 404


def test_added_members_are_found_by_joined_group_at(small):
    dump = small.dump()
    segment = dump["segments"][0]["id"]
    members = {m["profile_id"] for m in dump["segment_members"] if m["segment_id"] == segment}
    newcomers = [p["id"] for p in dump["profiles"] if p["id"] not in members][:4]
    joined = dump["anchor"] + LATER
    assert admin(small, "/__sandbox/members/add", {"group_id": segment, "profile_ids": newcomers,
                                                   "joined_group_at": zulu(joined)})[1]["added"] == newcomers
    found = ids(small, f"/api/segments/{segment}/profiles",
                {"filter": f"greater-or-equal(joined_group_at,{zulu(joined)})", "page[size]": "3"})
    assert found == sorted(newcomers)           # one second for all four: in id order
    _, body = call(small, f"/api/segments/{segment}", {"additional-fields[segment]": "profile_count"})
    assert body["data"]["attributes"]["profile_count"] == len(members) + 4


def test_a_lifted_suppression_moves_the_profile_not_the_suppression_filter(small):
    dump = small.dump()
    suppressed = [p for p in dump["profiles"] if p["attributes"]["subscriptions"]["email"]["marketing"]["suppression"]]
    free = next(p["id"] for p in dump["profiles"] if p not in suppressed)
    lifted = [p["id"] for p in suppressed[:2]]
    at = dump["anchor"] + LATER
    status, answer = admin(small, "/__sandbox/suppression/lift", {"profile_ids": lifted + [free], "updated": zulu(at)})
    assert status == 200 and answer == {"lifted": lifted, "updated": zulu(at).replace("Z", "+00:00")}
    params = {"filter": f"greater-than(updated,{zulu(at - 1)})", "additional-fields[profile]": "subscriptions"}
    _, body = call(small, "/api/profiles", params)
    assert sorted(p["id"] for p in body["data"]) == sorted(lifted)        # the unsuppressed one did not change
    for profile in body["data"]:
        marketing = profile["attributes"]["subscriptions"]["email"]["marketing"]
        assert marketing["suppression"] == [] and marketing["can_receive_email_marketing"] is True
        assert marketing["consent"] in ("SUBSCRIBED", "NEVER_SUBSCRIBED") and marketing["last_updated"] == \
            zulu(at).replace("Z", "+00:00")
    # a lift leaves no suppression to be found by its timestamp: only `updated` sees it
    found = ids(small, "/api/profiles", {"filter": "greater-than(" + SUPPRESSED_AT + ",2000-01-01T00:00:00Z)"})
    assert not set(found) & set(lifted) and len(found) == len(suppressed) - 2
    assert admin(small, "/__sandbox/suppression/lift", {"profile_ids": ["nope"]})[0] == 404


# --- touches: a child's change is its own ---------------------------------------------------------
def test_a_touched_campaign_is_found_by_updated_at_in_both_views(small):
    dump = small.dump()
    campaign = next(c for c in dump["campaigns"] if not c["attributes"]["archived"])
    at = dump["anchor"] + LATER
    status, answer = admin(small, "/__sandbox/touch", {"kind": "campaign", "id": campaign["id"], "updated": zulu(at),
                                                       "name": "Renamed campaign"})
    assert status == 200 and answer == {"kind": "campaign", "id": campaign["id"],
                                        "updated": zulu(at).replace("Z", "+00:00"), "name": "Renamed campaign"}
    since = f"greater-than(updated_at,{zulu(at - 1)})"
    _, body = call(small, "/api/campaigns", {"filter": f"{channel(dump, campaign['id'])},{since}"})
    assert [(c["id"], c["attributes"]["name"]) for c in body["data"]] == [(campaign["id"], "Renamed campaign")]
    _, body = call(small, "/api/campaigns", {"filter": since}, OMNICHANNEL)
    assert [(c["id"], c["attributes"]["definition"]["name"]) for c in body["data"]] == [
        (campaign["id"], "Renamed campaign")]


def test_a_touched_flow_action_or_message_is_missed_by_its_parents_filter(small):
    dump = small.dump()
    action = next(a for a in dump["flow_actions"] if a["relationships"]["flow-messages"]["data"])
    flow = action["relationships"]["flow"]["data"]["id"]
    message = action["relationships"]["flow-messages"]["data"][0]["id"]
    at = dump["anchor"] + LATER
    since = f"greater-than(updated,{zulu(at - 1)})"
    assert admin(small, "/__sandbox/touch", {"kind": "flow-message", "id": message, "updated": zulu(at),
                                             "name": "Renamed message"})[0] == 200
    _, body = call(small, f"/api/flow-actions/{action['id']}/flow-messages", {"filter": since})
    assert [(m["id"], m["attributes"]["definition"]["name"]) for m in body["data"]] == [(message, "Renamed message")]
    assert ids(small, f"/api/flows/{flow}/flow-actions", {"filter": since}) == []
    assert admin(small, "/__sandbox/touch", {"kind": "flow-action", "id": action["id"], "updated": zulu(at)})[0] == 200
    assert ids(small, f"/api/flows/{flow}/flow-actions", {"filter": since}) == [action["id"]]
    for archived in ("true", "false"):
        assert ids(small, "/api/flows", {"filter": f"equals(archived,{archived}),{since}"}) == []
    assert admin(small, "/__sandbox/touch", {"kind": "flow", "id": flow, "updated": zulu(at)})[0] == 200
    assert flow in ids(small, "/api/flows", {"filter": f"equals(archived,true),{since}"}) + \
        ids(small, "/api/flows", {"filter": since})


def test_a_touched_template_is_found_by_updated(small):
    dump = small.dump()
    template = next(t for t in dump["templates"] if t["attributes"]["updated"] is None)     # never updated before
    at = dump["anchor"] + LATER
    assert admin(small, "/__sandbox/touch", {"kind": "template", "id": template["id"], "updated": zulu(at)})[0] == 200
    _, body = call(small, "/api/templates", {"filter": f"equals(updated,{zulu(at)})"})
    assert [t["id"] for t in body["data"]] == [template["id"]]


def test_touches_refuse_what_they_cannot_change(small):
    dump = small.dump()
    action, template = dump["flow_actions"][0]["id"], dump["templates"][0]["id"]
    assert admin(small, "/__sandbox/touch", {"kind": "tag", "id": dump["tags"][0]["id"]})[0] == 400
    assert admin(small, "/__sandbox/touch", {"kind": "flow-action", "id": action, "name": "x"}) == (
        400, {"error": "a flow action has no name"})
    assert admin(small, "/__sandbox/touch", {"kind": "template", "id": template, "updated": "soon"})[0] == 400
    assert admin(small, "/__sandbox/touch", {"kind": "campaign", "id": template})[0] == 404
    # without a time, the change is dated now
    before = int(time.time())
    _, answer = admin(small, "/__sandbox/touch", {"kind": "template", "id": template})
    assert before <= epoch(answer["updated"]) <= int(time.time())


# --- the filters and sorts that find changes ------------------------------------------------------
def _tie(sandbox, kind, items, name):
    """The second earliest and second latest items moved to the middle item's time: the boundary
    returned holds a tie of three for the id to break, with items before and after it."""
    ordered = sorted(items, key=lambda item: epoch(item["attributes"][name]))
    at = epoch(ordered[len(ordered) // 2]["attributes"][name])
    for item in (ordered[1], ordered[-2]):
        assert admin(sandbox, "/__sandbox/touch", {"kind": kind, "id": item["id"], "updated": zulu(at)})[0] == 200
    return at


# before 2026-04-15 campaigns come 100 a page, no page[size]
@pytest.mark.parametrize("revision, size", [(REVISION, 2), ("2025-04-15", None)])
def test_campaigns_by_updated_at(small, revision, size):
    dump = small.dump()
    email = [c for c in dump["campaigns"] if dump["campaign_channels"][c["id"]] == "email"
             and not c["attributes"]["archived"]]
    bound = _tie(small, "campaign", email, "updated_at")
    rows = [c for c in small.dump()["campaigns"] if c["id"] in {e["id"] for e in email}]
    assert_finds(small, "/api/campaigns", "updated_at", COMPARE, rows, single("updated_at"), bound,
                 filters=["equals(messages.channel,'email')"], size=size, revision=revision)
    refused(small, "/api/campaigns",
            {"filter": "equals(messages.channel,'email'),equals(updated_at,2026-01-01T00:00:00Z)"},
            "'equals'", "'updated_at'", revision=revision)


def test_omnichannel_campaigns_and_messages_by_updated(small):
    dump = small.dump()
    rows = [c for c in dump["omnichannel"]["campaigns"] if not c["attributes"]["definition"]["archived"]]
    assert_finds(small, "/api/campaigns", "updated_at", COMPARE, rows, single("updated_at"), size=5,
                 revision=OMNICHANNEL)
    assert_finds(small, "/api/campaign-messages", "updated", COMPARE, dump["omnichannel"]["campaign_messages"],
                 single("updated"), size=7, revision=OMNICHANNEL)
    refused(small, "/api/campaign-messages", {"filter": "equals(updated,2026-01-01T00:00:00Z)"}, "'equals'",
            "'updated'", revision=OMNICHANNEL)
    # before 2026-10-15 a campaign's messages cannot be filtered at all: a change to one is found only
    # through its campaign's updated_at or a full read
    refused(small, f"/api/campaigns/{rows[0]['id']}/campaign-messages",
            {"filter": "greater-than(updated_at,2026-01-01T00:00:00Z)"}, "'filter'")


def test_flows_by_updated(small):
    dump = small.dump()
    live = [f for f in dump["flows"] if not f["attributes"]["archived"]]
    bound = _tie(small, "flow", live, "updated")
    rows = [f for f in small.dump()["flows"] if not f["attributes"]["archived"]]
    assert_finds(small, "/api/flows", "updated", (*COMPARE, "equals"), rows, single("updated"), bound)
    refused(small, "/api/flows", {"filter": "any(updated,[2026-01-01T00:00:00Z])"}, "'any'", "'updated'")


def test_flow_actions_by_updated(small):
    dump = small.dump()
    flow = next(f for f in dump["flows"] if f["attributes"]["name"] == "Welcome Series")
    chain = {a["id"] for a in flow["relationships"]["flow-actions"]["data"]}
    actions = [a for a in dump["flow_actions"] if a["id"] in chain]
    bound = _tie(small, "flow-action", actions, "updated")
    rows = [a for a in small.dump()["flow_actions"] if a["id"] in chain]
    for revision in (REVISION, "2025-07-15"):        # the older shape carries updated too
        assert_finds(small, f"/api/flows/{flow['id']}/flow-actions", "updated", (*COMPARE, "equals"), rows,
                     single("updated"), bound, revision=revision)
    refused(small, f"/api/flows/{flow['id']}/flow-actions", {"sort": "name"}, "'name'", "sort")


def test_flow_messages_by_updated(small):
    dump = small.dump()
    action = next(a for a in dump["flow_actions"] if a["relationships"]["flow-messages"]["data"])
    path = f"/api/flow-actions/{action['id']}/flow-messages"
    first = action["relationships"]["flow-messages"]["data"][0]["id"]
    message = next(m for m in dump["flow_messages"] if m["id"] == first)
    at = epoch(message["attributes"]["updated"])
    for op, hit in (("equals", True), ("greater-or-equal", True), ("less-or-equal", True), ("greater-than", False),
                    ("less-than", False)):
        for sort in ("updated", "-updated"):
            assert ids(small, path, {"filter": f"{op}(updated,{zulu(at)})", "sort": sort}) == \
                ([message["id"]] if hit else []), (op, sort)
    refused(small, path, {"sort": "status"}, "'status'", "sort")


def test_templates_by_updated(small):
    dump = small.dump()
    dated = [t for t in dump["templates"] if t["attributes"]["updated"] is not None]
    bound = _tie(small, "template", dated, "updated")
    # a template never updated has no `updated`: no operator selects it
    assert_finds(small, "/api/templates", "updated", (*COMPARE, "equals"), small.dump()["templates"],
                 single("updated"), bound, size=3)


@pytest.mark.parametrize("kind", ["list", "segment"])
def test_lists_and_segments_by_updated(make_sandbox, kind):
    sandbox = make_sandbox(events=600, lists=8, segments=8)
    rows = sandbox.dump()[f"{kind}s"]
    assert_finds(sandbox, f"/api/{kind}s", "updated", ("greater-than",), rows, single("updated"), size=3)


@pytest.mark.parametrize("kind", ["list", "segment"])
def test_lists_and_segments_take_only_greater_than_on_updated(small, kind):
    for op in ("greater-or-equal", "less-than", "less-or-equal", "equals"):
        refused(small, f"/api/{kind}s", {"filter": f"{op}(updated,2026-01-01T00:00:00Z)"}, f"'{op}'", "'updated'")


@pytest.mark.parametrize("kind", ["list", "segment"])
def test_members_by_joined_group_at(small, kind):
    dump = small.dump()
    group = dump[f"{kind}s"][0]["id"]
    rows = [{"id": m["profile_id"], "attributes": m} for m in dump[f"{kind}_members"] if m[f"{kind}_id"] == group]
    assert_finds(small, f"/api/{kind}s/{group}/profiles", "joined_group_at", COMPARE, rows,
                 single("joined_group_at"), size=7)
    refused(small, f"/api/{kind}s/{group}/profiles", {"filter": "equals(joined_group_at,2026-01-01T00:00:00Z)"},
            "'equals'", "'joined_group_at'")
    refused(small, f"/api/{kind}s/{group}/profiles", {"sort": "updated"}, "'updated'", "sort")


def test_bulk_joins_share_a_second_and_page_by_id(small):
    dump = small.dump()
    group = dump["lists"][0]["id"]
    joined = {}
    for m in dump["list_members"]:
        if m["list_id"] == group:
            joined.setdefault(m["joined_group_at"], []).append(m["profile_id"])
    second, tied = max(joined.items(), key=lambda pair: len(pair[1]))
    assert len(tied) > 3            # the generated bulk import
    at = zulu(epoch(second))
    filters = f"greater-or-equal(joined_group_at,{at}),less-or-equal(joined_group_at,{at})"
    assert ids(small, f"/api/lists/{group}/profiles", {"filter": filters, "page[size]": "2"}) == sorted(tied)
    assert ids(small, f"/api/lists/{group}/profiles", {"filter": filters, "page[size]": "2",
                                                       "sort": "-joined_group_at"}) == sorted(tied, reverse=True)


def test_profiles_by_suppression_timestamp(make_sandbox):
    sandbox = make_sandbox(events=3000, lists=1, segments=1)
    profiles = sandbox.dump()["profiles"]

    def stamps(profile):
        marketing = profile["attributes"]["subscriptions"]["email"]["marketing"]
        return [epoch(s["timestamp"]) for s in marketing["suppression"]]

    assert any(len(stamps(p)) > 1 for p in profiles)      # twice suppressed: matched by either, sorted by the latest
    assert_finds(sandbox, "/api/profiles", SUPPRESSED_AT, COMPARE, [p for p in profiles if stamps(p)], stamps, size=3)
    refused(sandbox, "/api/profiles", {"filter": f"equals({SUPPRESSED_AT},2026-01-01T00:00:00Z)"}, "'equals'",
            f"'{SUPPRESSED_AT}'")
    refused(sandbox, "/api/profiles", {"filter": "greater-or-equal(updated,2026-01-01T00:00:00Z)"},
            "'greater-or-equal'", "'updated'")


def test_a_datetime_is_read_with_its_fraction_and_offset(small):
    dump = small.dump()
    template = next(t for t in dump["templates"] if t["attributes"]["updated"] is not None)
    at = epoch(template["attributes"]["updated"])
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at + 7200)) + "+02:00"     # the same instant
    assert template["id"] in ids(small, "/api/templates", {"filter": f"equals(updated,{local})"})
    later = zulu(at).replace("Z", ".500000Z")      # half a second after it: not cut to the second
    assert template["id"] not in ids(small, "/api/templates", {"filter": f"greater-or-equal(updated,{later})"})
    assert template["id"] in ids(small, "/api/templates", {"filter": f"less-than(updated,{later})"})
