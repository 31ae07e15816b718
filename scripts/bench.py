"""make bench: full syncs against the sandbox, per account shape.

Shapes (tests/sandbox/shapes.py): sparse (2,000 events per classic metric over a year), dense (15,000
per metric in one day, read incrementally from a bookmark at that day's start), and data.generate()'s
mixed year at --default-sizes: the ten classic event tables, at --latency-ms a request with the
documented rate limits, at the tap's default concurrency and at concurrency 1, and on --helper-shapes
also without decode helper processes (decode_processes 0). CPU includes the helpers' (the tap reaps
them); their own peak RSS is printed beside the tap's. On --events-shapes the
opt-in stream `events` (every metric, API-shaped rows) is then read over the same range, at the default
concurrency. The profiles shape (--profiles of them, no events) is read through the opt-in stream
`profiles` from three years back. One line per run:

  requests (made / minimum / target), where minimum = sum over metrics of ceil(events / 1000) and
  target = 1.2 x minimum + 2 per metric; wall s; tap CPU s and CPU us per event (whole process,
  start-up included, from wait4); peak RSS; 429s; STATE messages. Dense runs also print the
  sandbox's serving CPU and wall / max(tap CPU, sandbox CPU). `events` counts one cursor over every
  metric: minimum ceil(events / 1000), target 1.2 x minimum + 2.

profiles: requests against ceil(profiles / 100), wall, profiles per second next to tier L's ceiling
(750 requests a minute x 100 a page = 1,250 a second from revision 2026-01-15), CPU us per profile,
peak RSS, 429s; then what bounds the run: the rate-limit floor for its requests (75 a second, 750 a
minute), the tap's CPU, the sandbox's serving CPU, or both sharing the machine's cores.

A per-page figure first: parse, map and serialize one 1,000-event page of the shape, in ms.

--resources-only replaces all of that with the resource streams on the resources shape (400 campaigns,
40 flows with 600 actions, 60 templates, 30 tags, 20 lists and 5 segments of about 20,000 members):
a first run, a run from its state with nothing changed, and a run after a few changes (see
bench_resources). The flow endpoints' documented 3/s and 60/min make the first run take minutes.

--whole-only replaces all of that with one first run of EVERY stream (every column too, flows'
definition included) on the whole shape, a mid-size shop's counts of everything (shapes.WHOLE and each
area's realistic counts): wall against the physical limit of one API key, the floor its requests
leave: per rate-limit family (Klaviyo limits each endpoint on its own: Klaviyo's rate-limit guide and
its community answer that the tiers "apply to the different limits for endpoints"), requests ÷ the
family's per-minute limit, the slowest family's floor; and, as the issue words it, per tier (every
family of a tier summed, as if the tier were one budget), the slowest tier's floor.

--mechanisms ROUNDS replaces all of that: on sparse and dense (and `events` on --events-shapes),
ROUNDS rounds of syncs with each concurrency mechanism switched off in turn (the catalog metrics'
head start, the decode helper), in an order rotated per round; medians of wall and CPU, and the
median of each variant's paired difference from the run with everything on (docs/concurrency.md).
Results also go to <workdir>/<label>.json (default bench-results/); --compare FILE prints wall ratios against such a file.
"""
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv/bin/python"
EVENT_STREAMS = ("receive", "open", "click", "bounce", "dropped_email", "mark_as_spam", "subscribe_list",
                 "unsub_list", "unsubscribe", "update_email_preferences")
PAGE_SIZE = 1000
PROFILE_PAGE_SIZE = 100
# tier L in the published spec from revision 2026-01-15 (GET /api/profiles): 75 a second, 750 a minute
PROFILES_BURST, PROFILES_STEADY = 75, 750
PROFILES_CEILING = PROFILES_STEADY * PROFILE_PAGE_SIZE / 60     # profiles a second, sustained
CORES = os.cpu_count() or 1
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid):
    """user + system CPU seconds of a running process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# The sandbox's command line knows the event shapes only; the profiles shape is served the same way.
_PROFILES_SANDBOX = """
import json, sys, time
from tests.sandbox import shapes
from tests.sandbox.server import API_KEY, Options, serve
count, latency, ready = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
account = shapes.profiles(count)
server, base_url = serve(account, Options(latency=latency / 1000))
with open(ready, "w") as handle:
    json.dump({"base_url": base_url, "api_key": API_KEY, "anchor": account.anchor, "profiles": count,
               "since": account.anchor - 3 * 365 * 86400}, handle)
while True:
    time.sleep(3600)
