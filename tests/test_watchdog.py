"""A run that stops making progress ends, with every thread's stack and one line, instead of hanging;
an announced wait is not a hang; and the lock order that keeps the tap's own waits from deadlocking
is checked at every wait, not left to comments."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from tests import expected
from tests.conftest import ROOT, catalog_selecting, child_pids, error_lines, run_tap, tap_command, write_json
from tests.sandbox.server import API_KEY

WATCHDOG = re.compile(r"tap-klaviyo: error: no progress for (\d+) s \(.*\); the stacks of every thread are above; "
                      r"please report it")


def _assert_watchdog_ended(returncode, stdout, stderr, seconds):
    assert returncode == 1, stderr[-3000:]
    lines = error_lines(stderr)
    assert WATCHDOG.fullmatch(lines[-1]) and int(WATCHDOG.fullmatch(lines[-1]).group(1)) == seconds, lines[-5:]
    # the stack dump (faulthandler's, one block per thread), and no Python traceback besides
    assert "(most recent call first)" in stderr and re.search(r"^Thread 0x[0-9a-f]+ ", stderr, re.M)
    assert stderr.count("(most recent call first)") >= 2      # every thread, not only the watchdog's
    assert "Traceback" not in stderr
    assert API_KEY not in stderr and API_KEY not in stdout
    for line in stdout.splitlines():        # what was written stands: whole Singer messages
        json.loads(line)


@pytest.mark.parametrize("mode", ["sync", "discover"])
def test_an_answer_whose_body_never_completes_ends_the_run(make_sandbox, tmp_path, mode):
    # every events (sync) or metrics (discovery) answer sends half its body, then nothing; the
    # client's read timeout (120 s) is far beyond the test's own bound: only the watchdog ends it
    sandbox = make_sandbox(events=600, fault_rate=1.0, fault_kinds=("stall",),
                           fault_families=("events",) if mode == "sync" else ("metrics",))
    config = sandbox.config(watchdog_seconds=3, request_timeout=120)
    if mode == "sync":
        run = run_tap(tmp_path, config, catalog=catalog_selecting(*expected.CLASSIC_METRICS), timeout=60,
                      check=False)
    else:
        run = run_tap(tmp_path, config, "--discover", timeout=60, check=False)
    assert sandbox.stats()["faults"] >= 1
    _assert_watchdog_ended(run.returncode, run.stdout, run.stderr, 3)
    # the dump shows where: a thread reading the stalled body
    assert "read" in run.stderr and "client.py" in run.stderr


def _state(pid):
    """The process's state letter (T: stopped, Z: exited, not reaped), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_a_decode_helper_that_stops_ends_the_run_and_the_helper(make_sandbox, tmp_path):
    # pages of 200, 200 ms a request, two connections: a few seconds of run; the helper is stopped
    # (SIGSTOP) as soon as it exists, so the page handed to it is never decoded
    sandbox = make_sandbox(events=3000, latency=0.2)
    config = sandbox.config(revision="2025-10-15", decode_processes=1, concurrency=2, watchdog_seconds=4)
    command = tap_command() + ["--config", write_json(tmp_path, "config.json", config),
                               "--catalog", write_json(tmp_path, "catalog.json", catalog_selecting("receive", "open"))]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    helper = None
    try:
        deadline = time.monotonic() + 20
        while helper is None and time.monotonic() < deadline:
            found = child_pids(process.pid)
            helper = found[0] if found else None
            time.sleep(0.01)
        assert helper is not None, "the tap started no helper process"
        os.kill(helper, signal.SIGSTOP)
        stdout, stderr = process.communicate(timeout=90)
        _assert_watchdog_ended(process.returncode, stdout.decode(), stderr.decode(), 4)
        assert "decoding.py" in stderr.decode()     # a thread waiting on the helper
        # the stopped helper was ended (and reaped) by the tap, not left stopped behind it
        assert _state(helper) in (None, "Z")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if helper is not None and _state(helper) == "T":
            os.kill(helper, signal.SIGKILL)


