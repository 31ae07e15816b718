"""Events Klaviyo shows late, and POST /api/metric-aggregates, as the sandbox serves them.

A held event exists but is served nowhere until it is revealed (POST /__sandbox/events with
"held": true, then POST /__sandbox/events/reveal). The metric aggregates count only the events the
API serves; the expected numbers are computed here from the dump, on their own (per bucket of the
zone's clock, with zoneinfo), and compared with what the sandbox answers over HTTP on loopback.
"""
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import Sandbox
from tests.sandbox.data import Event, generate
from tests.sandbox.server import API_KEY, NO_EVENTS_KEY, NO_SCOPES_KEY, Options

REVISION = "2026-07-15"
DAY = 86400
PATH = "/api/metric-aggregates"


def call(sandbox, body, revision=REVISION, key=API_KEY, query=None):
    """(status, document, headers) of one POST /api/metric-aggregates."""
    return sandbox.api(PATH, query, revision=revision, key=key, body=body)


def text(epoch, zone=timezone.utc):
    """An ISO 8601 datetime with the zone's offset."""
    return datetime.fromtimestamp(epoch, zone).isoformat()


def body(metric_id, lower, upper, measurements=("count",), **more):
    attributes = {"metric_id": metric_id, "measurements": list(measurements),
                  "filter": [f"greater-or-equal(datetime,{lower})", f"less-than(datetime,{upper})"], **more}
    return {"data": {"type": "metric-aggregate", "attributes": attributes}}


def measured(sandbox, metric_id, lower, upper, measurements=("count",), **more):
    """(dates, {measurement: values}) of an aggregate query."""
    status, document, _ = call(sandbox, body(metric_id, lower, upper, measurements, **more))
    assert status == 200, document
    attributes = document["data"]["attributes"]
    row, = attributes["data"]
    assert row["dimensions"] == []
    return attributes["dates"], row["measurements"]


def expected(dump, metric_id, lower, upper, bucket_of):
    """{bucket: (count, distinct profiles, sum of numeric $value)} of the dump's visible events of
    the metric in [lower, upper); bucket_of(epoch) names an event's bucket."""
    tallies = {}
    for event in dump["events"]:
        if event["metric_id"] != metric_id or not lower <= event["timestamp"] < upper:
            continue
        tally = tallies.setdefault(bucket_of(event["timestamp"]), [0, set(), 0.0])
        tally[0] += 1
        if event["profile_id"] is not None:
            tally[1].add(event["profile_id"])
        value = (event["event_properties"] or {}).get("$value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            tally[2] += value
    return {bucket: (count, len(profiles), value) for bucket, (count, profiles, value) in tallies.items()}


def events_between(sandbox, metric_id, lower, upper):
    """Ids /api/events serves for the metric in [lower, upper) (one page: the tests' windows are small)."""
    query = {"filter": f'equals(metric_id,"{metric_id}"),greater-or-equal(datetime,{text(lower)}),'
                       f"less-than(datetime,{text(upper)})", "page[size]": "1000"}
    status, document, _ = sandbox.api("/api/events", query, revision=REVISION)
    assert status == 200 and document["links"]["next"] is None
    return {event["id"] for event in document["data"]}


@pytest.fixture(scope="module")
def shared():
    # read only: one sandbox for the module (about three orders a day, so sums are not all zero)
    sandbox = Sandbox(generate(events=20000, seed=7, lists=2, segments=2), Options(rate_scale=20.0))
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def shared_dump(shared):
    return shared.dump()


def _metric(sandbox, name="Received Email", integration="Klaviyo"):
    return sandbox.account.metric_by_name(name, integration)["id"]


def _midnight(epoch):
    return epoch // DAY * DAY


# --- held events -------------------------------------------------------------------------------

def test_a_held_event_is_served_nowhere_until_it_is_revealed(sandbox):
    metric_id = _metric(sandbox)
    day = _midnight(sandbox.account.anchor) - 3 * DAY
    before_ids = events_between(sandbox, metric_id, day, day + DAY)
    _, before = measured(sandbox, metric_id, text(day), text(day + DAY), ("count", "unique"))

    held, = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Received Email", "timestamp": day + 3600, "held": True}]})["ids"]
    dump = sandbox.dump()
    assert held in {e["id"] for e in dump["held_events"]}
    assert held not in {e["id"] for e in dump["events"]}
    assert set(dump["held_events"][0]) == set(dump["events"][0])
    assert events_between(sandbox, metric_id, day, day + DAY) == before_ids
    assert measured(sandbox, metric_id, text(day), text(day + DAY), ("count", "unique"))[1] == before

    assert sandbox.post("/__sandbox/events/reveal", {"ids": [held]}) == {"revealed": [held]}
    assert events_between(sandbox, metric_id, day, day + DAY) == before_ids | {held}
    _, after = measured(sandbox, metric_id, text(day), text(day + DAY))
    assert after["count"] == [before["count"][0] + 1]
    dump = sandbox.dump()
    assert held in {e["id"] for e in dump["events"]} and dump["held_events"] == []


def test_reveal_without_ids_reveals_every_held_event_and_an_unknown_id_reveals_none(sandbox):
    anchor = sandbox.account.anchor
    held = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Opened Email", "timestamp": anchor - 5 * DAY, "held": True},
        {"metric_name": "Opened Email", "timestamp": anchor - 4 * DAY, "held": True},
        {"metric_name": "Opened Email", "timestamp": anchor - 4 * DAY}]})["ids"]
    assert [e["id"] for e in sandbox.dump()["held_events"]] == held[:2]

    with pytest.raises(urllib.error.HTTPError) as refused:
        sandbox.post("/__sandbox/events/reveal", {"ids": [held[0], "no-such-event"]})
    assert refused.value.code == 404 and "no-such-event" in json.loads(refused.value.read())["error"]
    assert len(sandbox.dump()["held_events"]) == 2, "a refused reveal reveals none"

    assert sandbox.post("/__sandbox/events/reveal", {}) == {"revealed": held[:2]}
    dump = sandbox.dump()
    assert dump["held_events"] == [] and set(held) <= {e["id"] for e in dump["events"]}
    with pytest.raises(urllib.error.HTTPError) as again:
        sandbox.post("/__sandbox/events/reveal", {"ids": [held[0]]})
    assert again.value.code == 404