"""


class Sandbox:
    def __init__(self, shape, events, args, workdir):
        ready = workdir / f"sandbox-{shape}-{events}.json"
        ready.unlink(missing_ok=True)
        if shape == "profiles":
            command = [str(PYTHON), "-c", _PROFILES_SANDBOX, str(events), str(args.latency_ms), str(ready)]
        else:
            command = [str(PYTHON), "-m", "tests.sandbox", "--port", "0", "--shape", shape,
                       "--latency-ms", str(args.latency_ms), "--ready-file", str(ready)]
        if shape == "default":
            command += ["--events", str(events)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        while not (ready.exists() and ready.stat().st_size):
            if self.process.poll() is not None:
                sys.exit(f"the sandbox ({shape}) did not start")
            time.sleep(0.1)
        self.info = json.loads(ready.read_text())

    def call(self, path, method="GET", headers=None):
        request = urllib.request.Request(self.info["base_url"] + path, method=method,
                                         data=b"{}" if method == "POST" else None, headers=headers or {})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def cpu(self):
        return process_cpu(self.process.pid)

    def close(self):
        self.process.terminate()
        self.process.wait()


def tap_command(source):
    return [str(PYTHON), "-m", "tap_klaviyo"]     # run in the source tree: its tap_klaviyo comes first


def tap_env(source):
    # an installed tap has its bytecode cached; without it every start-up compiles the modules again
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return dict(env, PYTHONPATH=str(source))


def default_concurrency(source):
    about = subprocess.run(tap_command(source) + ["--about", "--format", "json"], check=True, capture_output=True,
                           text=True, cwd=source, env=tap_env(source)).stdout
    return json.loads(about)["settings"]["properties"]["concurrency"]["default"]


def write_inputs(sandbox, source, workdir, shape, extra_config, streams=EVENT_STREAMS, name=None):
    """Config, catalog (selecting `streams` only) and, for dense, the state; returns their paths
    (named after the run, so runs of other shapes or streams leave them alone)."""
    info = sandbox.info
    name = name or shape
    config = {"api_key": info["api_key"], "base_url": info["base_url"], "list_person_count": False}
    config.update(extra_config)
    state = None
    if shape == "dense":
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info["since"]))
        config["start_date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info["since"] - 366 * 86400))
        state = {"bookmarks": {stream: {"since": since} for stream in streams}}
    else:
        config["start_date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info["since"]))
    config_path = workdir / f"config-{name}.json"
    config_path.write_text(json.dumps(config))
    catalog = json.loads(subprocess.run(tap_command(source) + ["--config", str(config_path), "--discover"],
                                        check=True, capture_output=True, text=True, cwd=source,
                                        env=tap_env(source)).stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    if not set(streams) <= {entry["tap_stream_id"] for entry in catalog["streams"]}:
        sys.exit(f"the tap's catalog lacks a stream of {', '.join(streams)}")
    catalog_path = workdir / f"catalog-{name}.json"
    catalog_path.write_text(json.dumps(catalog))
    state_path = None
    if state is not None:
        state_path = workdir / f"state-{name}.json"
        state_path.write_text(json.dumps(state))
    return config, config_path, catalog_path, state_path


class _TokenCount:
    """Running count of a token in a byte stream read in chunks (a token may straddle two)."""

    def __init__(self, token):
        self.token, self.total, self.tail = token, 0, b""

    def __call__(self, chunk):
        block = self.tail + chunk
        self.total += block.count(self.token)
        self.tail = block[-(len(self.token) - 1):]     # too short to hold a whole token: none counted twice
        return self.total


def _helper_peaks(log_path):
    """Peak RSS (MB) of each decode helper process, from the tap's closing log lines."""
    return [float(line.split("peak RSS ")[1].split(" MB")[0]) for line in log_path.read_text().splitlines()
            if "decode helper process: " in line and "peak RSS " in line]


def run_once(sandbox, source, workdir, label, inputs, concurrency, time_limit, extra=None, env=None):
    """One sync; None when it ran past time_limit (then it is killed). extra: config merged in; env:
    environment variables set for the tap (a mechanism switched off, see MECHANISMS). The result's
    "state" is the value of the last STATE message, "by_family" the sandbox's requests per family."""
    config, _, catalog_path, state_path = inputs
    config = dict(config, **(extra or {}))
    if concurrency is not None:
        config["concurrency"] = concurrency
    config_path = workdir / f"config-{label}.json"
    config_path.write_text(json.dumps(config))
    command = tap_command(source) + ["--config", str(config_path), "--catalog", str(catalog_path)]
    if state_path is not None:
        command += ["--state", str(state_path)]
    sandbox.call("/__sandbox/stats/reset", "POST")
    sandbox_cpu = sandbox.cpu()
    log_path = workdir / f"tap-{label}.log"
    records = states = 0
    started = time.monotonic()
    with open(log_path, "w") as log:
        tap = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=source,
                               env=dict(tap_env(source), **(env or {})))
        deadline = started + time_limit
        record_count, state_count = _TokenCount(b'{"type":"RECORD"'), _TokenCount(b'{"type":"STATE"')
        # counted in big chunks, not line by line: the benchmark shares the two cores with the tap
        tail = b""
        while chunk := tap.stdout.read1(1 << 20):
            records, states = record_count(chunk), state_count(chunk)
            tail = (tail + chunk)[-(4 << 20):]      # the last STATE is the run's last line
            if time.monotonic() > deadline:
                tap.send_signal(signal.SIGKILL)
                os.wait4(tap.pid, 0)
                return None
        _, status, usage = os.wait4(tap.pid, 0)
    wall = time.monotonic() - started
    sandbox_cpu = sandbox.cpu() - sandbox_cpu
    if status:
        sys.exit(f"the tap failed ({label}); see {log_path}")
    stats = sandbox.call("/__sandbox/stats")
    # wait4 counts the CPU of the helper processes the tap reaped, and the largest peak RSS of any
    cpu = usage.ru_utime + usage.ru_stime
    return {"label": label, "concurrency": concurrency, "records": records, "states": states, "wall_s": wall,
            "helper_rss_mb": _helper_peaks(log_path),
            "cpu_s": cpu, "cpu_sys_s": usage.ru_stime, "cpu_us_per_event": cpu / max(records, 1) * 1e6, "peak_rss_mb": usage.ru_maxrss / 1024,
            "requests": stats["requests"], "throttled_429": stats["throttled"], "sandbox_cpu_s": sandbox_cpu,
            "by_family": stats["by_family"], "state": _last_state(tail)}


def _last_state(tail):
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b'{"type":"STATE"'):
            return json.loads(line)["value"]
    return None


