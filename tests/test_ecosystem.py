"""What Singer hosts read: --about, --version, the metrics and progress logs, the Meltano example."""
import json
import re
import subprocess

from tap_klaviyo.config import SETTINGS
from tests.conftest import ROOT, catalog_selecting, log_lines, run_tap, tap_command


def test_about_json_lists_capabilities_and_every_setting():
    done = subprocess.run(tap_command() + ["--about", "--format", "json"], capture_output=True, text=True, check=True)
    about = json.loads(done.stdout)
    assert about["name"] == "tap-klaviyo" and about["version"]
    assert set(about["capabilities"]) >= {"catalog", "discover", "state", "properties"}
    properties = about["settings"]["properties"]
    assert set(properties) == {s.name for s in SETTINGS}
    assert properties["api_key"]["secret"] is True and properties["revision"]["default"] == "2026-07-15"
    assert set(about["settings"]["required"]) == {"api_key", "start_date"}
    markdown = subprocess.run(tap_command() + ["--about"], capture_output=True, text=True, check=True).stdout
    assert "| api_key |" in markdown


def test_version():
    done = subprocess.run(tap_command() + ["--version"], capture_output=True, text=True, check=True)
    assert re.fullmatch(r"tap-klaviyo \d+\.\d+\.\d+\n", done.stdout)


def test_metrics_on_stderr(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config())
    metrics = [json.loads(line.split("METRIC: ", 1)[1]) for line in run.stderr.splitlines() if "METRIC: " in line]
    timers = [m for m in metrics if m["metric"] == "http_request_duration"]
    assert timers and all({"endpoint", "http_status_code", "status"} <= set(m["tags"]) for m in timers)
    counted = {}
    for m in metrics:
        if m["metric"] == "record_count":
            counted[m["tags"]["endpoint"]] = counted.get(m["tags"]["endpoint"], 0) + m["value"]
    assert counted == {stream: len(rows) for stream, rows in run.by_stream().items()} | \
        {s: 0 for s in counted if s not in run.by_stream()}
    assert "sync done" in run.stderr


def test_progress_lines_for_a_long_sync(make_sandbox, tmp_path):
    # about 9 s (pages of 200, 400 ms each, one at a time): progress lines come every 5 s
    sandbox = make_sandbox(events=6000, latency=0.4)
    run = run_tap(tmp_path, sandbox.config(concurrency=1, revision="2025-10-15"),
                  catalog=catalog_selecting("receive", "open", "click"))
    progress = [line for line in log_lines(run.stderr) if line.startswith("INFO progress ")]
    assert progress and re.search(r"rows/s\), reading \d{4}-\d\d-\d\dT", "\n".join(progress))


def test_meltano_example_matches_the_settings():
    text = (ROOT / "examples" / "meltano.yml").read_text()
    for setting in SETTINGS:
        assert f"name: {setting.name}" in text
    readme = (ROOT / "README.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in readme