# --- the counts --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, integration", [("Received Email", "Klaviyo"), ("Placed Order", "Shopify")])
def test_daily_measurements_are_the_dumps_over_ten_days(shared, shared_dump, name, integration):
    metric_id = _metric(shared, name, integration)
    upper = _midnight(shared.account.anchor) - 2 * DAY
    lower = upper - 10 * DAY
    dates, values = measured(shared, metric_id, text(lower), text(upper), ("count", "unique", "sum_value"))
    assert dates == [text(day) for day in range(lower, upper, DAY)]
    assert dates[0].endswith("T00:00:00+00:00")
    wanted = expected(shared_dump, metric_id, lower, upper, _midnight)
    counts = [wanted.get(day, (0, 0, 0.0)) for day in range(lower, upper, DAY)]
    assert values["count"] == [float(c) for c, _, _ in counts]
    assert values["unique"] == [float(u) for _, u, _ in counts]
    assert values["sum_value"] == pytest.approx([v for _, _, v in counts])
    assert all(isinstance(v, float) for series in values.values() for v in series)
    assert sum(values["count"]) > 0
    if name == "Placed Order":
        assert sum(values["sum_value"]) > 0


def test_a_partial_last_day_counts_only_up_to_the_bound(shared, shared_dump):
    metric_id = _metric(shared)
    first = _midnight(shared.account.anchor) - 30 * DAY
    lower, upper = first + 7 * 3600, first + 3 * DAY + 13 * 3600 + 1800      # mid-day to mid-day
    # without an offset: in the query's timezone (UTC by default)
    dates, values = measured(shared, metric_id, text(lower)[:19], text(upper)[:19])
    assert dates == [text(first + n * DAY) for n in range(4)]
    wanted = expected(shared_dump, metric_id, lower, upper, _midnight)
    assert values["count"] == [float(wanted.get(first + n * DAY, (0,))[0]) for n in range(4)]
    whole = expected(shared_dump, metric_id, first, first + 4 * DAY, _midnight)
    assert values["count"][-1] <= whole.get(first + 3 * DAY, (0,))[0]


