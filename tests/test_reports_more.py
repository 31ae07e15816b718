"""The report streams of issue 22 -- flow_values, segment_values, segment_series, form_values,
form_series -- and the SMS cost columns, over HTTP with the tap as a process: every field of every
row against figures this file computes from the sandbox on its own, keys, series read on from their
bookmark, a deselected statistic left out of the request body and the rows, an older revision, and
the daily budget the seven report streams share running out (exit 0, bookmarks that never pass a
day not loaded, the documented stopping order).

The tap paces each report endpoint to 2 requests a minute: each run here makes at most two per
endpoint, so that none waits a minute.
"""
import time

import pytest

from tests.conftest import catalog_selecting
from tests.sandbox import reports as sandbox_reports
from tests.test_reports import (assert_figures, check_flow_rows, counted_events, day_text, epoch, figures,
                                message_groups, metric_id, sync)
from tests.test_reports import report_sandbox  # noqa: F401  (a fixture: pytest finds it by its name here)

DAY = 86400
REPORTS = ("campaign_values", "flow_series", "flow_values", "segment_values", "segment_series", "form_values",
           "form_series")
NEW = ("flow_values", "segment_values", "segment_series", "form_values", "form_series")
FAMILY = {name: f"{name}_reports" for name in REPORTS}
SMS_COSTS = ("text_message_spend", "text_message_credit_usage_amount", "text_message_roi", "message_segment_count_sum")
SEGMENT_STATISTICS = ("members_added", "members_removed", "net_members_changed", "total_members")
FORM_STATISTICS = ("viewed_form", "viewed_form_uniques", "viewed_form_step", "viewed_form_step_uniques",
                   "submitted_form_step", "submitted_form_step_uniques", "submits", "closed_form",
                   "closed_form_uniques", "qualified_form", "qualified_form_uniques", "submit_rate")
FORM_UNIQUES = {"viewed_form": "viewed_form_uniques", "viewed_form_step": "viewed_form_step_uniques",
                "submitted_form_step": "submitted_form_step_uniques", "closed_form": "closed_form_uniques",
                "qualified_form": "qualified_form_uniques"}


class BodyLog:
    """The report bodies the sandbox (in this process) checked, as (revision, path, attributes)."""

    def __init__(self, sandbox):
        self.bodies = []
        server = sandbox.server.sandbox
        check = server.check_spec

        def logged(method, path, query, headers, body=None):
            if method == "POST" and path.endswith("-reports"):
                self.bodies.append((headers.get("revision"), path, body["data"]["attributes"]))
            return check(method, path, query, headers, body)
        server.check_spec = logged

    def of(self, stream):
        path = "/api/" + stream.replace("_", "-") + "-reports"
        return [attributes for _, path_sent, attributes in self.bodies if path_sent == path]


def requests(sandbox):
    by_family = sandbox.stats()["by_family"]
    return {name: by_family.get(family, 0) for name, family in FAMILY.items()}


def deselect(catalog, stream, *columns):
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == stream)
    for item in entry["metadata"]:
        if item["breadcrumb"] in (["properties", name] for name in columns):
            item["metadata"]["selected"] = False
    return catalog


# --- expected figures, from the sandbox --------------------------------------------------------------
def sms_costs(dump, conversion_metric, lower, upper, message_id):
    """The SMS cost statistics of one message over [lower, upper): one segment per delivered text."""
    groups = message_groups(dump)
    events = [e for e in counted_events(dump, conversion_metric) if lower <= e[0] < upper and e[1] == message_id]
    texts = sum(1 for e in events if e[2] == "delivered" and groups[message_id][2] == "sms")
    value = round(sum(e[4] for e in events if e[2] == "conversions"), 2)
    spend = round(texts * sandbox_reports.SEGMENT_PRICE, 2)
    return {"message_segment_count_sum": texts, "text_message_credit_usage_amount": float(texts),
            "text_message_spend": spend, "text_message_roi": (value - spend) / spend if spend else 0.0}


def assert_sms(row, want, where):
    assert row["message_segment_count_sum"] == want["message_segment_count_sum"], where
    assert isinstance(row["message_segment_count_sum"], int), where
    for name in ("text_message_credit_usage_amount", "text_message_spend"):
        assert row[name] == pytest.approx(want[name], abs=1e-9), (where, name)
    assert row["text_message_roi"] == pytest.approx(want["text_message_roi"], rel=1e-3, abs=1e-3), where


