"""make demo: the main job end to end on the bundled sandbox.

Starts the local Klaviyo sandbox, discovers, selects all twelve streams, syncs them through
target-duckdb (in its own virtualenv) into demo-output/klaviyo.duckdb, and prints rows per table.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"
TAP = ROOT / ".venv" / "bin" / "tap-klaviyo"
TARGET_VENV = ROOT / ".venv-target-duckdb" / "bin"


def start_sandbox(events):
    ready = OUT / "sandbox.json"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "tests.sandbox", "--port", "0", "--events", str(events),
                                "--lists", "6", "--segments", "4", "--ready-file", str(ready)],
                               cwd=ROOT, stdout=subprocess.DEVNULL)
    for _ in range(300):
        if ready.exists() and ready.stat().st_size:
            return process, json.loads(ready.read_text())
        if process.poll() is not None:
            sys.exit("the sandbox did not start")
        time.sleep(0.1)
    process.kill()
    sys.exit("the sandbox did not start within 30 s")


def main():
    OUT.mkdir(exist_ok=True)
    database = OUT / "klaviyo.duckdb"
    database.unlink(missing_ok=True)
    sandbox, info = start_sandbox(events=20000)
    try:
        config = OUT / "config.json"
        config.write_text(json.dumps({"api_key": info["api_key"], "start_date": "2024-01-01T00:00:00Z",
                                      "base_url": info["base_url"]}, indent=2))
        print(f"sandbox on {info['base_url']} with {info['events']} events; config in {config}")
        catalog = json.loads(subprocess.run([str(TAP), "--config", str(config), "--discover"], check=True,
                                            capture_output=True, text=True).stdout)
        for entry in catalog["streams"]:
            for item in entry["metadata"]:
                if item["breadcrumb"] == []:
                    item["metadata"]["selected"] = True
        (OUT / "catalog.json").write_text(json.dumps(catalog, indent=2))
        target_config = OUT / "target-duckdb.json"
        target_config.write_text(json.dumps({"path": str(database), "default_target_schema": "klaviyo"}))
        started = time.time()
        with open(OUT / "tap.log", "w") as tap_log, open(OUT / "target.log", "w") as target_log, \
                open(OUT / "state.json", "w") as state_out:
            tap = subprocess.Popen([str(TAP), "--config", str(config), "--catalog", str(OUT / "catalog.json")],
                                   stdout=subprocess.PIPE, stderr=tap_log)
            target = subprocess.Popen([str(TARGET_VENV / "target-duckdb"), "--config", str(target_config)],
                                      stdin=tap.stdout, stdout=state_out, stderr=target_log)
            tap.stdout.close()
            target_code, tap_code = target.wait(), tap.wait()
        if tap_code or target_code:
            sys.exit(f"sync failed (tap {tap_code}, target {target_code}); see {OUT}/tap.log and target.log")
        print(f"synced in {time.time() - started:.1f} s")
        query = ("import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                 "names = [r[0] for r in c.execute(\"select table_name from information_schema.tables "
                 "where table_schema = 'klaviyo' order by 1\").fetchall()]; "
                 "print(json.dumps({n: c.execute(f'select count(*) from klaviyo.klaviyo.\"{n}\"').fetchone()[0] for n in names}))")
        counts = json.loads(subprocess.run([str(TARGET_VENV / "python"), "-c", query, str(database)], check=True,
                                           capture_output=True, text=True).stdout)
        print(f"\n{'table':<26}{'rows':>8}")
        for name, count in counts.items():
            print(f"{name:<26}{count:>8}")
        print(f"\n{len(counts)} tables in {database} (schema klaviyo)")
        print(f"state for the next run: {OUT / 'state.json'}; logs: {OUT / 'tap.log'}")
        if len(counts) != 12 or not all(counts.values()):
            sys.exit("expected twelve filled tables")
    finally:
        sandbox.terminate()
        sandbox.wait()


if __name__ == "__main__":
    main()