# Run in a fresh interpreter on the tap's modules, objects made anew each round and the cyclic GC
# on, as in the tap: timeit's best-of with the GC off hid a third of the cost. The page is costed
# as first seen: person objects remembered from an earlier round are forgotten.
_PAGE_COSTS = """
import sys, time
from tap_klaviyo import rows as rows_module
from tap_klaviyo.output import envelope
from tap_klaviyo.pages import EventPage, decode_typed
from tap_klaviyo.rows import event_rows
known = getattr(rows_module, "_KNOWN_PERSONS", {})
body, metric_id = open(sys.argv[1], "rb").read(), sys.argv[2]
best, rounds = [float("inf")] * 3, 8
for block in range(4):              # the least disturbed of 3 blocks (the first warms up)
    spent = [0.0, 0.0, 0.0]
    for _ in range(rounds):
        known.clear()
        a = time.process_time(); document = decode_typed(body, EventPage)
        b = time.process_time(); rows = event_rows(document, metric_id, "Received Email", 0, 2 ** 40)
        c = time.process_time(); lines = envelope("receive").lines(rows, "2026-01-01T00:00:00.000000Z")
        d = time.process_time()
        spent = [spent[0] + b - a, spent[1] + c - b, spent[2] + d - c]
        del document, lines
    if block:
        best = [min(x, s / rounds * 1e3) for x, s in zip(best, spent)]
print(len(rows), *best)
"""


def page_costs(sandbox, source, workdir):
    """ms a 1,000-event page of the shape costs in the tap's decode path (per stage, the least of three
    means of 8 rounds: the machine is shared)."""
    info = sandbox.info
    headers = {"Authorization": "Klaviyo-API-Key " + info["api_key"], "revision": "2026-10-15"}

    def get(path, params):
        from urllib.parse import urlencode
        request = urllib.request.Request(info["base_url"] + path + "?" + urlencode(params), headers=headers)
        with urllib.request.urlopen(request) as response:
            return response.read()

    fields = subprocess.run([str(PYTHON), "-c", "from tap_klaviyo.rows import EVENT_FIELDS, PROFILE_FIELDS; "
                             "print(EVENT_FIELDS); print(PROFILE_FIELDS)"], check=True, capture_output=True,
                            text=True, cwd=source, env=tap_env(source)).stdout.split()
    metrics = json.loads(get("/api/metrics", {}))["data"]
    received = next(m["id"] for m in metrics if m["attributes"]["name"] == "Received Email")
    body = get("/api/events", {
        "filter": f'equals(metric_id,"{received}")', "sort": "datetime", "include": "profile,metric",
        "page[size]": PAGE_SIZE, "fields[event]": fields[0], "fields[profile]": fields[1], "fields[metric]": "name"})
    page = workdir / "page.json"
    page.write_bytes(body)
    measured = subprocess.run([str(PYTHON), "-c", _PAGE_COSTS, str(page), received], check=True, capture_output=True,
                              text=True, cwd=source, env=tap_env(source)).stdout.split()
    events, (parse, mapping, serialize) = int(measured[0]), map(float, measured[1:])
    total = parse + mapping + serialize
    return (f"page of {events} events, {len(body) / 1e6:.2f} MB: parse {parse:.1f} ms, map {mapping:.1f} ms, "
            f"serialize {serialize:.1f} ms = {total:.1f} ms ({total / events * 1e3:.1f} us an event)")


def describe(run, minimum, target, unit="event"):
    if run is None:
        return None
    line = (f"  {run['label']:<14} requests={run['requests']} (min {minimum}, target {target:g}) "
            f"records={run['records']} wall_s={run['wall_s']:.2f} cpu_s={run['cpu_s']:.2f} (sys {run['cpu_sys_s']:.2f}) "
            f"cpu_us_per_{unit}={run['cpu_us_per_event']:.1f} peak_rss_mb={run['peak_rss_mb']:.1f} "
            f"429s={run['throttled_429']} states={run['states']}")
    if run.get("helper_rss_mb"):
        # wait4's peak RSS is the largest of the tap's and its reaped helpers'; each helper's own:
        line += " helper_peak_rss_mb=" + ",".join(f"{mb:.0f}" for mb in run["helper_rss_mb"])
    return line


def dense_bound(run):
    bound = max(run["cpu_s"], run["sandbox_cpu_s"])
    return (f"  {'':<14} sandbox serving cpu_s={run['sandbox_cpu_s']:.2f}; wall / max(tap cpu, "
            f"sandbox cpu) = {run['wall_s'] / bound:.2f} (goal <= 1.5)")


def bench_events_stream(sandbox, shape, name, args, source, workdir, results):
    """The opt-in stream `events` over the range the classic tables read, at the default concurrency."""
    # the shapes' events are all of the classic metrics: the classic counts are every event in range
    expected = sum(sandbox.info["classic_events"].values())
    minimum = math.ceil(expected / PAGE_SIZE)     # one cursor over every metric
    target = 1.2 * minimum + 2
    inputs = write_inputs(sandbox, source, workdir, shape, args.config_extra, ("events",), f"{name}-events")
    label = f"events c={args.default_concurrency}"
    run = run_once(sandbox, source, workdir, f"{name}-events-c={args.default_concurrency}", inputs, None, 3600)
    run["label"] = label
    print(describe(run, minimum, target), flush=True)
    if run["records"] != expected:
        print(f"  !! {run['records']} records, expected {expected}")
    if shape == "dense":
        print(dense_bound(run), flush=True)
    results[f"{name}-events"] = {"minimum": minimum, "target": target, "events": expected, "runs": {label: run}}


