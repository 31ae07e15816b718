"""Mistakes a new user makes on the first day, which the tap must not accept in silence: a state as
Meltano prints it, a state of another shape, mistyped config keys, a catalog of another tool, column
breadcrumbs the tap does not have; and what it must not say: a check that has not happened, a
ResourceWarning, the key. Each run is the tap as a process against the loopback sandbox."""
import json
import re
import time

from tap_klaviyo.about import about
from tap_klaviyo.config import SETTINGS
from tap_klaviyo.streams import STREAMS
from tests import expected
from tests.conftest import ROOT, catalog_selecting, error_lines, log_lines, run_tap
from tests.sandbox.server import API_KEY

EVENTS = list(expected.CLASSIC_METRICS)


def _warnings(stderr):
    return [line for line in log_lines(stderr) if line.startswith("WARNING ")]


# --- state ----------------------------------------------------------------------------------------

def test_a_state_as_meltano_prints_it_is_unwrapped_and_the_run_is_incremental(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=900)
    first = run_tap(tmp_path, sandbox.config())
    time.sleep(1.1)
    added = sandbox.post("/__sandbox/events", {"events": [
        {"metric_name": "Opened Email", "timestamp": int(time.time()) - 1}]})["ids"]
    time.sleep(1.1)
    # what `meltano state get dev:tap-klaviyo-to-target-postgres` prints
    second = run_tap(tmp_path, sandbox.config(), state={"singer_state": first.last_state})
    said = [line for line in _warnings(second.stderr) if "singer_state" in line]
    assert len(said) == 1 and "as Meltano prints it" in said[0] and "jq -c .singer_state" in said[0], said
    rows = [r for s in EVENTS for r in second.records(s)]
    assert {r["id"] for r in rows} >= set(added)
    assert len(rows) <= len(added) + 3 < sum(len(first.records(s)) for s in EVENTS)
    # the STATE written next is the bare state again, not wrapped once more
    assert "singer_state" not in second.last_state and second.last_state["bookmarks"].keys() >= set(EVENTS)
    # both envelopes at once: a STATE message saved around Meltano's shape
    third = run_tap(tmp_path, sandbox.config(), state={"type": "STATE", "value": {"singer_state": first.last_state}})
    assert "whole Singer STATE message" in third.stderr and "as Meltano prints it" in third.stderr
    assert len([r for s in EVENTS for r in third.records(s)]) < sum(len(first.records(s)) for s in EVENTS)


def test_a_state_without_bookmarks_warns_that_every_stream_starts_over(sandbox, tmp_path):
    # bookmarks one level too high: read as no bookmarks at all, which is now said
    state = {"receive": {"since": "2030-01-01T00:00:00Z"}, "open": {"since": "2030-01-01T00:00:00Z"}}
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("receive"), state=state)
    said = [line for line in _warnings(run.stderr) if "has no 'bookmarks'" in line]
    assert len(said) == 1 and "'receive', 'open'" in said[0] and "start_date" in said[0], said
    assert run.records("receive")       # read from start_date, as the warning says
    # a state the tap knows says nothing, nor does an empty one
    for quiet in ({"bookmarks": {}}, {}, {"currently_syncing": None}):
        again = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("lists"), state=quiet)
        assert not [line for line in _warnings(again.stderr) if "state" in line], quiet


# --- config ---------------------------------------------------------------------------------------

def test_unknown_config_keys_are_accepted_and_each_is_warned_once_with_the_key_it_resembles(sandbox, tmp_path):
    # base_url stays right (a typo in it alone would send the run to Klaviyo); the typos come beside it
    config = {**sandbox.config(), "base_ulr": "http://127.0.0.1:9", "list_person_counts": False,
              "window_days": 7, "warehouse": "analytics", "concurency": 4}
    run = run_tap(tmp_path, config, catalog=catalog_selecting("lists"))
    said = [line for line in _warnings(run.stderr) if line.startswith("WARNING config key ")]
    by_key = {re.match(r"WARNING config key '([^']+)'", line).group(1): line for line in said}
    assert len(said) == len(by_key) == 5, said
    assert "did you mean 'base_url'?" in by_key["base_ulr"]
    assert "did you mean 'list_person_count'?" in by_key["list_person_counts"]
    assert "did you mean 'concurrency'?" in by_key["concurency"]
    assert "no longer read" in by_key["window_days"] and "did you mean" not in by_key["window_days"]
    assert "did you mean" not in by_key["warehouse"] and "is ignored" in by_key["warehouse"]
    assert API_KEY not in run.stderr and run.records("lists")


def test_sample_config_names_only_settings_each_at_its_default(sandbox, tmp_path):
    sample = json.loads((ROOT / "sample_config.json").read_text())
    settings = {s.name: s for s in SETTINGS}
    assert set(sample) <= set(settings), set(sample) - set(settings)
    for name, value in sample.items():
        if name not in ("api_key", "start_date", "user_agent", "revision"):     # revision: a pinned one
            assert value == settings[name].default, name
    run = run_tap(tmp_path, {**sample, "api_key": API_KEY, "base_url": sandbox.base_url},
                  catalog=catalog_selecting("lists"))
    assert not [line for line in _warnings(run.stderr) if "config" in line]


