"""Issue 22, marketing: segments, tag_groups, images, push_tokens and accounts, and the flows stream's
`definition` column (unselected by default; one GET /api/flows/{id} per flow when selected).

Every field of every row against the sandbox's dump, over HTTP, the tap a real process; the
requests each sends (sparse fieldsets, page sizes, filters); full reads with ACTIVATE_VERSION and
reads of changes between them where the spec has a filter for them; an older revision.
"""
import re
import time

import pytest

from tap_klaviyo import revisions
from tap_klaviyo.streams import BY_NAME
from tests.conftest import RequestLog, catalog_selecting, log_lines, logged_sandbox, run_tap
from tests.sandbox import entities
from tests.test_optin_streams import check_against_schema, deselecting, keyed, schemas_of

MARKETING = ("segments", "tag_groups", "images", "push_tokens", "accounts")
FLOW_BY_ID = "/api/flows/[^/]+"        # GET /api/flows/{id} (fullmatch: not the flow-actions path)
NOT_SEGMENT = ("opt_in_process", "profile_count")     # the sandbox keeps lists' attributes on segments too


def selecting_definition(catalog):
    """catalog with the flows stream's `definition` column selected."""
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "flows":
            for item in entry["metadata"]:
                if item["breadcrumb"] == ["properties", "definition"]:
                    item["metadata"]["selected"] = True
    return catalog


def expected(dump, stream, revision_definition=None):
    """{id: row} of a stream from the dump: id, the owner's id, every attribute under its API name."""
    if stream == "flows":
        rows = {}
        for flow in dump["flows"]:
            row = {"id": flow["id"], **flow["attributes"]}
            if revision_definition is not None:
                row["definition"] = revision_definition(dump["flow_definitions"][flow["id"]])
            rows[flow["id"]] = row
        return rows
    rows = {}
    for resource in dump["tag_groups" if stream == "tag_groups" else stream]:
        row = {"id": resource["id"]}
        if stream == "push_tokens":
            row["profile_id"] = resource["relationships"]["profile"]["data"]["id"]
        row.update((k, v) for k, v in resource["attributes"].items() if not (stream == "segments" and k in NOT_SEGMENT))
        rows[resource["id"]] = row
    return rows


