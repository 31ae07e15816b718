"""The null-value matrix: every value the spec lets Klaviyo send as null (or leave out) is put in the
sandbox in turn; the classic sync still exits 0 with a row per event, null where the data is null."""
import time

import pytest
from jsonschema import Draft4Validator

from tests import expected
from tests.conftest import catalog_selecting, run_tap
from tests.sandbox.data import NULL_KINDS, nullify

START = 1577836800      # the sandbox config's start_date, 2020-01-01T00:00:00Z
METRIC = "Received Email"
EVENT_KINDS = [kind for kind in NULL_KINDS if kind != "null_suppression_timestamp"]
# the included profile object is gone, or holds no attributes: the person is its id and nulls
STUB_PERSON_KINDS = ("profile_not_included", "null_profile_attributes")


def _schemas(run):
    return {m["stream"]: Draft4Validator(m["schema"]) for m in run.messages if m["type"] == "SCHEMA"}


def _assert_valid(run, stream):
    validator = _schemas(run)[stream]
    for row in run.records(stream):
        errors = list(validator.iter_errors(row))
        assert not errors, f"{stream} row {row.get('id') or row.get('email')}: {errors[0].message}"


def _want_event_rows(dump, kind, touched, until):
    metric = next(m for m in dump["metrics"] if m["attributes"]["name"] == METRIC
                  and m["attributes"]["integration"]["name"] == "Klaviyo")
    profiles = {p["id"]: p for p in dump["profiles"]}
    rows = {}
    for event in dump["events"]:
        if event["metric_id"] != metric["id"] or not START <= event["timestamp"] < until:
            continue
        if kind == "null_times" and event["id"] in touched:
            continue        # placed nowhere in time: left out with a warning
        profile_id = event["profile_id"]
        if profile_id is None:
            person = None
        elif kind in STUB_PERSON_KINDS and profile_id in touched:
            person = expected.person({"id": profile_id, "attributes": {}})
        else:
            person = expected.person(profiles[profile_id])
        rows[event["id"]] = {
            "id": event["id"], "uuid": event["uuid"], "timestamp": event["timestamp"],
            "datetime": time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(event["timestamp"])),
            "event_name": METRIC, "statistic_id": metric["id"], "object": "event",
            "event_properties": event["event_properties"], "person": person,
        }
    return rows


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_each_nullable_event_value_gives_a_row(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(events=600)
    touched = nullify(sandbox.account, kind, METRIC, count=4)
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("receive"))
    until = int(time.time())
    rows = {r["id"]: r for r in run.records("receive")}
    assert len(rows) == len(run.records("receive"))
    want = _want_event_rows(sandbox.dump(), kind, touched, until)
    assert rows == want
    _assert_valid(run, "receive")
    # the case is really in the rows the test compared
    if kind == "null_times":
        assert not set(touched) & set(rows)
        for event_id in touched:
            assert f"event {event_id} has neither timestamp nor datetime" in run.stderr
    elif kind == "deleted_metric":
        assert rows and all(r["statistic_id"] == touched[0] for r in rows.values())
    elif kind.startswith("null_profile_") or kind == "profile_not_included":
        assert {r["person"]["id"] for r in rows.values() if r["person"]} >= set(touched)
    else:
        assert set(touched) <= set(rows)
    if kind == "event_without_profile":
        assert all(rows[event_id]["person"] is None for event_id in touched)
    if kind != "null_times":
        assert "has neither timestamp nor datetime" not in run.stderr


def _latest(suppressions):
    # a suppression without a time counts as the oldest one
    return max(suppressions, key=lambda s: (s["timestamp"] is not None, s["timestamp"] or ""))


def test_suppression_without_timestamp(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    touched = nullify(sandbox.account, "null_suppression_timestamp", count=4)
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("global_exclusions"))
    rows = {r["email"]: r for r in run.records("global_exclusions")}
    want = {}
    for profile in sandbox.dump()["profiles"]:
        attributes = profile["attributes"]
        suppressions = attributes["subscriptions"]["email"]["marketing"]["suppression"]
        if attributes["email"] and suppressions:
            latest = _latest(suppressions)
            want[attributes["email"]] = {"email": attributes["email"], "object": "exclusion",
                                         "reason": expected.REASON_WORDS[latest["reason"]],
                                         "timestamp": expected.classic_time(latest["timestamp"])}
    assert rows == want
    _assert_valid(run, "global_exclusions")
    by_id = {p["id"]: p["attributes"]["email"] for p in sandbox.dump()["profiles"]}
    touched_rows = [rows[by_id[profile_id]] for profile_id in touched]
    assert any(r["timestamp"] is None for r in touched_rows)      # a lone suppression without a time
    assert any(r["timestamp"] is not None for r in touched_rows)  # an older, dated one then counts