def test_about_names_every_scope_the_streams_need():
    # the read scopes Klaviyo's spec gives the operations the streams read (not taken from the tap)
    needed = {f"{name}:read" for name in ("metrics", "events", "profiles", "lists", "segments", "campaigns",
                                          "flows", "templates", "tags")}
    # issue 22: marketing, catalog, forms
    needed |= {"images:read", "push-tokens:read", "accounts:read", "coupons:read", "coupon-codes:read",
               "catalogs:read", "reviews:read", "forms:read"}
    assert needed == {scope for stream in STREAMS for scope in stream.scopes}
    described = about()["settings"]["properties"]["api_key"]["description"]
    assert needed and all(scope in described for scope in needed), described


# --- catalogs -------------------------------------------------------------------------------------

AIRBYTE_CONFIGURED = {"streams": [{
    "stream": {"name": "receive", "json_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
               "supported_sync_modes": ["full_refresh", "incremental"], "source_defined_cursor": True},
    "sync_mode": "incremental", "cursor_field": ["timestamp"], "destination_sync_mode": "append_dedup",
    "primary_key": [["id"]]}]}


def _one_error_line(run):
    assert run.returncode == 1 and run.messages == []
    lines = error_lines(run.stderr)
    assert len(lines) == 1, lines
    assert "unexpected error" not in lines[0] and "Traceback" not in run.stderr
    return lines[0]


def test_a_catalog_of_another_tool_is_named_in_one_line_with_how_to_make_one(sandbox, tmp_path):
    line = _one_error_line(run_tap(tmp_path, sandbox.config(), catalog=AIRBYTE_CONFIGURED, check=False))
    assert "Airbyte configured catalog" in line and "tap-klaviyo --config CONFIG --discover > catalog.json" in line
    for odd in (["receive"], {"name": "receive"}):
        catalog = {"streams": [{"tap_stream_id": odd, "stream": "receive", "schema": {}, "metadata": []}]}
        line = _one_error_line(run_tap(tmp_path, sandbox.config(), catalog=catalog, check=False))
        assert f"'tap_stream_id' is a {type(odd).__name__}" in line and "--discover > catalog.json" in line, line


def test_column_breadcrumbs_the_stream_lacks_are_warned_once_per_stream(sandbox, tmp_path):
    catalog = catalog_selecting("templates", "receive")
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] in ("templates", "receive", "tags"):      # tags: not selected, not warned
            entry["metadata"] += [
                {"breadcrumb": ["properties", "nmae"], "metadata": {"selected": False}},
                {"breadcrumb": ["properties", "nmae"], "metadata": {"selected": True}},
                {"breadcrumb": ["properties", "html_body"], "metadata": {"inclusion": "available"}}]
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    said = [line for line in _warnings(run.stderr) if "which the stream does not have" in line]
    assert len(said) == 2, said
    assert {re.search(r"stream (\w+):", line).group(1) for line in said} == {"templates", "receive"}
    assert all("'nmae', 'html_body'" in line and "--discover" in line for line in said)
    assert run.records("templates") and all("name" in row for row in run.records("templates"))


# --- what the tap must not say --------------------------------------------------------------------

def test_a_wrong_key_says_nothing_of_a_check_of_the_metrics_that_did_not_happen(sandbox, tmp_path):
    catalog = json.loads(run_tap(tmp_path, sandbox.config(), "--discover").stdout)    # metrics noted in it
    run = run_tap(tmp_path, sandbox.config(api_key="pk_wrong_0000000000000000000000"), catalog=catalog,
                  check=False)
    assert run.returncode == 1
    assert "401" in error_lines(run.stderr)[-1]
    assert "checked against" not in run.stderr and "account's list" not in run.stderr
    assert "pk_wrong_0000000000000000000000" not in run.stderr + run.stdout


def test_no_python_warning_under_pythonwarnings_default(sandbox, tmp_path):
    # decode helpers on (two, so a later one closes the first's pipes), pages they decode selected
    env = {"PYTHONWARNINGS": "default"}
    config = sandbox.config(decode_processes=2)
    discovered = run_tap(tmp_path, config, "--discover", env=env)
    run = run_tap(tmp_path, config, catalog=catalog_selecting("receive", "events", "profiles"), env=env)
    assert run.records("events") and run.records("profiles")
    assert "decode helper process: " in run.stderr
    for stderr in (discovered.stderr, run.stderr):
        assert not re.search(r"\w+Warning: ", stderr), [line for line in stderr.splitlines() if "Warning" in line]


# --- the sandbox, as an account: a list's profile count is its members -----------------------------

def test_the_sandbox_s_profile_counts_are_its_member_counts(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config(list_person_count=True),
                  catalog=catalog_selecting("lists", "list_members", "segment_members"))
    members = {}
    for stream, column in (("list_members", "list_id"), ("segment_members", "segment_id")):
        for row in run.records(stream):
            members[row[column]] = members.get(row[column], 0) + 1
    counts = {row["id"]: row["person_count"] for row in run.records("lists")}
    assert counts and all(isinstance(n, int) for n in counts.values())
    assert counts == {group: members.get(group, 0) for group in counts}
    assert 0 in counts.values() and max(counts.values()) > 0        # the sandbox's empty third list


# --- the README and its pages ---------------------------------------------------------------------

def test_every_page_the_readme_and_docs_link_to_exists_and_every_docs_page_is_linked():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    linked = set()
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
            linked.add(path)
    readme = (ROOT / "README.md").read_text()
    assert {p.resolve() for p in pages[1:]} <= linked
    assert all(f"(docs/{p.name})" in readme for p in pages[1:]), "the README links every docs page"
    # the README is for users: nothing of issues or commits
    assert not re.search(r"\bissue \d+|\bprevious commit", readme)