def _activations(run):
    return {m["stream"]: m["version"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}


@pytest.fixture(scope="module")
def account():
    with logged_sandbox(events=300, seed=11, lists=3, segments=3) as sandbox:
        yield sandbox


def test_every_field_of_every_row_and_one_definition_request_per_flow(account, tmp_path):
    account.log.clear()
    account.post("/__sandbox/stats/reset", {})
    run = run_tap(tmp_path, account.config(), catalog=selecting_definition(catalog_selecting(*MARKETING, "flows")))
    dump, stats = account.dump(), account.stats()
    got, schemas = run.by_stream(), schemas_of(run)
    assert set(schemas) == {*MARKETING, "flows"}
    for stream in (*MARKETING, "flows"):
        rows = keyed(stream, got.get(stream, []))
        want = expected(dump, stream, (lambda d: d) if stream == "flows" else None)
        assert want, f"{stream}: the sandbox holds nothing to compare"
        assert set(rows) == set(want), f"{stream}: keys differ"
        for key, row in rows.items():
            assert row == want[key], f"{stream} {key}"
        assert schemas[stream]["key_properties"] == list(BY_NAME[stream].key) == ["id"]
        check_against_schema(stream, schemas[stream]["schema"], rows.values())
    # read in full (a first run), each activated after its last row
    assert set(_activations(run)) == {*MARKETING, "flows"}
    # the data exercises what the spec allows: a hidden image, a token without metadata, a segment
    # definition, a flow with no trigger and no action, a profile filter, reentry criteria
    assert any(r["hidden"] for r in got["images"]) and any(r["metadata"] is None for r in got["push_tokens"])
    assert all(r["definition"]["condition_groups"] for r in got["segments"])
    definitions = [r["definition"] for r in got["flows"]]
    assert any(d["triggers"] == [] and d["actions"] == [] and d["entry_action_id"] is None for d in definitions)
    assert any(d["profile_filter"] for d in definitions) and all("reentry_criteria" in d for d in definitions)
    # a flow's definition lists its actions as the flow-actions endpoint defines them
    actions = {a["id"]: a["attributes"]["definition"] for a in dump["flow_actions"]}
    for flow in dump["flows"]:
        ids = [ref["id"] for ref in flow["relationships"]["flow-actions"]["data"]]
        assert keyed("flows", got["flows"])[flow["id"]]["definition"]["actions"] == [actions[i] for i in ids]

    # exactly one S-tier detail request per flow, asking for the definition alone
    detail = account.log.queries(FLOW_BY_ID)
    assert len(detail) == len(dump["flows"]) == stats["by_family"]["flow"]
    assert all(q == {"additional-fields[flow]": "definition", "fields[flow]": "definition"} for q in detail)
    assert stats["throttled"] == 0
    # the largest page each list allows, no sparse fieldset when every column is selected
    for path, size in (("/api/segments", "10"), ("/api/tag-groups", "25"), ("/api/images", "100"),
                       ("/api/push-tokens", "100")):
        queries = [q for q in account.log.queries(path) if "page[cursor]" not in q]
        assert queries and all(q.get("page[size]") == size for q in queries), path
    for path, kind in (("/api/segments", "segment"), ("/api/images", "image"), ("/api/accounts", "account")):
        assert all(f"fields[{kind}]" not in q and f"additional-fields[{kind}]" not in q
                   for q in account.log.queries(path)), path
    # a push token's profile id is the relationship's data, which comes with include=profile
    assert all(q["include"] == "profile" and q["fields[profile]"] == "created"
               for q in account.log.queries("/api/push-tokens"))
    assert account.log.queries("/api/accounts") == [{}]


def test_definition_unselected_is_no_request_and_no_column(account, tmp_path):
    """The discovered catalog leaves flows.definition out: no GET /api/flows/{id}, no column. A
    deselected column of the new streams is left out of the request and the rows."""
    dropped = {"segments": ["definition", "is_starred"], "images": ["image_url"], "push_tokens": ["metadata"],
               "accounts": ["contact_information"], "tag_groups": ["exclusive"]}
    catalog = deselecting(catalog_selecting(*MARKETING, "flows"), dropped)
    flows_meta = next(e for e in catalog["streams"] if e["tap_stream_id"] == "flows")["metadata"]
    assert {"inclusion": "available", "selected-by-default": False} == \
        next(m["metadata"] for m in flows_meta if m["breadcrumb"] == ["properties", "definition"])
    account.log.clear()
    run = run_tap(tmp_path, account.config(), catalog=catalog)
    dump = account.dump()
    schemas = schemas_of(run)
    assert account.log.queries(FLOW_BY_ID) == []
    assert "definition" not in schemas["flows"]["schema"]["properties"]
    assert keyed("flows", run.records("flows")) == expected(dump, "flows")
    for stream, columns in dropped.items():
        assert not set(columns) & set(schemas[stream]["schema"]["properties"]), stream
        rows = keyed(stream, run.records(stream))
        want = expected(dump, stream)
        assert set(rows) == set(want), stream
        for key, row in rows.items():
            assert row == {k: v for k, v in want[key].items() if k not in columns}, (stream, key)
    kinds = {"segments": "segment", "images": "image", "push_tokens": "push-token", "accounts": "account",
             "tag_groups": "tag-group"}
    for stream, columns in dropped.items():
        path = BY_NAME[stream].path
        queries = account.log.queries(path)
        assert queries, stream
        for query in queries:
            if "page[cursor]" in query:
                continue
            fields = set(query[f"fields[{kinds[stream]}]"].split(","))
            assert fields and not fields & set(columns), (stream, fields)


def test_changes_between_full_reads_and_deletions_in_the_next_full_read(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300, segments=3)
    sandbox.log = RequestLog(sandbox)
    catalog = selecting_definition(catalog_selecting(*MARKETING, "flows"))
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    assert set(_activations(first)) == {*MARKETING, "flows"}
    dump = sandbox.dump()
    segment, image, flow = dump["segments"][1]["id"], dump["images"][2]["id"], dump["flows"][3]["id"]
    sandbox.post("/__sandbox/marketing/touch", {"kind": "segment", "id": segment, "name": "VIP buyers"})
    sandbox.post("/__sandbox/marketing/touch", {"kind": "image", "id": image, "name": "Hero"})
    sandbox.post("/__sandbox/touch", {"kind": "flow", "id": flow, "name": "Welcome, renamed"})
    time.sleep(1.1)     # the next run starts after the changes' second

    sandbox.log.clear()
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=first.last_state)
    dump = sandbox.dump()
    # no filter finds a tag group's, a push token's or the account's change: read in full every run
    assert set(_activations(second)) == {"tag_groups", "push_tokens", "accounts"}
    assert keyed("segments", second.records("segments")) == {segment: expected(dump, "segments")[segment]}
    assert second.records("segments")[0]["name"] == "VIP buyers"
    assert keyed("images", second.records("images")) == {image: expected(dump, "images")[image]}
    assert keyed("flows", second.records("flows")) == {flow: expected(dump, "flows", lambda d: d)[flow]}
    assert keyed("push_tokens", second.records("push_tokens")) == expected(dump, "push_tokens")
    # the filters the spec allows: segments greater-than only (get_segments), images gt/ge/lt/le
    segment_filters = [q["filter"] for q in sandbox.log.queries("/api/segments")]
    assert segment_filters and all(re.fullmatch(r"greater-than\(updated,[^,)]+\)", f) for f in segment_filters)
    image_filters = [q["filter"] for q in sandbox.log.queries("/api/images")]
    assert image_filters and all(re.fullmatch(r"greater-or-equal\(updated_at,[^,)]+\),less-than\(updated_at,[^,)]+\)",
                                              f) for f in image_filters)
    # one definition request: the changed flow's
    assert [q for q in sandbox.log.queries(FLOW_BY_ID)] == [{"additional-fields[flow]": "definition",
                                                            "fields[flow]": "definition"}]
    assert [p for p, _ in sandbox.log.entries if re.fullmatch(FLOW_BY_ID, p)] == [f"/api/flows/{flow}"]

    # deleted: seen by the next full read, which activates a version without them
    token = dump["push_tokens"][0]["id"]
    assert sandbox.post("/__sandbox/marketing/delete", {"kind": "image", "id": image})["deleted"] == {"image": [image]}
    sandbox.post("/__sandbox/marketing/delete", {"kind": "push-token", "id": token})
    sandbox.post("/__sandbox/delete", {"kind": "segment", "id": segment})
    sandbox.post("/__sandbox/delete", {"kind": "flow", "id": flow})
    time.sleep(1)
    third = run_tap(tmp_path, sandbox.config(full_refresh_days=0), catalog=catalog, state=second.last_state)
    dump = sandbox.dump()
    assert set(_activations(third)) == {*MARKETING, "flows"}
    for stream, gone in (("images", image), ("push_tokens", token), ("segments", segment), ("flows", flow)):
        rows = keyed(stream, third.records(stream))
        assert gone not in rows and rows == expected(dump, stream, (lambda d: d) if stream == "flows" else None)
        versions = {m.get("version") for m in third.messages if m["type"] == "RECORD" and m["stream"] == stream}
        assert versions == {_activations(third)[stream]}


