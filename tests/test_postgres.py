"""End to end: the tap piped into MeltanoLabs' target-postgres, loading a real PostgreSQL that the
test starts itself (as the postgres user, in a temporary directory, on a free loopback port)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests import expected
from tests.conftest import ROOT, tap_command, write_json

TARGET = ROOT / ".venv-target-postgres" / "bin" / "target-postgres"
CLASSIC_COLUMNS = {
    "event": {"id", "uuid", "timestamp", "datetime", "event_name", "statistic_id", "object", "event_properties",
              "person"},
    "lists": {"id", "name", "created", "updated", "object", "type", "person_count", "list_type", "folder"},
    "global_exclusions": {"email", "object", "reason", "timestamp"},
}


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Postgres:
    def __init__(self):
        self.bindir = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                          check=True).stdout.strip())
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.dir = Path(tempfile.mkdtemp(prefix="tap-klaviyo-pg-"))
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = _free_port()
        data = self.dir / "data"
        subprocess.run(self.as_postgres + [str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                                           "postgres", "--no-sync"], check=True, capture_output=True, cwd=self.dir)
        subprocess.run(self.as_postgres + [str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"),
                                           "-w", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                                           "-c fsync=off", "start"], check=True, capture_output=True, cwd=self.dir)
        self.data = data

    def sql(self, query):
        done = subprocess.run([str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", "postgres", "-At", "-F", "\t", "-c", query], capture_output=True, text=True,
                              check=True)
        return [line.split("\t") for line in done.stdout.splitlines()]

    def stop(self):
        subprocess.run(self.as_postgres + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                           "stop"], capture_output=True, cwd=self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    assert TARGET.exists(), "make test installs target-postgres in .venv-target-postgres"
    server = Postgres()
    yield server
    server.stop()


def pipe(tmp_path, postgres, config, state=None, name="run", catalog=None, schema="klaviyo"):
    target_config = write_json(tmp_path, "target.json", {
        "host": "127.0.0.1", "port": postgres.port, "user": "postgres", "password": "", "database": "postgres",
        "default_target_schema": schema, "load_method": "upsert"})
    command = tap_command() + ["--config", write_json(tmp_path, "tap.json", config)]
    if catalog is not None:
        command += ["--catalog", write_json(tmp_path, f"{name}-catalog.json", catalog)]
    if state is not None:
        command += ["--state", write_json(tmp_path, f"{name}-state.json", state)]
    with open(tmp_path / f"{name}-tap.log", "w") as tap_log, open(tmp_path / f"{name}-target.log", "w") as target_log:
        tap = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=tap_log, cwd=ROOT)
        target = subprocess.Popen([str(TARGET), "--config", target_config], stdin=tap.stdout,
                                  stdout=subprocess.PIPE, stderr=target_log)
        tap.stdout.close()
        out, _ = target.communicate(timeout=600)
        assert tap.wait() == 0, (tmp_path / f"{name}-tap.log").read_text()[-2000:]
    assert target.returncode == 0, (tmp_path / f"{name}-target.log").read_text()[-3000:]
    states = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return states[-1]


def counts(postgres, schema="klaviyo"):
    tables = [r[0] for r in postgres.sql("select table_name from information_schema.tables "
                                         f"where table_schema = '{schema}'")]
    return {t: int(postgres.sql(f'select count(*) from {schema}."{t}"')[0][0]) for t in tables}


def test_the_twelve_tables_load_into_postgres_and_stay_keyed(make_sandbox, postgres, tmp_path):
    sandbox = make_sandbox(events=1500)
    config = sandbox.config(list_person_count=True)
    state = pipe(tmp_path, postgres, config, name="first")
    dump = sandbox.dump()
    now = int(time.time())
    want = {stream: len(expected.event_rows(dump, stream, 0, now)) for stream in expected.CLASSIC_METRICS}
    want["lists"] = len(expected.list_rows(dump, True))
    want["global_exclusions"] = len(expected.exclusion_rows(dump))
    assert counts(postgres) == want
    for table in want:
        columns = {r[0] for r in postgres.sql("select column_name from information_schema.columns where "
                                              f"table_schema = 'klaviyo' and table_name = '{table}'")}
        assert CLASSIC_COLUMNS.get(table, CLASSIC_COLUMNS["event"]) <= columns, table
    wide = postgres.sql("""select event_properties->>'Order Number' from klaviyo.receive
                           where event_properties ? 'Order Number'""")
    assert wide == [[str(2 ** 70 + 7)]]

    time.sleep(1.1)
    added = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": name, "timestamp": int(time.time()) - 1}
        for name in ("Opened Email", "Opened Email", "Bounced Email", "Updated Email Preferences")]})["ids"]
    time.sleep(1.1)
    pipe(tmp_path, postgres, config, state=state, name="second")
    after = counts(postgres)
    assert after["open"] == want["open"] + 2 and after["bounce"] == want["bounce"] + 1
    assert after["update_email_preferences"] == want["update_email_preferences"] + 1
    assert after["lists"] == want["lists"] and after["global_exclusions"] == want["global_exclusions"]
    for table in want:
        key = "email" if table == "global_exclusions" else "id"
        total, distinct = postgres.sql(f'select count(*), count(distinct "{key}") from klaviyo."{table}"')[0]
        assert total == distinct, f"{table}: duplicated keys"
    loaded = {r[0] for r in postgres.sql("select id from klaviyo.open union all select id from klaviyo.bounce "
                                         "union all select id from klaviyo.update_email_preferences")}
    assert set(added) <= loaded


def test_the_opt_in_tables_load_into_postgres_with_their_keys(make_sandbox, postgres, tmp_path):
    from tests.conftest import catalog_selecting
    from tests.test_optin_streams import OPT_IN, expected_rows
    from tap_klaviyo.streams import BY_NAME
    sandbox = make_sandbox(events=600)
    started = int(time.time())
    pipe(tmp_path, postgres, sandbox.config(), catalog=catalog_selecting(*OPT_IN), schema="klaviyo_opt_in")
    dump = sandbox.dump()
    want = {stream: len(expected_rows(dump, stream, started)) for stream in OPT_IN}
    assert all(want.values()) and counts(postgres, "klaviyo_opt_in") == want
    for stream in OPT_IN:
        key = ", ".join(f'"{column}"' for column in BY_NAME[stream].key)
        total, distinct = postgres.sql(f'select count(*), count(distinct ({key})) from klaviyo_opt_in."{stream}"')[0]
        assert total == distinct, f"{stream}: duplicated keys"
    # nested objects arrive as JSON, child rows keep their parent's id
    orphans = postgres.sql("""select count(*) from klaviyo_opt_in.flow_messages m
                              left join klaviyo_opt_in.flow_actions a on a.id = m.flow_action_id where a.id is null""")
    assert orphans == [["0"]]
    assert postgres.sql("""select count(*) from klaviyo_opt_in.profiles
                           where subscriptions->'email'->'marketing' ? 'consent'""")[0][0] == str(want["profiles"])


def test_the_report_tables_load_into_postgres(make_sandbox, postgres, tmp_path):
    from tests.conftest import catalog_selecting
    from tests.sandbox import reports
    from tests.test_reports import DAY, expected_campaign_values, expected_flow_days, epoch, metric_id
    sandbox = make_sandbox(events=600)
    reports.populate(sandbox.account, seed=3)
    config = sandbox.config(report_days=100)
    catalog = catalog_selecting("campaign_values", "flow_series")
    dump = sandbox.dump()
    orders = metric_id(dump, "Placed Order", "Shopify")
    sums = "select count(*), sum(delivered), sum(conversions), round(sum(conversion_value)::numeric, 2) from "

    def want(found):
        return [str(len(found)), str(sum(f["delivered"] for _, f in found.values())),
                str(sum(f["conversions"] for _, f in found.values())),
                f'{sum(f["conversion_value"] for _, f in found.values()):.2f}']

    def check(state):
        frame = postgres.sql("""select distinct to_char(timeframe_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS'),
                                to_char(timeframe_end at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                                from klaviyo_reports.campaign_values""")
        assert len(frame) == 1
        values = expected_campaign_values(dump, orders, epoch(frame[0][0]), epoch(frame[0][1]))
        assert postgres.sql(sums + "klaviyo_reports.campaign_values")[0] == want(values)
        today = epoch(state["bookmarks"]["flow_series"]["since"])
        days = expected_flow_days(dump, orders, today - 100 * DAY, today + DAY)
        active = {k: v for k, v in days.items() if v[1]["delivered"] or v[1]["conversions"]}
        assert postgres.sql(sums + "klaviyo_reports.flow_series where delivered > 0 or conversions > 0")[0] == \
            want(active)

    state = pipe(tmp_path, postgres, config, catalog=catalog, schema="klaviyo_reports", name="first")
    check(state)
    assert postgres.sql("""select data_type from information_schema.columns where table_schema = 'klaviyo_reports'
                           and table_name = 'flow_series' and column_name = 'date'""") == [["date"]]
    # the next run re-reads the lookback days and the campaigns' rolling timeframe: upserted on their keys
    check(pipe(tmp_path, postgres, config, state=state, catalog=catalog, schema="klaviyo_reports", name="second"))
    total, distinct = postgres.sql("""select count(*), count(distinct (flow_message_id, send_channel, date))
                                      from klaviyo_reports.flow_series""")[0]
    assert total == distinct


RESOURCES = ("lists", "global_exclusions", "campaigns", "campaign_messages", "flows", "flow_actions",
             "flow_messages", "templates", "tags", "list_members", "segment_members")
KEYS = {"global_exclusions": ("email",), "list_members": ("list_id", "profile_id"),
        "segment_members": ("segment_id", "profile_id")}


def _live_and_deleted(postgres, schema, table):
    key = ", ".join(KEYS.get(table, ("id",)))
    rows = postgres.sql(f'select {key}, _sdc_deleted_at is not null from {schema}."{table}"')
    live = {tuple(r[:-1]) for r in rows if r[-1] == "f"}
    return live, {tuple(r[:-1]) for r in rows if r[-1] == "t"}


def _sandbox_keys(sandbox, table):
    from tests.test_optin_streams import expected_rows
    dump = sandbox.dump()
    if table == "lists":
        return {(k,) for k in expected.list_rows(dump, False)}
    if table == "global_exclusions":
        return {(k,) for k in expected.exclusion_rows(dump)}
    return {k if isinstance(k, tuple) else (k,) for k in expected_rows(dump, table, time.time())}


def test_deletions_reach_postgres_on_the_next_full_read_and_nothing_live_is_marked(make_sandbox, postgres, tmp_path):
    from tests.conftest import catalog_selecting, run_killed
    sandbox = make_sandbox(events=300, latency=0.05)
    catalog = catalog_selecting(*RESOURCES)
    schema = "klaviyo_deletions"
    state = pipe(tmp_path, postgres, sandbox.config(), catalog=catalog, schema=schema, name="first")
    for table in RESOURCES:
        live, deleted = _live_and_deleted(postgres, schema, table)
        assert live == _sandbox_keys(sandbox, table) and not deleted, table

    dump = sandbox.dump()
    flow = dump["flows"][0]["id"]
    action = next(a["id"] for a in dump["flow_actions"] if a["relationships"]["flow"]["data"]["id"] != flow)
    gone = {"list": dump["lists"][0]["id"], "segment": dump["segments"][-1]["id"], "campaign": dump["campaigns"][0]["id"],
            "flow": flow, "flow-action": action, "template": dump["templates"][-1]["id"], "tag": dump["tags"][0]["id"]}
    for kind, item in gone.items():
        sandbox.post("/__sandbox/delete", {"kind": kind, "id": item})
    member = next(m for m in dump["segment_members"] if m["segment_id"] != gone["segment"])
    sandbox.post("/__sandbox/members/remove", {"group_id": member["segment_id"], "profile_ids": [member["profile_id"]]})
    lifted = next(p for p in dump["profiles"] if p["attributes"]["subscriptions"]["email"]["marketing"]["suppression"]
                  and p["attributes"].get("email"))
    sandbox.post("/__sandbox/suppression/lift", {"profile_ids": [lifted["id"]]})

    # not due yet (full_refresh_days 7): only what every run reads in full (lists, tags) shows what
    # is gone; nothing else is marked
    state = pipe(tmp_path, postgres, sandbox.config(), catalog=catalog, state=state, schema=schema, name="second")
    assert _live_and_deleted(postgres, schema, "lists")[1] == {(gone["list"],), (gone["segment"],)}
    assert _live_and_deleted(postgres, schema, "tags")[1] == {(gone["tag"],)}
    assert all(not _live_and_deleted(postgres, schema, table)[1] for table in set(RESOURCES) - {"lists", "tags"})
    for table in RESOURCES:     # what is live in the warehouse: what Klaviyo has, and what it lost since
        assert _sandbox_keys(sandbox, table) <= _live_and_deleted(postgres, schema, table)[0], table

    # a full read killed half-way activates nothing: no live row marked
    config = sandbox.config(full_refresh_days=0, concurrency=2)
    killed = run_killed(tmp_path, config, catalog, 1.5, state=state)
    target_config = write_json(tmp_path, "target-killed.json", {
        "host": "127.0.0.1", "port": postgres.port, "user": "postgres", "password": "", "database": "postgres",
        "default_target_schema": schema, "load_method": "upsert"})
    complete = {m["stream"] for m in killed if m["type"] == "ACTIVATE_VERSION"}
    assert complete != set(RESOURCES), "the kill came after the full read had ended; nothing was tested"
    lines = "".join(json.dumps(m) + "\n" for m in killed)
    subprocess.run([str(TARGET), "--config", target_config], input=lines.encode(), check=True, capture_output=True)
    for table in RESOURCES:     # whatever the cut run activated, every row Klaviyo has is live
        assert _sandbox_keys(sandbox, table) <= _live_and_deleted(postgres, schema, table)[0], table

    # the next full read, from the cut run's last STATE, marks exactly what Klaviyo no longer has
    states = [m["value"] for m in killed if m["type"] == "STATE"]
    pipe(tmp_path, postgres, config, catalog=catalog, state=states[-1] if states else state, schema=schema,
         name="third")
    for table in RESOURCES:
        live, deleted = _live_and_deleted(postgres, schema, table)
        assert live == _sandbox_keys(sandbox, table), table
    assert (gone["list"],) in _live_and_deleted(postgres, schema, "lists")[1]
    assert (gone["campaign"],) in _live_and_deleted(postgres, schema, "campaigns")[1]
    assert (gone["flow"],) in _live_and_deleted(postgres, schema, "flows")[1]
    assert (gone["flow-action"],) in _live_and_deleted(postgres, schema, "flow_actions")[1]
    flow_children = {(a["id"],) for a in dump["flow_actions"] if a["relationships"]["flow"]["data"]["id"] == flow}
    assert flow_children and flow_children <= _live_and_deleted(postgres, schema, "flow_actions")[1]
    assert (gone["template"],) in _live_and_deleted(postgres, schema, "templates")[1]
    assert (gone["tag"],) in _live_and_deleted(postgres, schema, "tags")[1]
    assert (member["segment_id"], member["profile_id"]) in _live_and_deleted(postgres, schema, "segment_members")[1]
    assert (lifted["attributes"]["email"],) in _live_and_deleted(postgres, schema, "global_exclusions")[1]
    # the children of a deleted campaign and flow went with them
    deleted_messages = _live_and_deleted(postgres, schema, "campaign_messages")[1]
    assert deleted_messages and _live_and_deleted(postgres, schema, "flow_actions")[1]


def load(tmp_path, postgres, output, schema, name="load"):
    """A tap's output, as written, into target-postgres (upsert) under `schema`."""
    target_config = write_json(tmp_path, f"target-{name}.json", {
        "host": "127.0.0.1", "port": postgres.port, "user": "postgres", "password": "", "database": "postgres",
        "default_target_schema": schema, "load_method": "upsert"})
    target = subprocess.run([str(TARGET), "--config", target_config], input=output, capture_output=True,
                            text=True, timeout=600)
    assert target.returncode == 0, target.stderr[-3000:]


def test_the_newer_classic_tables_and_the_new_reports_load_into_postgres(make_sandbox, postgres, tmp_path):
    """Issue 22's tables that the opt-in test above does not select: the classic tap's newer
    (text-message) tables and the five new report streams, each row once under its key, the classic
    ones exactly the sandbox's events of both metric names."""
    from tests.conftest import catalog_selecting, run_tap
    from tests.sandbox import reports
    from tests.test_reports_more import NEW as NEW_REPORTS
    from tests.test_text_message_tables import TABLES, _rows
    from tap_klaviyo.streams import BY_NAME
    sandbox = make_sandbox(events=600)
    reports.populate(sandbox.account, seed=3)
    # 59 days: one request a report stream (a daily series holds 60 days)
    run = run_tap(tmp_path, sandbox.config(report_days=59), catalog=catalog_selecting(*TABLES, *NEW_REPORTS))
    load(tmp_path, postgres, run.stdout, "klaviyo_issue22")
    dump = sandbox.dump()
    loaded = counts(postgres, "klaviyo_issue22")
    written = {stream: {tuple(r[k] for k in BY_NAME[stream].key) for r in run.records(stream)}
               for stream in (*TABLES, *NEW_REPORTS)}
    assert all(written.values()), {stream for stream, keys in written.items() if not keys}
    assert loaded == {stream: len(keys) for stream, keys in written.items()}
    for table in TABLES:
        ids = {r[0] for r in postgres.sql(f'select id from klaviyo_issue22."{table}"')}
        assert ids == set(_rows(dump, table)), table
        assert {r[0] for r in postgres.sql(f'select column_name from information_schema.columns where '
                                           f"table_schema = 'klaviyo_issue22' and table_name = '{table}' "
                                           "and column_name not like '\\_sdc%'")} == CLASSIC_COLUMNS["event"]
    for stream in NEW_REPORTS:
        key = ", ".join(f'"{column}"' for column in BY_NAME[stream].key)
        total, distinct = postgres.sql(f'select count(*), count(distinct ({key})) from klaviyo_issue22."{stream}"')[0]
        assert total == distinct, f"{stream}: duplicated keys"
    # a series' day is a date, the SMS costs are numbers
    assert postgres.sql("""select data_type from information_schema.columns where table_schema = 'klaviyo_issue22'
                           and table_name = 'segment_series' and column_name = 'date'""") == [["date"]]
    assert postgres.sql("""select data_type from information_schema.columns where table_schema = 'klaviyo_issue22'
                           and table_name = 'flow_values' and column_name = 'text_message_spend'""") == [["numeric"]]
