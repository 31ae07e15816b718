"""The revision matrix: every revision the tap supports syncs the same rows from the sandbox, in
pages as large as that revision's spec allows; and the tap's per-revision facts match the spec."""
import json
import math
import time
from pathlib import Path

import pytest

from tests import expected
from tests.conftest import Sandbox, catalog_selecting, error_lines, run_tap
from tests.sandbox.data import generate
from tests.sandbox.server import Options

# What the README promises: from the oldest revision Klaviyo still serves to the newest.
SUPPORTED = ("2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",
             "2026-01-15", "2026-04-15", "2026-07-15", "2026-10-15")
# /api/events pages: 200 fixed before 2026-01-15 (no page[size]), up to 1000 from it
EVENTS_PAGE = {revision: 1000 if revision >= "2026-01-15" else 200 for revision in SUPPORTED}
EVENT_STREAMS = ("receive", "open")
SPEC_RULES = json.loads((Path(__file__).parent / "sandbox" / "spec_rules.json").read_text())
# the tap's endpoint names -> the spec operation
OPERATIONS = {
    "events": "GET /api/events", "profiles": "GET /api/profiles", "lists": "GET /api/lists",
    "segments": "GET /api/segments", "campaigns": "GET /api/campaigns",
    "campaign_messages": "GET /api/campaigns/{id}/campaign-messages", "flows": "GET /api/flows",
    "flow_actions": "GET /api/flows/{id}/flow-actions", "flow_messages": "GET /api/flow-actions/{id}/flow-messages",
    "templates": "GET /api/templates", "tags": "GET /api/tags", "list_profiles": "GET /api/lists/{id}/profiles",
    "segment_profiles": "GET /api/segments/{id}/profiles", "metrics": "GET /api/metrics",
    "campaign_message_list": "GET /api/campaign-messages",
}


def _spec_rule(operation, revision):
    for rule in SPEC_RULES["operations"][operation]:
        first, last = rule["revisions"]
        if first <= revision <= last:
            return rule
    return None


@pytest.fixture(scope="module")
def shared_sandbox():
    # Received Email holds ~900 events here (one page of 1000, five of 200), Opened Email ~420
    sandbox = Sandbox(generate(events=2500, seed=7, lists=3, segments=2), Options(rate_scale=20.0))
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def matrix(shared_sandbox, tmp_path_factory):
    """One classic sync per supported revision: (rows by stream and id, events requests made)."""
    results = {}
    catalog = catalog_selecting(*EVENT_STREAMS, "lists")
    for revision in SUPPORTED:
        shared_sandbox.post("/__sandbox/stats/reset", {})
        run = run_tap(tmp_path_factory.mktemp(revision), shared_sandbox.config(revision=revision), catalog=catalog)
        rows = {}
        for stream, records in run.by_stream().items():
            key = "email" if stream == "global_exclusions" else "id"
            rows[stream] = {r[key]: r for r in records}
            assert len(rows[stream]) == len(records), f"{revision} {stream}: a row emitted twice"
        results[revision] = (rows, shared_sandbox.stats()["by_family"].get("events", 0), int(time.time()))
    return results


def test_every_revision_gives_the_rows_the_sandbox_holds(shared_sandbox, matrix):
    dump = shared_sandbox.dump()
    start = 1577836800     # the config's start_date, 2020-01-01T00:00:00Z
    for revision, (rows, _, finished) in matrix.items():
        assert set(rows) == set(EVENT_STREAMS) | {"lists"}, revision
        for stream in EVENT_STREAMS:
            # the sandbox's events lie an hour or more before now, or days after it (not yet due)
            assert rows[stream] == expected.event_rows(dump, stream, start, finished), f"{revision} {stream}"
        assert rows["lists"] == expected.list_rows(dump, with_counts=False), revision
    first, *others = matrix.values()
    for revision, (rows, _, _) in zip(SUPPORTED[1:], others):
        assert rows == first[0], f"{revision} differs from {SUPPORTED[0]}"


def test_event_requests_follow_each_revisions_page_size(shared_sandbox, matrix):
    dump = shared_sandbox.dump()
    for revision, (rows, requests, _) in matrix.items():
        page = EVENTS_PAGE[revision]
        pages = [math.ceil(len(rows[stream]) / page) for stream in EVENT_STREAMS]
        # never more than a page's worth a request; at most one more request per metric than the
        # fewest pages (a probe or a split's partly filled page), so a smaller page than allowed fails
        assert sum(pages) <= requests <= sum(pages) + len(EVENT_STREAMS), (revision, requests, pages)
    assert len(dump["lists"]) + len(dump["segments"]) <= 10     # one page of lists at any revision


def test_page_sizes_and_tiers_match_the_published_spec():
    from tap_klaviyo import revisions
    assert revisions.SUPPORTED == SUPPORTED == tuple(SPEC_RULES["revisions"])
    for endpoint, operation in OPERATIONS.items():
        for revision in SUPPORTED:
            rule = _spec_rule(operation, revision)
            if rule is None or rule.get("absent"):     # the revision has no such endpoint
                continue
            size = rule["params"].get("page[size]")
            assert revisions.page_size(endpoint, revision) == (size["max"] if size else None), (endpoint, revision)
            limit = rule["rate_limit"]
            assert revisions.tier_limits(limit["tier"], revision) == (limit["burst"], limit["steady"]), \
                (endpoint, revision)


@pytest.mark.parametrize("revision", ["2024-10-15", "2026-05-01", "2027-01-15", "2024-10-15.pre", "latest"])
def test_an_unsupported_revision_is_one_config_line(shared_sandbox, tmp_path, revision):
    run = run_tap(tmp_path, shared_sandbox.config(revision=revision), catalog=catalog_selecting("receive"),
                  check=False)
    assert run.returncode == 1 and run.stdout == ""
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert "revision" in lines[0] and repr(revision) in lines[0]
    assert all(supported in lines[0] for supported in SUPPORTED)


def test_the_default_revision_is_the_newest_with_a_published_ga_spec():
    from tap_klaviyo import config, revisions
    branches = SPEC_RULES["provenance"]["branches"]
    # a revision whose rules all come from its own GA branch of the spec
    published = [r for r in SUPPORTED if all(b["branch"] == r for b in _branches_of(branches, r))]
    assert revisions.DEFAULT == config.DEFAULT_REVISION == published[-1] == "2026-07-15"
    assert revisions.NEWEST == "2026-10-15" != revisions.DEFAULT


def _branches_of(branches, revision):
    entry = branches[revision]
    return entry if isinstance(entry, list) else [entry]


@pytest.mark.parametrize("revision, ga", [("2026-07-15.pre", "2026-07-15"), ("2025-04-15.pre", "2026-07-15")])
def test_a_beta_revision_is_refused_naming_the_ga_one(shared_sandbox, tmp_path, revision, ga):
    # beta specs replace endpoints the tap reads (omnichannel campaigns, 2025-10-15 flow shapes):
    # no base-revision request may go out under a beta header
    shared_sandbox.post("/__sandbox/stats/reset", {})
    for args in (("--discover",), ()):
        run = run_tap(tmp_path, shared_sandbox.config(revision=revision), *args,
                      catalog=None if args else catalog_selecting("receive", "campaigns"), check=False)
        assert run.returncode == 1 and run.stdout == ""
        lines = error_lines(run.stderr)
        assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
        assert repr(revision) in lines[0] and "beta" in lines[0] and ga in lines[0]
    assert shared_sandbox.stats()["requests"] == 0