def segment_figures(sandbox, dump, segment_id, lower, upper):
    """Joins (the members' joined_group_at, the former members' joins), departures, and members at upper."""
    joined = [epoch(m["joined_group_at"]) for m in dump["segment_members"] if m["segment_id"] == segment_id]
    former = sandbox_reports.former_members(sandbox.account)[segment_id]
    added = sum(lower <= at < upper for at in joined) + sum(lower <= at < upper for at, _ in former)
    removed = sum(lower <= left < upper for _, left in former)
    return {"members_added": added, "members_removed": removed, "net_members_changed": added - removed,
            "total_members": sum(at < upper for at in joined) + sum(at < upper <= left for at, left in former)}


def form_figures(activity):
    out = {name: 0 for name in FORM_STATISTICS}
    people = {name: set() for name in FORM_UNIQUES}
    for _, _, _, statistic, profile_id in activity:
        out[statistic] += 1
        if statistic in people:
            people[statistic].add(profile_id)
    out.update({FORM_UNIQUES[name]: len(found) for name, found in people.items()})
    out["submit_rate"] = out["submits"] / out["viewed_form_uniques"] if out["viewed_form_uniques"] else 0.0
    return out


def assert_form_figures(row, want, where, deselected=()):
    for name in FORM_STATISTICS:
        if name in deselected:
            assert name not in row, (where, name)
        elif name == "submit_rate":
            assert row[name] == pytest.approx(want[name], abs=6e-5), (where, name)
        else:
            assert row[name] == want[name] and isinstance(row[name], int), (where, name)


def form_days(dump, lower, upper):
    """(version id, YYYY-MM-DD) -> (form id, figures) of every version and day with activity."""
    by_day = {}
    for entry in dump["form_activity"]:
        if lower <= entry[0] < upper:
            by_day.setdefault((entry[2], day_text(entry[0])), []).append(entry)
    return {key: (entries[0][1], form_figures(entries)) for key, entries in by_day.items()}


def check_form_series(dump, rows, lower, upper, deselected=()):
    want = form_days(dump, lower, upper)
    have = {(r["form_version_id"], r["date"]): r for r in rows}
    assert len(have) == len(rows), "a form_series key emitted twice"
    assert set(want) <= set(have), "a version's active day is missing"
    versions = {v["id"]: v["relationships"]["form"]["data"]["id"] for v in dump["form_versions"]}
    for key, row in have.items():
        assert lower <= epoch(key[1] + "T00:00:00") < upper, key
        assert row["form_id"] == versions[key[0]], key
        assert_form_figures(row, want[key][1] if key in want else form_figures([]), key, deselected)
    return want


def check_segment_series(sandbox, dump, rows, first, today, deselected=()):
    segments = [s["id"] for s in dump["segments"]]
    have = {(r["segment_id"], r["date"]): r for r in rows}
    assert len(have) == len(rows)
    days = [day_text(day) for day in range(first, today + DAY, DAY)]
    assert set(have) == {(s, d) for s in segments for d in days}
    now = int(time.time())
    for (segment_id, day), row in have.items():
        lower = epoch(day + "T00:00:00")
        want = segment_figures(sandbox, dump, segment_id, lower, min(lower + DAY, now))
        for name in SEGMENT_STATISTICS:
            if name in deselected:
                assert name not in row
            elif lower + DAY <= now - 60 or name != "total_members":     # today's total moves with the clock
                assert row[name] == want[name], (segment_id, day, name)


