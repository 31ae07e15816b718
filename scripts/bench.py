"""make bench: a full sync of the ten event streams against the sandbox at realistic latency.

Prints one line per run (events, wall s, CPU s, events/s, CPU µs/event, peak RSS, requests, 429s),
first at the configured concurrency, then at concurrency 1, then the ratio of the two.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT_STREAMS = ("receive", "open", "click", "bounce", "dropped_email", "mark_as_spam", "subscribe_list",
                 "unsub_list", "unsubscribe", "update_email_preferences")


def start_sandbox(args, workdir):
    ready = workdir / "sandbox.json"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "tests.sandbox", "--port", "0", "--events", str(args.events),
                                "--latency-ms", str(args.latency_ms), "--ready-file", str(ready)],
                               cwd=ROOT, stdout=subprocess.DEVNULL)
    while not (ready.exists() and ready.stat().st_size):
        if process.poll() is not None:
            sys.exit("the sandbox did not start")
        time.sleep(0.1)
    return process, json.loads(ready.read_text())


def sandbox_call(base_url, path, method="GET"):
    request = urllib.request.Request(base_url + path, method=method, data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def run_once(args, info, workdir, concurrency):
    config = workdir / f"config-{concurrency}.json"
    config.write_text(json.dumps({"api_key": info["api_key"], "base_url": info["base_url"],
                                  "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 366 * 86400)),
                                  "concurrency": concurrency}))
    catalog = json.loads(subprocess.run([str(ROOT / ".venv/bin/tap-klaviyo"), "--config", str(config), "--discover"],
                                        check=True, capture_output=True, text=True).stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in EVENT_STREAMS
    (workdir / "catalog.json").write_text(json.dumps(catalog))
    sandbox_call(info["base_url"], "/__sandbox/stats/reset", "POST")
    started = time.monotonic()
    with open(workdir / f"tap-{concurrency}.log", "w") as log:
        tap = subprocess.Popen([str(ROOT / ".venv/bin/tap-klaviyo"), "--config", str(config), "--catalog",
                                str(workdir / "catalog.json")], stdout=subprocess.PIPE, stderr=log, bufsize=1 << 20)
        events = 0
        for line in tap.stdout:
            if line.startswith(b'{"type":"RECORD"'):
                events += 1
        _, status, usage = os.wait4(tap.pid, 0)
    wall = time.monotonic() - started
    if status:
        sys.exit(f"the tap failed; see {workdir}/tap-{concurrency}.log")
    stats = sandbox_call(info["base_url"], "/__sandbox/stats")
    cpu = usage.ru_utime + usage.ru_stime
    line = (f"concurrency={concurrency:<3} events={events} wall_s={wall:.2f} cpu_s={cpu:.2f} "
            f"events_per_s={events / wall:,.0f} cpu_us_per_event={cpu / max(events, 1) * 1e6:.1f} "
            f"peak_rss_mb={usage.ru_maxrss / 1024:.1f} requests={stats['requests']} throttled_429={stats['throttled']}")
    print(line, flush=True)
    return wall, events


def per_event_path(info):
    """CPU of the tap's own per-event work on one full page: parse, map to classic rows, serialize."""
    import requests
    sys.path.insert(0, str(ROOT))
    from tap_klaviyo.client import parse_json
    from tap_klaviyo.output import record_lines, time_extracted
    from tap_klaviyo.rows import EVENT_FIELDS, PROFILE_FIELDS, event_rows
    headers = {"Authorization": "Klaviyo-API-Key " + info["api_key"], "revision": "2026-10-15"}
    metrics = requests.get(info["base_url"] + "/api/metrics", headers=headers).json()["data"]
    received = next(m["id"] for m in metrics if m["attributes"]["name"] == "Received Email")
    body = requests.get(info["base_url"] + "/api/events", headers=headers, params={
        "filter": f'equals(metric_id,"{received}")', "sort": "datetime", "include": "profile,metric",
        "page[size]": 1000, "fields[event]": EVENT_FIELDS, "fields[profile]": PROFILE_FIELDS,
        "fields[metric]": "name"}).content
    rounds, events = 30, 0
    started = time.process_time()
    for _ in range(rounds):
        rows = event_rows(parse_json(body), received, "Received Email", 0, 2 ** 40)
        record_lines("receive", rows, time_extracted())
        events += len(rows)
    spent = time.process_time() - started
    print(f"per-event path (parse + map + serialize), {events // rounds}-event pages of {len(body) // 1024} KiB: "
          f"{spent / events * 1e6:.1f} cpu_us_per_event")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    workdir = ROOT / "bench-results"
    workdir.mkdir(exist_ok=True)
    sandbox, info = start_sandbox(args, workdir)
    try:
        print(f"# {info['events']} events in the sandbox, {args.latency_ms:g} ms a request, documented rate limits")
        per_event_path(info)
        wall, events = run_once(args, info, workdir, args.concurrency)
        if not args.skip_baseline:
            base_wall, base_events = run_once(args, info, workdir, 1)
            if base_events != events:
                sys.exit(f"row counts differ: {events} vs {base_events}")
            print(f"speedup concurrency {args.concurrency} vs 1: {base_wall / wall:.1f}x wall clock")
    finally:
        sandbox.terminate()
        sandbox.wait()


if __name__ == "__main__":
    main()
