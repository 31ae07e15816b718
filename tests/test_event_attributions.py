"""Issue 22: event_attributions, read from the events pages (GET /api/events?include=attributions),
over HTTP, the tap run as a real process against the sandbox (tests/sandbox/attributions.py)."""
import datetime as dt
import time

import pytest

from tests.conftest import catalog_selecting, logged_sandbox, run_tap

STREAM = "event_attributions"
COLUMNS = ["id", "event_id", "attributed_event_id", "campaign_id", "campaign_message_id", "flow_id",
           "flow_message_id", "flow_message_variation_id"]


@pytest.fixture(scope="module")
def account():
    with logged_sandbox(events=600, seed=11, lists=3, segments=2) as sandbox:
        yield sandbox


def _epoch(text):
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _expected(dump, before=None):
    """{id: row} of the sandbox's attributions of events dated before `before`."""
    times = {e["id"]: e["timestamp"] for e in dump["events"]}
    return {row["id"]: row for row in dump[STREAM] if before is None or times[row["event_id"]] < before}


def _keyed(rows):
    keyed = {row["id"]: row for row in rows}
    assert len(keyed) == len(rows), "a key written twice"
    return keyed


def _schema(run, stream):
    return next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == stream)


def test_every_attribution_field_by_field_with_the_events(account, tmp_path):
    account.log.clear()
    run = run_tap(tmp_path, account.config(), catalog=catalog_selecting("events", STREAM))
    dump = account.dump()
    rows = _keyed(run.records(STREAM))
    want = _expected(dump)
    assert len(want) >= 10 and rows == want
    # every kind of attribution is there: to a campaign message, to a flow message, with and without
    # the earlier event it is attributed to, two for one event
    assert any(r["campaign_message_id"] for r in rows.values()) and any(r["flow_message_id"] for r in rows.values())
    assert any(r["attributed_event_id"] for r in rows.values()) and \
        any(r["attributed_event_id"] is None for r in rows.values())
    per_event = {}
    for row in rows.values():
        per_event[row["event_id"]] = per_event.get(row["event_id"], 0) + 1
    assert max(per_event.values()) == 2
    # the attributed events, campaigns and flows are the account's
    events = {e["id"] for e in dump["events"]}
    assert {r["event_id"] for r in rows.values()} <= {r["id"] for r in run.records("events")}
    assert {r["attributed_event_id"] for r in rows.values()} - {None} <= events
    assert {r["campaign_id"] for r in rows.values()} - {None} <= {c["id"] for c in dump["campaigns"]}
    assert {r["flow_message_id"] for r in rows.values()} - {None} <= {m["id"] for m in dump["flow_messages"]}
    schema = _schema(run, STREAM)
    assert schema["key_properties"] == ["id"] and list(schema["schema"]["properties"]) == COLUMNS
    for row in rows.values():
        assert list(row) == COLUMNS
    # one read of the events: the include rides on their requests, and no fields[attribution] (only
    # `id` is allowed, from 2026-04-15 on)
    queries = account.log.queries("/api/events")
    assert queries and all(q.get("include") == "attributions" and "fields[attribution]" not in q for q in queries)
    assert set(run.last_state["bookmarks"]) == {"events", STREAM}
    assert run.last_state["bookmarks"]["events"]["since"] == run.last_state["bookmarks"][STREAM]["since"]


def test_selected_alone_the_events_are_read_not_written(account, tmp_path):
    account.log.clear()
    run = run_tap(tmp_path, account.config(), catalog=catalog_selecting(STREAM))
    assert _keyed(run.records(STREAM)) == _expected(account.dump())
    assert {m["stream"] for m in run.messages if m["type"] in ("SCHEMA", "RECORD")} == {STREAM}
    assert set(run.last_state["bookmarks"]) == {STREAM}
    queries = account.log.queries("/api/events")
    # read for the attributions only: the smallest fields that still place an event in time
    assert queries and all(q["include"] == "attributions" and q["fields[event]"] == "timestamp,datetime"
                           for q in queries)


def test_include_is_sent_only_when_event_attributions_is_selected(account, tmp_path):
    account.log.clear()
    run = run_tap(tmp_path, account.config(), catalog=catalog_selecting("events"))
    assert run.records("events") and not run.records(STREAM)
    queries = account.log.queries("/api/events")
    assert queries and all("include" not in q for q in queries)


def test_a_deselected_column_is_left_out(account, tmp_path):
    catalog = catalog_selecting(STREAM)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if entry["tap_stream_id"] == STREAM and item["breadcrumb"] == ["properties", "flow_message_variation_id"]:
                item["metadata"]["selected"] = False
    run = run_tap(tmp_path, account.config(), catalog=catalog)
    want = {k: {c: v for c, v in row.items() if c != "flow_message_variation_id"}
            for k, row in _expected(account.dump()).items()}
    assert _keyed(run.records(STREAM)) == want
    assert "flow_message_variation_id" not in _schema(run, STREAM)["schema"]["properties"]


