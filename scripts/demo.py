"""make demo: the tap end to end on the bundled sandbox, checked table by table.

Starts the local Klaviyo sandbox (with the sends its report endpoints count), discovers, selects
every stream of the catalog, and pipes the tap into target-duckdb (its own virtualenv) while keeping
a copy of everything the tap wrote. Then it checks each table of demo-output/demo.duckdb (schema
klaviyo: `select count(*) from klaviyo.receive`) against that copy: the keys the tap wrote are
exactly the keys the table holds, once each, and a stream the sandbox holds data for has rows. Any
difference ends the demo with exit 1. It ends with an example query.

The report streams (campaign_values, flow_series) read an endpoint Klaviyo allows 2 calls a minute;
the demo asks them for the last REPORT_DAYS days only, one request each, so they cost no wait.

    .venv/bin/python scripts/demo.py [--events N] [--out DIR]
    .venv/bin/python scripts/demo.py --check [--out DIR]     # only re-check an earlier run's output
"""
import argparse
import calendar
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_DATE = "2024-01-01T00:00:00Z"
TAP = [str(ROOT / ".venv" / "bin" / "python"), "-m", "tap_klaviyo"]
TARGET_BIN = ROOT / ".venv-target-duckdb" / "bin"
SCHEMA = "klaviyo"
# The database file is not named like the schema: duckdb names a database after its file, and
# `klaviyo.receive` would then be ambiguous (database klaviyo or schema klaviyo?).
DATABASE = "demo.duckdb"
# One daily flow series holds up to 60 days; flow_series reads report_days back and today besides,
# so 59: one request each (the campaigns report the same days), where the default (a year) would be
# 7 flow series at 2 a minute.
REPORT_DAYS = 59
EXAMPLE_QUERY = ("select left(datetime, 7) as month, count(*) as received from klaviyo.receive "
                 "group by month order by month desc limit 6")

# target-duckdb as its console script runs it, with one change. It loads each batch with
# `COPY table FROM 'batch.csv'` and does not say the file has no header line, so duckdb guesses: in
# some tables (all-text ones, and others) it takes the first row of a batch for a header and drops
# it, whatever duckdb version. Every COPY here says `header false`, so nothing is guessed.
TARGET = """
import re, sys
import target_duckdb

COPY_OPTIONS = re.compile(r"(?is)^\\s*COPY\\s.+\\bWITH\\s*\\((.*)\\)\\s*$")


class HeaderlessCopy:
    def __init__(self, connection):
        self._connection = connection

    def execute(self, sql, *args, **kwargs):
        if sql.lstrip()[:4].upper() == "COPY":
            found = COPY_OPTIONS.match(sql)
            if not found:
                sys.exit("demo: target-duckdb's COPY statement changed shape; cannot add header false: " + sql)
            sql = sql[:found.end(1)] + ", header false" + sql[found.end(1):]
        return self._connection.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._connection, name)


connect = target_duckdb.duckdb_connect
target_duckdb.duckdb_connect = lambda config: HeaderlessCopy(connect(config))
sys.argv[0] = "target-duckdb"
target_duckdb.main()
"""

# Runs in the target's virtualenv (duckdb lives there): {table: [key columns]} in, for each table
# its row count and every row's key out; null for a table that does not exist.
TABLE_QUERY = """
import duckdb, json, pathlib, sys
spec = json.loads(sys.argv[2])
catalog = pathlib.Path(sys.argv[1]).stem   # duckdb names the database after the file
connection = duckdb.connect(sys.argv[1], read_only=True)
existing = {row[0] for row in connection.execute(
    "select table_name from information_schema.tables where table_catalog = ? and table_schema = ?",
    [catalog, sys.argv[3]]).fetchall()}
out = {}
for table, keys in spec.items():
    if table not in existing:
        out[table] = None
        continue
    name = f'"{catalog}"."{sys.argv[3]}"."{table}"'
    rows = connection.execute(f"select count(*) from {name}").fetchone()[0]
    columns = ", ".join(f'"{k.lower()}"' for k in keys)
    found = connection.execute(f"select {columns} from {name}").fetchall() if keys else []
    out[table] = {"rows": rows, "keys": [[str(v) for v in row] for row in found]}
print(json.dumps(out))
"""