def test_a_flow_gone_before_its_definition_is_read_gives_no_row_and_no_activation(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    server = sandbox.server.sandbox
    route, deleted = server.route, []

    def deleting(path, query):      # the first flow asked for by id is deleted just before its answer
        if re.fullmatch(FLOW_BY_ID, path) and not deleted:
            deleted.append(path.rsplit("/", 1)[1])
            entities.admin_post(server.account, "/__sandbox/delete", {"kind": "flow", "id": deleted[0]})
        return route(path, query)
    server.route = deleting
    run = run_tap(tmp_path, sandbox.config(), catalog=selecting_definition(catalog_selecting("flows", "tags")))
    dump = sandbox.dump()
    assert deleted and keyed("flows", run.records("flows")) == expected(dump, "flows", lambda d: d)
    assert deleted[0] not in {r["id"] for r in run.records("flows")}
    assert set(_activations(run)) == {"tags"}       # a full read that may miss rows deletes nothing
    warnings = [line for line in log_lines(run.stderr) if line.startswith("WARNING ")]
    assert any(f"flow {deleted[0]} is gone" in line for line in warnings), warnings
    assert "full_read_at" not in run.last_state["bookmarks"].get("flows", {})


def test_an_older_revision(account, tmp_path):
    """2025-01-15: no GET /api/push-tokens yet (2025-04-15), tag groups and segments take no
    page[size], and a flow definition has no reentry_criteria (FlowDefinition gains it in 2026-01-15);
    additional-fields[flow]=definition is there from 2025-01-15 on, so the column is read."""
    account.log.clear()
    run = run_tap(tmp_path, account.config(revision="2025-01-15"),
                  catalog=selecting_definition(catalog_selecting(*MARKETING, "flows")))
    dump = account.dump()
    assert run.records("push_tokens") == [] and "push_tokens" not in _activations(run)
    assert any("push_tokens" in line and "2025-04-15" in line for line in log_lines(run.stderr))
    assert account.log.queries("/api/push-tokens") == []
    older = lambda d: {k: v for k, v in d.items() if k != "reentry_criteria"}     # noqa: E731
    assert keyed("flows", run.records("flows")) == expected(dump, "flows", older)
    for stream in ("segments", "tag_groups", "images", "accounts"):
        assert keyed(stream, run.records(stream)) == expected(dump, stream), stream
    for path in ("/api/segments", "/api/tag-groups"):
        queries = account.log.queries(path)
        assert queries and all("page[size]" not in q for q in queries), path
    assert len(account.log.queries(FLOW_BY_ID)) == len(dump["flows"])


def test_a_segment_being_computed_is_a_row_and_still_holds_back_its_members_activation(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300, segments=3)
    segment = sandbox.dump()["segments"][0]["id"]
    sandbox.post("/__sandbox/marketing/touch", {"kind": "segment", "id": segment, "is_processing": True})
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("segments", "segment_members"))
    rows = keyed("segments", run.records("segments"))
    assert rows == expected(sandbox.dump(), "segments") and rows[segment]["is_processing"] is True
    # the segment's row is complete; its members may not be (tasks/collections.GroupIds: Mark.partial)
    assert set(_activations(run)) == {"segments"}


