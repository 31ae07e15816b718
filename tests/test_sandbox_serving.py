"""/api/events as the sandbox serves it from memoized JSON (tests/sandbox/fragments.py): every page
holds what the account holds, and the next page after a change to the account shows the change.

The expected pages are built here, straight from the account's Python objects; the served ones are
read over HTTP on loopback with json (which keeps integers wider than 64 bits exact).
"""
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.sandbox.data import WIDE_INTEGER, generate, nullify
from tests.sandbox.server import API_KEY, Options

ROOT = Path(__file__).resolve().parent.parent
REVISION = "2026-07-15"
DAY = 86400


@dataclass(frozen=True)
class Ask:
    """One walk over /api/events: the filter, sort, page size, includes and sparse fieldsets."""
    name: str
    metric: str | None = None           # a Klaviyo metric's name; None: every metric
    since_days: int | None = None       # the window, in days before the account's anchor
    until_days: int | None = None
    sort: str = "datetime"
    size: int = 100
    include: str = ""
    event_fields: str | None = None
    profile_fields: str | None = None
    metric_fields: str | None = None


# what the classic tables ask (some profile attributes, not in the account's order), and others
CLASSIC = Ask("classic", "Received Email", since_days=800, until_days=0, size=150, include="profile,metric",
              event_fields="timestamp,datetime,uuid,event_properties",
              profile_fields="email,first_name,last_name,phone_number,external_id,location,properties,created,updated",
              metric_fields="name")
ASKS = (
    CLASSIC,
    Ask("every-metric-newest-first", since_days=200, until_days=20, sort="-datetime", size=250,
        event_fields="uuid,timestamp"),
    Ask("whole-resources-by-timestamp", "Opened Email", sort="-timestamp", size=37, include="profile"),
    Ask("metrics-only", size=1000, include="metric", metric_fields="name,integration"),
    Ask("repeated-fields", "Clicked Email", size=60, include="profile,metric",
        event_fields="datetime,datetime,uuid", profile_fields="properties,email,properties"),
)


