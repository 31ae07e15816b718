"""Events Klaviyo shows late (days after their datetime) reach the classic tables and `events` with
the default config, at the cost of one count request per metric when nothing is late.

The sandbox holds events back and reveals them later, as Klaviyo's eventually consistent store
does; POST /api/metric-aggregates counts only the events it shows.
"""
import json
import signal
import subprocess
import time

import pytest

from tests.conftest import ROOT, catalog_selecting, log_lines, run_tap, tap_command, write_json

STREAMS = ("receive", "open", "events")
DAY = 86400
# pages of 200: the late day's 40-odd events and the window's 500 in a page or three
SMALL_PAGES = "2025-10-15"


def _busy(sandbox, metric_name="Received Email", count=500, days=12):
    """count visible events of the metric spread over the last `days` days."""
    now = int(time.time()) - 60
    sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": metric_name, "timestamp": now - days * DAY + n * (days * DAY) // count} for n in range(count)]})


def _held(sandbox, metric_name, timestamp):
    """A Klaviyo event that exists but that the API does not show yet."""
    return sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": metric_name, "timestamp": timestamp, "held": True}]})["ids"][0]


def _reveal(sandbox, *ids):
    sandbox.post("/__sandbox/events/reveal", {"ids": list(ids)})


def _ids(run, stream):
    return {record["id"] for record in run.records(stream)}


def _requests(sandbox):
    return sandbox.stats()["by_family"]


def _metric_count(sandbox):
    return len(sandbox.dump()["metrics"])


