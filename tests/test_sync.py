"""The core contract: every classic field's value, incremental runs, state shapes, time zones."""
import calendar
import os
import re
import subprocess
import time
from pathlib import Path


from tests import expected
from tests.conftest import ROOT, catalog_selecting, run_tap, write_json
from tests.sandbox.data import WIDE_INTEGER

EVENT_STREAMS = list(expected.CLASSIC_METRICS)


def full_sync(sandbox, tmp_path, **config):
    before = int(time.time())
    run = run_tap(tmp_path, sandbox.config(**config))
    after = int(time.time())
    return run, before, after


def test_every_classic_field_matches_the_sandbox(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=2500, lists=3, segments=2)
    run, before, after = full_sync(sandbox, tmp_path, list_person_count=True)
    dump = sandbox.dump()
    got = run.by_stream()
    start = calendar.timegm(time.strptime("2020-01-01", "%Y-%m-%d"))
    for stream in EVENT_STREAMS:
        rows = got.get(stream, [])
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), f"{stream}: an event emitted twice"
        want = expected.event_rows(dump, stream, start, after)
        assert rows, f"{stream}: no rows"
        # events dated after the sync's start are not emitted
        assert all(r["timestamp"] < after for r in rows)
        have = {r["id"]: r for r in rows}
        assert set(have) == set(want), f"{stream}: ids differ"
        for event_id, row in have.items():
            assert row == want[event_id], f"{stream} {event_id}"
    assert {r["id"]: r for r in got["lists"]} == expected.list_rows(dump, with_counts=True)
    exclusions = got["global_exclusions"]
    assert len(exclusions) == len({r["email"] for r in exclusions})
    assert {r["email"]: r for r in exclusions} == expected.exclusion_rows(dump)
    assert {r["reason"] for r in exclusions} == set(expected.REASON_WORDS.values())


def test_classic_details(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=2500)
    run, _, _ = full_sync(sandbox, tmp_path)
    rows = run.records()
    wide = [r for r in run.records("receive") if r["event_properties"].get("Order Number") is not None]
    assert wide and wide[0]["event_properties"]["Order Number"] == WIDE_INTEGER     # exact, not a float
    assert '"Order Number":' + str(WIDE_INTEGER) in run.stdout
    dump = sandbox.dump()
    api_clicked = next(m["id"] for m in dump["metrics"] if m["attributes"]["name"] == "Clicked Email"
                       and m["attributes"]["integration"]["name"] == "API")
    assert all(r["statistic_id"] != api_clicked for r in run.records("click"))
    assert {r["event_name"] for r in run.records("unsubscribe")} == {"Unsubscribed from Email Marketing",
                                                                     "Unsubscribed"}
    shadowed = [r["person"] for r in rows if r.get("person") and r["person"]["$email"] is not None
                and r["person"]["id"] and r["person"].get("Plan") is not None]
    assert all(p["$email"] != "shadow@example.invalid" for p in shadowed)
    for r in run.records("open"):
        assert r["datetime"] == time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(r["timestamp"]))
        assert r["object"] == "event" and r["person"]["object"] == "person"


def test_schema_comes_before_records_and_state_is_classic(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config())
    seen_schema = set()
    for message in run.messages:
        if message["type"] == "SCHEMA":
            seen_schema.add(message["stream"])
        elif message["type"] == "RECORD":
            assert message["stream"] in seen_schema
    state = run.last_state
    # the classic shape: {"since": ...} per table; the two full tables date their last full read too
    assert set(state["bookmarks"]) == set(EVENT_STREAMS) | {"lists", "global_exclusions"}
    for name, bookmark in state["bookmarks"].items():
        assert time.strptime(bookmark["since"], "%Y-%m-%dT%H:%M:%SZ")
        if name in ("lists", "global_exclusions"):
            assert bookmark["full_read_at"] == bookmark["since"]


def test_second_run_emits_every_new_event_and_few_old(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=2000)
    first = run_tap(tmp_path, sandbox.config())
    time.sleep(1.1)
    now = int(time.time())
    added = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Opened Email", "timestamp": now - 1},
        {"metric_name": "Received Email", "timestamp": now - 1},
        {"metric_name": "Unsubscribed", "timestamp": now - 1},
        {"metric_name": "Clicked Email", "timestamp": now - 1, "integration": "API"},   # not classic
    ]})["ids"]
    time.sleep(1.1)
    second = run_tap(tmp_path, sandbox.config(), state=first.last_state)
    second_ids = {r["id"] for stream in EVENT_STREAMS for r in second.records(stream)}
    assert set(added[:3]) <= second_ids
    assert added[3] not in second_ids
    old = second_ids - set(added)
    assert len(old) <= 3, f"{len(old)} old events re-emitted"
    assert sum(len(first.records(stream)) for stream in EVENT_STREAMS) > 1000


def test_future_dated_events_wait_for_their_time(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600)
    first = run_tap(tmp_path, sandbox.config())
    future = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Opened Email", "timestamp": int(time.time()) + 3}]})["ids"][0]
    dump = sandbox.dump()
    far_future = {e["id"] for e in dump["events"] if e["timestamp"] > time.time() + 3600}
    assert far_future and not far_future & first.event_ids()
    second = run_tap(tmp_path, sandbox.config(), state=first.last_state)
    assert future not in second.event_ids()
    for since in (b["since"] for b in second.last_state["bookmarks"].values()):
        assert calendar.timegm(time.strptime(since, "%Y-%m-%dT%H:%M:%SZ")) <= time.time()
    time.sleep(4)
    third = run_tap(tmp_path, sandbox.config(), state=second.last_state)
    assert future in {r["id"] for r in third.records("open")}