def test_an_announced_rate_limit_wait_longer_than_the_watchdog_s_time_is_no_stall(make_sandbox, tmp_path):
    # each list's first request answered 429 with Retry-After: 8, which the tap waits out, announced,
    # with nothing else to do meanwhile; the watchdog's time is 3 s
    sandbox = make_sandbox(events=100, lists=3, segments=0, fault_rate=1.0, fault_kinds=("429",),
                           faults_per_target=1, throttle_seconds=8, fault_families=("lists",))
    run = run_tap(tmp_path, sandbox.config(watchdog_seconds=3), catalog=catalog_selecting("lists"), timeout=150)
    assert re.search(r"INFO waiting [78] s for Klaviyo's rate limit on lists .*429", run.stderr), run.stderr
    assert len(run.records("lists")) == 3 and "no progress" not in run.stderr


# --- the lock order, checked at each wait ------------------------------------------------------

def _client(sandbox, **settings):
    from tap_klaviyo.client import KlaviyoClient
    from tap_klaviyo.config import load_config
    return KlaviyoClient(load_config(sandbox.config(**settings)))


def _in_thread(function):
    """function() run on a thread of its own (the record of what a thread holds is per thread):
    what it returned or raised."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as exc:    # noqa: B036 - handed to the test
            outcome["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the wait was not refused: the thread is still waiting"
    return outcome


def test_waiting_for_a_body_permit_while_holding_one_is_refused(sandbox):
    """The first deadlock: a page retried (a new permit wanted) while the page after it, fetched
    ahead, held a permit; as many readers as permits then waited for ever."""
    from tap_klaviyo.watchdog import LockOrderError
    client = _client(sandbox)

    def held_then_requested():
        client._bodies.acquire()
        try:
            return client.get("metrics", client.url("/api/metrics"))
        finally:
            client._bodies.release()
    outcome = _in_thread(held_then_requested)
    assert isinstance(outcome.get("error"), LockOrderError), outcome
    assert "waiting for the body permit while holding the body permit" in str(outcome["error"])
    # holding nothing, the same request goes through, and every permit is back
    assert _in_thread(lambda: client.get("metrics", client.url("/api/metrics")))["value"]["data"]
    assert client._bodies.free() == 4


def test_waiting_for_the_metric_list_while_holding_a_body_permit_is_refused(sandbox):
    """The second deadlock: scans waiting for the metric list each held a body permit; the list,
    retried, waited for one."""
    from tap_klaviyo.engine import SyncContext
    from tap_klaviyo.tasks.events import all_metrics
    from tap_klaviyo.watchdog import LockOrderError
    client = _client(sandbox)
    context = SyncContext(client.config, client, {}, int(time.time()), [])

    def held_then_listed():
        client._bodies.acquire()
        try:
            return all_metrics(context)
        finally:
            client._bodies.release()
    outcome = _in_thread(held_then_listed)
    assert isinstance(outcome.get("error"), LockOrderError), outcome
    assert "waiting for the metric list while holding the body permit" in str(outcome["error"])
    assert _in_thread(lambda: all_metrics(context))["value"]


def test_waiting_for_the_writer_or_a_decode_turn_while_holding_a_decode_turn_is_refused():
    from tap_klaviyo.decoding import Decoders
    from tap_klaviyo.watchdog import LockOrderError, hold, let_go, waiting
    decoders = Decoders()

    def nested(wait):
        decoders._take(portable=False)
        try:
            return wait()
        finally:
            decoders._give_back(None)
    for wait in (lambda: waiting("writer room"), lambda: decoders._take(portable=False)):
        outcome = _in_thread(lambda: nested(wait))
        assert isinstance(outcome.get("error"), LockOrderError), outcome

    def in_order():     # a body permit held while waiting for the writer, then a decode turn: the order
        hold("body permit")
        try:
            waiting("writer room")
            return nested(lambda: "decoded")
        finally:
            let_go("body permit")
    assert _in_thread(in_order) == {"value": "decoded"}