# --- the tests ---------------------------------------------------------------------------------
def test_every_new_report_holds_the_sandbox_figures_with_sms_costs(report_sandbox, tmp_path):
    sandbox = report_sandbox()
    log = BodyLog(sandbox)
    # 100 days and today: a values report, or two daily series, a stream
    run, before, after = sync(sandbox, tmp_path, *REPORTS, report_days=100)
    dump = sandbox.dump()
    orders = metric_id(dump, "Placed Order", "Shopify")
    counts = {name: 2 if name.endswith("_series") else 1 for name in REPORTS}
    assert requests(sandbox) == counts
    # the order the streams are read in (docs/reports.md): each report after the one before it in ORDER
    assert [path for _, path, _ in log.bodies] == ["/api/" + name.replace("_", "-") + "-reports"
                                                   for name in REPORTS for _ in range(counts[name])]
    today = after // DAY * DAY

    # flow_values: one row per flow message and channel with activity, every statistic and SMS cost
    values = run.records("flow_values")
    (start, end), = {(epoch(r["timeframe_start"]), epoch(r["timeframe_end"])) for r in values}
    assert before <= end <= after and end - start == 100 * DAY
    groups = message_groups(dump)
    by_message = {}
    for event in counted_events(dump, orders):
        if start <= event[0] < end and groups[event[1]][0] == "flow":
            by_message.setdefault(event[1], []).append(event)
    assert {(r["flow_message_id"], r["send_channel"]) for r in values} == \
        {(m, groups[m][2]) for m in by_message} and len(values) == len(by_message) >= 5
    for row in values:
        message_id = row["flow_message_id"]
        assert row["flow_id"] == groups[message_id][1]
        assert_figures(row, figures(by_message[message_id]), message_id)
        assert_sms(row, sms_costs(dump, orders, start, end, message_id), message_id)
    assert any(r["message_segment_count_sum"] > 0 and r["send_channel"] == "sms" for r in values)
    assert all(r["text_message_spend"] == 0 for r in values if r["send_channel"] != "sms")
    (body,) = log.of("flow_values")
    assert set(SMS_COSTS) <= set(body["statistics"]) and body["group_by"] == ["flow_id", "flow_message_id",
                                                                                "send_channel"]

    # the two older reports carry the SMS costs too (the sandbox's SMS campaigns went out over the year)
    year, _, _ = sync(sandbox, tmp_path, "campaign_values", report_days=365)
    rows = year.records("campaign_values")
    for row in rows:
        assert_sms(row, sms_costs(dump, orders, epoch(row["timeframe_start"]), epoch(row["timeframe_end"]),
                                  row["campaign_message_id"]), row["campaign_message_id"])
    assert any(r["message_segment_count_sum"] for r in rows if r["send_channel"] == "sms")
    series = run.records("flow_series")
    check_flow_rows(dump, series, orders, today - 100 * DAY, today + DAY)
    for row in series:
        lower = epoch(row["date"] + "T00:00:00")
        assert_sms(row, sms_costs(dump, orders, lower, lower + DAY, row["flow_message_id"]), row["flow_message_id"])

    # segment_values: every segment, members added and removed in the timeframe, members at its end
    rows = run.records("segment_values")
    assert sorted(r["segment_id"] for r in rows) == sorted(s["id"] for s in dump["segments"])
    for row in rows:
        want = segment_figures(sandbox, dump, row["segment_id"], epoch(row["timeframe_start"]),
                               epoch(row["timeframe_end"]))
        assert {name: row[name] for name in SEGMENT_STATISTICS} == want
    assert sum(r["members_removed"] for r in rows) > 0 and sum(r["members_added"] for r in rows) > 0
    assert "conversion_metric_id" not in log.of("segment_values")[0] and "group_by" not in log.of("segment_values")[0]
    check_segment_series(sandbox, dump, run.records("segment_series"), today - 100 * DAY, today)

    # form_values: one row per form version with activity in the timeframe, form_id beside it
    rows = run.records("form_values")
    (start, end), = {(epoch(r["timeframe_start"]), epoch(r["timeframe_end"])) for r in rows}
    activity = {}
    for entry in dump["form_activity"]:
        if start <= entry[0] < end:
            activity.setdefault(entry[2], []).append(entry)
    assert sorted(r["form_version_id"] for r in rows) == sorted(activity) and len(rows) >= 3
    for row in rows:
        assert row["form_id"] == activity[row["form_version_id"]][0][1]
        assert_form_figures(row, form_figures(activity[row["form_version_id"]]), row["form_version_id"])
    assert log.of("form_values")[0]["group_by"] == ["form_id", "form_version_id"]
    want = check_form_series(dump, run.records("form_series"), today - 100 * DAY, today + DAY)
    assert len(want) > 20

    # keys: what the catalog says, and no key written twice
    catalog = {e["tap_stream_id"]: e for e in catalog_selecting()["streams"]}
    keys = {"flow_values": ["flow_message_id", "send_channel"], "segment_values": ["segment_id"],
            "segment_series": ["segment_id", "date"], "form_values": ["form_version_id"],
            "form_series": ["form_version_id", "date"]}
    for name, key in keys.items():
        assert catalog[name]["key_properties"] == key
        written = [tuple(r[k] for k in key) for r in run.records(name)]
        assert len(written) == len(set(written)), name
    bookmarks = run.last_state["bookmarks"]
    midnight = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(today))
    assert {name: bookmarks[name] for name in ("flow_series", "segment_series", "form_series")} == \
        dict.fromkeys(("flow_series", "segment_series", "form_series"), {"since": midnight})
    assert not {"flow_values", "segment_values", "form_values"} & set(bookmarks)