def test_hours_follow_the_zones_clock(shared, shared_dump):
    """Hour buckets in a zone half an hour off UTC, across a day, counted from the dump."""
    metric_id = _metric(shared)
    zone = ZoneInfo("Asia/Kolkata")
    local = datetime.fromtimestamp(shared.account.anchor - 40 * DAY, zone).replace(hour=0, minute=0, second=0)
    lower, upper = int(local.timestamp()), int(local.timestamp()) + 30 * 3600
    dates, values = measured(shared, metric_id, local.replace(tzinfo=None).isoformat(), text(upper, zone),
                             interval="hour", timezone="Asia/Kolkata")
    assert dates == [text(at, zone) for at in range(lower, upper, 3600)]
    assert dates[0].endswith("T00:00:00+05:30")
    wanted = expected(shared_dump, metric_id, lower, upper, lambda at: at - (at - lower) % 3600)
    assert values["count"] == [float(wanted.get(at, (0,))[0]) for at in range(lower, upper, 3600)]
    assert sum(values["count"]) > 0


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_days_weeks_and_months_start_at_the_zones_midnight(shared, shared_dump, interval):
    metric_id = _metric(shared, "Opened Email")
    zone = ZoneInfo("America/New_York")
    upper = _midnight(shared.account.anchor) - 5 * DAY + 5 * 3600
    lower = upper - 70 * DAY

    def bucket(epoch):
        day = datetime.fromtimestamp(epoch, zone).date()
        if interval == "week":
            day = day.fromordinal(day.toordinal() - day.weekday())
        elif interval == "month":
            day = day.replace(day=1)
        return datetime(day.year, day.month, day.day, tzinfo=zone).isoformat()

    dates, values = measured(shared, metric_id, text(lower, zone), text(upper), interval=interval,
                             timezone="America/New_York")
    assert dates[0] == bucket(lower) and dates[-1] == bucket(upper - 1)
    assert all(date[11:19] == "00:00:00" for date in dates)
    if interval == "week":
        assert all(datetime.fromisoformat(date).weekday() == 0 for date in dates)
    wanted = expected(shared_dump, metric_id, lower, upper, bucket)
    assert dict(zip(dates, values["count"])) == {date: float(wanted.get(date, (0,))[0]) for date in dates}
    assert set(wanted) <= set(dates)


def test_a_dense_day_is_counted_from_the_index(make_sandbox):
    sandbox = make_sandbox(events=200)
    account = sandbox.account
    metric_id = _metric(sandbox)
    day = _midnight(account.anchor) - 9 * DAY
    before = sum(1 for e in account.events[metric_id] if day <= e.timestamp < day + DAY)
    profiles = sorted(account.profiles)
    for n in range(80000):      # a campaign send: one second apart at most
        account.add_event(Event(day + n * DAY // 80000, f"dense{n:06d}", None, profiles[n % len(profiles)],
                                metric_id, {}))
    started = time.monotonic()
    _, values = measured(sandbox, metric_id, text(day), text(day + DAY), ("count", "unique"))
    assert time.monotonic() - started < 5
    assert values["count"] == [float(80000 + before)]
    assert values["unique"] == [float(len(profiles))]


def test_only_the_asked_fields_are_served_and_links_name_no_next_page(shared):
    metric_id = _metric(shared)
    upper = _midnight(shared.account.anchor)
    status, document, _ = call(shared, body(metric_id, text(upper - DAY), text(upper)),
                               query={"fields[metric-aggregate]": "dates"})
    assert status == 200, document
    data = document["data"]
    assert data["type"] == "metric-aggregate" and data["id"]
    assert data["attributes"] == {"dates": [text(upper - DAY)]}
    assert data["links"]["self"].endswith(PATH)
    assert document["links"]["self"] and document["links"]["next"] is None


# --- refusals ----------------------------------------------------------------------------------

def _refused_body(sandbox, document, pointer, mentions, status=400):
    got, answer, _ = call(sandbox, document)
    assert got == status, answer
    error = answer["errors"][0]
    assert error["source"] == {"pointer": pointer}, error
    assert mentions in error["detail"], error["detail"]


