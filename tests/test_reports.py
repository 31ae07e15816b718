"""campaign_values and flow_series (Klaviyo's Reporting API): every figure against the sandbox's events,
backfill in 60-day series, the lookback re-read, the daily budget running out halfway, a missing
conversion metric, revisions before `group_by`, and the sandbox's report endpoints themselves.

Expected figures are computed here from the sandbox's dump by this file's own code. The tap paces
report requests to Klaviyo's 2 a minute, so each run here makes at most two per report endpoint.
"""
import calendar
import json
import time
import urllib.error
import urllib.request

import pytest

from tests import expected
from tests.conftest import catalog_selecting, run_tap
from tests.sandbox import reports as sandbox_reports
from tests.sandbox.data import Event
from tests.sandbox.server import API_KEY

DAY = 86400
REPORTS = ("campaign_values", "flow_series")
FAMILIES = {"campaign_values": "campaign_values_reports", "flow_series": "flow_series_reports"}
# what the sandbox's report endpoints count: a fact about Klaviyo's reports, stated once (sandbox/reports.py)
CHANNEL, COUNTED_AS, DISTINCT = sandbox_reports.CHANNEL_NAMES, sandbox_reports.EVENT_STATISTIC, sandbox_reports.UNIQUE
COUNTS = ("recipients", "delivered", "opens", "opens_unique", "clicks", "clicks_unique", "bounced", "failed",
          "bounced_or_failed", "unsubscribes", "unsubscribe_uniques", "spam_complaints", "conversions",
          "conversion_uniques")
RATES = ("delivery_rate", "open_rate", "click_rate", "click_to_open_rate", "bounce_rate", "failed_rate",
         "bounced_or_failed_rate", "unsubscribe_rate", "spam_complaint_rate", "conversion_rate")
MONEY = ("conversion_value", "average_order_value", "revenue_per_recipient")


# --- the figures, from the dump ------------------------------------------------------------------
def message_groups(dump):
    """message id -> (kind, campaign or flow id, send_channel)."""
    found = {}
    for message in dump["campaign_messages"]:
        campaign_id = message["relationships"]["campaign"]["data"]["id"]
        found[message["id"]] = ("campaign", campaign_id, CHANNEL[dump["campaign_channels"][campaign_id]])
    flow_of = {a["id"]: a["relationships"]["flow"]["data"]["id"] for a in dump["flow_actions"]}
    for message in dump["flow_messages"]:
        if message["attributes"]["channel"] in CHANNEL:
            found[message["id"]] = ("flow", flow_of[message["relationships"]["flow-action"]["data"]["id"]],
                                    CHANNEL[message["attributes"]["channel"]])
    return found


def counted_events(dump, conversion_metric_id):
    """(timestamp, message id, statistic, profile id, order value) of every event a report counts."""
    metrics = {m["id"]: m["attributes"] for m in dump["metrics"]}
    groups = message_groups(dump)
    out = []
    for event in dump["events"]:
        properties = event["event_properties"] or {}
        attributes = metrics[event["metric_id"]]
        if event["metric_id"] == conversion_metric_id:
            statistic, message_id = "conversions", properties.get("$attributed_message")
        elif attributes["integration"]["name"] == "Klaviyo" and attributes["name"] in COUNTED_AS:
            statistic, message_id = COUNTED_AS[attributes["name"]], properties.get("$message")
        else:
            continue
        if message_id in groups:
            out.append((event["timestamp"], message_id, statistic, event["profile_id"], properties.get("$value")))
    return out


def figures(events):
    counts = dict.fromkeys(("delivered", "bounced", "failed", "opens", "clicks", "spam_complaints", "unsubscribes",
                            "conversions"), 0)
    people = {name: set() for name in DISTINCT}
    value = 0.0
    for _, _, statistic, profile_id, order_value in events:
        counts[statistic] += 1
        if statistic in people and profile_id:
            people[statistic].add(profile_id)
        if statistic == "conversions":
            value += order_value
    out = dict(counts, **{DISTINCT[name]: len(found) for name, found in people.items()})
    out["recipients"] = counts["delivered"] + counts["bounced"] + counts["failed"]
    out["bounced_or_failed"] = counts["bounced"] + counts["failed"]
    out["conversion_value"] = value

    def share(part, whole):
        return part / whole if whole else 0.0
    recipients, delivered = out["recipients"], out["delivered"]
    out.update(delivery_rate=share(delivered, recipients), bounce_rate=share(out["bounced"], recipients),
               failed_rate=share(out["failed"], recipients),
               bounced_or_failed_rate=share(out["bounced_or_failed"], recipients),
               open_rate=share(out["opens_unique"], delivered), click_rate=share(out["clicks_unique"], delivered),
               click_to_open_rate=share(out["clicks_unique"], out["opens_unique"]),
               unsubscribe_rate=share(out["unsubscribe_uniques"], delivered),
               spam_complaint_rate=share(out["spam_complaints"], delivered),
               conversion_rate=share(out["conversion_uniques"], delivered),
               revenue_per_recipient=share(value, delivered), average_order_value=share(value, out["conversions"]))
    return out