def test_a_late_event_in_a_day_already_read_is_loaded_by_the_next_run(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=800)
    _busy(sandbox)
    catalog = catalog_selecting(*STREAMS)
    config = sandbox.config(revision=SMALL_PAGES)
    late_at = int(time.time()) - 3 * 3600
    late = _held(sandbox, "Received Email", late_at)
    first = run_tap(tmp_path, config, catalog=catalog)
    assert late not in _ids(first, "receive") | _ids(first, "events")
    receive_metric = _metric_id(sandbox, "Received Email")
    assert set(first.last_state["bookmarks"]["receive"]["counts"]) == {receive_metric}

    _reveal(sandbox, late)
    sandbox.post("/__sandbox/stats/reset", {})
    second = run_tap(tmp_path, config, catalog=catalog, state=first.last_state)
    assert late in _ids(second, "receive")
    assert late in _ids(second, "events")
    assert late not in _ids(second, "open")
    requests = _requests(sandbox)
    # every metric with events in the window costs one count request, shared by the streams that read
    # it; each metric the window holds no event of is read there again instead (by `events` in one
    # request of its own; by receive and open in their own cursor); and only the day of the late
    # event is read again, by the two streams that hold its metric
    first_day = _window_start(first)
    bookmark = _since(first, "receive")
    counted = {r["metric_id"] for r in first.records("events") if first_day <= r["timestamp"] < bookmark}
    empty = {m["id"] for m in sandbox.dump()["metrics"]} - counted
    assert receive_metric in counted and empty
    assert requests["metric_aggregates"] == len(counted)
    assert requests["events"] == 3 + len(empty) + 2
    late_day = [e["id"] for e in sandbox.dump()["events"] if e["metric_id"] == receive_metric
                and e["timestamp"] // DAY == late_at // DAY and e["timestamp"] < bookmark]
    assert {r["id"] for r in second.records("receive")} == set(late_day)
    assert any("reading" in line and "again" in line for line in log_lines(second.stderr))

    sandbox.post("/__sandbox/stats/reset", {})
    third = run_tap(tmp_path, config, catalog=catalog, state=second.last_state)
    requests = _requests(sandbox)
    assert requests["metric_aggregates"] == len(counted)
    assert requests["events"] == 3 + len(empty), "a run with nothing late re-read a day"
    assert not third.records(), "a run with nothing late sent rows again"


def _metric_id(sandbox, name):
    return next(m["id"] for m in sandbox.dump()["metrics"]
                if m["attributes"]["name"] == name and m["attributes"]["integration"]["name"] == "Klaviyo")


def _since(run, stream):
    from tap_klaviyo import timeutil
    return timeutil.parse_instant(run.last_state["bookmarks"][stream]["since"])


def _window_start(run, days=20):
    """The first instant of the default window of the run after this one (same UTC day, most likely):
    the UTC day `days` days before the run's own day (README: "late_event_days"). The window is
    days + 1 days long; a metric whose only events fall on its first day is counted too."""
    return (_since(run, "receive") // DAY - days) * DAY


def test_late_events_days_older_than_the_bookmark_are_loaded_within_the_window(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=800)
    _busy(sandbox)
    catalog = catalog_selecting(*STREAMS)
    config = sandbox.config(revision=SMALL_PAGES)
    now = int(time.time())
    # in two metrics, a busy one and a sparse one
    late = {"receive": _held(sandbox, "Received Email", now - 6 * DAY), "open": _held(sandbox, "Opened Email",
                                                                                   now - 9 * DAY)}
    first = run_tap(tmp_path, config, catalog=catalog)
    _reveal(sandbox, *late.values())
    # a window shorter than the events' age cannot see them: the window is what bounds the catch
    narrow = run_tap(tmp_path, dict(config, late_event_days=3), catalog=catalog, state=first.last_state)
    assert not set(late.values()) & (_ids(narrow, "receive") | _ids(narrow, "open") | _ids(narrow, "events"))
    second = run_tap(tmp_path, config, catalog=catalog, state=first.last_state)
    for stream, event_id in late.items():
        assert event_id in _ids(second, stream)
        assert event_id in _ids(second, "events")
    assert late["open"] not in _ids(second, "receive")
    assert late["receive"] not in _ids(second, "open")


def _killed_once_moved(tmp_path, config, catalog, state, stream):
    """Runs the tap, SIGKILLed at its first STATE that has moved the stream's bookmark: the run's
    STATE then carries the counts of the run before, next to a later bookmark. Its messages."""
    command = tap_command() + ["--config", write_json(tmp_path, "moved-config.json", config),
                               "--catalog", write_json(tmp_path, "moved-catalog.json", catalog),
                               "--state", write_json(tmp_path, "moved-state.json", state)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    messages = []
    for line in process.stdout:
        messages.append(json.loads(line))
        mark = messages[-1].get("value", {}).get("bookmarks", {}).get(stream, {}) if messages[-1]["type"] == "STATE" else {}
        if mark.get("since", "") > state["bookmarks"][stream]["since"]:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    return messages


def test_a_kill_between_the_runs_loses_no_late_event(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=800, latency=0.2)
    _busy(sandbox)
    catalog = catalog_selecting("receive")
    config = sandbox.config(concurrency=2, revision=SMALL_PAGES)
    now = int(time.time())
    late = [_held(sandbox, "Received Email", now - days * DAY - 600) for days in (1, 4, 9)]
    first = run_tap(tmp_path, config, catalog=catalog)
    # new events to read on from the bookmark, so that the next run's bookmark moves before it ends
    new = set(sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Received Email", "timestamp": now - 1800 + n} for n in range(1500)]})["ids"])
    time.sleep(1.1)
    killed = _killed_once_moved(tmp_path, config, catalog, first.last_state, "receive")
    killed_state = [m["value"] for m in killed if m["type"] == "STATE"][-1]
    assert killed_state["bookmarks"]["receive"]["since"] > first.last_state["bookmarks"]["receive"]["since"], \
        "the run ended before its bookmark moved; nothing was tested"
    # what a kill leaves: a later bookmark beside the counts of the run before
    assert killed_state["bookmarks"]["receive"]["counts"] == first.last_state["bookmarks"]["receive"]["counts"]
    _reveal(sandbox, *late)
    resumed = run_tap(tmp_path, config, catalog=catalog, state=killed_state)
    assert set(late) <= _ids(resumed, "receive")
    written = {m["record"]["id"] for m in killed if m["type"] == "RECORD"}
    assert new <= written | _ids(resumed, "receive")


def test_a_metric_the_catalog_does_not_note_is_checked_too(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=800)
    _busy(sandbox)
    config = sandbox.config(revision=SMALL_PAGES)
    catalog = json.loads(run_tap(tmp_path, config, "--discover").stdout)
    for entry in catalog["streams"]:
        root = next(item["metadata"] for item in entry["metadata"] if item["breadcrumb"] == [])
        root["selected"] = entry["tap_stream_id"] == "receive"
        if entry["tap_stream_id"] == "receive":
            root["tap-klaviyo.metrics"] = {}     # noted before the metric existed
    late = _held(sandbox, "Received Email", int(time.time()) - 3 * DAY)
    first = run_tap(tmp_path, config, catalog=catalog)
    _reveal(sandbox, late)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.last_state)
    assert late in _ids(second, "receive")


@pytest.mark.parametrize("fault", ["400", "503"])      # refused; failing until the retries run out
def test_without_usable_counts_the_window_is_read_again_in_full(make_sandbox, tmp_path, fault):
    sandbox = make_sandbox(events=800, fault_rate=1.0, fault_kinds=(fault,), fault_families=("metric_aggregates",))
    _busy(sandbox)
    catalog = catalog_selecting("receive")
    late = _held(sandbox, "Received Email", int(time.time()) - 2 * DAY)
    config = sandbox.config(revision=SMALL_PAGES, max_retry_seconds=1)
    first = run_tap(tmp_path, config, catalog=catalog)
    _reveal(sandbox, late)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.last_state)
    assert late in _ids(second, "receive")
    warnings = [line for line in log_lines(second.stderr) if line.startswith("WARNING") and "late events" in line]
    assert len(warnings) == 1 and "re-reads its last 20 days" in warnings[0]


def test_off_reads_from_the_bookmark_only_and_lookback_still_works(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600)
    catalog = catalog_selecting("receive")
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    late = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Received Email", "timestamp": int(time.time()) - 600}]})["ids"][0]
    sandbox.post("/__sandbox/stats/reset", {})
    off = run_tap(tmp_path, sandbox.config(late_event_days=0), catalog=catalog, state=first.last_state)
    assert late not in _ids(off, "receive")
    assert "metric_aggregates" not in _requests(sandbox)
    within = run_tap(tmp_path, sandbox.config(late_event_days=0, lookback_minutes=30), catalog=catalog,
                     state=first.last_state)
    assert late in _ids(within, "receive")


def test_malformed_counts_in_the_state_cost_a_re_read_not_the_run(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600)
    _busy(sandbox)
    catalog = catalog_selecting("receive")
    late = _held(sandbox, "Received Email", int(time.time()) - 2 * DAY)
    config = sandbox.config(revision=SMALL_PAGES)
    first = run_tap(tmp_path, config, catalog=catalog)
    _reveal(sandbox, late)
    state = first.last_state
    metric_id = next(iter(state["bookmarks"]["receive"]["counts"]))
    state["bookmarks"]["receive"]["counts"][metric_id] = {"yesterday": 3, "2026-01-01": -1}
    sandbox.post("/__sandbox/stats/reset", {})
    second = run_tap(tmp_path, config, catalog=catalog, state=state)
    assert _requests(sandbox)["metric_aggregates"] == 1, "a metric without usable counts is asked for them"
    assert late in _ids(second, "receive")
    warnings = [line for line in log_lines(second.stderr) if line.startswith("WARNING") and "counts" in line]
    assert len(warnings) == 2 and all("read again" in line for line in warnings)
    assert "yesterday" not in second.last_state["bookmarks"]["receive"]["counts"][metric_id]