def rate_floor(requests):
    """Least seconds tier L lets `requests` take: 75 a second, the 751st waits for the next minute."""
    minutes, rest = divmod(requests, PROFILES_STEADY)
    if rest == 0 and minutes:
        minutes, rest = minutes - 1, PROFILES_STEADY
    return minutes * 60 + rest / PROFILES_BURST


def bench_profiles(count, args, source, workdir, results):
    name = f"profiles-{count}"
    started = time.monotonic()
    sandbox = Sandbox("profiles", count, args, workdir)
    try:
        minimum = math.ceil(count / PROFILE_PAGE_SIZE)
        target = 1.2 * minimum + 2
        print(f"\n## {name}: {count} profiles to read through `profiles` (sandbox ready in "
              f"{time.monotonic() - started:.0f} s)", flush=True)
        # Klaviyo answers a sorted, filtered page from an index; the sandbox sorts its profiles once,
        # on the first sorted request: made here, outside the measured run
        info = sandbox.info
        sandbox.call("/api/profiles?sort=updated&page%5Bsize%5D=1", headers={
            "Authorization": "Klaviyo-API-Key " + info["api_key"], "revision": "2026-10-15"})
        inputs = write_inputs(sandbox, source, workdir, "profiles", args.config_extra, ("profiles",), name)
        label = f"c={args.default_concurrency}"
        run = run_once(sandbox, source, workdir, f"{name}-{label}", inputs, None, 3600)
        run["label"] = label
        print(describe(run, minimum, target, "profile"), flush=True)
        if run["records"] != count:
            print(f"  !! {run['records']} records, expected {count}")
        rate = run["records"] / run["wall_s"]
        floor = rate_floor(run["requests"])
        bounds = {f"rate limit ({run['requests']} requests at {PROFILES_BURST}/s, {PROFILES_STEADY}/min)": floor,
                  "tap cpu": run["cpu_s"], "sandbox serving cpu": run["sandbox_cpu_s"],
                  f"tap + sandbox cpu on {CORES} cores": (run["cpu_s"] + run["sandbox_cpu_s"]) / CORES}
        ranked = sorted(bounds.items(), key=lambda item: -item[1])
        print(f"  {'':<14} {rate:,.0f} profiles/s; tier L ceiling {PROFILES_CEILING:,.0f} profiles/s sustained "
              f"({PROFILES_STEADY} requests/min x {PROFILE_PAGE_SIZE}), {PROFILES_BURST * PROFILE_PAGE_SIZE:,}/s "
              f"within one minute's window", flush=True)
        print(f"  {'':<14} floors, largest first: " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in ranked)
              + f"; wall = {run['wall_s'] / ranked[0][1]:.2f} x the largest", flush=True)
        run["profiles_per_s"] = rate
        results[name] = {"minimum": minimum, "target": target, "profiles": count, "runs": {label: run}}
    finally:
        sandbox.close()


def bench_shape(shape, events, args, source, workdir, results):
    name = shape if shape != "default" else f"default-{events}"
    started = time.monotonic()
    sandbox = Sandbox(shape, events, args, workdir)
    try:
        counts = sandbox.info["classic_events"]
        expected = sum(counts.values())
        minimum = sum(math.ceil(n / PAGE_SIZE) for n in counts.values())
        target = 1.2 * minimum + 2 * len(counts)
        print(f"\n## {name}: {expected} classic events to read in {len(counts)} metrics "
              f"(account: {sandbox.info['events']} events; sandbox ready in {time.monotonic() - started:.0f} s)",
              flush=True)
        if not args.skip_page:
            try:
                print("  " + page_costs(sandbox, source, workdir), flush=True)
            except Exception as exc:      # the decode functions changed shape: the runs still count
                print(f"  per-page figures unavailable ({type(exc).__name__}: {exc})")
        inputs = write_inputs(sandbox, source, workdir, shape, args.config_extra)
        runs = {}
        variants = [(f"c={args.default_concurrency}", None, None), ("c=1", 1, None)]
        if shape in args.helper_shapes:
            variants.append((f"c={args.default_concurrency} alone", None, {"decode_processes": 0}))
        for label, concurrency, extra in variants:
            if concurrency == 1 and shape not in args.serial_shapes:
                print(f"  concurrency 1 skipped for {name} (--serial-shapes)")
                continue
            run = run_once(sandbox, source, workdir, f"{name}-{label.replace(' ', '-')}", inputs, concurrency,
                           args.serial_limit if concurrency == 1 else 3600, extra)
            if run is None:
                print(f"  {label}: stopped after {args.serial_limit:g} s (--serial-limit); no figure")
                continue
            run["label"] = label
            runs[label] = run
            print(describe(run, minimum, target), flush=True)
            if run["records"] != expected:
                print(f"  !! {run['records']} records, expected {expected}")
            if shape == "dense":
                print(dense_bound(run), flush=True)
        fast, slow = runs.get(f"c={args.default_concurrency}"), runs.get("c=1")
        if fast and slow:
            print(f"  ratio c={args.default_concurrency} vs c=1: {slow['wall_s'] / fast['wall_s']:.1f}x wall clock")
        alone = runs.get(f"c={args.default_concurrency} alone")
        if fast and alone:
            print(f"  with the default decode helpers vs none (decode_processes 0): "
                  f"{alone['wall_s'] / fast['wall_s']:.2f}x wall clock, {fast['cpu_s'] / alone['cpu_s']:.2f}x CPU")
        results[name] = {"minimum": minimum, "target": target, "classic_events": expected, "runs": runs}
        if shape in args.events_shapes:
            bench_events_stream(sandbox, shape, name, args, source, workdir, results)
    finally:
        sandbox.close()