# the filter for changes each list request carries between full reads (streams.py `changes`)
CHANGES_FILTERS = {
    "/api/segments": r"greater-than\(updated,\d{4}-\d\d-\d\dT[^,)]+\)",
    "/api/images": r"greater-or-equal\(updated_at,[^,)]+\),less-than\(updated_at,[^,)]+\)",
    "/api/flows": r"greater-or-equal\(updated,[^,)]+\),less-than\(updated,[^,)]+\)",
}


def _first_pages(queries):
    """The queries the tap built (a next page's is Klaviyo's link, cursor and all)."""
    return [query for query in queries if "page[cursor]" not in query]


@pytest.mark.parametrize("revision", revisions.SUPPORTED)
def test_every_new_request_passes_the_spec_at_every_revision(account, tmp_path, revision):
    """Every stream of this area with flows.definition selected, from a bookmark (changes read where
    a filter exists): the sandbox refuses whatever the revision's rules refuse."""
    catalog = selecting_definition(catalog_selecting(*MARKETING, "flows"))
    account.log.clear()
    first = run_tap(tmp_path, account.config(revision=revision), catalog=catalog)
    sent_first = {path: _first_pages(account.log.queries(path)) for path in CHANGES_FILTERS}
    account.log.clear()
    second = run_tap(tmp_path, account.config(revision=revision), catalog=catalog, state=first.last_state)
    # the second run read changes: each list request carried its filter (the first, a full read, none)
    for path, changes in CHANGES_FILTERS.items():
        sent = _first_pages(account.log.queries(path))
        assert sent and all(re.search(changes, q.get("filter", "")) for q in sent), (revision, path, sent)
        assert sent_first[path] and not any(re.search(changes, q.get("filter", "")) for q in sent_first[path])
    dump = account.dump()
    shape = (lambda d: d) if revision >= "2026-01-15" else (lambda d: {k: v for k, v in d.items()
                                                                      if k != "reentry_criteria"})
    assert keyed("flows", first.records("flows")) == expected(dump, "flows", shape)
    assert bool(first.records("push_tokens")) == (revision >= "2025-04-15")
    assert {"tag_groups", "accounts"} <= set(_activations(second))


def test_a_catalog_that_does_not_name_the_definition_column_leaves_it_out():
    """An older catalog (no breadcrumb for the column) or one that only says selected-by-default:
    the definition is read only when the catalog selects it."""
    from tap_klaviyo.discovery import selected_columns
    catalog = catalog_selecting("flows")
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "flows")
    assert "definition" not in selected_columns(catalog)["flows"]
    entry["metadata"] = [m for m in entry["metadata"] if m["breadcrumb"] != ["properties", "definition"]]
    assert "definition" not in selected_columns(catalog)["flows"]
    assert "definition" in selected_columns(selecting_definition(catalog_selecting("flows")))["flows"]