def utc(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def query(account, ask):
    filters = []
    if ask.metric:
        filters.append(f'equals(metric_id,"{account.metric_by_name(ask.metric)["id"]}")')
    if ask.since_days is not None:
        filters.append(f"greater-or-equal(datetime,{utc(account.anchor - ask.since_days * DAY)})")
    if ask.until_days is not None:
        filters.append(f"less-than(datetime,{utc(account.anchor - ask.until_days * DAY + 1)})")
    params = {"sort": ask.sort, "page[size]": str(ask.size)}
    if filters:
        params["filter"] = ",".join(filters)
    for name, value in (("include", ask.include or None), ("fields[event]", ask.event_fields),
                        ("fields[profile]", ask.profile_fields), ("fields[metric]", ask.metric_fields)):
        if value is not None:
            params[name] = value
    return params


def walk(base_url, account, ask):
    """Every page of the ask, following links.next: [{"data": ..., "included": ...}]."""
    url = f"{base_url}/api/events?{urllib.parse.urlencode(query(account, ask))}"
    pages = []
    while url:
        request = urllib.request.Request(url, headers={"Authorization": f"Klaviyo-API-Key {API_KEY}",
                                                       "revision": REVISION})
        with urllib.request.urlopen(request) as response:
            document = json.loads(response.read())
        pages.append({k: v for k, v in document.items() if k != "links"})
        url = document["links"]["next"]
        assert len(pages) <= 200, "the cursor never ends"
    return pages


# --- the expected pages, from the account ----------------------------------------------------------

def _sparse(attributes, fields):
    return attributes if fields is None else {n: attributes[n] for n in fields.split(",") if n in attributes}


def event_resource(account, base_url, event, fields):
    attributes = {"timestamp": event.timestamp, "datetime": datetime.fromtimestamp(event.timestamp, timezone.utc)
                  .isoformat(), "uuid": event.uuid, "event_properties": event.properties}
    for name in account.served_null.get(("event", event.id), ()):
        attributes[name] = None
    relationships = {"metric": {"data": {"type": "metric", "id": event.metric_id}}}
    if event.profile_id is not None:
        relationships["profile"] = {"data": {"type": "profile", "id": event.profile_id}}
    return {"type": "event", "id": event.id, "attributes": _sparse(attributes, fields),
            "relationships": relationships, "links": {"self": f"{base_url}/api/events/{event.id}/"}}


def profile_resource(account, profile_id, fields):
    profile = account.profiles[profile_id]
    attributes = None
    if "*" not in account.served_null.get(("profile", profile_id), ()):
        attributes = _sparse({k: v for k, v in profile["attributes"].items() if k != "subscriptions"}, fields)
    return {"type": "profile", "id": profile_id, "attributes": attributes}


def expected(account, base_url, ask):
    """The pages the ask must get: the account's events in its window, sorted, cut in pages, each
    with its profiles and metrics once (none without a profile, none deleted)."""
    metric_id = account.metric_by_name(ask.metric)["id"] if ask.metric else None
    since = account.anchor - ask.since_days * DAY if ask.since_days is not None else float("-inf")
    until = account.anchor - ask.until_days * DAY + 1 if ask.until_days is not None else float("inf")
    events = [e for e in account.all_events()
              if (metric_id is None or e.metric_id == metric_id) and since <= e.timestamp < until]
    events.sort(key=lambda e: (e.timestamp, e.id), reverse=ask.sort.startswith("-"))
    metrics = {m["id"]: m for m in account.metrics}
    pages = []
    for start in range(0, max(1, len(events)), ask.size):
        data, included = [], []
        seen = {("profile", None)} | account.not_included
        for event in events[start:start + ask.size]:
            data.append(event_resource(account, base_url, event, ask.event_fields))
            if "profile" in ask.include and ("profile", event.profile_id) not in seen:
                seen.add(("profile", event.profile_id))
                included.append(profile_resource(account, event.profile_id, ask.profile_fields))
            if "metric" in ask.include and ("metric", event.metric_id) not in seen:
                seen.add(("metric", event.metric_id))
                metric = metrics[event.metric_id]
                included.append({"type": "metric", "id": metric["id"],
                                 "attributes": _sparse(metric["attributes"], ask.metric_fields)})
        pages.append({"data": data, "included": included} if ask.include else {"data": data})
    return pages


def _integers(value):
    if isinstance(value, dict):
        return [i for v in value.values() for i in _integers(v)]
    if isinstance(value, list):
        return [i for v in value for i in _integers(v)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


# --- tests -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared():
    # nothing here changes this account: one sandbox for the module (stopping one costs ~0.5 s)
    sandbox = Sandbox(generate(events=1200, seed=11, lists=2, segments=1), Options(rate_scale=20.0))
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("ask", ASKS, ids=lambda a: a.name)
def test_every_page_holds_what_the_account_holds(shared, ask):
    served = walk(shared.base_url, shared.account, ask)
    want = expected(shared.account, shared.base_url, ask)
    assert sum(len(p["data"]) for p in want) > 0
    assert served == want
    # again, now from the memo the first walk filled
    assert walk(shared.base_url, shared.account, ask) == want


def test_integers_wider_than_64_bits_come_back_exact(shared):
    served = walk(shared.base_url, shared.account, CLASSIC)
    wide = [i for i in _integers(served) if not -2 ** 63 <= i < 2 ** 64]
    assert WIDE_INTEGER in wide      # an event's property and some profiles' properties
    assert wide == [i for i in _integers(expected(shared.account, shared.base_url, CLASSIC))
                    if not -2 ** 63 <= i < 2 ** 64]
    # the other endpoints' documents (orjson refuses such integers) keep them exact as well
    dumped = shared.dump()
    assert WIDE_INTEGER in _integers(dumped["events"]) and WIDE_INTEGER in _integers(dumped["profiles"])


EVERY_METRIC = Ask("every-metric", size=400, include="profile", event_fields="uuid,timestamp,datetime",
                   profile_fields="updated,email")
CHANGES = ("null_uuid", "null_event_properties", "null_times", "event_without_profile", "null_profile_location",
           "null_profile_attributes", "profile_not_included", "deleted_metric", "profile_touched", "event_added")


@pytest.mark.parametrize("change", CHANGES)
def test_the_next_page_after_a_change_shows_it(make_sandbox, change):
    sandbox = make_sandbox(events=300, seed=3, lists=1, segments=1)
    account = sandbox.account
    sandbox.server.sandbox.pages.warm(sandbox.base_url)     # as the benchmark's sandbox: all encoded up front
    before = [walk(sandbox.base_url, account, ask) for ask in (CLASSIC, EVERY_METRIC)]
    assert before == [expected(account, sandbox.base_url, ask) for ask in (CLASSIC, EVERY_METRIC)]
    if change == "profile_touched":         # an admin POST, as tests of the profiles stream make
        first = account.events[account.metric_by_name("Received Email")["id"]][0]
        sandbox.post("/__sandbox/profiles/touch", {"ids": [first.profile_id], "updated": utc(account.anchor - 4321)})
    elif change == "event_added":
        sandbox.post("/__sandbox/events", {"events": [{"metric_name": "Received Email",
                                                       "timestamp": account.anchor - 3 * DAY}]})
    else:
        nullify(account, change, "Received Email", count=2)
    after = [walk(sandbox.base_url, account, ask) for ask in (CLASSIC, EVERY_METRIC)]
    assert after != before
    assert after == [expected(account, sandbox.base_url, ask) for ask in (CLASSIC, EVERY_METRIC)]


def test_the_benchmark_sandbox_serves_the_account_it_was_given(tmp_path):
    """python -m tests.sandbox encodes everything before it is ready and freezes the collector;
    its pages are those of the same account built here."""
    anchor = int(time.time()) // 60 * 60
    ready = tmp_path / "ready.json"
    process = subprocess.Popen([sys.executable, "-m", "tests.sandbox", "--port", "0", "--events", "400", "--seed", "5",
                                "--anchor", str(anchor), "--rate-scale", "20", "--ready-file", str(ready)],
                               cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        while not (ready.exists() and ready.stat().st_size):
            assert process.poll() is None, "the sandbox did not start"
            time.sleep(0.05)
        base_url = json.loads(ready.read_text())["base_url"]
        account = generate(events=400, seed=5, anchor=anchor, lists=6, segments=4)    # the CLI's defaults
        for ask in ASKS:
            assert walk(base_url, account, ask) == expected(account, base_url, ask), ask.name
    finally:
        process.terminate()
        process.wait()