# Late events (docs/late-events.md): a run right after a run, nothing new, with the per-day counts
# (the default) against the plain re-read of a trailing window (late_event_days 0, lookback_minutes of
# PLAIN_DAYS days), each from the state the first run left.
PLAIN_DAYS = 8


def bench_late(shape, args, source, workdir, results):
    sandbox = Sandbox(shape, 0, args, workdir)
    try:
        counts = sandbox.info["classic_events"]
        print(f"\n## late events, {shape}: {sum(counts.values())} classic events in {len(counts)} metrics; "
              f"a run right after a run with nothing new", flush=True)
        inputs = write_inputs(sandbox, source, workdir, shape, args.config_extra, name=f"late-{shape}")
        first = run_once(sandbox, source, workdir, f"late-{shape}-first", inputs, None, 3600)
        if first["state"] is None:
            sys.exit(f"late events ({shape}): the first run wrote no STATE")
        state_path = workdir / f"state-late-{shape}-after.json"
        state_path.write_text(json.dumps(first["state"]))
        after = inputs[:3] + (state_path,)
        counted = run_once(sandbox, source, workdir, f"late-{shape}-counts", after, None, 3600)
        plain = run_once(sandbox, source, workdir, f"late-{shape}-plain", after, None, 3600,
                         {"late_event_days": 0, "lookback_minutes": PLAIN_DAYS * 1440})
        metrics = counted["by_family"].get("metric_aggregates", 0)
        first_events = first["by_family"].get("events", 0)
        target = first_events / 4 + 3 * max(metrics, len(counts))
        for label, run in (("first run", first), ("nothing new, per-day counts", counted),
                           (f"nothing new, plain {PLAIN_DAYS}-day re-read", plain)):
            families = run["by_family"]
            print(f"  {label}: {run['requests']} requests ({families.get('events', 0)} event reads, "
                  f"{families.get('metric_aggregates', 0)} count queries), {run['records']} records, "
                  f"{run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU", flush=True)
        ours = counted["by_family"].get("events", 0) + metrics
        print(f"  per-day counts vs plain re-read: {plain['requests'] / max(counted['requests'], 1):.1f}x fewer "
              f"requests, {plain['wall_s'] / counted['wall_s']:.1f}x less wall; event reads + count queries "
              f"{ours} against the target {target:.0f} (first run's event reads / 4 + 3 per metric)", flush=True)
        for run in (first, counted, plain):
            run.pop("state", None)
        results[f"late-{shape}"] = {"runs": {"first": first, "counts": counted, "plain": plain}, "target": target}
    finally:
        sandbox.close()


def bench_resources(args, source, workdir, results):
    """The resource streams on the resources shape, at the default config (list_person_count false:
    the runs measure the streams, not a count call per list): (a) a first run, (b) a run from (a)'s
    state with nothing changed, (c) a run from (b)'s state after 3 campaigns, 2 flows and a template
    are touched and 5 members added to a list through the sandbox's admin calls. One line per run;
    then (b)'s requests against its goal: per family at most max(2, 5% of (a)'s), plus 2 per list and
    segment, summed."""
    streams = ("lists", "global_exclusions", "campaigns", "campaign_messages", "flows", "flow_actions",
               "flow_messages", "templates", "tags", "list_members", "segment_members")
    started = time.monotonic()
    sandbox = Sandbox("resources", 0, args, workdir)

    def admin(path, payload):
        request = urllib.request.Request(sandbox.info["base_url"] + path, method="POST",
                                         data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def after(run, name):
        """The inputs with `run`'s last state as the state."""
        if run["state"] is None:
            sys.exit(f"resources: the {name} run wrote no STATE")
        path = workdir / f"state-resources-after-{name}.json"
        path.write_text(json.dumps(run["state"]))
        return inputs[:3] + (path,)

    def show(label, run):
        families = ", ".join(f"{family} {count}" for family, count in sorted(run["by_family"].items()))
        print(f"  {label}: {run['requests']} requests ({families}); {run['records']} records; "
              f"{run['wall_s']:.1f} s wall; 429s={run['throttled_429']}", flush=True)

    try:
        counts, samples = sandbox.info["resources"], sandbox.info["resource_samples"]
        # the rows the streams hold (`lists` reads the lists and the segments)
        held = sum(counts[k] for k in ("lists", "segments", "campaigns", "campaign_messages", "flows", "flow_actions",
                                        "flow_messages", "templates", "tags", "list_members", "segment_members"))
        print("\n## resources: " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items())
              + f" ({held} rows, global exclusions aside; sandbox ready in {time.monotonic() - started:.0f} s)",
              flush=True)
        print(f"  streams {', '.join(streams)}; the bench's default config (list_person_count false: the runs "
              f"measure the streams, not a count request per list); {args.latency_ms:g} ms a request; documented "
              f"rate limits (rate_scale 1): the flow endpoints' 3/s and 60/min make the first run take minutes",
              flush=True)
        inputs = write_inputs(sandbox, source, workdir, "resources", args.config_extra, streams, "resources")
        first = run_once(sandbox, source, workdir, "resources-first", inputs, None, 7200)
        if first is None:
            sys.exit("resources: the first run took more than 2 hours")
        show("(a) first run", first)
        if first["records"] < held:
            print(f"  !! {first['records']} records, the sandbox holds {held} (global exclusions aside)")
        time.sleep(1.1)
        unchanged = run_once(sandbox, source, workdir, "resources-unchanged", after(first, "first"), None, 3600)
        show("(b) nothing changed", unchanged)
        time.sleep(1.1)
        changes = [("/__sandbox/touch", {"kind": "campaign", "id": i}) for i in samples["campaigns"][:3]]
        changes += [("/__sandbox/touch", {"kind": "flow", "id": i}) for i in samples["flows"][:2]]
        changes += [("/__sandbox/touch", {"kind": "template", "id": i}) for i in samples["templates"][:1]]
        changes.append(("/__sandbox/members/add", {"group_id": samples["list"],
                                                   "profile_ids": samples["profiles_not_in_list"][:5]}))
        for path, payload in changes:
            admin(path, payload)
        # the run reads what changed before its start, to the second: the changes fall in an earlier one
        time.sleep(1.1)
        changed = run_once(sandbox, source, workdir, "resources-changed", after(unchanged, "unchanged"), None, 3600)
        show("(c) 3 campaigns, 2 flows, 1 template touched, 5 members added to a list", changed)
        # (b)'s goal: per family of (a)'s, max(2, 5% of (a)'s requests), plus 2 per list and segment
        groups = counts["lists"] + counts["segments"]
        allowed = {family: max(2, 0.05 * count) for family, count in first["by_family"].items()}
        target = sum(allowed.values()) + 2 * groups
        made = unchanged["requests"]
        print(f"  goal (b): {made} requests against {target:.0f} = sum over (a)'s families of max(2, 5% of its "
              f"requests) + 2 x {groups} lists and segments: {'met' if made <= target else 'NOT met'}", flush=True)
        print("    (b) per family against max(2, 5% of (a)'s): " + ", ".join(
            f"{family} {unchanged['by_family'].get(family, 0)}/{allowed[family]:.0f}" for family in sorted(allowed))
            + "".join(f", {family} {count} (none in (a))" for family, count in sorted(unchanged["by_family"].items())
                      if family not in allowed), flush=True)
        for run in (first, unchanged, changed):
            run.pop("state", None)
        results["resources"] = {"counts": counts, "target_unchanged": target,
                                "runs": {"first": first, "unchanged": unchanged, "changed": changed}}
    finally:
        sandbox.close()


