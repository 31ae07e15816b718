"""A flaky API, a killed tap, a target that hangs up, bad input: no data lost, one clear line."""
import subprocess
import time

import pytest

from tests import expected
from tests.conftest import ROOT, catalog_selecting, error_lines, run_killed, run_tap, tap_command, write_json
from tests.sandbox.server import API_KEY, NO_EVENTS_KEY

EVENT_STREAMS = list(expected.CLASSIC_METRICS)


def keyed_rows(run):
    return {stream: {(r.get("id") or r.get("email")): r for r in rows} for stream, rows in run.by_stream().items()}


def test_a_sync_under_15_percent_faults_yields_the_rows_of_a_clean_one(make_sandbox, tmp_path):
    # pages of 200 (revision 2025-10-15) so the sync makes enough requests for the faults to bite
    sandbox = make_sandbox(events=20000, slow_seconds=2.5)
    config = sandbox.config(request_timeout=1, concurrency=8, list_person_count=True, revision="2025-10-15")
    clean = run_tap(tmp_path, config)
    sandbox.post("/__sandbox/stats/reset", {})
    sandbox.options.fault_rate = 0.15
    sandbox.options.fault_seed = 11
    faulty = run_tap(tmp_path, config)
    stats = sandbox.stats()
    # which requests fail depends on their URLs, which carry the sync's start time: the count varies
    # around 15%; a run with only a few faults would test little
    print(f"{stats['faults']} faults in {stats['requests']} requests")
    assert stats["faults"] >= 4
    assert keyed_rows(faulty) == keyed_rows(clean)
    assert sum(len(v) for v in keyed_rows(clean).values()) > 1500
    assert "retry" in faulty.stderr


@pytest.mark.parametrize("kill_after", [0.5, 2.0, 4.0])
def test_sigkill_then_resume_loses_nothing(make_sandbox, tmp_path, kill_after):
    # about 6 s of run: ~35 requests of 400 ms, two at a time
    sandbox = make_sandbox(events=3000, latency=0.4)
    config = sandbox.config(concurrency=2, revision="2025-10-15")
    catalog = catalog_selecting(*EVENT_STREAMS)
    first = run_killed(tmp_path, config, catalog, kill_after)
    states = [m["value"] for m in first if m["type"] == "STATE"]
    first_ids = {m["record"]["id"] for m in first if m["type"] == "RECORD"}
    second = run_tap(tmp_path, config, catalog=catalog, state=states[-1] if states else None)
    dump = sandbox.dump()
    want = set()
    for stream in EVENT_STREAMS:
        want |= set(expected.event_rows(dump, stream, 0, int(time.time()) - 1))
    union = first_ids | second.event_ids()
    assert want <= union
    assert len(first_ids) < len(want), "the kill came after the run had finished; nothing was tested"


def test_a_target_that_stops_reading_ends_the_tap_quietly(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=3000)
    command = tap_command() + ["--config", write_json(tmp_path, "c.json", sandbox.config())]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    process.stdout.read(2000)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) != 0
    assert "Traceback" not in stderr
    assert error_lines(stderr) == ["tap-klaviyo: the target stopped reading stdout (broken pipe); stopping, "
                                   "the last STATE written stands"]


def _fails_with(run, *words):
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1, run.stderr
    for word in words:
        assert word in lines[0], lines[0]
    for secret in (API_KEY, NO_EVENTS_KEY, "pk_wrong_key_123456"):
        assert secret not in run.stderr and secret not in run.stdout
    return lines[0]


def _tap(tmp_path, *args):
    completed = subprocess.run(tap_command() + list(args), capture_output=True, text=True, cwd=ROOT, timeout=120)
    from tests.conftest import TapRun
    return TapRun(completed)


def test_bad_config_files(tmp_path):
    _fails_with(_tap(tmp_path, "--config", str(tmp_path / "nope.json")), "does not exist")
    _fails_with(_tap(tmp_path, "--config", write_json(tmp_path, "bad.json", "{not json")), "not valid JSON")
    _fails_with(_tap(tmp_path, "--config", write_json(tmp_path, "a.json", {"start_date": "2024-01-01"})),
                "api_key")
    _fails_with(_tap(tmp_path, "--config", write_json(tmp_path, "b.json", {"api_key": API_KEY})), "start_date")
    _fails_with(_tap(tmp_path, "--config", write_json(tmp_path, "c.json", {"api_key": API_KEY,
                                                                           "start_date": "last tuesday"})),
                "start_date", "2024-01-01T00:00:00Z")
    _fails_with(_tap(tmp_path, "--config", write_json(tmp_path, "d.json", {
        "api_key": API_KEY, "start_date": "2024-01-01", "base_url": "http://a.klaviyo.com"})), "https")
    _fails_with(_tap(tmp_path), "--config")