@pytest.mark.parametrize("revision", ["2025-01-15", "2026-04-15"])
def test_older_revisions(account, tmp_path, revision):
    # the spec has include=attributions in every supported revision; fields[attribution] (only `id`)
    # from 2026-04-15 on: the sandbox refuses it before, and the tap never sends it
    for fields, allowed in (("id", revision >= "2026-04-15"),):
        status, document, _ = account.api("/api/events", {"include": "attributions", "fields[attribution]": fields},
                                          revision=revision)
        assert (status == 200) is allowed, (status, document)
    status, document, _ = account.api("/api/events", {"include": "attributions"}, revision=revision)
    assert status == 200 and any(r["type"] == "attribution" for r in document["included"])
    account.log.clear()
    run = run_tap(tmp_path, account.config(revision=revision), catalog=catalog_selecting("events", STREAM))
    assert _keyed(run.records(STREAM)) == _expected(account.dump())
    queries = account.log.queries("/api/events")
    # page[size] exists for events from 2026-01-15 on only
    assert queries and all(("page[size]" in q) is (revision >= "2026-01-15") for q in queries)


def test_a_second_run_brings_only_the_new_attributions(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600, seed=5)
    catalog = catalog_selecting("events", STREAM)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    state = first.last_state
    since = _epoch(state["bookmarks"][STREAM]["since"])
    assert _keyed(first.records(STREAM)) == _expected(sandbox.dump())
    # new conversions at the bookmark: attributed after the first run
    added = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Placed Order", "integration": "Shopify", "timestamp": since},
        {"metric_name": "Placed Order", "integration": "Shopify", "timestamp": since + 1}]})["ids"]
    status, made = sandbox.admin("/__sandbox/attributions/add", {"event_ids": added, "second": True})
    assert status == 200 and len(made["attributions"]) == 4
    while int(time.time()) <= since + 1:
        time.sleep(0.1)
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=state)
    rows = _keyed(second.records(STREAM))
    assert rows == {row["id"]: row for row in made["attributions"]}
    assert {r["id"] for r in second.records("events")} == set(added)
    for name in ("events", STREAM):
        assert _epoch(second.last_state["bookmarks"][name]["since"]) > since


def test_selected_later_it_reaches_back_to_its_own_start(make_sandbox, tmp_path):
    # events has a bookmark, event_attributions none yet: the events read starts where the
    # attributions' does (start_date), so no attribution of earlier events is lost
    sandbox = make_sandbox(events=600, seed=5)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("events"))
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("events", STREAM),
                     state=first.last_state)
    assert _keyed(second.records(STREAM)) == _expected(sandbox.dump())


@pytest.mark.parametrize("selected", [(STREAM,), ("events", STREAM)])
def test_an_attribution_named_but_not_included_comes_on_the_next_run(make_sandbox, tmp_path, selected):
    # review 1.1: the row is not lost: the attributions' bookmark stays at the event lacking it, and
    # the next run reads that event again; the events' own bookmark moves on (its rows were all written)
    sandbox = make_sandbox(events=600, seed=5)
    dump = sandbox.dump()
    want = _expected(dump)
    times = {e["id"]: e["timestamp"] for e in dump["events"]}
    gone = min(want, key=lambda k: (times[want[k]["event_id"]], k))
    at = times[want[gone]["event_id"]]
    sandbox.account.attributions_not_included = {gone}
    catalog = catalog_selecting(*selected)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    assert _keyed(first.records(STREAM)) == {k: v for k, v in want.items() if k != gone}
    warnings = [line for line in first.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "left them out of 'included'" in warnings[0] and STREAM in warnings[0], warnings
    assert "the next run reads them again" in warnings[0] and "missing from this run" not in warnings[0]
    marks = first.last_state["bookmarks"]
    assert _epoch(marks[STREAM]["since"]) <= at
    if "events" in selected:
        assert _epoch(marks["events"]["since"]) > at
    sandbox.account.attributions_not_included = set()
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=first.last_state)
    assert _keyed(second.records(STREAM))[gone] == want[gone]
    assert "WARNING" not in second.stderr
    assert _epoch(second.last_state["bookmarks"][STREAM]["since"]) > at