def assert_figures(row, want, where, deselected=()):
    for name in deselected:
        assert name not in row, f"{where}: deselected {name} written"
    for name in set(COUNTS) - set(deselected):
        assert row[name] == want[name], f"{where}: {name}"
        assert isinstance(row[name], int), f"{where}: {name} is not an integer"
    for name in set(RATES) - set(deselected):
        assert row[name] == pytest.approx(want[name], abs=6e-5), f"{where}: {name}"
    for name in MONEY:
        assert row[name] == pytest.approx(want[name], abs=0.006), f"{where}: {name}"


def expected_campaign_values(dump, metric_id, lower, upper):
    groups = message_groups(dump)
    by_message = {}
    for event in counted_events(dump, metric_id):
        if lower <= event[0] < upper and groups[event[1]][0] == "campaign":
            by_message.setdefault(event[1], []).append(event)
    return {(message_id, groups[message_id][2]): (groups[message_id][1], figures(events))
            for message_id, events in by_message.items()}


def expected_flow_days(dump, metric_id, lower, upper):
    """(message, channel, YYYY-MM-DD) -> (flow id, figures) of every flow message and day with events."""
    groups = message_groups(dump)
    by_day = {}
    for event in counted_events(dump, metric_id):
        if lower <= event[0] < upper and groups[event[1]][0] == "flow":
            key = (event[1], groups[event[1]][2], day_text(event[0]))
            by_day.setdefault(key, []).append(event)
    return {key: (groups[key[0]][1], figures(events)) for key, events in by_day.items()}


def day_text(epoch):
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def epoch(text):
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def metric_id(dump, name, integration):
    return next(m["id"] for m in dump["metrics"] if m["attributes"]["name"] == name
                and m["attributes"]["integration"]["name"] == integration)


def check_flow_rows(dump, rows, conversion_metric, lower, upper):
    """Every row's figures are its day's; every message and day with activity in [lower, upper) has a row."""
    want = expected_flow_days(dump, conversion_metric, lower, upper)
    have = {(r["flow_message_id"], r["send_channel"], r["date"]): r for r in rows}
    assert len(have) == len(rows), "a flow_series key emitted twice"
    assert set(want) <= set(have), "a message's active day is missing"
    groups = message_groups(dump)
    for key, row in have.items():
        assert lower <= epoch(key[2] + "T00:00:00") < upper, key
        assert row["flow_id"] == groups[key[0]][1] and groups[key[0]][2] == key[1], key
        assert_figures(row, want.get(key, (None, figures([])))[1], key)
    return want


# --- running the tap (test_reports_more.py imports these two) ----------------------------------------
@pytest.fixture
def report_sandbox(make_sandbox):
    def make(**options):
        sandbox = make_sandbox(events=600, **options)
        assert sandbox_reports.populate(sandbox.account, seed=3) > 500
        return sandbox
    return make


def sync(sandbox, tmp_path, *streams, state=None, catalog=None, **config):
    before = int(time.time())
    run = run_tap(tmp_path, sandbox.config(**config), catalog=catalog or catalog_selecting(*streams), state=state,
                  timeout=200)
    return run, before, int(time.time())


def report_requests(sandbox):
    by_family = sandbox.stats()["by_family"]
    return {name: by_family.get(family, 0) for name, family in FAMILIES.items()}


