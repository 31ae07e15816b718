"""Shared test machinery: a sandbox per test on loopback, and the tap run as a real process."""
import calendar
import contextlib
import json
import os
import signal
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode
from pathlib import Path

import pytest
from hypothesis import settings

# shared machines stall at random; a timing deadline would make property tests flaky
settings.register_profile("tap", deadline=None)
settings.load_profile("tap")

from tests.sandbox.data import generate
from tests.sandbox.server import API_KEY, Options, serve

ROOT = Path(__file__).resolve().parent.parent
START_DATE = "2020-01-01T00:00:00Z"


class Sandbox:
    def __init__(self, account, options):
        self.account = account
        self.server, self.base_url = serve(account, options)
        self.options = options

    def get(self, path):
        with urllib.request.urlopen(self.base_url + path) as response:
            return json.loads(response.read())

    def post(self, path, payload):
        request = urllib.request.Request(self.base_url + path, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def api(self, path, params=None, *, revision, key=API_KEY, body=None):
        """(status, document, headers) of one API request: a GET, or a POST of body. path may be a
        whole URL (a links.next as Klaviyo gave it). A refusal is answered, not raised."""
        url = path if path.startswith("http") else self.base_url + path + ("?" + urlencode(params) if params else "")
        headers = {"Authorization": f"Klaviyo-API-Key {key}", "accept": "application/vnd.api+json"}
        if revision is not None:
            headers["revision"] = revision
        if body is not None:
            headers["Content-Type"] = "application/vnd.api+json"
        request = urllib.request.Request(url, headers=headers, data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), dict(error.headers)

    def admin(self, path, payload):
        """(status, body) of an admin POST; post() raises on a refusal instead."""
        request = urllib.request.Request(self.base_url + path, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def dump(self):
        return self.get("/__sandbox/dump")

    def stats(self):
        return self.get("/__sandbox/stats")

    def config(self, **overrides):
        config = {"api_key": API_KEY, "start_date": START_DATE, "base_url": self.base_url,
                  "list_person_count": False, "max_retry_seconds": 60}
        config.update(overrides)
        return config

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def logged_sandbox(**account):
    """A sandbox of a generated account (data.generate's arguments) for a module's tests: limits
    relaxed 20 times, its requests in sandbox.log (RequestLog)."""
    sandbox = Sandbox(generate(**account), Options(rate_scale=20.0))
    sandbox.log = RequestLog(sandbox)
    try:
        yield sandbox
    finally:
        sandbox.close()


class RequestLog:
    """The sandbox runs in this process: every API request it answers, as the tests see it.
    entries: (path, query) of each GET it routes; requests: (revision, operation, query) of each
    request it checks against the spec (GETs and POSTs, operation as tests/sandbox/spec.py names it)."""

    def __init__(self, sandbox):
        from tests.sandbox import spec as sandbox_spec
        self.entries = []
        self.requests = []
        server = sandbox.server.sandbox
        route, check = server.route, server.check_spec

        def routed(path, query):
            self.entries.append((path, dict(query)))
            return route(path, query)

        def checked(method, path, query, headers, body=None):
            self.requests.append((headers.get("revision"), sandbox_spec.operation(method, path), dict(query)))
            return check(method, path, query, headers, body)
        server.route, server.check_spec = routed, checked

    def queries(self, path_pattern):
        """The queries of the GETs whose path matches path_pattern (re.fullmatch)."""
        return [query for path, query in self.entries if re.fullmatch(path_pattern, path)]

    def of(self, operation):
        """The queries of the requests of one spec operation ("GET /api/forms/{id}/form-versions")."""
        return [query for _, sent, query in self.requests if sent == operation]

    def clear(self):
        self.entries.clear()
        self.requests.clear()


@pytest.fixture
def make_sandbox():
    made = []

    def make(events=1500, seed=7, lists=3, segments=2, **options):
        options.setdefault("rate_scale", 20.0)
        sandbox = Sandbox(generate(events=events, seed=seed, lists=lists, segments=segments), Options(**options))
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def sandbox(make_sandbox):
    return make_sandbox()


class TapRun:
    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        try:
            self.messages = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
        except ValueError:      # not Singer lines (discovery prints one indented document)
            self.messages = []

    def records(self, stream=None):
        return [m["record"] for m in self.messages
                if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)]

    def event_ids(self):
        return {r["id"] for r in self.records() if "statistic_id" in r}

    def by_stream(self):
        out = {}
        for m in self.messages:
            if m["type"] == "RECORD":
                out.setdefault(m["stream"], []).append(m["record"])
        return out

    def states(self):
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self):
        states = self.states()
        return states[-1] if states else None