def test_selected_later_the_events_bookmark_never_moves_back(make_sandbox, tmp_path):
    # review 1.4: the read reaches back to the attributions' start, under one watermark; the events'
    # bookmark stays at or after its own in every STATE of the run (one a kill would leave)
    sandbox = make_sandbox(events=600, seed=5)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("events"))
    since = _epoch(first.last_state["bookmarks"]["events"]["since"])
    # a revision without page[size]: Klaviyo's 200 events a page, so a STATE before the last page
    second = run_tap(tmp_path, sandbox.config(revision="2025-10-15"), catalog=catalog_selecting("events", STREAM),
                     state=first.last_state)
    assert len(second.states()) >= 2
    for state in second.states():
        assert _epoch(state["bookmarks"]["events"]["since"]) >= since, state
    assert _keyed(second.records(STREAM)) == _expected(sandbox.dump())


def test_event_metrics_narrows_the_attributions_and_says_so(account, tmp_path):
    # review 1.3, the decision: event_metrics names the events read, selected with events or not, so
    # the attributions are those of these events only; one info line says so
    dump = account.dump()
    orders = {m["id"] for m in dump["metrics"] if m["attributes"]["name"] == "Placed Order"}
    metric_of = {e["id"]: e["metric_id"] for e in dump["events"]}
    want = {k: v for k, v in _expected(dump).items() if metric_of[v["event_id"]] in orders}
    assert want and want != _expected(dump)
    for selected in ((STREAM,), ("events", STREAM)):
        run = run_tap(tmp_path, account.config(event_metrics=["Placed Order"]), catalog=catalog_selecting(*selected))
        assert _keyed(run.records(STREAM)) == want
        lines = [line for line in run.stderr.splitlines() if "event_metrics narrows it" in line]
        assert len(lines) == 1 and STREAM in lines[0] and all(mid in lines[0] for mid in orders), run.stderr
    run = run_tap(tmp_path, account.config(event_metrics=["No Such Metric"]), catalog=catalog_selecting(STREAM))
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line]
    assert warnings and all(f"stream {STREAM}:" in line for line in warnings), warnings


def test_a_conversion_shown_late_brings_its_attributions_on_resume(make_sandbox, tmp_path):
    # issue 20's per-day counts: the events read again for a day Klaviyo showed an event late carry
    # their attributions too
    sandbox = make_sandbox(events=800)
    catalog = catalog_selecting("events", STREAM)
    late_at = int(time.time()) - 3 * 3600
    late = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Placed Order", "integration": "Shopify", "timestamp": late_at, "held": True}]})["ids"][0]
    status, made = sandbox.admin("/__sandbox/attributions/add", {"event_ids": [late]})
    assert status == 200 and len(made["attributions"]) == 1
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    assert _keyed(first.records(STREAM)) == _expected(sandbox.dump())
    assert made["attributions"][0]["id"] not in _keyed(first.records(STREAM))
    sandbox.post("/__sandbox/events/reveal", {"ids": [late]})
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=first.last_state)
    rows = _keyed(second.records(STREAM))
    assert rows[made["attributions"][0]["id"]] == made["attributions"][0]
    assert late in {r["id"] for r in second.records("events")}


def test_rows_read_from_included_name_what_is_missing():
    # review 22, section 4: one helper for the rows read from a parent's `included` (collections and
    # event_attributions): (rows, the parent of each resource named but not included)
    import msgspec

    from tap_klaviyo.pages import AttributedEventPage
    from tap_klaviyo.rows import attribution_rows, included_rows

    parents = [{"id": "p1", "ids": ["a", "b"]}, {"id": "p2", "ids": None}, {"id": "p3", "ids": []}]
    rows, missing = included_rows(parents, lambda p: p["ids"], {"a": {"id": "a"}}.get,
                                  lambda p, r: {"id": r["id"], "parent_id": p["id"]})
    assert rows == [{"id": "a", "parent_id": "p1"}] and [p["id"] for p in missing] == ["p1", "p2"]
    page = msgspec.json.decode(msgspec.json.encode({
        "data": [{"id": "e1", "relationships": {"attributions": {"data": [{"type": "attribution", "id": "x"},
                                                                        {"type": "attribution", "id": "y"}]}}},
                 {"id": "e2"},      # says nothing of its attributions: none, not missing
                 {"id": "e3", "relationships": {"attributions": {"data": [{"type": "attribution", "id": "z"}]}}}],
        "included": [{"type": "attribution", "id": "x", "relationships": {"flow": {"data": {"type": "flow",
                                                                                              "id": "F"}}}}]}),
        type=AttributedEventPage)
    rows, missing = attribution_rows(page, {"e1", "e2", "e3"}, (("flow_id", "flow"),))
    assert rows == [{"id": "x", "event_id": "e1", "flow_id": "F"}] and missing == ["e1", "e3"]
    rows, missing = attribution_rows(page, {"e2"}, (("flow_id", "flow"),))
    assert rows == [] and missing == []