class Paths:
    def __init__(self, out):
        self.out = out
        self.database = out / DATABASE
        self.config = out / "config.json"
        self.catalog = out / "catalog.json"
        self.tap_output = out / "tap-output.jsonl"      # every line the tap wrote, as the target got it
        self.tap_log = out / "tap.log"
        self.target_log = out / "target.log"
        self.target_states = out / "target-states.jsonl"
        self.state = out / "state.json"
        self.expected = out / "sandbox-has-data.json"    # per stream: whether the sandbox holds rows for it


def start_sandbox(paths, events):
    ready = paths.out / "sandbox.json"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "tests.sandbox", "--port", "0",
                                "--events", str(events), "--lists", "6", "--segments", "4", "--report-events",
                                "--ready-file", str(ready)], cwd=ROOT, stdout=subprocess.DEVNULL)
    for _ in range(300):
        if ready.exists() and ready.stat().st_size:
            return process, json.loads(ready.read_text())
        if process.poll() is not None:
            sys.exit("demo: the sandbox did not start")
        time.sleep(0.1)
    process.kill()
    sys.exit("demo: the sandbox did not start within 30 s")


def sandbox_has_data(base_url, start, until):
    """{stream: whether the sandbox account holds rows the tap should write for it}, from the
    sandbox's own dump, for the streams whose source is plain to see there; a stream missing here
    is not checked for emptiness."""
    sys.path.insert(0, str(ROOT))
    from tap_klaviyo.streams import BY_NAME, CLASSIC, KLAVIYO_INTEGRATION
    with urllib.request.urlopen(base_url + "/__sandbox/dump") as response:
        dump = json.loads(response.read())
    metrics = {m["id"]: m["attributes"] for m in dump["metrics"]}
    timely = [e for e in dump["events"] if start <= e["timestamp"] < until]
    has = {}
    for stream in CLASSIC:
        if stream.metric_names:
            has[stream.name] = any(metrics[e["metric_id"]]["name"] in stream.metric_names
                                   and metrics[e["metric_id"]]["integration"]["name"] == KLAVIYO_INTEGRATION
                                   for e in timely)
    has["lists"] = bool(dump["lists"] or dump["segments"])
    has["global_exclusions"] = any(p["attributes"].get("email")
                                   and p["attributes"]["subscriptions"]["email"]["marketing"]["suppression"]
                                   for p in dump["profiles"])
    has["events"] = bool(timely)
    # the sandbox was started with --report-events: its sends fall in the report window
    has["campaign_values"] = has["flow_series"] = True
    for name in BY_NAME:
        if name not in has and isinstance(dump.get(name), list):
            has[name] = bool(dump[name])
    return has


def select_streams(catalog):
    """Every stream of the discovered catalog, opt-in ones included."""
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = True
    return catalog


def table_name(stream):
    # how target-duckdb names a table for a stream without a schema prefix
    return stream.replace(".", "_").replace("-", "_").lower()