def _window(sandbox):
    upper = _midnight(sandbox.account.anchor)
    return _metric(sandbox), text(upper - 2 * DAY), text(upper)


def _without(document, name):
    del document["data"]["attributes"][name]
    return document


FILTER = "/data/attributes/filter"


@pytest.mark.parametrize("change, pointer, mentions", [
    (lambda d: _without(d, "filter"), FILTER, "'filter' is a required field"),
    (lambda d: d["data"]["attributes"].update(filter=d["data"]["attributes"]["filter"][:1]), FILTER, "less-than"),
    (lambda d: d["data"]["attributes"].update(filter=["greater-or-equal(datetime,2026-01-02T00:00:00)",
                                                      "less-than(datetime,2026-01-01T00:00:00)"]), FILTER, "before"),
    (lambda d: d["data"]["attributes"]["filter"].append("greater-than(datetime,2026-01-01T00:00:00)"), FILTER,
     "'greater-than'"),
    (lambda d: d["data"]["attributes"]["filter"].append("less-than(datetime,2026-01-01T00:00:00)"), FILTER,
     "more than one"),
    (lambda d: d["data"]["attributes"]["filter"].append('equals($message,"M0001")'), FILTER,
     "does not evaluate filters on '$message'"),
    (lambda d: d["data"]["attributes"].update(filter=["greater-or-equal(datetime,'2026-01-01')",
                                                      "less-than(datetime,2026-02-01T00:00:00)"]), FILTER, "unquoted"),
    (lambda d: d["data"]["attributes"].update(filter=["greater-or-equal(datetime,yesterday)",
                                                      "less-than(datetime,2026-02-01T00:00:00)"]), FILTER, "ISO 8601"),
    (lambda d: d["data"]["attributes"].update(measurements=["count", "median"]), "/data/attributes/measurements",
     "'median'"),
    (lambda d: _without(d, "measurements"), "/data/attributes/measurements", "required"),
    (lambda d: d["data"]["attributes"].update(metric_id=7), "/data/attributes/metric_id", "a string"),
    (lambda d: d["data"]["attributes"].update(colour="red"), "/data/attributes/colour", "'colour' is not a valid"),
    (lambda d: d["data"]["attributes"].update(interval="year"), "/data/attributes/interval", "'year'"),
    (lambda d: d["data"]["attributes"].update(page_size="500"), "/data/attributes/page_size", "an integer"),
    (lambda d: d["data"]["attributes"].update(sort="-revenue"), "/data/attributes/sort", "'-revenue'"),
    (lambda d: d["data"]["attributes"].update(sort=None), "/data/attributes/sort", "may not be null"),
    (lambda d: d["data"]["attributes"].update(timezone="Mars/Olympus_Mons"), "/data/attributes/timezone",
     "not a valid timezone"),
    (lambda d: d["data"]["attributes"].update(timezone="america/new_york"), "/data/attributes/timezone",
     "not a valid timezone"),
    (lambda d: d["data"]["attributes"].update(timezone="Europe/Kyiv"), "/data/attributes/timezone",
     "not a supported timezone"),
    (lambda d: d["data"]["attributes"].update(by=["Gross Margin"]), "/data/attributes/by", "'Gross Margin'"),
    (lambda d: d["data"].update(type="metric"), "/data/type", "'metric' is not a valid type"),
], ids=["no-filter", "no-less-than", "bounds-reversed", "greater-than", "two-less-than", "other-field",
        "quoted-datetime", "not-a-datetime", "bad-measurement", "no-measurements", "metric-id-type",
        "unknown-attribute", "bad-interval", "page-size-type", "bad-sort", "null-sort", "unknown-timezone",
        "timezone-case", "unsupported-timezone", "bad-dimension", "wrong-type"])
def test_what_the_spec_refuses_is_refused(shared, change, pointer, mentions):
    document = body(*_window(shared))
    change(document)
    _refused_body(shared, document, pointer, mentions)


