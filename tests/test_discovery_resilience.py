"""Discovery that one endpoint cannot break (issue 17): a scope probe answered with anything but a
401 is one warning and the catalog is still written; a key that can read none of the classic tables
ends discovery with one line; the campaigns probe follows the revision."""
import json

import pytest

from tap_klaviyo import revisions
from tap_klaviyo.discovery import _probe
from tap_klaviyo.streams import BY_NAME, STREAMS
from tests.conftest import error_lines, log_lines, run_tap
from tests.sandbox.server import API_KEY, NO_SCOPES_KEY

CAMPAIGN_STREAMS = [stream.name for stream in STREAMS if "campaigns:read" in stream.scopes]
CLASSIC_SCOPES = ("metrics:read", "events:read", "profiles:read", "lists:read", "segments:read")


def _warnings(stderr):
    """The WARNING lines but the client's own retry lines (a retried 5xx logs each attempt)."""
    return [line for line in log_lines(stderr) if line.startswith("WARNING ") and "; retry " not in line]


# fault kind -> what the warning must quote of the answer
ANSWERS = {
    "400": ("400", "'messages.channel' is not a valid field"),
    "404": ("404", "No endpoint at /api/campaigns"),
    "503": ("503", "A server error occurred (503)", "max_retry_seconds"),
    "502html": ("502", "HTML"),
    "200array": ("JSON:API",),
}


@pytest.mark.parametrize("kind", list(ANSWERS))
def test_a_failing_campaigns_probe_is_one_warning_and_the_catalog_is_written(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(events=200, fault_rate=1.0, fault_families=("campaigns",), fault_kinds=(kind,))
    run = run_tap(tmp_path, sandbox.config(max_retry_seconds=2), "--discover", check=False)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and not error_lines(run.stderr), run.stderr
    catalog = json.loads(run.stdout)
    assert [entry["tap_stream_id"] for entry in catalog["streams"]] == \
        [stream.name for stream in sorted(STREAMS, key=lambda s: not s.selected_by_default)]
    # the other probes were answered: the metrics list is still noted in the classic tables
    receive = next(e for e in catalog["streams"] if e["tap_stream_id"] == "receive")
    assert next(m["metadata"] for m in receive["metadata"] if m["breadcrumb"] == [])["tap-klaviyo.metrics"]
    warnings = _warnings(run.stderr)
    assert len(warnings) == 1, warnings
    warning = warnings[0]
    assert warning.startswith("WARNING could not check scope campaigns:read: GET /api/campaigns: "), warning
    for text in ANSWERS[kind]:
        assert text in warning, (text, warning)
    assert all(name in warning for name in CAMPAIGN_STREAMS), warning
    assert "discovery goes on" in warning
    assert API_KEY not in run.stderr + run.stdout


def test_a_key_that_can_read_no_classic_table_ends_discovery_with_one_line(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config(api_key=NO_SCOPES_KEY), "--discover", check=False)
    assert run.returncode == 1
    assert run.stdout == ""
    assert "Traceback" not in run.stderr and not _warnings(run.stderr), run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("tap-klaviyo: error: the API key can read none of the classic tables"), lines[0]
    grant = lines[0].split(" it lacks scopes ", 1)[1].split(" (", 1)[0].split(", ")
    assert sorted(grant) == sorted(CLASSIC_SCOPES) and len(grant) == len(CLASSIC_SCOPES), lines[0]
    assert "campaigns:read" in lines[0].split("grant the key", 1)[1]      # the opt-in streams' too, apart
    assert NO_SCOPES_KEY not in run.stderr + run.stdout


@pytest.mark.parametrize("revision", ["2026-07-15", revisions.OMNICHANNEL_CAMPAIGNS])
def test_the_campaigns_probe_follows_the_revision(sandbox, tmp_path, revision):
    family, path, params = _probe("campaigns:read", revision)
    if revision >= revisions.OMNICHANNEL_CAMPAIGNS:
        # omnichannel campaigns: no channel filter, no `name` attribute
        assert params == {"fields[campaign]": "created_at", "page[size]": 1}
    else:
        # the channel filter the spec requires, and the smallest field it lists for a campaign
        assert params == {"filter": "equals(messages.channel,'email')", "fields[campaign]": "created_at",
                          "page[size]": 1}
    sandbox.post("/__sandbox/stats/reset", {})
    run = run_tap(tmp_path, sandbox.config(revision=revision), "--discover")
    assert not _warnings(run.stderr), run.stderr
    assert sandbox.stats()["by_family"].get("campaigns") == 1
    assert [e["tap_stream_id"] for e in json.loads(run.stdout)["streams"]][:12] == \
        [name for name in BY_NAME if BY_NAME[name].selected_by_default]
