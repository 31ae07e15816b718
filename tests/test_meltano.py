"""The README's Meltano commands, end to end: examples/meltano.yml installed by Meltano itself (its
own virtualenv, .venv-meltano, made by `make test`) from the package index alone, then
`meltano run tap-klaviyo target-postgres` twice into a real PostgreSQL, the tap pointed at the
loopback sandbox. Meltano keeps the state between the runs; `meltano state get` and `set` round-trip
it, and the second run reads only what is new."""
import json
import os
import re
import subprocess
import time

import pytest

from tests import expected
from tests.conftest import ROOT
from tests.sandbox.server import API_KEY
from tests.test_postgres import Postgres

MELTANO = ROOT / ".venv-meltano" / "bin" / "meltano"
EXAMPLE = ROOT / "examples"
SCHEMA = "klaviyo_meltano"
STATE_ID = "dev:tap-klaviyo-to-target-postgres"


@pytest.fixture(scope="module")
def postgres():
    server = Postgres()
    yield server
    server.stop()


def _meltano(env, *args, timeout=600):
    """One meltano command in examples/, as the README writes it; its output, or the failure."""
    done = subprocess.run([str(MELTANO), *args], cwd=EXAMPLE, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"meltano {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def _counts(postgres):
    tables = [r[0] for r in postgres.sql(f"select table_name from information_schema.tables where table_schema = "
                                         f"'{SCHEMA}'")]
    return {t: int(postgres.sql(f'select count(*) from {SCHEMA}."{t}"')[0][0]) for t in tables}


def _event_rows(meltano_stderr):
    """The classic event rows the tap says it wrote, from its closing line as Meltano relays it."""
    done = re.search(r"INFO sync done in [\d.]+ s: (.*?); \d+ requests", meltano_stderr)
    assert done, meltano_stderr[-3000:]
    written = {name: int(n) for name, n in re.findall(r"(\w+) (\d+)", done.group(1))}
    return sum(n for name, n in written.items() if name in expected.CLASSIC_METRICS)


def _quiet(run):
    """Meltano hands the tap its config, catalog and state as the tap reads them: no warning about
    a config key, a state's shape or a catalog's columns."""
    said = [line for line in run.stderr.splitlines() if " WARNING " in line]
    assert not [line for line in said if "config key" in line or "state" in line or "does not have" in line], said


def _bookmarks(state):
    return {stream: mark["since"] for stream, mark in state["singer_state"]["bookmarks"].items()}


def test_the_meltano_example_installs_offline_and_runs_incrementally_into_postgres(make_sandbox, postgres,
                                                                                 tmp_path):
    assert MELTANO.exists(), "make test installs Meltano in .venv-meltano"
    sandbox = make_sandbox(events=900)
    # `make test` runs pytest inside .venv: Meltano's installs must not take that for their target
    env = {key: value for key, value in os.environ.items()
           if key != "VIRTUAL_ENV" and not key.startswith(("MELTANO_", "TAP_KLAVIYO_", "TARGET_POSTGRES_"))}
    env.update({
        # Meltano's own files (plugin virtualenvs, its state database) go to the test's directory,
        # not into examples/
        "MELTANO_SYS_DIR_ROOT": str(tmp_path / ".meltano"),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_KLAVIYO_API_KEY": API_KEY, "TAP_KLAVIYO_BASE_URL": sandbox.base_url,
        "TAP_KLAVIYO_START_DATE": "2020-01-01T00:00:00Z", "TAP_KLAVIYO_MAX_RETRY_SECONDS": "60",
        "TARGET_POSTGRES_HOST": "127.0.0.1", "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_PASSWORD": "unused", "TARGET_POSTGRES_DATABASE": "postgres",
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
    })
    # no Meltano Hub: every plugin is declared whole, so nothing but the package index is asked
    installed = _meltano(env, "install")
    assert "Installed 2/2 plugins" in installed.stderr + installed.stdout

    first = _meltano(env, "run", "tap-klaviyo", "target-postgres")
    started = int(time.time())
    dump = sandbox.dump()
    want = {stream: len(expected.event_rows(dump, stream, 0, started)) for stream in expected.CLASSIC_METRICS}
    want["lists"] = len(expected.list_rows(dump, True))
    want["global_exclusions"] = len(expected.exclusion_rows(dump))
    assert _counts(postgres) == want
    _quiet(first)

    saved = json.loads(_meltano(env, "state", "get", STATE_ID).stdout)
    marks = _bookmarks(saved)
    assert set(expected.CLASSIC_METRICS) <= set(marks)
    # what `state get` prints, `state set` takes back unchanged
    _meltano(env, "state", "set", "--force", STATE_ID, json.dumps(saved))
    assert json.loads(_meltano(env, "state", "get", STATE_ID).stdout) == saved

    time.sleep(1.1)
    added = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": name, "timestamp": int(time.time()) - 1}
        for name in ("Opened Email", "Opened Email", "Bounced Email")]})["ids"]
    time.sleep(1.1)
    first_requests = sandbox.stats()["requests"]
    second = _meltano(env, "run", "tap-klaviyo", "target-postgres")
    second_requests = sandbox.stats()["requests"] - first_requests
    _quiet(second)
    after = _counts(postgres)
    assert after["open"] == want["open"] + 2 and after["bounce"] == want["bounce"] + 1
    assert {t: n for t, n in after.items() if t not in ("open", "bounce")} == \
        {t: n for t, n in want.items() if t not in ("open", "bounce")}
    # incremental: the new events (and the sandbox's few future-dated ones, once due), not the account again
    assert _event_rows(first.stderr) == sum(want[s] for s in expected.CLASSIC_METRICS)
    assert len(added) <= _event_rows(second.stderr) <= len(added) + 3
    # beside one count of each metric's recent days (late events, tests/test_late_events.py)
    counts = sandbox.stats()["by_family"].get("metric_aggregates", 0)
    assert 0 < counts <= sum(len(names) for names in expected.CLASSIC_METRICS.values())
    assert second_requests - counts <= first_requests, (second_requests, counts, first_requests)
    loaded = {r[0] for r in postgres.sql(f"select id from {SCHEMA}.open union all select id from {SCHEMA}.bounce")}
    assert set(added) <= loaded
    moved = _bookmarks(json.loads(_meltano(env, "state", "get", STATE_ID).stdout))
    assert moved["open"] > marks["open"] and moved["bounce"] > marks["bounce"]
    assert all(moved[stream] >= marks[stream] for stream in expected.CLASSIC_METRICS)