@pytest.mark.parametrize("attribute, value, mentions", [
    ("by", ["$message"], "does not serve dimensions"),
    ("return_fields", ["count"], "does not serve return_fields"),
    ("page_cursor", "abc", "page_cursor"),
])
def test_what_the_sandbox_does_not_compute_is_refused_saying_so(shared, attribute, value, mentions):
    _refused_body(shared, body(*_window(shared), **{attribute: value}), f"/data/attributes/{attribute}", mentions)


def test_nullable_attributes_take_the_specs_defaults(shared):
    metric_id, lower, upper = _window(shared)
    plain = measured(shared, metric_id, lower, upper)
    assert measured(shared, metric_id, lower, upper, interval=None, timezone=None, page_size=None, by=None,
                    return_fields=None) == plain
    assert measured(shared, metric_id, lower, upper, sort="-count", page_size=10) == plain


def test_an_unknown_metric_is_not_found(shared):
    _, lower, upper = _window(shared)
    _refused_body(shared, body("NoSuch", lower, upper), "/data/attributes/metric_id", "NoSuch", status=404)


def test_the_key_needs_metrics_read(shared):
    document = body(*_window(shared))
    status, answer, _ = call(shared, document, key=NO_SCOPES_KEY)
    assert status == 403 and "metrics:read" in answer["errors"][0]["detail"], answer
    status, answer, _ = call(shared, document, key="pk_not_a_key")
    assert status == 401, answer
    status, answer, _ = call(shared, document, key=NO_EVENTS_KEY)     # events:read is not needed
    assert status == 200, answer


def test_the_revision_header_is_checked_as_for_other_endpoints(make_sandbox):
    sandbox = make_sandbox(events=200)
    document = body(*_window(sandbox))
    for revision, status, mentions in [(None, 400, "revision"), ("2026-13-15", 400, "not a published revision")]:
        got, answer, _ = call(sandbox, document, revision=revision)
        assert got == status and mentions in answer["errors"][0]["detail"], answer
        assert answer["errors"][0]["source"] == {"parameter": "revision"}
    assert call(sandbox, document, revision="2026-07-15.pre")[0] == 200     # a beta follows its base
    # fields[metric-aggregate] arrives in 2026-04-15
    fields = {"fields[metric-aggregate]": "data"}
    got, answer, _ = call(sandbox, document, revision="2026-01-15", query=fields)
    assert got == 400 and answer["errors"][0]["source"] == {"parameter": "fields[metric-aggregate]"}, answer
    assert call(sandbox, document, revision="2026-04-15", query=fields)[0] == 200
    got, answer, _ = call(sandbox, document, revision="2026-04-15", query={"fields[metric-aggregate]": "rows"})
    assert got == 400 and "'rows'" in answer["errors"][0]["detail"], answer
    sandbox.server.sandbox.retired_before = "2025-02-01"
    assert call(sandbox, document, revision="2025-01-15")[0] == 410


# --- limits, stats and faults as for the GETs ---------------------------------------------------

def test_requests_are_counted_and_limited_by_the_specs_tier(make_sandbox):
    # scaled down to 1 request a second and a minute: of three at once, at most two can pass
    sandbox = make_sandbox(events=200, rate_scale=0.01)
    document = body(*_window(sandbox))
    answers = [call(sandbox, document) for _ in range(3)]
    assert 429 in [status for status, _, _ in answers]
    passed = [headers for status, _, headers in answers if status == 200]
    assert passed and passed[0]["RateLimit-Limit"] == "1"
    stats = sandbox.stats()
    assert stats["by_family"]["metric_aggregates"] == 3 and stats["throttled"] >= 1


def test_faults_and_latency_apply(make_sandbox):
    sandbox = make_sandbox(events=200, fault_rate=1.0, fault_kinds=("503",), faults_per_target=1, latency=0.2)
    document = body(*_window(sandbox))
    started = time.monotonic()
    status, _, _ = call(sandbox, document)
    assert status == 503 and time.monotonic() - started >= 0.2
    assert call(sandbox, document)[0] == 200, "faulted once per body, then answered"
    other = body(*_window(sandbox), measurements=("unique",))
    assert call(sandbox, other)[0] == 503
    assert sandbox.stats()["faults"] == 2
