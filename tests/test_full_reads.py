"""Full reads of the resource streams carry deletions: their RECORDs carry a table version and an
ACTIVATE_VERSION follows the last of them, once every `full_refresh_days` (issue 21). A full read
that does not end activates nothing."""
import time

from tests.conftest import catalog_selecting, run_killed, run_tap

RESOURCES = ("lists", "global_exclusions", "campaigns", "campaign_messages", "flows", "flow_actions",
             "flow_messages", "templates", "tags", "list_members", "segment_members")
ALWAYS_FULL = {"lists", "tags"}     # no filter finds their changes: every run reads them in full


def _activations(run_or_messages):
    messages = getattr(run_or_messages, "messages", run_or_messages)
    return {m["stream"]: m["version"] for m in messages if m["type"] == "ACTIVATE_VERSION"}


def _versions(messages, stream):
    return {m.get("version") for m in messages if m["type"] == "RECORD" and m["stream"] == stream}


def test_a_full_read_tags_its_rows_and_activates_its_version_after_the_last(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    catalog = catalog_selecting(*RESOURCES, "receive")
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    activated = _activations(first)
    assert set(activated) == set(RESOURCES)
    version = activated["lists"]
    assert len(set(activated.values())) == 1 and abs(version / 1000 - time.time()) < 120
    for stream in RESOURCES:
        assert _versions(first.messages, stream) <= {version}
        position = next(i for i, m in enumerate(first.messages) if m["type"] == "ACTIVATE_VERSION"
                        and m["stream"] == stream)
        assert not any(m["type"] == "RECORD" and m["stream"] == stream for m in first.messages[position:]), \
            f"{stream}: a row after its ACTIVATE_VERSION"
        assert "full_read_at" in first.last_state["bookmarks"][stream]
    # an event stream has no versions: it is never read in full again
    assert _versions(first.messages, "receive") == {None}
    assert "full_read_at" not in first.last_state["bookmarks"]["receive"]

    # within full_refresh_days (7): only the streams Klaviyo gives no filter for changes are read in
    # full again (lists with their counts, tags); the others read their changes, with no version
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=first.last_state)
    assert set(_activations(second)) == ALWAYS_FULL
    for stream in set(RESOURCES) - ALWAYS_FULL:
        assert _versions(second.messages, stream) <= {None}
        assert second.last_state["bookmarks"][stream]["full_read_at"] == \
            first.last_state["bookmarks"][stream]["full_read_at"]
    # full_refresh_days 0: every run is a full read
    time.sleep(1)
    third = run_tap(tmp_path, sandbox.config(full_refresh_days=0), catalog=catalog, state=second.last_state)
    assert set(_activations(third)) == set(RESOURCES) and min(_activations(third).values()) > version


def test_a_killed_full_read_activates_nothing_and_the_next_run_reads_in_full(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300, latency=0.2)
    catalog = catalog_selecting(*RESOURCES)
    config = sandbox.config(concurrency=2)
    killed = run_killed(tmp_path, config, catalog, 2.0)
    activated = _activations(killed)
    records = {m["stream"] for m in killed if m["type"] == "RECORD"}
    assert records - set(activated), "the kill came after every stream was complete; nothing was tested"
    states = [m["value"] for m in killed if m["type"] == "STATE"]
    dated = {s for s, b in (states[-1]["bookmarks"] if states else {}).items() if "full_read_at" in b}
    assert dated <= set(activated), "a full read dated in the state without its ACTIVATE_VERSION"
    resumed = run_tap(tmp_path, config, catalog=catalog, state=states[-1] if states else None)
    # what the kill cut is read in full again (with the parents it hangs from, and what is always read
    # in full); what had ended reads its changes
    assert set(RESOURCES) - set(activated) <= set(_activations(resumed))
    assert all("full_read_at" in resumed.last_state["bookmarks"][stream] for stream in RESOURCES)


def test_a_stream_the_revision_lacks_is_never_activated_empty(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("campaign_variations", "tags"))
    assert set(_activations(run)) == {"tags"}


def test_a_bad_full_read_date_in_the_state_means_a_full_read(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    state = {"bookmarks": {"templates": {"since": "2026-12-01T00:00:00Z", "full_read_at": "last tuesday",
                                         "revision": "2026-07-15"}}}
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("templates"), state=state)
    assert set(_activations(run)) == {"templates"}
    assert any("full_read_at" in line and "WARNING" in line for line in run.stderr.splitlines())


CHANGING = ("campaigns", "campaign_messages", "flows", "flow_actions", "flow_messages", "templates",
            "list_members", "segment_members", "global_exclusions")


def _rows(run, stream):
    return run.records(stream)