def run_pipeline(paths):
    """tap | target-duckdb, with the tap's stdout also copied line for line into tap-output.jsonl."""
    target_config = paths.out / "target-duckdb.json"
    target_config.write_text(json.dumps({"path": str(paths.database), "default_target_schema": SCHEMA}))
    with open(paths.tap_log, "wb") as tap_log, open(paths.target_log, "wb") as target_log, \
            open(paths.target_states, "wb") as states, open(paths.tap_output, "wb") as copy:
        tap = subprocess.Popen(TAP + ["--config", str(paths.config), "--catalog", str(paths.catalog)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=tap_log)
        target = subprocess.Popen([str(TARGET_BIN / "python"), "-c", TARGET, "--config", str(target_config)],
                                  stdin=subprocess.PIPE, stdout=states, stderr=target_log)
        target_reading = True
        for chunk in iter(lambda: tap.stdout.read1(1 << 16), b""):
            copy.write(chunk)
            if target_reading:
                try:
                    target.stdin.write(chunk)
                except BrokenPipeError:
                    target_reading = False      # the target died; its exit code says so below
        try:
            target.stdin.close()
        except BrokenPipeError:
            pass
        tap_code, target_code = tap.wait(), target.wait()
    if tap_code or target_code:
        sys.exit(f"demo: the sync failed (tap exit {tap_code}, target exit {target_code}); "
                 f"see {paths.tap_log} and {paths.target_log}")
    lines = paths.target_states.read_text().splitlines()
    if lines:
        paths.state.write_text(lines[-1] + "\n")


def tap_counts(tap_output):
    """Per stream, from the tap's own output: key columns (its SCHEMA), RECORD lines, distinct keys."""
    streams = {}
    with open(tap_output, encoding="utf-8") as handle:
        for line in handle:
            message = json.loads(line)
            kind = message.get("type")
            if kind == "SCHEMA":
                streams.setdefault(message["stream"], {"keys": message.get("key_properties") or [],
                                                       "records": 0, "distinct": set()})
            elif kind == "RECORD":
                stream = streams[message["stream"]]
                stream["records"] += 1
                if stream["keys"]:
                    stream["distinct"].add(tuple(str(message["record"].get(k)) for k in stream["keys"]))
    return streams


def table_contents(database, spec):
    if not (TARGET_BIN / "python").exists():
        sys.exit("demo: .venv-target-duckdb is missing; `make demo` installs it")
    done = subprocess.run([str(TARGET_BIN / "python"), "-c", TABLE_QUERY, str(database), json.dumps(spec), SCHEMA],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"demo: cannot read {database}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def compare(streams, tables, has_data=None):
    """One report row per stream and the list of problems; a keyed table must hold exactly the keys
    the tap wrote, once each (the target upserts by key); an unkeyed one every RECORD; and a stream
    the sandbox holds data for (has_data) must have rows."""
    rows, problems = [], []
    has_data = has_data or {}
    for stream, seen in streams.items():
        table = tables.get(table_name(stream))
        expected = len(seen["distinct"]) if seen["keys"] else seen["records"]
        held = 0 if table is None else table["rows"]
        problem = None
        if table is None and expected:
            problem = f"{stream}: the tap wrote {expected} rows, table {SCHEMA}.{table_name(stream)} does not exist"
        elif held != expected:
            what = "distinct keys" if seen["keys"] else "rows"
            problem = f"{stream}: the tap wrote {expected} {what}, the table holds {held} rows"
        elif seen["keys"]:
            keys = {tuple(k) for k in table["keys"]}
            if keys != seen["distinct"]:
                missing, extra = len(seen["distinct"] - keys), len(keys - seen["distinct"])
                problem = (f"{stream}: {missing} keys the tap wrote are not in the table, "
                           f"{extra} keys in it the tap never wrote")
        verdict = "MISMATCH" if problem else "ok" if seen["records"] else "ok (empty)"
        if problem is None and not seen["records"] and has_data.get(stream):
            problem = f"{stream}: the sandbox holds data for it, but the tap wrote no row and the table is empty"
            verdict = "EMPTY"
        rows.append((stream, seen["records"], expected, held, verdict))
        if problem:
            problems.append(problem)
    if not streams:
        problems.append("the tap wrote no SCHEMA message at all")
    elif not any(seen["records"] for seen in streams.values()):
        problems.append("the tap wrote no RECORD at all")
    return rows, problems


def check(paths):
    streams = tap_counts(paths.tap_output)
    tables = table_contents(paths.database, {table_name(s): seen["keys"] for s, seen in streams.items()})
    has_data = json.loads(paths.expected.read_text()) if paths.expected.exists() else {}
    rows, problems = compare(streams, tables, has_data)
    width = max([len("stream")] + [len(row[0]) for row in rows]) + 2
    print(f"\n{'stream':<{width}}{'tap records':>12}{'tap keys':>10}{'table rows':>12}")
    for stream, records, expected, held, verdict in rows:
        print(f"{stream:<{width}}{records:>12}{expected:>10}{held:>12}  {verdict}")
    if problems:
        print(f"\ndemo: FAILED, {paths.database} does not hold what the tap wrote ({paths.tap_output}):",
              file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"\nevery table of {shown(paths.database)} (schema {SCHEMA}) holds exactly the rows the tap wrote, "
          "and every stream the sandbox has data for has rows")


def shown(path):
    """A path as a person would type it from the repository's root."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def example_query(paths):
    """Print a query a person can run next, and its answer."""
    code = (f"import duckdb; duckdb.connect('{shown(paths.database)}', read_only=True)"
            f".sql('{EXAMPLE_QUERY}').show()")
    print(f"\nquery the tables (schema {SCHEMA}) with the target's duckdb, e.g.:\n\n"
          f"    {shown(TARGET_BIN / 'python')} -c \"{code}\"\n")
    done = subprocess.run([str(TARGET_BIN / "python"), "-c", code], cwd=ROOT, capture_output=True, text=True)
    print(done.stdout.rstrip() if done.returncode == 0 else f"(the query failed: {done.stderr.strip()[-300:]})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="size of the sandbox account")
    parser.add_argument("--out", type=Path, default=ROOT / "demo-output", help="where everything goes")
    parser.add_argument("--check", action="store_true", help="only re-check the tables of an earlier run")
    parser.add_argument("--all-streams", action="store_true",
                        help="kept for older scripts: every stream is synced anyway, the report streams over "
                             f"{REPORT_DAYS} days")
    args = parser.parse_args()
    paths = Paths(args.out.resolve())
    if args.check:
        check(paths)
        return
    if not (TARGET_BIN / "target-duckdb").exists():
        sys.exit("demo: .venv-target-duckdb is missing; `make demo` installs it")
    paths.out.mkdir(parents=True, exist_ok=True)
    paths.database.unlink(missing_ok=True)
    sandbox, info = start_sandbox(paths, args.events)
    try:
        paths.config.write_text(json.dumps({"api_key": info["api_key"], "start_date": START_DATE,
                                            "base_url": info["base_url"], "report_days": REPORT_DAYS}, indent=2))
        print(f"sandbox on {info['base_url']} with {info['events']} events; config in {paths.config}")
        discovered = subprocess.run(TAP + ["--config", str(paths.config), "--discover"], cwd=ROOT,
                                    capture_output=True, text=True)
        if discovered.returncode:
            said = [line for line in discovered.stderr.splitlines() if "METRIC: " not in line]
            sys.exit("demo: discovery failed:\n" + "\n".join(said[-5:]))
        catalog = select_streams(json.loads(discovered.stdout))
        paths.catalog.write_text(json.dumps(catalog, indent=2))
        started = time.monotonic()
        sync_start = int(time.time())
        run_pipeline(paths)
        has_data = sandbox_has_data(info["base_url"], calendar.timegm(time.strptime(START_DATE, "%Y-%m-%dT%H:%M:%SZ")),
                                    sync_start)
        paths.expected.write_text(json.dumps(has_data, indent=2))
        print(f"tap | target-duckdb in {time.monotonic() - started:.1f} s; the tap's output is in {paths.tap_output}")
    finally:
        sandbox.terminate()
        sandbox.wait()
    check(paths)
    print(f"state for the next run: {shown(paths.state)}; logs: {shown(paths.tap_log)}, {shown(paths.target_log)}")
    example_query(paths)


if __name__ == "__main__":
    main()