def test_lookback_catches_late_events(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600)
    first = run_tap(tmp_path, sandbox.config())
    late = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Received Email", "timestamp": int(time.time()) - 600}]})["ids"][0]
    # late_event_days would find it too (tests/test_late_events.py): off, the lookback alone is tested
    without = run_tap(tmp_path, sandbox.config(late_event_days=0), state=first.last_state)
    assert late not in without.event_ids()
    within = run_tap(tmp_path, sandbox.config(late_event_days=0, lookback_minutes=30), state=first.last_state)
    assert late in {r["id"] for r in within.records("receive")}


def test_metric_id_state_and_unknown_keys(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=1500)
    dump = sandbox.dump()
    opened = next(m["id"] for m in dump["metrics"] if m["attributes"]["name"] == "Opened Email")
    cut = sorted(e["timestamp"] for e in dump["events"] if e["metric_id"] == opened)[100]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut))
    state = {"bookmarks": {opened: {"since": since}, "mystery": {"anything": 1}}, "currently_syncing": None,
             "custom": {"kept": True}}
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("open"), state=state)
    timestamps = [r["timestamp"] for r in run.records("open")]
    assert timestamps and min(timestamps) >= cut
    assert len(timestamps) == len(expected.event_rows(dump, "open", cut, int(time.time()) + 1))
    final = run.last_state
    assert final["custom"] == {"kept": True} and final["bookmarks"]["mystery"] == {"anything": 1}
    assert "open" in final["bookmarks"]
    # the classic shape: the stream-name key wins over a metric-id key
    classic = {"bookmarks": {"open": {"since": since}, opened: {"since": "2020-01-01T00:00:00Z"}}}
    run2 = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("open"), state=classic)
    assert min(r["timestamp"] for r in run2.records("open")) >= cut


def test_rows_are_the_same_in_another_time_zone(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=800)
    state = {"bookmarks": {"receive": {"since": "2026-01-01"}}}
    utc = run_tap(tmp_path, sandbox.config(start_date="2025-06-01"), catalog=catalog_selecting("receive", "open"),
                  state=state, env={"TZ": "UTC"})
    ny = run_tap(tmp_path, sandbox.config(start_date="2025-06-01"), catalog=catalog_selecting("receive", "open"),
                 state=state, env={"TZ": "America/New_York"})
    assert utc.records() and sorted(utc.records(), key=lambda r: r["id"]) == sorted(ny.records(), key=lambda r: r["id"])
    assert min(r["timestamp"] for r in ny.records("receive")) >= 1767225600     # 2026-01-01T00:00:00Z


def test_start_date_with_offset_is_converted_to_utc(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=800)
    run = run_tap(tmp_path, sandbox.config(start_date="2026-03-01T05:00:00+05:00"),
                  catalog=catalog_selecting("receive"))
    assert min(r["timestamp"] for r in run.records()) >= 1772323200    # 2026-03-01T00:00:00Z


def test_older_revision_pages_through_same_second_clusters(make_sandbox, tmp_path):
    # 200 a page before 2026-04-15; the sandbox's campaign cluster puts ~160 events in one second
    sandbox = make_sandbox(events=4000)
    dump = sandbox.dump()
    new = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("receive"))
    old = run_tap(tmp_path, sandbox.config(revision="2025-10-15", concurrency=3), catalog=catalog_selecting("receive"))
    counts = {}
    for r in old.records():
        counts[r["timestamp"]] = counts.get(r["timestamp"], 0) + 1
    assert max(counts.values()) > 200
    assert sorted(r["id"] for r in old.records()) == sorted(r["id"] for r in new.records())
    assert len(old.records()) == len(expected.event_rows(dump, "receive", 0, int(time.time())))


def test_catalog_selection_and_legacy_properties_flag(sandbox, tmp_path):
    catalog = catalog_selecting("lists", "bounce")
    run = run_tap(tmp_path, sandbox.config(), "--properties", write_json(tmp_path, "props.json", catalog))
    assert set(run.by_stream()) == {"lists", "bounce"}
    legacy = catalog_selecting()
    for entry in legacy["streams"]:
        for item in entry["metadata"]:
            item["metadata"].pop("selected", None)
        if entry["tap_stream_id"] == "click":
            entry["schema"]["selected"] = True
    run = run_tap(tmp_path, sandbox.config(), catalog=legacy)
    assert set(run.by_stream()) == {"click"}


def test_output_passes_singer_check_tap(sandbox, tmp_path):
    # singer-check-tap --tap returns its summary without waiting for the thread reading the tap's
    # stdout, so a fast tap makes it crash on None; its stdin mode checks the same output, whole.
    checker = os.environ.get("SINGER_CHECK_TAP") or str(ROOT / ".venv-singer-tools" / "bin" / "singer-check-tap")
    assert Path(checker).exists(), "make test installs singer-tools in .venv-singer-tools"
    first = run_tap(tmp_path, sandbox.config())
    second = run_tap(tmp_path, sandbox.config(), state=first.last_state)    # the re-run with state
    for run in (first, second):
        done = subprocess.run([checker], input=run.stdout, capture_output=True, text=True, cwd=tmp_path,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "The output is valid." in done.stdout
        assert int(re.search(r"(\d+) record messages", done.stdout).group(1)) == len(run.records()) > 0
