"""The key's access: discovery checks every scope the catalog needs with one cheap request each and
warns once per missing scope, naming the streams it disables; a sync of such a stream fails with one
line. (Probes that fail otherwise, and a key with no scope: tests/test_discovery_resilience.py.)"""
import json

import pytest

from tests import expected
from tests.conftest import catalog_selecting, error_lines, log_lines, run_tap
from tests.sandbox.server import NO_EVENTS_KEY, NO_PROFILES_KEY

# the classic tap's newer metric tables (issue 22), typed in here and checked against the tap's
# streams below, so that a table added there and not here fails a test instead of being left out
NEWER_CLASSIC_TABLES = {
    "subscribed_to_email", "received_text_message", "clicked_text_message", "sent_text_message",
    "failed_to_deliver_text_message", "failed_to_deliver_automated_response_text_message",
    "received_automated_response_text_message", "subscribed_to_text_message", "unsubscribed_from_text_message",
    "subscribed_to_text_message_transactional", "unsubscribed_from_text_message_transactional"}
# streams that read /api/events (the sandbox's second key lacks events:read); issue 22 added the
# classic tap's newer metric tables and event_attributions
READS_EVENTS = set(expected.CLASSIC_METRICS) | {"events", "event_attributions"} | NEWER_CLASSIC_TABLES


def test_the_newer_classic_tables_are_the_tap_s_opt_in_classic_tables():
    from tap_klaviyo.streams import CLASSIC_EVENT, STREAMS
    assert NEWER_CLASSIC_TABLES == {stream.name for stream in STREAMS
                                    if stream.family == CLASSIC_EVENT and not stream.selected_by_default}


def _discover(sandbox, tmp_path, **config):
    sandbox.post("/__sandbox/stats/reset", {})
    run = run_tap(tmp_path, sandbox.config(**config), "--discover")
    return run, json.loads(run.stdout), sandbox.stats()


def test_discovery_with_every_scope_warns_of_nothing(sandbox, tmp_path):
    run, catalog, stats = _discover(sandbox, tmp_path)
    assert catalog["streams"]
    assert "WARNING" not in run.stderr
    # one request per scope, each to its own collection
    assert stats["by_family"] and all(count == 1 for count in stats["by_family"].values()), stats
    assert {"metrics", "events", "profiles", "lists", "segments"} <= set(stats["by_family"])


def test_discovery_names_a_missing_scope_once_with_every_stream_it_disables(sandbox, tmp_path):
    run, catalog, stats = _discover(sandbox, tmp_path, api_key=NO_EVENTS_KEY)
    listed = [entry["tap_stream_id"] for entry in catalog["streams"]]
    failing = [name for name in listed if name in READS_EVENTS]
    assert set(failing) >= set(expected.CLASSIC_METRICS)
    warnings = [line for line in log_lines(run.stderr) if line.startswith("WARNING ")]
    assert len(warnings) == 1, warnings
    assert "the API key lacks scope events:read (403 on /api/events): streams " in warnings[0]
    named = warnings[0].split(": streams ", 1)[1].split(" will fail", 1)[0].split(", ")
    assert named == failing, warnings[0]        # every one, in the catalog's order, and no other
    assert "leave them unselected" in warnings[0]
    assert all(count == 1 for count in stats["by_family"].values()), stats    # refusals are not counted
    assert NO_EVENTS_KEY not in run.stderr + run.stdout


def test_sync_of_a_stream_without_its_scope_is_one_line(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config(api_key=NO_EVENTS_KEY), catalog=catalog_selecting("receive", "lists"),
                  check=False)
    assert run.returncode == 1
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert "receive" in lines[0] and "events:read" in lines[0] and "lists" not in lines[0].split("(")[0]
    assert NO_EVENTS_KEY not in run.stderr + run.stdout


def test_discovery_probes_are_valid_at_every_supported_revision(sandbox, tmp_path):
    # the probes' parameters change with the revision (page[size] exists in some only)
    from tests.test_revisions import SUPPORTED
    for revision in SUPPORTED:
        run, catalog, stats = _discover(sandbox, tmp_path, revision=revision)
        # the only warning allowed: the revision retires soon (test_revision_retirement.py)
        warnings = [line for line in log_lines(run.stderr) if line.startswith("WARNING ")
                    and "Klaviyo serves a revision for two years" not in line]
        assert catalog["streams"] and not warnings, (revision, run.stderr)
        assert all(count == 1 for count in stats["by_family"].values()), (revision, stats)


@pytest.mark.parametrize("stream, scope", [("list_members", "lists:read"), ("segment_members", "segments:read")])
def test_a_members_403_naming_no_scope_names_both_it_may_lack(sandbox, tmp_path, stream, scope):
    # the members endpoints need the group's scope and profiles:read; this key lacks the latter and its
    # 403s, like some of Klaviyo's, do not say which scope is missing
    run = run_tap(tmp_path, sandbox.config(api_key=NO_PROFILES_KEY), catalog=catalog_selecting(stream), check=False)
    assert run.returncode == 1
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"stream {stream} needs scopes {scope} and profiles:read, and the API key lacks one of them (403 on " \
           f"/api/{scope.split(':')[0]}/" in lines[0], lines[0]
    assert NO_PROFILES_KEY not in run.stderr + run.stdout