def test_series_read_on_from_their_bookmark_less_the_lookback(report_sandbox, tmp_path):
    sandbox = report_sandbox()
    today = int(time.time()) // DAY * DAY
    since = today - 10 * DAY
    mark = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(since))
    state = {"bookmarks": {"segment_series": {"since": mark}, "form_series": {"since": mark}}}
    run, _, after = sync(sandbox, tmp_path, "segment_series", "form_series", state=state, report_lookback_days=3)
    assert requests(sandbox) == dict(dict.fromkeys(REPORTS, 0), segment_series=1, form_series=1)
    dump = sandbox.dump()
    days = {day_text(since + n * DAY) for n in range(-3, 11)}
    assert {r["date"] for r in run.records("segment_series")} == days
    check_segment_series(sandbox, dump, run.records("segment_series"), since - 3 * DAY, today)
    assert {r["date"] for r in run.records("form_series")} <= days
    check_form_series(dump, run.records("form_series"), since - 3 * DAY, today + DAY)
    midnight = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(after // DAY * DAY))
    assert run.last_state["bookmarks"]["segment_series"] == run.last_state["bookmarks"]["form_series"] == \
        {"since": midnight}

    # the next run, from that bookmark: the lookback alone, one series each
    again, _, _ = sync(sandbox, tmp_path, "segment_series", "form_series", state=run.last_state,
                       report_lookback_days=2)
    assert requests(sandbox) == dict(dict.fromkeys(REPORTS, 0), segment_series=2, form_series=2)
    assert {r["date"] for r in again.records("segment_series")} == {day_text(today + n * DAY) for n in range(-2, 1)}
    check_segment_series(sandbox, dump, again.records("segment_series"), today - 2 * DAY, today)


def test_a_deselected_statistic_is_neither_asked_for_nor_written(report_sandbox, tmp_path):
    sandbox = report_sandbox()
    log = BodyLog(sandbox)
    catalog = catalog_selecting("flow_values", "segment_series", "form_values")
    deselect(catalog, "flow_values", "text_message_spend", "opens")
    deselect(catalog, "segment_series", "members_removed")
    deselect(catalog, "form_values", "submits", "submit_rate")
    run, _, after = sync(sandbox, tmp_path, catalog=catalog, report_days=20)
    schemas = {m["stream"]: m["schema"]["properties"] for m in run.messages if m["type"] == "SCHEMA"}
    for stream, gone in (("flow_values", ("text_message_spend", "opens")), ("segment_series", ("members_removed",)),
                         ("form_values", ("submits", "submit_rate"))):
        (body,) = log.of(stream)
        assert not set(gone) & set(body["statistics"]), stream
        assert not set(gone) & set(schemas[stream]), stream
        assert run.records(stream) and all(not set(gone) & set(row) for row in run.records(stream)), stream
    assert "text_message_roi" in log.of("flow_values")[0]["statistics"]
    assert log.of("segment_series")[0]["statistics"] == ["members_added", "net_members_changed", "total_members"]
    dump = sandbox.dump()
    check_segment_series(sandbox, dump, run.records("segment_series"), after // DAY * DAY - 20 * DAY,
                         after // DAY * DAY, deselected=("members_removed",))
    rows = run.records("form_values")
    start, end = epoch(rows[0]["timeframe_start"]), epoch(rows[0]["timeframe_end"])
    for row in rows:
        activity = [e for e in dump["form_activity"] if start <= e[0] < end and e[2] == row["form_version_id"]]
        assert_form_figures(row, form_figures(activity), row["form_version_id"], deselected=("submits", "submit_rate"))


def test_before_2025_10_15_the_sms_costs_are_null_and_not_asked_for(report_sandbox, tmp_path):
    sandbox = report_sandbox()
    log = BodyLog(sandbox)
    run, _, after = sync(sandbox, tmp_path, "campaign_values", "flow_values", "flow_series", "form_series",
                         report_days=20, revision="2025-07-15")
    dump = sandbox.dump()
    orders = metric_id(dump, "Placed Order", "Shopify")
    for stream in ("campaign_values", "flow_values", "flow_series"):
        (body,) = log.of(stream)
        assert not set(SMS_COSTS) & set(body["statistics"]) and "group_by" not in body, stream
        assert len(body["statistics"]) == 27
        rows = run.records(stream)
        assert rows and all(row[name] is None for row in rows for name in SMS_COSTS), stream
    today = after // DAY * DAY
    check_flow_rows(dump, run.records("flow_series"), orders, today - 20 * DAY, today + DAY)
    # the form reports take group_by in every supported revision
    assert log.of("form_series")[0]["group_by"] == ["form_id", "form_version_id"]
    check_form_series(dump, run.records("form_series"), today - 20 * DAY, today + DAY)
    # and from 2025-10-15 on they are asked for
    log.bodies.clear()
    run, _, _ = sync(sandbox, tmp_path, "flow_values", report_days=20, revision="2025-10-15")
    assert set(SMS_COSTS) <= set(log.of("flow_values")[0]["statistics"])
    assert all(row["message_segment_count_sum"] is not None for row in run.records("flow_values"))


def test_a_spent_budget_stops_the_reports_in_their_order_and_the_run_goes_on(report_sandbox, tmp_path):
    # four report requests left today: campaign_values (1), flow_series (2 series for 100 days) and
    # flow_values (1) get them; segment_values is refused, and the three after it stop unsent
    sandbox = report_sandbox(report_daily_cap=4)
    run, _, after = sync(sandbox, tmp_path, *REPORTS, "forms", report_days=100)
    assert requests(sandbox) == dict(dict.fromkeys(REPORTS, 0), campaign_values=1, flow_series=2, flow_values=1,
                                     segment_values=1)
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line and "budget is spent" in line]
    stopped = [next(name for name in REPORTS if f"stream {name}:" in line) for line in warnings]
    assert stopped == ["segment_values", "segment_series", "form_values", "form_series"]
    assert all("resume" in line for line in warnings)
    for name in ("campaign_values", "flow_series", "flow_values"):
        assert run.records(name), name
    for name in stopped:
        assert not run.records(name), name
    assert len(run.records("forms")) == len(sandbox.dump()["forms"])      # the other streams finish
    today = after // DAY * DAY
    first = today - 100 * DAY
    first_mark = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first))
    bookmarks = run.last_state["bookmarks"]
    assert bookmarks["flow_series"]["since"] == time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(today))
    # a series that loaded nothing keeps the day it starts from, never one after it
    assert bookmarks["segment_series"] == bookmarks["form_series"] == {"since": first_mark}
    for state in run.states():
        for name in ("segment_series", "form_series"):
            assert state.get("bookmarks", {}).get(name, {"since": first_mark})["since"] <= first_mark

    # the next day the stopped streams resume where they stopped (less the lookback)
    sandbox_reports.new_day(sandbox.server.sandbox, cap=225)
    again, _, after = sync(sandbox, tmp_path, *stopped, state=run.last_state, report_days=100,
                           report_lookback_days=3)
    assert {r["date"] for r in again.records("segment_series")} == \
        {day_text(day) for day in range(first - 3 * DAY, today + DAY, DAY)}
    assert again.records("segment_values") and again.records("form_values")
    check_form_series(sandbox.dump(), again.records("form_series"), first - 3 * DAY, today + DAY)
    assert again.last_state["bookmarks"]["form_series"]["since"] == time.strftime("%Y-%m-%dT00:00:00Z",
                                                                                   time.gmtime(today))


