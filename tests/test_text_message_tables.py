"""Issue 22: the classic tap's newer tables (singer-io tap-klaviyo 1.2.0): subscribed_to_email and the
text-message tables, classic-shaped, incremental on timestamp, opt-in; each text table reads its
metric under Klaviyo's new name ("... Text Message", July 2026) and the old one ("... SMS"), of the
Klaviyo integration only. Over HTTP, the tap run as a real process (tests/sandbox/textmessages.py)."""
import json
import time

import pytest

from tests import expected
from tests.conftest import Sandbox, catalog_selecting, run_tap
from tests.sandbox.data import generate
from tests.sandbox.server import Options

# table -> its metric names, newest first (the tests' own copy: singer-io tap-klaviyo 1.2.0 and 1.1.5)
TABLES = {
    "subscribed_to_email": ["Subscribed to Email Marketing"],
    "received_text_message": ["Received Text Message", "Received SMS"],
    "clicked_text_message": ["Clicked Text Message", "Clicked SMS"],
    "sent_text_message": ["Sent Text Message", "Sent SMS"],
    "failed_to_deliver_text_message": ["Failed to Deliver Text Message", "Failed to Deliver SMS"],
    "failed_to_deliver_automated_response_text_message": [
        "Failed to Deliver Automated Response Text Message", "Failed to Deliver Automated Response SMS",
        "Failed to deliver Automated Response SMS"],
    "received_automated_response_text_message": ["Received Automated Response Text Message",
                                                 "Received Automated Response SMS"],
    "subscribed_to_text_message": ["Subscribed to Text Messaging Marketing", "Subscribed to SMS Marketing"],
    "unsubscribed_from_text_message": ["Unsubscribed from Text Messaging Marketing",
                                       "Unsubscribed from SMS Marketing"],
    "subscribed_to_text_message_transactional": ["Subscribed to Text Messaging Transactional",
                                                 "Subscribed to SMS Transactional"],
    "unsubscribed_from_text_message_transactional": ["Unsubscribed from Text Messaging Transactional",
                                                     "Unsubscribed from SMS Transactional"],
}
FAR = 2 ** 40


def _rows(dump, table, since=0, until=FAR):
    """{id: row} the table must hold: the classic rows of its Klaviyo metrics' events in [since, until)."""
    saved = expected.CLASSIC_METRICS.get(table)
    expected.CLASSIC_METRICS[table] = TABLES[table]
    try:
        return expected.event_rows(dump, table, since, until)
    finally:
        if saved is None:
            del expected.CLASSIC_METRICS[table]


def _keyed(rows):
    keyed = {row["id"]: row for row in rows}
    assert len(keyed) == len(rows), "a key written twice"
    return keyed


def _epoch(text):
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


@pytest.fixture(scope="module")
def account():
    sandbox = Sandbox(generate(events=600, seed=11, lists=3, segments=2), Options(rate_scale=20.0))
    yield sandbox
    sandbox.close()


def test_the_tables_follow_update_email_preferences_in_the_streams_table_opt_in_and_classic_shaped():
    from tap_klaviyo.discovery import discover
    from tap_klaviyo.streams import STREAMS
    names = [s.name for s in STREAMS]
    at = names.index("update_email_preferences") + 1
    assert names[at:at + len(TABLES)] == list(TABLES)
    for stream in STREAMS[at:at + len(TABLES)]:
        assert list(stream.metric_names) == TABLES[stream.name]
        assert stream.classic and not stream.selected_by_default
    catalog = {e["tap_stream_id"]: e for e in discover()["streams"]}
    receive = catalog["receive"]
    for table in TABLES:
        entry = catalog[table]
        meta = {tuple(m["breadcrumb"]): m["metadata"] for m in entry["metadata"]}
        assert meta[()]["selected"] is False and meta[()]["selected-by-default"] is False
        assert entry["schema"] == receive["schema"] and entry["key_properties"] == ["id"]
        assert entry["replication_key"] == "timestamp" and entry["replication_method"] == "INCREMENTAL"
        # classic-shaped: the columns cannot be deselected
        assert all(m["inclusion"] == "automatic" for b, m in meta.items() if b)