def test_between_full_reads_a_run_reads_what_changed_and_the_children_of_changed_parents(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    catalog = catalog_selecting(*CHANGING)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    dump = sandbox.dump()
    lists = len(dump["lists"])
    segments = len(dump["segments"])

    time.sleep(1.1)
    sandbox.post("/__sandbox/stats/reset", {})
    quiet = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=first.last_state)
    assert not quiet.records(), "a run with nothing changed sent rows"
    requests = sandbox.stats()["by_family"]
    # one request per request chain of each root (campaigns: channel x archived; flows: archived),
    # none for the children of unchanged parents; the members: the lists, then one per list
    assert requests["campaigns"] == 6 and requests["flows"] == 2 and requests["templates"] == 1
    assert "campaign_messages" not in requests and "flow_actions" not in requests and "flow_messages" not in requests
    assert requests["list_profiles"] == lists and requests["segment_profiles"] == segments
    assert requests["profiles"] == 1

    campaign = dump["campaigns"][1]["id"]
    flow_message = dump["flow_messages"][0]["id"]
    message_action = dump["flow_messages"][0]["relationships"]["flow-action"]["data"]["id"]
    message_flow = next(a["relationships"]["flow"]["data"]["id"] for a in dump["flow_actions"] if a["id"] == message_action)
    flow = next(f["id"] for f in dump["flows"] if f["id"] != message_flow)
    template = dump["templates"][0]["id"]
    for kind, item in (("campaign", campaign), ("flow-message", flow_message), ("template", template), ("flow", flow)):
        sandbox.post("/__sandbox/touch", {"kind": kind, "id": item})
    group = dump["lists"][0]["id"]
    joined = next(p["id"] for p in dump["profiles"]
                  if not any(m["list_id"] == group and m["profile_id"] == p["id"] for m in dump["list_members"]))
    sandbox.post("/__sandbox/members/add", {"group_id": group, "profile_ids": [joined]})
    segment = dump["segments"][0]["id"]
    entered = next(p["id"] for p in dump["profiles"] if not any(
        m["segment_id"] == segment and m["profile_id"] == p["id"] for m in dump["segment_members"]))
    sandbox.post("/__sandbox/members/add", {"group_id": segment, "profile_ids": [entered]})
    time.sleep(1.1)
    changed = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=quiet.last_state)
    assert {r["id"] for r in changed.records("campaigns")} == {campaign}
    messages = {m["id"] for m in sandbox.dump()["campaign_messages"]
                if m["relationships"]["campaign"]["data"]["id"] == campaign}
    assert messages and {r["id"] for r in changed.records("campaign_messages")} == messages
    assert {r["id"] for r in changed.records("templates")} == {template}
    assert {r["id"] for r in changed.records("flows")} == {flow}
    actions = {a["id"] for a in dump["flow_actions"] if a["relationships"]["flow"]["data"]["id"] == flow}
    assert actions and {r["id"] for r in changed.records("flow_actions")} == actions
    assert {r["flow_action_id"] for r in changed.records("flow_messages")} <= actions
    assert [(r["list_id"], r["profile_id"]) for r in changed.records("list_members")] == [(group, joined)]
    assert [(r["segment_id"], r["profile_id"]) for r in changed.records("segment_members")] == [(segment, entered)]
    # a flow message changed without its flow: no filter sees it between full reads
    assert flow_message not in {r["id"] for r in changed.records("flow_messages")}

    full = run_tap(tmp_path, sandbox.config(full_refresh_days=0), catalog=catalog, state=changed.last_state)
    assert flow_message in {r["id"] for r in full.records("flow_messages")}
    assert set(_activations(full)) == set(CHANGING)


def test_at_2026_10_15_the_campaign_streams_read_their_changes_and_a_new_revision_reads_in_full(make_sandbox,
                                                                                                 tmp_path):
    sandbox = make_sandbox(events=300)
    streams = ("campaigns", "campaign_messages", "campaign_variations", "campaign_audiences")
    catalog = catalog_selecting(*streams)
    old = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    assert set(_activations(old)) == {"campaigns", "campaign_messages"}     # 2026-07-15 has no other two
    # another revision reads in full: its requests (and campaign messages' endpoint) are others
    config = sandbox.config(revision="2026-10-15")
    first = run_tap(tmp_path, config, catalog=catalog, state=old.last_state)
    assert set(_activations(first)) == set(streams)
    campaign = sandbox.dump()["omnichannel"]["campaigns"][2]["id"]
    sandbox.post("/__sandbox/touch", {"kind": "campaign", "id": campaign})
    time.sleep(1.1)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.last_state)
    assert not _activations(second)
    assert {r["id"] for r in second.records("campaigns")} == {campaign}
    assert {r["campaign_id"] for r in second.records("campaign_audiences")} == {campaign}
    # its messages are a root of their own from 2026-10-15: unchanged, not read again
    assert not second.records("campaign_messages")