def test_both_reports_hold_the_figures_of_the_sandbox_events(report_sandbox, tmp_path):
    sandbox = report_sandbox()
    # 100 days and today: two daily series (at most 60 days each)
    run, before, after = sync(sandbox, tmp_path, *REPORTS, report_days=100)
    dump = sandbox.dump()
    orders = metric_id(dump, "Placed Order", "Shopify")      # the first "Placed Order" the API lists
    assert report_requests(sandbox) == {"campaign_values": 1, "flow_series": 2}

    values = run.records("campaign_values")
    frames = {(r["timeframe_start"], r["timeframe_end"]) for r in values}
    assert len(frames) == 1
    start, end = (epoch(t) for t in frames.pop())
    assert before <= end <= after and end - start == 100 * DAY
    want = expected_campaign_values(dump, orders, start, end)
    assert len(want) >= 5 and {(r["campaign_message_id"], r["send_channel"]) for r in values} == set(want)
    assert len(values) == len(want)
    for row in values:
        campaign_id, figures_wanted = want[(row["campaign_message_id"], row["send_channel"])]
        assert row["campaign_id"] == campaign_id
        assert_figures(row, figures_wanted, row["campaign_message_id"])
    assert {r["send_channel"] for r in values} >= {"email", "sms"} and sum(r["conversions"] for r in values) > 0

    today = after // DAY * DAY
    series = run.records("flow_series")
    want = check_flow_rows(dump, series, orders, today - 100 * DAY, today + DAY)
    assert len(want) > 50 and sum(r["conversions"] for r in series) > 0
    assert {r["date"] for r in series} == {day_text(today - n * DAY) for n in range(101)}
    assert run.last_state["bookmarks"]["flow_series"] == {"since": time.strftime("%Y-%m-%dT00:00:00Z",
                                                                                 time.gmtime(today))}
    assert "campaign_values" not in run.last_state["bookmarks"]