def tier_floor(requests, burst, steady):
    """Least seconds `requests` take at `burst` a second and `steady` a minute (fixed windows)."""
    minutes, rest = divmod(requests, steady)
    if rest == 0 and minutes:
        minutes, rest = minutes - 1, steady
    return minutes * 60 + rest / burst


TIER_NAMES = {(1, 15): "XS", (3, 60): "S", (10, 150): "M", (75, 700): "L", (75, 750): "L", (350, 3500): "XL",
              (1, 2): "reports"}


# the sandbox's rate-limit family names where the tap's differ (besides the reports')
SANDBOX_FAMILIES = {"flow": "flows_definition"}


def select_everything(catalog):
    """Every stream and every column selected, those unselected by default too (flows' definition)."""
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["metadata"].get("inclusion") != "unsupported":
                item["metadata"]["selected"] = True
    return catalog


def bench_whole(args, source, workdir, results):
    """One first run with every stream selected on the whole shape; wall against the floors."""
    sys.path.insert(0, str(source))
    from tap_klaviyo import revisions
    from tap_klaviyo.ratelimit import family_limits
    started = time.monotonic()
    sandbox = Sandbox("whole", 0, args, workdir)
    try:
        counts = sandbox.info.get("resources", {})
        print("\n## whole account: " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items())
              + f", {sandbox.info['events']} events (sandbox ready in {time.monotonic() - started:.0f} s)", flush=True)
        config, config_path, catalog_path, _ = write_inputs(sandbox, source, workdir, "whole", args.config_extra,
                                                            (), "whole")
        catalog = select_everything(json.loads(catalog_path.read_text()))
        catalog_path.write_text(json.dumps(catalog))
        streams = [entry["tap_stream_id"] for entry in catalog["streams"]]
        print(f"  {len(streams)} streams, every column; {args.latency_ms:g} ms a request; documented rate limits",
              flush=True)
        run = run_once(sandbox, source, workdir, "whole-first", (config, config_path, catalog_path, None), None, 7200)
        if run is None:
            sys.exit("whole: the first run took more than 2 hours")
        floors, tiers = {}, {}
        for family, count in run["by_family"].items():
            try:
                # the sandbox names a report endpoint's family "<stream>_reports", the tap "<stream>"
                burst, steady = family_limits(SANDBOX_FAMILIES.get(family, family.removesuffix("_reports")),
                                              revisions.DEFAULT)
            except KeyError:
                print(f"  !! family {family}: no limits known to the tap", flush=True)
                continue
            floors[family] = (tier_floor(count, burst, steady), count, burst, steady)
            tier = tiers.setdefault(TIER_NAMES.get((burst, steady), f"{burst}/s {steady}/min"), [0, burst, steady])
            tier[0] += count
        slowest = max(floors, key=lambda f: floors[f][0])
        floor, count, burst, steady = floors[slowest]
        tier_floors = {name: tier_floor(n, burst_, steady_) for name, (n, burst_, steady_) in tiers.items()}
        slow_tier = max(tier_floors, key=tier_floors.get)
        print(f"  first run: {run['requests']} requests, {run['records']} records, {run['wall_s']:.0f} s wall, "
              f"CPU {run['cpu_s']:.0f} s, peak RSS {run['peak_rss_mb']:.0f} MB, 429s={run['throttled_429']}", flush=True)
        print("  requests per family: " + ", ".join(f"{f} {n}" for f, n in sorted(run["by_family"].items())), flush=True)
        print(f"  floor per endpoint family: slowest {slowest} ({count} requests at {burst}/s, {steady}/min) "
              f"{floor:.0f} s; wall / floor = {run['wall_s'] / max(floor, 1):.2f}", flush=True)
        print("  floor per tier (families summed): " + ", ".join(
            f"{name} {tiers[name][0]} requests {tier_floors[name]:.0f} s" for name in sorted(tiers))
            + f"; slowest {slow_tier}: wall / floor = {run['wall_s'] / max(tier_floors[slow_tier], 1):.2f}", flush=True)
        run.pop("state", None)
        results["whole"] = {"counts": counts, "floor_family": [slowest, floor], "floor_tier": [slow_tier,
                            tier_floors[slow_tier]], "runs": {"first": run}}
    finally:
        sandbox.close()


