"""The revision matrix: every revision the tap supports syncs the same rows from the sandbox, in
pages as large as that revision's spec allows; and the tap's per-revision facts match the spec."""
import concurrent.futures
import json
import math
import time
from pathlib import Path

import pytest

from tests import expected
from tap_klaviyo import revisions
from tests.conftest import Sandbox, catalog_selecting, error_lines, run_tap
from tests.sandbox.data import generate
from tests.sandbox.server import Options

# What the README promises: from the oldest revision Klaviyo still serves to the newest.
SUPPORTED = ("2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",
             "2026-01-15", "2026-04-15", "2026-07-15", "2026-10-15")
# /api/events pages: 200 fixed before 2026-01-15 (no page[size]), up to 1000 from it
EVENTS_PAGE = {revision: 1000 if revision >= "2026-01-15" else 200 for revision in SUPPORTED}
EVENT_STREAMS = ("receive", "open")
SPEC_RULES = json.loads((Path(__file__).parent.parent / "tap_klaviyo" / "spec_rules.json").read_text())
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


# --- every request every stream can send, at every revision, is one the published spec allows ------
class SpecLog:
    """The sandbox (in this process) checks each request against the spec's rules of its revision and
    answers 400 to one they refuse, which fails the run; this records what was checked."""

    def __init__(self, sandbox):
        from tests.sandbox import spec
        self.requests = []
        server = sandbox.server.sandbox
        check = server.check_spec

        def logged(method, path, query, headers, body=None):
            self.requests.append((headers.get("revision"), spec.operation(method, path), dict(query)))
            return check(method, path, query, headers, body)
        server.check_spec = logged


def _least_columns(catalog):
    """Every column a catalog may deselect, deselected: the smallest sparse fieldsets the tap sends."""
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"][:1] == ["properties"] and item["metadata"].get("inclusion") == "available":
                item["metadata"]["selected"] = False
    return catalog


def _keep_two_flows(account):
    """Two flows of the sandbox's nine (an email, SMS and push flow, a split, a delay, a webhook-less
    chain): every request shape, at a third of the S-tier requests the tap paces at 3 a second."""
    entities = account.entities
    entities.flows = entities.flows[:2]
    kept = {flow["id"] for flow in entities.flows}
    entities.flow_actions = [a for a in entities.flow_actions if a["relationships"]["flow"]["data"]["id"] in kept]
    kept = {action["id"] for action in entities.flow_actions}
    entities.flow_messages = [m for m in entities.flow_messages
                              if m["relationships"]["flow-action"]["data"]["id"] in kept]
    entities.reindex()


@pytest.fixture(scope="module")
def every_request(tmp_path_factory):
    """{revision: [(operation, query)]} of syncs of every stream, once with every column and once with
    the fewest (predictive analytics and list counts asked for too)."""
    from tap_klaviyo.streams import STREAMS, reads_in_full
    account = generate(events=300, seed=3, lists=2, segments=1)
    _keep_two_flows(account)
    sandbox = Sandbox(account, Options(rate_scale=60.0))
    log = SpecLog(sandbox)
    names = [stream.name for stream in STREAMS]

    def sync(revision, least, directory):
        catalog = catalog_selecting(*names)
        config = sandbox.config(revision=revision, report_days=20, list_person_count=least,
                                profiles_predictive_analytics=least)
        # resumed, so that an event stream's per-day counts are asked for too, and the resource
        # streams read what changed since their last full read (the filters that find changes)
        day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
        state = {"bookmarks": {"receive": {"since": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                   time.gmtime(time.time() - 3 * 86400))}}}
        state["bookmarks"].update({stream.name: {"since": day_ago, "full_read_at": day_ago, "revision": revision}
                                   for stream in STREAMS if reads_in_full(stream)})
        # a request the revision's spec refuses is a 400: the run fails here
        run_tap(directory, config, catalog=_least_columns(catalog) if least else catalog,
                state=state if least else None)

    # side by side: each run mostly waits on the rate limits the tap keeps (3 a second for flows)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(sync, revision, least, tmp_path_factory.mktemp("every-request"))
                     for revision in SUPPORTED for least in (False, True)]:
            done.result()
    sandbox.close()
    sent = {}
    for revision, operation, query in log.requests:
        sent.setdefault(revision, []).append((operation, query))
    return sent


def test_every_request_of_every_stream_at_every_revision_is_one_the_spec_allows(every_request):
    from tap_klaviyo import apispec
    from tap_klaviyo.streams import MISSING_OPERATIONS, OTHER_FAMILIES, STREAMS, at_revision, available
    assert revisions.SUPPORTED == SUPPORTED == tuple(SPEC_RULES["revisions"]) == apispec.revisions()
    assert not MISSING_OPERATIONS, "rerun scripts/extract_spec_rules.py: spec_rules.json lacks these"
    for revision in SUPPORTED:
        sent = every_request[revision]
        assert all(operation for operation, _ in sent), "a request to a path the rules do not cover"
        # every operation the streams read at this revision was sent (so checked), and no other
        rows = [at_revision(stream, revision) for stream in STREAMS if available(stream, revision)]
        wanted = {op for row in rows for op in (row.operation, *row.reads) if op}
        wanted |= {op for op, _ in OTHER_FAMILIES.values()}
        assert {operation for operation, _ in sent} == wanted, revision
        # pages as large as the revision allows, and the smallest sparse fieldsets sent too
        for operation, query in sent:
            if "page[size]" in query and query.get("fields[event]") != "timestamp":   # discovery's probe: 1
                assert int(query["page[size]"]) == apispec.page_size(operation, revision), (revision, operation)
        # the filters that find changes were sent, so checked (the resumed run reads changes)
        for stream in STREAMS:
            row = at_revision(stream, revision)
            if row.changes and available(row, revision) and row.family != "exclusion":
                field = row.changes.split("(", 1)[1].split(",", 1)[0]
                assert any(field in (query.get("filter") or "") for operation, query in sent
                           if operation == row.operation), (revision, stream.name)
        cheap = {(operation, name, value) for operation, query in sent for name, value in query.items()
                 if name.startswith("fields[") and "," not in value}
        assert ("GET /api/flows", "fields[flow]", apispec.cheapest("GET /api/flows", "flow", revision)) in cheap


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
