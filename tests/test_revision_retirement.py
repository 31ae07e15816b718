"""A revision retires two years after its date (../shared/reference/klaviyo-api.md, "Revisions"):
the tap warns ahead of it, and the sandbox's calendar says which revisions it serves on which day.

The sandbox plays Klaviyo on its anchor's day, but never past the last day the oldest revision it
holds rules for is served: otherwise the suite, which tests every revision the tap supports, would
start failing on a date with no change to the code (on 2027-01-15, for 2025-01-15).
"""
import calendar
import time

import pytest

from tap_klaviyo import revisions
from tests.conftest import Sandbox, catalog_selecting, log_lines, run_tap
from tests.sandbox.data import generate
from tests.sandbox.server import Options


def _epoch(day):
    return calendar.timegm(tuple(map(int, day.split("-"))) + (12, 0, 0))


def _status(sandbox, revision):
    return sandbox.api("/api/metrics", revision=revision)[0]


@pytest.fixture
def sandbox_on():
    made = []

    def make(day, today=None):
        sandbox = Sandbox(generate(events=20, seed=5, anchor=_epoch(day), lists=1, segments=1),
                          Options(rate_scale=20.0, today=today))
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.close()


def test_on_its_anchor_day_a_revision_older_than_two_years_is_gone(sandbox_on):
    sandbox = sandbox_on("2026-12-05")
    assert _status(sandbox, "2024-10-15") == 410
    assert _status(sandbox, "2025-01-15") == 200
    assert _status(sandbox, revisions.DEFAULT) == 200


@pytest.mark.parametrize("day", ["2027-01-15", "2027-03-01", "2029-06-30"])
def test_after_the_oldest_supported_revision_retires_the_calendar_stops_where_it_is_still_served(sandbox_on, day):
    oldest = revisions.SUPPORTED[0]
    sandbox = sandbox_on(day)
    for revision in revisions.SUPPORTED:
        assert _status(sandbox, revision) == 200, revision
    assert _status(sandbox, "2024-10-15") == 410    # the one before it is still gone
    assert sandbox.server.sandbox.retired_before == oldest


def test_a_calendar_a_test_names_is_followed_as_it_is(sandbox_on):
    sandbox = sandbox_on("2026-12-05", today="2027-03-01")
    assert _status(sandbox, "2025-01-15") == 410
    assert _status(sandbox, "2025-04-15") == 200


@pytest.mark.parametrize("revision, today, expected", [
    ("2025-01-15", "2026-10-16", None),                 # 91 days before
    ("2025-01-15", "2026-10-17", "retires on 2027-01-15, in 90 days"),
    ("2025-01-15", "2027-01-15", "retires on 2027-01-15, today"),
    ("2025-01-15", "2027-01-16", "retired on 2027-01-15"),
    ("2026-07-15", "2026-12-05", None),
    ("2026-07-15", "2028-05-01", "retires on 2028-07-15, in 75 days"),
])
def test_the_warning_comes_90_days_before_a_revision_retires(revision, today, expected):
    line = revisions.retirement_warning(revision, today)
    if expected is None:
        assert line is None
        return
    assert expected in line and ("config 'revision'" in line or "upgrade tap-klaviyo" in line), line
    # an older revision than the default is told to move to it; the default, to a newer tap
    assert ("such as 2026-07-15 (the default)" in line) == (revision < revisions.DEFAULT), line


@pytest.mark.parametrize("revision", [revisions.SUPPORTED[0], revisions.DEFAULT])
def test_a_run_says_so_once_on_stderr(make_sandbox, tmp_path, revision):
    """Whether the line is due depends on today's date; what it says is pinned above."""
    sandbox = make_sandbox(events=50)
    before = revisions.retirement_warning(revision, time.strftime("%Y-%m-%d", time.gmtime()))
    run = run_tap(tmp_path, sandbox.config(revision=revision), catalog=catalog_selecting("lists"))
    after = revisions.retirement_warning(revision, time.strftime("%Y-%m-%d", time.gmtime()))
    said = [line for line in log_lines(run.stderr) if "Klaviyo serves a revision for two years" in line]
    # the run may cross a UTC midnight: the line of either day
    assert said in ([f"WARNING {due}"] if due else [] for due in (before, after)), said
    assert run.records("lists")