# --mechanisms: each concurrency mechanism switched off in turn, all else at its default: the
# catalog metrics' head start by a catalog without the metric ids --discover notes (the
# look-up-first path), the decode helper by config decode_processes 0. A variant may also set
# environment variables for the tap ("env"), as the fetch-ahead's did until its figures removed it
# (docs/concurrency.md).
MECHANISMS = {
    "all on": {},
    "no head start": {"unnoted": True},
    "no decode helper": {"extra": {"decode_processes": 0}},
}


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _unnoted_catalog(catalog_path, workdir, name):
    """The catalog without the metric ids discovery notes in the classic tables' entries."""
    catalog = json.loads(Path(catalog_path).read_text())
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            item["metadata"].pop("tap-klaviyo.metrics", None)
    path = workdir / f"catalog-{name}-unnoted.json"
    path.write_text(json.dumps(catalog))
    return path


def bench_mechanisms(shape, args, source, workdir, results):
    """The ten classic tables, and on --events-shapes the stream `events` (which fetches the metric
    list first whatever the catalog notes: no head start to switch off), with each mechanism
    switched off in turn (see _mechanism_rounds)."""
    sandbox = Sandbox(shape, 0, args, workdir)
    try:
        expected = sum(sandbox.info["classic_events"].values())
        inputs = write_inputs(sandbox, source, workdir, shape, args.config_extra)
        unnoted = inputs[:2] + (_unnoted_catalog(inputs[2], workdir, shape),) + inputs[3:]
        _mechanism_rounds(sandbox, source, workdir, args, results, shape, expected, inputs, unnoted, list(MECHANISMS))
        if shape in args.events_shapes:
            inputs = write_inputs(sandbox, source, workdir, shape, args.config_extra, ("events",), f"{shape}-events")
            _mechanism_rounds(sandbox, source, workdir, args, results, f"{shape}-events", expected, inputs, None,
                              [name for name in MECHANISMS if name != "no head start"])
    finally:
        sandbox.close()