def test_the_sandbox_counts_one_daily_budget_for_every_report_endpoint(report_sandbox):
    from tests.test_reports import post_report
    sandbox = report_sandbox(report_daily_cap=2)
    orders = metric_id(sandbox.dump(), "Placed Order", "Shopify")
    status, _, body = post_report(sandbox, "/api/segment-series-reports", {
        "statistics": ["total_members"], "timeframe": {"key": "last_30_days"}, "interval": "daily"},
        "segment-series-report")
    assert status == 200 and len(body["data"]["attributes"]["date_times"]) == 30 and "next" not in body["links"]
    # form_version_id without form_id beside it is refused (the spec's prerequisite)
    status, _, body = post_report(sandbox, "/api/form-values-reports", {
        "statistics": ["submits"], "timeframe": {"key": "last_30_days"}, "group_by": ["form_version_id"]},
        "form-values-report")
    assert status == 400 and body["errors"][0]["source"] == {"pointer": "/data/attributes/group_by"}
    status, _, _ = post_report(sandbox, "/api/flow-values-reports", {
        "statistics": ["opens"], "timeframe": {"key": "last_30_days"}, "conversion_metric_id": orders},
        "flow-values-report")
    assert status == 200
    status, headers, _ = post_report(sandbox, "/api/form-values-reports", {
        "statistics": ["submits"], "timeframe": {"key": "last_30_days"}}, "form-values-report")
    assert status == 429 and int(headers["Retry-After"]) > 3600 * 20


