"""The key's access: discovery checks every scope the catalog needs with one cheap request each and
warns per stream a missing scope will fail; a sync of such a stream fails with one line."""
import json

from tests import expected
from tests.conftest import catalog_selecting, error_lines, log_lines, run_tap
from tests.sandbox.server import NO_EVENTS_KEY

# streams that read /api/events (the sandbox's second key lacks events:read)
READS_EVENTS = set(expected.CLASSIC_METRICS) | {"events"}


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


def test_discovery_names_each_stream_a_missing_scope_will_fail(sandbox, tmp_path):
    run, catalog, stats = _discover(sandbox, tmp_path, api_key=NO_EVENTS_KEY)
    listed = {entry["tap_stream_id"] for entry in catalog["streams"]}
    failing = listed & READS_EVENTS
    assert failing >= set(expected.CLASSIC_METRICS)
    warnings = [line for line in log_lines(run.stderr) if line.startswith("WARNING ")]
    assert len(warnings) == len(failing)
    for name in failing:
        assert sum(f"stream {name} " in line and "events:read" in line for line in warnings) == 1, name
    assert not any(f"stream {name} " in line for line in warnings for name in listed - failing)
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
        assert catalog["streams"] and "WARNING" not in run.stderr, (revision, run.stderr)
        assert all(count == 1 for count in stats["by_family"].values()), (revision, stats)