def test_bad_state_and_catalog(sandbox, tmp_path):
    config = sandbox.config()
    _fails_with(run_tap(tmp_path, config, state="{oops", check=False), "state", "not valid JSON")
    _fails_with(run_tap(tmp_path, config, state=[1, 2], check=False), "state", "object")
    _fails_with(run_tap(tmp_path, config, state={"bookmarks": []}, check=False), "bookmarks")
    line = _fails_with(run_tap(tmp_path, config, state={"bookmarks": {"receive": {"since": "yesterday"}}},
                               check=False), "receive", "yesterday")
    assert "since" in line
    _fails_with(run_tap(tmp_path, config, catalog="[", check=False), "catalog", "not valid JSON")
    catalog = catalog_selecting("receive")
    catalog["streams"].append({"tap_stream_id": "campaign_clicks", "schema": {}, "metadata": []})
    _fails_with(run_tap(tmp_path, config, catalog=catalog, check=False), "campaign_clicks", "--discover")


@pytest.mark.parametrize("mode", ["--discover", "sync"])
def test_api_refusals_say_what_to_do(sandbox, tmp_path, mode):
    args = ["--discover"] if mode == "--discover" else []
    _fails_with(run_tap(tmp_path, sandbox.config(api_key="pk_wrong_key_123456"), *args, check=False),
                "401", "api_key")
    _fails_with(run_tap(tmp_path, sandbox.config(revision="2024-10-15"), *args, check=False),
                "revision", "2024-10-15", "2025-01-15")
    # a supported revision that Klaviyo has since retired (the sandbox's calendar moved on)
    sandbox.server.sandbox.retired_before = "2025-02-01"
    _fails_with(run_tap(tmp_path, sandbox.config(revision="2025-01-15"), *args, check=False),
                "410", "revision", "2026-07-15 (the default)")
    _fails_with(run_tap(tmp_path, sandbox.config(base_url="http://127.0.0.1:9"), *args, check=False),
                "cannot reach", "base_url")
    if mode == "sync":
        _fails_with(run_tap(tmp_path, sandbox.config(api_key=NO_EVENTS_KEY), check=False), "403", "events:read",
                    "scope")


def test_tls_checks_stay_on(sandbox, tmp_path):
    port = sandbox.base_url.rsplit(":", 1)[1]
    _fails_with(run_tap(tmp_path, sandbox.config(base_url=f"https://127.0.0.1:{port}", max_retry_seconds=2),
                        "--discover", check=False), "TLS")


def test_a_server_error_that_persists_names_endpoint_status_and_detail(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=200)
    sandbox.options.fault_rate = 1.0
    run = run_tap(tmp_path, sandbox.config(max_retry_seconds=3, request_timeout=1), "--discover", check=False)
    _fails_with(run, "/api/metrics", "max_retry_seconds")


def test_the_key_never_appears_in_a_successful_run(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config())
    assert API_KEY not in run.stdout and API_KEY not in run.stderr
    from tap_klaviyo.config import load_config
    config = load_config(sandbox.config())
    assert API_KEY not in repr(config) and API_KEY not in str(config)


def test_a_first_attempt_slower_than_the_retry_budget_is_still_retried(make_sandbox, tmp_path):
    # every URL fails once, slow or as a 200 of `[]` (URLs carry the run's end time, so the draw must
    # not leave either kind to chance); a slow one takes the whole request_timeout, longer than
    # max_retry_seconds: the budget counts from the failure, so it is retried all the same
    sandbox = make_sandbox(events=1500, slow_seconds=2.5, fault_rate=1.0, faults_per_target=1, fault_seed=3,
                           fault_kinds=("slow", "200array"))
    config = sandbox.config(request_timeout=1, max_retry_seconds=1, concurrency=8)
    faulty = run_tap(tmp_path, config)
    assert "no answer within 1 s" in faulty.stderr        # a slow fault happened and was retried
    assert "answer without a JSON:API 'data' member" in faulty.stderr   # so was a 200 of `[]`
    sandbox.options.fault_rate = 0.0
    clean = run_tap(tmp_path, config)
    assert keyed_rows(faulty) == keyed_rows(clean)