def test_every_row_of_every_table_field_by_field_both_names_and_klaviyo_only(account, tmp_path):
    run = run_tap(tmp_path, account.config(), catalog=catalog_selecting(*TABLES))
    dump = account.dump()
    got = run.by_stream()
    assert set(got) == set(TABLES)
    for table in TABLES:
        assert _keyed(got[table]) == _rows(dump, table), table
    names = {m["id"]: (m["attributes"]["name"], m["attributes"]["integration"]["name"]) for m in dump["metrics"]}
    # both names land in one table
    for table, both in (("received_text_message", {"Received Text Message", "Received SMS"}),
                        ("clicked_text_message", {"Clicked Text Message", "Clicked SMS"}),
                        ("subscribed_to_text_message", {"Subscribed to Text Messaging Marketing",
                                                        "Subscribed to SMS Marketing"})):
        assert {r["event_name"] for r in got[table]} == both, table
    # a metric of a table's name under another integration (custom events) is left out
    custom = {e["id"] for e in dump["events"] if names[e["metric_id"]] == ("Sent Text Message", "API")}
    assert custom and not custom & {r["id"] for r in got["sent_text_message"]}
    assert {r["event_name"] for r in got["sent_text_message"]} == {"Sent SMS"}
    assert set(run.last_state["bookmarks"]) == set(TABLES)


def test_without_a_catalog_they_are_not_synced(account, tmp_path):
    run = run_tap(tmp_path, account.config())
    assert not set(run.by_stream()) & set(TABLES)


def test_discovery_notes_both_metrics_of_a_table(account, tmp_path):
    run = run_tap(tmp_path, account.config(), "--discover")
    catalog = {e["tap_stream_id"]: e for e in json.loads(run.stdout)["streams"]}
    dump = account.dump()
    for table, names in TABLES.items():
        noted = next(m["metadata"] for m in catalog[table]["metadata"] if m["breadcrumb"] == [])["tap-klaviyo.metrics"]
        want = {m["id"]: m["attributes"]["name"] for m in dump["metrics"]
                if m["attributes"]["name"] in names and m["attributes"]["integration"]["name"] == "Klaviyo"}
        assert noted == want and want, table
    assert len(catalog["received_text_message"]["metadata"][0]["metadata"]["tap-klaviyo.metrics"]) == 2


def test_a_second_run_brings_only_new_events_of_both_names(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600, seed=5)
    catalog = catalog_selecting("received_text_message", "sent_text_message", "subscribed_to_email")
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    state = first.last_state
    since = max(int(_epoch(state["bookmarks"][t]["since"])) for t in state["bookmarks"])
    added = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Received Text Message", "timestamp": since},
        {"metric_name": "Received SMS", "timestamp": since + 1},
        {"metric_name": "Sent SMS", "timestamp": since + 1},
        {"metric_name": "Sent Text Message", "integration": "API", "timestamp": since + 1}]})["ids"]
    while int(time.time()) <= since + 1:
        time.sleep(0.1)
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=state)
    dump = sandbox.dump()
    got = second.by_stream()
    assert set(_keyed(got["received_text_message"])) == set(added[:2])
    assert set(_keyed(got["sent_text_message"])) == {added[2]}
    assert "subscribed_to_email" not in got
    for table in ("received_text_message", "sent_text_message"):
        want = _rows(dump, table)
        assert all(row == want[row["id"]] for row in got[table])
        assert _epoch(second.last_state["bookmarks"][table]["since"]) > since


def test_a_late_event_is_loaded_on_resume_through_the_day_counts(make_sandbox, tmp_path):
    # issue 20's per-day counts apply to these tables as to every event stream: a text message
    # Klaviyo shows only after a run that read its day is loaded by the next run
    sandbox = make_sandbox(events=800)
    catalog = catalog_selecting("received_text_message")
    late_at = int(time.time()) - 3 * 3600
    sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Received Text Message", "timestamp": late_at - 86400 * n} for n in range(1, 4)]})
    late = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Received SMS", "timestamp": late_at, "held": True}]})["ids"][0]
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    assert late not in {r["id"] for r in first.records("received_text_message")}
    bookmark = first.last_state["bookmarks"]["received_text_message"]
    metrics = {m["id"] for m in sandbox.dump()["metrics"]
               if m["attributes"]["name"] in ("Received Text Message", "Received SMS")}
    assert set(bookmark["counts"]) <= metrics and bookmark["counts"]

    sandbox.post("/__sandbox/events/reveal", {"ids": [late]})
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=first.last_state)
    rows = _keyed(second.records("received_text_message"))
    assert late in rows and rows[late] == _rows(sandbox.dump(), "received_text_message")[late]
    assert "counts" in second.last_state["bookmarks"]["received_text_message"]
