"""Pages decoded in helper processes (config decode_processes): the same rows as in the tap's own
process, a helper's death costs nothing, and no helper outlives the tap."""
import json
import os
import signal
import subprocess
import time

from tests import expected
from tests.conftest import ROOT, catalog_selecting, child_pids, run_tap, tap_command, write_json

EVENT_STREAMS = tuple(expected.CLASSIC_METRICS)
STREAMS = EVENT_STREAMS + ("events", "profiles", "lists")


def _rows(run):
    return {stream: sorted(rows, key=lambda r: str(r.get("id") or r.get("email")))
            for stream, rows in run.by_stream().items()}


def _helper_pages(stderr):
    """Pages each helper decoded, from its closing log line."""
    return [int(line.split("decode helper process: ")[1].split(" pages")[0])
            for line in stderr.splitlines() if "decode helper process: " in line]


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] == "Z"     # a zombie has exited
    except FileNotFoundError:
        return True


def test_helpers_write_the_rows_of_the_tap_alone(make_sandbox, tmp_path):
    # pages of 200 (revision 2025-10-15): enough pages for every turn to take some
    sandbox = make_sandbox(events=4000)
    catalog = catalog_selecting(*STREAMS)
    alone = run_tap(tmp_path, sandbox.config(revision="2025-10-15", decode_processes=0), catalog=catalog)
    helped = run_tap(tmp_path, sandbox.config(revision="2025-10-15", decode_processes=2), catalog=catalog)
    assert _helper_pages(alone.stderr) == []
    pages = _helper_pages(helped.stderr)
    assert len(pages) == 2 and all(pages), helped.stderr[-2000:]      # both helpers decoded pages
    assert "did not end" not in helped.stderr       # each saw its pipe close (none kept another's open)
    assert _rows(helped) == _rows(alone)
    assert sum(len(rows) for rows in _rows(alone).values()) > 4000
    # at concurrency 1 a page at a time is decoded: no helper is started
    single = run_tap(tmp_path, sandbox.config(revision="2025-10-15", decode_processes=2, concurrency=1),
                     catalog=catalog)
    assert _helper_pages(single.stderr) == [] and _rows(single) == _rows(alone)


def test_faulty_answers_decoded_in_a_helper_are_retried_as_in_the_tap(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=3000, fault_rate=1.0, faults_per_target=1, fault_seed=5,
                           fault_kinds=("200array", "truncated"))
    config = sandbox.config(revision="2025-10-15", decode_processes=1, concurrency=8)
    catalog = catalog_selecting("events", "receive")
    faulty = run_tap(tmp_path, config, catalog=catalog)
    assert "answer without a JSON:API 'data' member" in faulty.stderr
    assert _helper_pages(faulty.stderr)[0] > 0
    sandbox.options.fault_rate = 0.0
    assert _rows(faulty) == _rows(run_tap(tmp_path, config, catalog=catalog))


def _start(tmp_path, config, catalog, name):
    command = tap_command() + ["--config", write_json(tmp_path, f"{name}-config.json", config),
                               "--catalog", write_json(tmp_path, f"{name}-catalog.json", catalog)]
    out, err = open(tmp_path / f"{name}.jsonl", "wb"), open(tmp_path / f"{name}.err", "wb")
    return subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT), out, err


def _wait_for_child(process):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = child_pids(process.pid)
        if children:
            return children[0]
        time.sleep(0.02)
    raise AssertionError("the tap started no helper process")


def test_a_helper_killed_mid_run_loses_nothing(make_sandbox, tmp_path):
    # 200 ms a request, two at a time: a few seconds of run, the helper killed inside it
    sandbox = make_sandbox(events=3000, latency=0.2)
    config = sandbox.config(revision="2025-10-15", decode_processes=1, concurrency=2)
    catalog = catalog_selecting("events", "receive")
    process, out, err = _start(tmp_path, config, catalog, "helper-killed")
    helper = _wait_for_child(process)
    time.sleep(1.0)
    os.kill(helper, signal.SIGKILL)
    assert process.wait(timeout=120) == 0
    out.close(), err.close()
    stderr = (tmp_path / "helper-killed.err").read_text()
    assert "ended unexpectedly" in stderr and "decoded in the tap's process" in stderr
    killed = {}
    for line in (tmp_path / "helper-killed.jsonl").read_text().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            killed.setdefault(message["stream"], []).append(message["record"])
    clean = run_tap(tmp_path, dict(config, decode_processes=0), catalog=catalog)
    assert {s: sorted(r["id"] for r in rows) for s, rows in killed.items()} == \
        {s: sorted(r["id"] for r in rows) for s, rows in clean.by_stream().items()}


def test_no_helper_outlives_a_killed_tap(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=3000, latency=0.2)
    config = sandbox.config(revision="2025-10-15", decode_processes=2, concurrency=2)
    process, out, err = _start(tmp_path, config, catalog_selecting(*EVENT_STREAMS), "tap-killed")
    _wait_for_child(process)
    time.sleep(0.5)
    helpers = child_pids(process.pid)
    assert len(helpers) == 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    out.close(), err.close()
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in helpers)
