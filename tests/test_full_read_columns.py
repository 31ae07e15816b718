"""A column selected since a resource stream's last full read (review 22, 1.5): the rows that read
left unchanged hold nothing in it, and a read of changes fills it only for the rows that change. So
the bookmark keeps a digest of the columns its last full read carried (beside `revision`), and a run
whose selection differs reads the whole tree in full, as another revision does. A bookmark without
one (a state of an earlier version) forces nothing by itself. Over HTTP, the tap a real process."""
import time

from tests.conftest import RequestLog, catalog_selecting, run_tap
from tests.test_marketing_streams import FLOW_BY_ID, selecting_definition
from tests.test_optin_streams import deselecting

FLOWS = ("flows", "flow_actions", "flow_messages")


def _activations(run):
    return {m["stream"]: m["version"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}


def _definition_requests(log):
    return sorted(path for path, _ in log.entries if path.startswith("/api/flows/") and path.count("/") == 3)


def test_a_newly_selected_column_reads_its_tree_in_full_once(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    log = RequestLog(sandbox)
    plain = catalog_selecting(*FLOWS, "templates")
    first = run_tap(tmp_path, sandbox.config(), catalog=plain)
    assert set(_activations(first)) == {*FLOWS, "templates"} and not _definition_requests(log)
    columns = {s: b["columns"] for s, b in first.last_state["bookmarks"].items() if s in FLOWS}
    assert len(columns) == 3 and all(isinstance(c, str) and c for c in columns.values())

    time.sleep(1.1)
    log.clear()
    # flows.definition newly selected: the flows tree is read in full (its version activated), with
    # one definition request per flow; templates, whose columns are the same, read their changes
    chosen = selecting_definition(catalog_selecting(*FLOWS, "templates"))
    second = run_tap(tmp_path, sandbox.config(), catalog=chosen, state=first.last_state)
    flows = sandbox.dump()["flows"]
    assert set(_activations(second)) == set(FLOWS)
    assert _definition_requests(log) == sorted(f"/api/flows/{flow['id']}" for flow in flows)
    assert len(log.queries(FLOW_BY_ID)) == len(flows)
    rows = second.records("flows")
    assert {r["id"] for r in rows} == {f["id"] for f in flows} and all(r["definition"] is not None for r in rows)
    assert len(second.records("flow_actions")) == len(sandbox.dump()["flow_actions"])
    assert not second.records("templates")
    bookmarks = second.last_state["bookmarks"]
    assert bookmarks["flows"]["columns"] != columns["flows"]
    assert all(bookmarks[s]["columns"] == columns[s] for s in ("flow_actions", "flow_messages"))
    assert any("selected columns differ" in line and "flows" in line for line in second.stderr.splitlines())

    # the same catalog again: no full read, no definition request (no flow changed)
    time.sleep(1.1)
    log.clear()
    third = run_tap(tmp_path, sandbox.config(), catalog=chosen, state=second.last_state)
    assert not _activations(third)
    assert not _definition_requests(log) and not third.records("flows")
    assert third.last_state["bookmarks"]["flows"]["full_read_at"] == bookmarks["flows"]["full_read_at"]


def test_a_child_column_deselected_and_selected_again_reads_the_tree_in_full(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=300)
    catalog = catalog_selecting(*FLOWS)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    time.sleep(1.1)
    # a child's column counts for the whole tree: flows and flow_actions are read in full with it
    dropped = deselecting(catalog_selecting(*FLOWS), {"flow_messages": ["channel"]})
    second = run_tap(tmp_path, sandbox.config(), catalog=dropped, state=first.last_state)
    assert set(_activations(second)) == set(FLOWS)
    assert all("channel" not in r for r in second.records("flow_messages"))
    time.sleep(1.1)
    # selected again: the rows the read in between sent without it get it back from a full read
    third = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=second.last_state)
    assert set(_activations(third)) == set(FLOWS)
    assert len(third.records("flow_messages")) == len(sandbox.dump()["flow_messages"])
    assert all("channel" in r for r in third.records("flow_messages"))
    assert third.last_state["bookmarks"]["flow_messages"]["columns"] == \
        first.last_state["bookmarks"]["flow_messages"]["columns"]


def test_a_bookmark_without_columns_forces_no_full_read_and_takes_this_runs(make_sandbox, tmp_path):
    """A state written before the tap kept `columns`: its first run reads changes as before (no full
    read of every resource stream on upgrade), and keeps this run's columns from then on."""
    sandbox = make_sandbox(events=300)
    log = RequestLog(sandbox)
    catalog = catalog_selecting(*FLOWS)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    older = first.last_state
    for stream in FLOWS:
        del older["bookmarks"][stream]["columns"]
    time.sleep(1.1)
    log.clear()
    chosen = selecting_definition(catalog_selecting(*FLOWS))
    second = run_tap(tmp_path, sandbox.config(), catalog=chosen, state=older)
    assert not _activations(second) and not _definition_requests(log)
    adopted = second.last_state["bookmarks"]
    assert all(adopted[s]["full_read_at"] == first.last_state["bookmarks"][s]["full_read_at"] for s in FLOWS)
    assert all(adopted[s]["columns"] for s in FLOWS)
    # from then on a change of selection is seen
    time.sleep(1.1)
    third = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=second.last_state)
    assert set(_activations(third)) == set(FLOWS)