def test_revisions_before_group_by_a_metric_by_id_paged_results_and_columns(report_sandbox, tmp_path):
    # before 2025-10-15 a report body has no group_by (the sandbox refuses one as Klaviyo does)
    sandbox = report_sandbox()
    deselected = ("opens", "spam_complaint_rate")
    catalog = catalog_selecting("campaign_values")
    for item in catalog["streams"][[e["tap_stream_id"] for e in catalog["streams"]].index("campaign_values")]["metadata"]:
        if item["breadcrumb"] in (["properties", name] for name in deselected):
            item["metadata"]["selected"] = False
    dump = sandbox.dump()
    other_orders = metric_id(dump, "Placed Order", "WooCommerce")
    now = int(time.time())
    rows_wanted = len(expected_campaign_values(dump, other_orders, now - 365 * DAY, now))
    sandbox.options.report_page_size = (rows_wanted + 1) // 2       # two pages
    run, before, after = sync(sandbox, tmp_path, catalog=catalog, revision="2025-07-15",
                              conversion_metric=other_orders)
    schema = next(m["schema"] for m in run.messages if m["type"] == "SCHEMA")
    assert not set(deselected) & set(schema["properties"]) and "opens_unique" in schema["properties"]
    values = run.records("campaign_values")
    pages = -(-len(values) // sandbox.options.report_page_size)
    assert pages >= 2 and report_requests(sandbox)["campaign_values"] == pages
    start, end = epoch(values[0]["timeframe_start"]), epoch(values[0]["timeframe_end"])
    assert end - start == 365 * DAY
    want = expected_campaign_values(dump, other_orders, start, end)
    assert len(values) == len(want) >= 10
    for row in values:
        assert row["campaign_id"] == want[(row["campaign_message_id"], row["send_channel"])][0]
        assert_figures(row, want[(row["campaign_message_id"], row["send_channel"])][1], row["campaign_message_id"],
                       deselected)
    assert sum(r["conversions"] for r in values) > 0


def test_each_run_rereads_the_lookback_days(report_sandbox, tmp_path):
    sandbox = report_sandbox()
    today = int(time.time()) // DAY * DAY
    since = today - 10 * DAY
    dump = sandbox.dump()
    orders = metric_id(dump, "Placed Order", "Shopify")
    # an order attributed two days before the bookmark, after that day was loaded: the re-read finds it
    message_id, (_, flow_id, _) = next((m, g) for m, g in message_groups(dump).items()
                                       if g[0] == "flow" and g[2] == "email")
    profile_id = dump["profiles"][0]["id"]
    sandbox.account.add_event(Event(since - 2 * DAY + 3600, "LateOrder0001", "6f1c1f1e-0000-4000-8000-000000000001",
                                    profile_id, orders, {"$value": 77.5, "$attributed_message": message_id}))
    run, _, after = sync(sandbox, tmp_path, "flow_series", report_lookback_days=3,
                         state={"bookmarks": {"flow_series": {"since": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime(since))}}})
    assert report_requests(sandbox)["flow_series"] == 1
    rows = run.records("flow_series")
    assert {r["date"] for r in rows} == {day_text(since + n * DAY) for n in range(-3, 11)}
    check_flow_rows(sandbox.dump(), rows, orders, since - 3 * DAY, today + DAY)
    late = next(r for r in rows if r["flow_message_id"] == message_id and r["date"] == day_text(since - 2 * DAY))
    assert late["conversions"] >= 1 and late["conversion_value"] >= 77.5 and late["flow_id"] == flow_id
    assert run.last_state["bookmarks"]["flow_series"]["since"] == time.strftime("%Y-%m-%dT00:00:00Z",
                                                                                time.gmtime(after // DAY * DAY))


def _spend_one_report(sandbox, kind="campaign-values-report", **attributes):
    """A report request of another app on the account: one of the day's budget of its endpoint."""
    body = {"data": {"type": kind, "attributes": {
        "statistics": ["opens"], "timeframe": {"key": "last_30_days"},
        "conversion_metric_id": sandbox.account.metrics[0]["id"], **attributes}}}
    request = urllib.request.Request(sandbox.base_url + f"/api/{kind}s", data=json.dumps(body).encode(),
                                     method="POST", headers={"Authorization": f"Klaviyo-API-Key {API_KEY}",
                                                             "revision": "2026-10-15",
                                                             "Content-Type": "application/vnd.api+json"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


def test_a_spent_daily_budget_ends_the_report_streams_not_the_run(report_sandbox, tmp_path):
    # the report endpoints share one budget (docs/reports.md): another app's request leaves two,
    # campaign_values (read first) takes one and flow_series the other
    sandbox = report_sandbox(report_daily_cap=3)
    _spend_one_report(sandbox)
    streams = (*REPORTS, "lists", "receive")
    run, _, after = sync(sandbox, tmp_path, *streams, report_days=100)
    today = after // DAY * DAY
    first = today - 100 * DAY
    # flow_series read its first 60 days, then Klaviyo said the day's budget is spent
    assert report_requests(sandbox) == {"campaign_values": 2, "flow_series": 2}
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line and "budget is spent" in line]
    assert len(warnings) == 1 and all("resume" in line for line in warnings)
    assert any("stream flow_series" in line and day_text(first + 60 * DAY) in line for line in warnings)
    assert run.records("campaign_values")
    dump = sandbox.dump()
    orders = metric_id(dump, "Placed Order", "Shopify")
    rows = run.records("flow_series")
    check_flow_rows(dump, rows, orders, first, first + 60 * DAY)
    assert {r["date"] for r in rows} == {day_text(first + n * DAY) for n in range(60)}
    # the other streams are whole, and state never passes a day not loaded
    assert {r["id"]: r for r in run.records("lists")} == expected.list_rows(dump, False)
    assert len(run.records("receive")) == len(expected.event_rows(dump, "receive", 0, after))
    unloaded = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first + 60 * DAY))
    marks = [s["bookmarks"]["flow_series"]["since"] for s in run.states() if "flow_series" in s.get("bookmarks", {})]
    assert marks and all(mark <= unloaded for mark in marks) and marks[-1] == unloaded
    assert "receive" in run.last_state["bookmarks"]

    # the next day: the stream resumes at its bookmark (less the lookback) and reaches today
    sandbox_reports.new_day(sandbox.server.sandbox, cap=225)
    again, _, after = sync(sandbox, tmp_path, "flow_series", state=run.last_state, report_lookback_days=7)
    rows = again.records("flow_series")
    resumed = first + 60 * DAY - 7 * DAY
    assert {r["date"] for r in rows} == {day_text(day) for day in range(resumed, after // DAY * DAY + DAY, DAY)}
    check_flow_rows(sandbox.dump(), rows, orders, resumed, after // DAY * DAY + DAY)
    assert again.last_state["bookmarks"]["flow_series"]["since"] == time.strftime(
        "%Y-%m-%dT00:00:00Z", time.gmtime(after // DAY * DAY))


def test_a_budget_spent_before_the_first_series_keeps_where_the_stream_starts(report_sandbox, tmp_path):
    """A first run that cannot load a single day still writes the bookmark it would have started
    from: the next run resumes there instead of report_days back from its own day."""
    sandbox = report_sandbox(report_daily_cap=1)
    _spend_one_report(sandbox, "flow-series-report", interval="daily")     # the day's one is gone
    run, _, after = sync(sandbox, tmp_path, "flow_series", report_days=100)
    assert not run.records("flow_series") and "budget is spent" in run.stderr
    first = after // DAY * DAY - 100 * DAY
    assert run.last_state["bookmarks"]["flow_series"]["since"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(first))


def test_an_account_without_the_conversion_metric(report_sandbox, tmp_path):
    sandbox = report_sandbox()
    run, _, _ = sync(sandbox, tmp_path, *REPORTS, "lists", conversion_metric="Refund Issued")
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line and "conversion_metric" in line]
    assert len(warnings) == 1 and "Refund Issued" in warnings[0]
    assert not run.records("campaign_values") and not run.records("flow_series")
    assert report_requests(sandbox) == {"campaign_values": 0, "flow_series": 0}
    assert len(run.records("lists")) == len(sandbox.dump()["lists"]) + len(sandbox.dump()["segments"])
    assert "flow_series" not in (run.last_state or {}).get("bookmarks", {})


@pytest.mark.parametrize("stream", REPORTS)
def test_report_requests_are_paced_to_one_a_second_and_two_a_minute(stream):
    from tap_klaviyo.ratelimit import RateLimiter, family_limits
    from tap_klaviyo.streams import BY_NAME
    clock = [0.0]
    burst, steady = family_limits(BY_NAME[stream].rate_family, "2026-10-15")
    limiter = RateLimiter(burst, steady, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    sent = []
    for _ in range(5):
        limiter.acquire()
        sent.append(clock[0])
    assert sent[1] - sent[0] >= 1.0 and sent[2] - sent[0] >= 60.0 and sent[4] - sent[2] >= 60.0


# --- the sandbox's report endpoints ---------------------------------------------------------------
def post_report(sandbox, path, attributes, kind, revision="2026-10-15"):
    body = json.dumps({"data": {"type": kind, "attributes": attributes}}).encode()
    request = urllib.request.Request(sandbox.base_url + path, data=body, method="POST", headers={
        "Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": revision,
        "Content-Type": "application/vnd.api+json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_the_sandbox_report_endpoints_check_page_and_limit(report_sandbox):
    sandbox = report_sandbox(report_daily_cap=2, report_page_size=4)
    dump = sandbox.dump()
    orders = metric_id(dump, "Placed Order", "Shopify")
    series = "/api/flow-series-reports"
    base = {"statistics": ["opens", "conversions"], "conversion_metric_id": orders, "interval": "daily"}
    status, _, body = post_report(sandbox, series, dict(base, timeframe={
        "start": "2026-01-01T00:00:00+00:00", "end": "2026-03-15T00:00:00+00:00"}), "flow-series-report")
    assert status == 400 and body["errors"][0]["source"] == {"pointer": "/data/attributes/timeframe"}
    status, _, body = post_report(sandbox, series, dict(base, statistics=["opens", "sms_magic"],
                                                        timeframe={"key": "last_30_days"}), "flow-series-report")
    assert status == 400 and body["errors"][0]["source"] == {"pointer": "/data/attributes/statistics"}
    status, _, body = post_report(sandbox, series, dict(base, timeframe={"key": "last_30_days"},
                                                        group_by=["flow_id", "flow_message_id"]),
                                  "flow-series-report", revision="2025-07-15")
    assert status == 400 and body["errors"][0]["source"] == {"pointer": "/data/attributes/group_by"}

    today = int(time.time()) // DAY * DAY
    status, _, body = post_report(sandbox, series, dict(base, timeframe={"key": "last_30_days"}), "flow-series-report")
    assert status == 200
    attributes = body["data"]["attributes"]
    assert attributes["date_times"][0] == time.strftime("%Y-%m-%dT00:00:00+00:00", time.gmtime(today - 30 * DAY))
    assert len(attributes["date_times"]) == 30 and len(attributes["results"]) == 4 and "next" in body["links"]
    want = expected_flow_days(dump, orders, today - 30 * DAY, today)
    for result in attributes["results"]:
        assert set(result["groupings"]) == {"flow_id", "flow_message_id", "send_channel"}
        for index, stamp in enumerate(attributes["date_times"]):
            key = (result["groupings"]["flow_message_id"], result["groupings"]["send_channel"], stamp[:10])
            day = want.get(key, (None, figures([])))[1]
            assert (result["statistics"]["opens"][index], result["statistics"]["conversions"][index]) == \
                   (day["opens"], day["conversions"])
    # refused bodies do not count: this is the day's second and last report, the next waits for tomorrow
    assert post_report(sandbox, series, dict(base, timeframe={"key": "yesterday"}), "flow-series-report")[0] == 200
    status, headers, body = post_report(sandbox, series, dict(base, timeframe={"key": "yesterday"}),
                                        "flow-series-report")
    assert status == 429 and int(headers["Retry-After"]) > 3600 * 20
    status, _, _ = post_report(sandbox, "/api/campaign-values-reports", {
        "statistics": ["recipients"], "timeframe": {"key": "last_90_days"}, "conversion_metric_id": orders},
        "campaign-values-report")
    assert status == 429            # the report endpoints share one budget