def write_json(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(json.dumps(value) if not isinstance(value, str) else value)
    return str(path)


def tap_command():
    return [sys.executable, "-m", "tap_klaviyo"]


def run_tap(tmp_path, config, *args, catalog=None, state=None, env=None, timeout=300, check=True):
    command = tap_command() + ["--config", write_json(tmp_path, "config.json", config)]
    if catalog is not None:
        command += ["--catalog", write_json(tmp_path, "catalog.json", catalog)]
    if state is not None:
        command += ["--state", write_json(tmp_path, "state.json", state)]
    command += list(args)
    full_env = dict(os.environ)
    full_env.update(env or {})
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)
    if check and completed.returncode != 0:
        raise AssertionError(f"tap exited {completed.returncode}: {completed.stderr[-3000:]}")
    return TapRun(completed)


def catalog_selecting(*names, tmp_path=None):
    from tap_klaviyo.discovery import discover
    catalog = discover()
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in names
    return catalog


_LOG_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


def log_lines(stderr):
    """stderr's lines with each log line's leading UTC timestamp taken off ('INFO progress ...')."""
    return [line[_LOG_TIME.match(line).end():] if _LOG_TIME.match(line) else line for line in stderr.splitlines()]


def error_lines(stderr):
    """stderr without the log lines (INFO/WARNING, metrics): what a person reads as the failure."""
    return [line for line in log_lines(stderr.strip()) if not line.startswith(("INFO ", "WARNING "))]


def pytest_report_header(config):
    return ["every test runs the tap as a real process against the loopback Klaviyo sandbox (tests/sandbox); "
            "test_postgres loads a real PostgreSQL through target-postgres, test_first_hour DuckDB through "
            "target-duckdb (make demo), test_sync checks the output with singer-check-tap"]


def run_killed(tmp_path, config, catalog, seconds, state=None):
    """Run the tap and SIGKILL it after `seconds`; the messages of its complete stdout lines."""
    command = tap_command() + ["--config", write_json(tmp_path, "killed-config.json", config),
                               "--catalog", write_json(tmp_path, "killed-catalog.json", catalog)]
    if state is not None:
        command += ["--state", write_json(tmp_path, "killed-state.json", state)]
    out = tmp_path / "killed.jsonl"
    with open(out, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.DEVNULL, cwd=ROOT)
        time.sleep(seconds)
        process.send_signal(signal.SIGKILL)
        process.wait()
    # the tail may be cut mid-line
    return [json.loads(line) for line in out.read_bytes().split(b"\n")[:-1] if line.strip()]


def assert_state_never_passes_unemitted(messages, wanted):
    """wanted: stream -> [(timestamp, event id)] sorted. Every STATE's bookmark of a stream may only
    lie after events already written; returns how many events the bookmarks covered."""
    covered = dict.fromkeys(wanted, 0)
    emitted, checked = set(), 0
    for message in messages:
        if message["type"] == "RECORD":
            emitted.add(message["record"].get("id"))
        elif message["type"] == "STATE":
            for stream, bookmark in message["value"].get("bookmarks", {}).items():
                if stream not in wanted:
                    continue
                since = calendar.timegm(time.strptime(bookmark["since"], "%Y-%m-%dT%H:%M:%SZ"))
                events = wanted[stream]
                while covered[stream] < len(events) and events[covered[stream]][0] < since:
                    assert events[covered[stream]][1] in emitted, f"{stream}: state passed an unemitted event"
                    covered[stream] += 1
                    checked += 1
    return checked


def child_pids(pid):
    """The ids of a process's children (Linux /proc); none once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:
        return []
