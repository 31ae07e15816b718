"""python -m tests.sandbox: run the local Klaviyo sandbox until interrupted."""
import argparse
import gc
import json
import sys
import time

from . import shapes
from .data import generate
from .server import API_KEY, NO_EVENTS_KEY, Options, serve


def main():
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--events", type=int, default=3000, help="size of the generated account (shape default)")
    parser.add_argument("--shape", choices=("default", "sparse", "dense", "resources", "whole"), default="default",
                        help="default: a mixed year of --events events; sparse: 2,000 events per classic table "
                             "over a year; dense: 15,000 per classic table in one day; resources: 400 campaigns, "
                             "40 flows (600 actions), 60 templates, 30 tags, 20 lists and 5 segments of about "
                             "20,000 members each; whole: every stream's data at a mid-size shop's counts "
                             "(see tests/sandbox/shapes.py)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lists", type=int, help="default 6 (resources: 20)")
    parser.add_argument("--segments", type=int, help="default 4 (resources: 5)")
    parser.add_argument("--anchor", type=int, help="the account's 'now' (epoch s); default: this minute")
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiply the documented rate limits")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests given an injected fault")
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--ready-file", help="write {base_url, api_key} here once listening")
    parser.add_argument("--report-events", action="store_true",
                        help="add campaign and flow sends for the report endpoints (tests/sandbox/reports.py)")
    parser.add_argument("--report-daily-cap", type=int, default=225, help="report requests a day, all report endpoints together")
    args = parser.parse_args()
    if args.shape == "whole":
        account = shapes.whole(seed=args.seed, anchor=args.anchor)
    elif args.shape == "resources":      # its own list and segment counts unless given
        account = shapes.resources(seed=args.seed, anchor=args.anchor,
                                   **{k: v for k, v in (("lists", args.lists), ("segments", args.segments))
                                      if v is not None})
    else:
        lists = 6 if args.lists is None else args.lists
        segments = 4 if args.segments is None else args.segments
        if args.shape == "default":
            account = generate(events=args.events, seed=args.seed, anchor=args.anchor, lists=lists, segments=segments)
        else:
            account = getattr(shapes, args.shape)(seed=args.seed, anchor=args.anchor, lists=lists, segments=segments)
    if args.report_events:
        from . import reports
        reports.populate(account, seed=args.seed)
    # where a sync of the classic tables starts (dense: an incremental run from the start of its day)
    since = shapes.dense_day(account.anchor) if args.shape == "dense" else account.anchor - 366 * 86400
    options = Options(latency=args.latency_ms / 1000, rate_scale=args.rate_scale, fault_rate=args.fault_rate,
                      fault_seed=args.fault_seed, report_daily_cap=args.report_daily_cap)
    server, base_url = serve(account, options, port=args.port)
    # every event and profile encoded before the ready line: a run then costs the sandbox serving only
    server.sandbox.pages.warm(base_url)
    gc.freeze()     # the account and its JSON live as long as the process: the collector need not walk them
    info = {"base_url": base_url, "api_key": API_KEY, "no_events_key": NO_EVENTS_KEY,
            "events": sum(len(v) for v in account.events.values()), "anchor": account.anchor, "since": since,
            "classic_events": shapes.classic_counts(account, since, account.anchor + 1)}
    if getattr(account, "entities", None) is not None:     # what the resource streams hold (no shape but default)
        info["resources"] = shapes.resource_counts(account)
    if args.shape == "resources":       # ids a benchmark changes through the admin calls
        info["resource_samples"] = shapes.resource_samples(account)
    print(json.dumps(info), flush=True)
    if args.ready_file:
        with open(args.ready_file, "w") as handle:
            json.dump(info, handle)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
        sys.exit(0)


if __name__ == "__main__":
    main()