def _mechanism_rounds(sandbox, source, workdir, args, results, name, expected, inputs, unnoted, names):
    """args.mechanisms rounds; each round runs every variant once, in an order rotated from round to
    round, so that the machine's drift falls on each alike. Prints each variant's median wall and
    CPU and the median of its paired differences from "all on" in the same round."""
    runs = {variant: [] for variant in names}
    print(f"\n## {name}: each mechanism switched off in turn, {args.mechanisms} rounds "
          f"({expected} events, concurrency {args.default_concurrency})", flush=True)
    for round_number in range(args.mechanisms):
        turn = round_number % len(names)
        for variant in names[turn:] + names[:turn]:
            switch = MECHANISMS[variant]
            label = f"{name}-mech-{variant.replace(' ', '-')}-{round_number}"
            run = run_once(sandbox, source, workdir, label, unnoted if switch.get("unnoted") else inputs,
                           None, 3600, switch.get("extra"), switch.get("env"))
            if run["records"] != expected:
                print(f"  !! {variant}: {run['records']} records, expected {expected}")
            runs[variant].append(run)
        print(f"  round {round_number + 1}: " + ", ".join(
            f"{variant} {runs[variant][-1]['wall_s']:.2f} s / {runs[variant][-1]['cpu_s']:.2f} s CPU"
            for variant in names), flush=True)
    base = runs["all on"]
    print(f"  {'':<18} {'wall median':>11} {'CPU median':>11} {'paired wall diff':>17} {'paired CPU diff':>16}")
    summary = {}
    for variant in names:
        walls = [r["wall_s"] for r in runs[variant]]
        cpus = [r["cpu_s"] for r in runs[variant]]
        wall_diff = _median([r["wall_s"] - b["wall_s"] for r, b in zip(runs[variant], base)])
        cpu_diff = _median([r["cpu_s"] - b["cpu_s"] for r, b in zip(runs[variant], base)])
        summary[variant] = {"wall_s": walls, "cpu_s": cpus, "wall_median_s": _median(walls),
                            "cpu_median_s": _median(cpus), "paired_wall_diff_s": wall_diff,
                            "paired_cpu_diff_s": cpu_diff}
        print(f"  {variant:<18} {_median(walls):>10.3f}s {_median(cpus):>10.3f}s {wall_diff:>+16.3f}s "
              f"{cpu_diff:>+15.3f}s", flush=True)
    print("  (paired diff: the variant minus 'all on' of the same round, median over rounds; "
          "positive: the mechanism saves that much)")
    results[f"{name}-mechanisms"] = {"events": expected, "rounds": args.mechanisms, "variants": summary}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="sparse,dense,default,profiles",
                        help="comma-separated: sparse, dense, default, profiles")
    parser.add_argument("--default-sizes", default="20000", help="account sizes of the default shape, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--serial-shapes", default="sparse,dense,default",
                        help="shapes also run at concurrency 1 (the slow runs)")
    parser.add_argument("--serial-limit", type=float, default=240, help="seconds before a concurrency-1 run is cut")
    parser.add_argument("--events-shapes", default="sparse,dense",
                        help="shapes (sparse, dense) whose events are also read through the opt-in stream `events`; "
                             "'' for none")
    parser.add_argument("--helper-shapes", default="sparse,dense",
                        help="shapes also run without decode helper processes (config decode_processes 0); '' for none")
    parser.add_argument("--profiles", type=int, default=50000, help="profiles in the profiles shape")
    parser.add_argument("--mechanisms", type=int, default=0, metavar="ROUNDS",
                        help="instead of the usual runs: on sparse and dense (of --shapes; `events` too on "
                             "--events-shapes), ROUNDS rounds of syncs with each concurrency mechanism switched "
                             "off in turn (the catalog metrics' head start, the decode helper), medians and "
                             "paired differences")
    parser.add_argument("--late-shapes", default="sparse,dense",
                        help="shapes (sparse, dense) on which the late-event check is measured against the plain "
                             "trailing re-read; '' for none")
    parser.add_argument("--late-only", action="store_true", help="only the late-event runs of --late-shapes")
    parser.add_argument("--resources-only", action="store_true",
                        help="only the resource streams on the resources shape: a first run, a run with nothing "
                             "changed and one after a few changes (results to resources.json unless --label)")
    parser.add_argument("--whole-only", action="store_true",
                        help="only a first run of every stream on the whole shape, against the rate-limit floors "
                             "(results to whole.json unless --label)")
    parser.add_argument("--skip-page", action="store_true", help="skip the per-page figure")
    parser.add_argument("--source", default=str(ROOT), help="the tap's source tree to run (default: this one)")
    parser.add_argument("--config-extra", type=json.loads, default={},
                        help='JSON merged into the tap config of every run, e.g. \'{"window_days": 3650}\'')
    parser.add_argument("--label", help="results go to <workdir>/<label>.json (default: last; resources on "
                                        "--resources-only)")
    parser.add_argument("--workdir", default=str(ROOT / "bench-results"),
                        help="where inputs, logs and results go (default: bench-results)")
    parser.add_argument("--compare", help="a results file of an earlier run: print wall-clock ratios against it")
    args = parser.parse_args()
    args.label = args.label or ("resources" if args.resources_only else "whole" if args.whole_only else "last")
    args.serial_shapes = set(args.serial_shapes.split(","))
    args.events_shapes = set(filter(None, args.events_shapes.split(",")))
    args.helper_shapes = set(filter(None, args.helper_shapes.split(",")))
    args.late_shapes = [shape for shape in args.late_shapes.split(",") if shape]
    if set(args.late_shapes) - {"sparse", "dense"}:
        parser.exit(2, "bench.py: --late-shapes takes sparse and dense only\n")
    shapes = args.shapes.split(",")
    unknown = [s for s in shapes if s not in ("sparse", "dense", "default", "profiles")]
    if unknown:
        parser.exit(2, f"bench.py: unknown shape {', '.join(unknown)}; use sparse, dense, default, profiles\n")
    if args.events_shapes - {"sparse", "dense"}:
        parser.exit(2, "bench.py: --events-shapes takes sparse and dense only (their events are all in the "
                       "classic counts the run is checked against)\n")
    if args.profiles < 1:
        parser.exit(2, "bench.py: --profiles must be a positive number of profiles\n")
    source = Path(args.source).resolve()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(exist_ok=True)
    args.default_concurrency = default_concurrency(source)
    print(f"# tap from {source}; {args.latency_ms:g} ms a request, documented rate limits (rate_scale 1), "
          f"default concurrency {args.default_concurrency}" + (f"; config {args.config_extra}" if args.config_extra else ""))
    results, began = {}, time.monotonic()
    if args.resources_only:
        bench_resources(args, source, workdir, results)
    if args.whole_only:
        bench_whole(args, source, workdir, results)
    only = args.late_only or args.resources_only or args.whole_only
    for shape in [] if only else shapes:
        if args.mechanisms:
            if shape in ("sparse", "dense"):
                bench_mechanisms(shape, args, source, workdir, results)
            continue
        if shape == "profiles":
            bench_profiles(args.profiles, args, source, workdir, results)
            continue
        sizes = [int(n) for n in args.default_sizes.split(",")] if shape == "default" else [0]
        for events in sizes:
            bench_shape(shape, events, args, source, workdir, results)
    for shape in [] if args.mechanisms or args.resources_only or args.whole_only else args.late_shapes:
        bench_late(shape, args, source, workdir, results)
    (workdir / f"{args.label}.json").write_text(json.dumps(results, indent=1))
    print(f"\n# {time.monotonic() - began:.0f} s in all; results in {workdir / (args.label + '.json')}")
    if args.compare:
        earlier = json.loads(Path(args.compare).read_text())
        for name, result in results.items():
            for label, run in result.get("runs", {}).items():
                before = (earlier.get(name) or {}).get("runs", {}).get(label)
                if before:
                    print(f"  {name} {label}: wall {before['wall_s']:.2f} -> {run['wall_s']:.2f} s "
                          f"({before['wall_s'] / run['wall_s']:.1f}x), requests {before['requests']} -> "
                          f"{run['requests']}, cpu {before['cpu_us_per_event']:.0f} -> "
                          f"{run['cpu_us_per_event']:.0f} us/record")


if __name__ == "__main__":
    main()