# --- the reports' order: chained, not waiting on a worker --------------------------------------------
def test_only_the_first_report_is_queued_and_each_queues_the_next_once_done(report_sandbox, caplog):
    """The report tasks are chained (tasks/reports.py Chain): planning queues the first report in
    ORDER only; each task's last page -- read to its end, or stopped by the spent budget -- queues
    the next. No report task is queued to wait for another, so no worker blocks inside one."""
    from tap_klaviyo.client import KlaviyoClient
    from tap_klaviyo.config import load_config
    from tap_klaviyo.engine import SyncContext
    from tap_klaviyo.streams import BY_NAME
    from tap_klaviyo.tasks.reports import plan_report
    sandbox = report_sandbox(report_daily_cap=2)       # two requests: the segment reports; the form reports stop
    config = load_config(sandbox.config(report_days=20))
    client = KlaviyoClient(config)
    names = ("segment_values", "segment_series", "form_values", "form_series")
    context = SyncContext(config, client, {}, int(time.time()), [BY_NAME[name] for name in names])
    planned = [plan_report(context.rows[name], context) for name in names]
    assert [len(tasks) for tasks in planned] == [1, 0, 0, 0]
    queued, order = planned[0], []
    while queued:
        (task, rank), = queued
        order.append((task.stream.name, rank))
        pages = list(task.run(client, config))
        assert pages[-1].done and not any(page.done or page.spawn for page in pages[:-1])
        queued = pages[-1].spawn
    assert [name for name, _ in order] == list(names)
    # ranked in ORDER, and ahead of every other task (collections rank 0, event spans an epoch): the
    # next report must not wait behind a queue of rate-limited collection requests
    assert [rank for _, rank in order] == sorted(rank for _, rank in order) and all(rank < 0 for _, rank in order)
    assert requests(sandbox) == dict(dict.fromkeys(REPORTS, 0), segment_values=1, segment_series=1, form_values=1)
    stopped = [record.getMessage() for record in caplog.records if "budget is spent" in record.getMessage()]
    assert [line.split(":")[0] for line in stopped] == ["stream form_values", "stream form_series"]


def test_at_concurrency_1_every_report_is_read_in_order_and_the_other_streams_too(report_sandbox, tmp_path):
    # one worker: the reports, chained, leave it free between them for the other streams' tasks
    sandbox = report_sandbox()
    log = BodyLog(sandbox)
    run, before, after = sync(sandbox, tmp_path, *REPORTS, "forms", "lists", report_days=20, concurrency=1)
    assert requests(sandbox) == dict.fromkeys(REPORTS, 1)
    assert [path for _, path, _ in log.bodies] == ["/api/" + name.replace("_", "-") + "-reports" for name in REPORTS]
    for name in ("campaign_values", "flow_series", "segment_values", "segment_series", "form_series"):
        assert run.records(name), name
    assert len(run.records("forms")) == len(sandbox.dump()["forms"]) and run.records("lists")
    # each series read through today: its bookmark is the start of the run's day
    marks = {run.last_state["bookmarks"][name]["since"] for name in ("flow_series", "segment_series", "form_series")}
    assert len(marks) == 1 and marks <= {time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(at // DAY * DAY))
                                         for at in (before, after)}
