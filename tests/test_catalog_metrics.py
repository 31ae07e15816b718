"""Metric ids that discovery notes in the catalog (issue 10): a sync starts reading the noted metrics
at once and checks them against the account's metric list meanwhile. A stale note may cost a request
or a warning, never a row: rows, bookmarks and resumes are those of a catalog without notes."""
import calendar
import json
import time

import pytest

from tests import expected
from tests.conftest import assert_state_never_passes_unemitted, catalog_selecting, error_lines, run_killed, run_tap
from tests.test_planning import DENSE_STREAMS, SMALL_PAGES, _bookmarks, _dense_day, _expected, _rows

METRICS_KEY = "tap-klaviyo.metrics"
START = calendar.timegm(time.strptime("2020-01-01", "%Y-%m-%d"))


def _root(entry):
    return next(item["metadata"] for item in entry["metadata"] if item["breadcrumb"] == [])


def discovered(sandbox, tmp_path, *names):
    """The catalog `--discover` writes for the sandbox, selecting names."""
    catalog = json.loads(run_tap(tmp_path, sandbox.config(), "--discover").stdout)
    for entry in catalog["streams"]:
        _root(entry)["selected"] = entry["tap_stream_id"] in names
    return catalog


def _note(catalog, stream, metrics):
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == stream)
    _root(entry)[METRICS_KEY] = metrics


def _klaviyo_metrics(sandbox):
    """{stream: {id: name}} of the account's metrics each classic table reads, from the sandbox's data."""
    metrics = sandbox.dump()["metrics"]
    return {stream: {m["id"]: m["attributes"]["name"] for m in metrics
                     if m["attributes"]["integration"]["name"] == "Klaviyo" and m["attributes"]["name"] in names}
            for stream, names in expected.CLASSIC_METRICS.items()}


def test_discovery_notes_each_metric_table_s_klaviyo_metrics_with_one_request(sandbox, tmp_path):
    catalog = discovered(sandbox, tmp_path)
    notes = {e["tap_stream_id"]: _root(e).get(METRICS_KEY) for e in catalog["streams"]}
    # (the ten classic event tables; issue 22's tables are noted too: tests/test_text_message_tables.py)
    assert {s: n for s, n in notes.items() if n is not None and s in expected.CLASSIC_METRICS} == \
        _klaviyo_metrics(sandbox)
    # an "API" metric of a classic name holds custom events: the account has one, and it is not noted
    api_clicks = [m["id"] for m in sandbox.dump()["metrics"]
                  if m["attributes"]["name"] == "Clicked Email" and m["attributes"]["integration"]["name"] != "Klaviyo"]
    assert api_clicks and not set(api_clicks) & set(notes["click"])
    # the list is the metrics scope's probe: discovery asks for it once
    assert sandbox.stats()["by_family"]["metrics"] == 1


@pytest.mark.parametrize("concurrency", [1, 32])
def test_noted_metrics_give_the_rows_and_requests_of_looking_them_up(sandbox, tmp_path, concurrency):
    config = sandbox.config(concurrency=concurrency)
    noted_catalog = discovered(sandbox, tmp_path, *expected.CLASSIC_METRICS)
    sandbox.post("/__sandbox/stats/reset", {})
    looked_up = run_tap(tmp_path, config, catalog=catalog_selecting(*expected.CLASSIC_METRICS))
    looked_up_requests = sandbox.stats()["by_family"]
    sandbox.post("/__sandbox/stats/reset", {})
    noted = run_tap(tmp_path, config, catalog=noted_catalog)
    assert "as the catalog notes them" in noted.stderr and "as the catalog notes them" not in looked_up.stderr
    assert "out of date" not in noted.stderr
    assert sandbox.stats()["by_family"] == looked_up_requests     # the list is still fetched, once
    want = _expected(sandbox, expected.CLASSIC_METRICS, START)
    assert _rows(noted) == _rows(looked_up) == {s: rows for s, rows in want.items() if rows}
    assert set(noted.last_state["bookmarks"]) == set(looked_up.last_state["bookmarks"])


@pytest.mark.parametrize("concurrency", [1, 32])
def test_a_stale_note_costs_no_row(sandbox, tmp_path, concurrency):
    real = _klaviyo_metrics(sandbox)
    catalog = discovered(sandbox, tmp_path, *expected.CLASSIC_METRICS)
    # receive notes another table's metric under its own name (a scan that must write nothing of it),
    # open noted none at discovery, click a metric deleted since
    (open_id,) = real["open"]
    _note(catalog, "receive", {open_id: "Received Email"})
    _note(catalog, "open", {})
    _note(catalog, "click", {"gone42": "Clicked Email"})
    run = run_tap(tmp_path, sandbox.config(concurrency=concurrency), catalog=catalog)
    want = _expected(sandbox, expected.CLASSIC_METRICS, START)
    assert _rows(run) == {s: rows for s, rows in want.items() if rows}
    assert {r["statistic_id"] for r in run.records("receive")} == set(real["receive"])
    stale = [line for line in run.stderr.splitlines() if "out of date" in line]
    assert len(stale) == 3 and all("WARNING" in line and "--discover" in line for line in stale)
    wanted = {s: sorted((r["timestamp"], r["id"]) for r in rows) for s, rows in want.items()}
    assert assert_state_never_passes_unemitted(run.messages, wanted) == sum(len(v) for v in wanted.values())


def test_a_kill_with_a_stale_note_resumes_with_nothing_lost(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=600, latency=0.2)
    day = _dense_day(sandbox, per_metric=4000)
    real = _klaviyo_metrics(sandbox)
    config = sandbox.config(concurrency=2, revision=SMALL_PAGES)
    catalog = discovered(sandbox, tmp_path, *DENSE_STREAMS)
    (click_id,) = real["click"]
    _note(catalog, "receive", {click_id: "Received Email"})
    _note(catalog, "click", {})
    first = run_killed(tmp_path, config, catalog, 1.5, state=_bookmarks(day))
    states = [m["value"] for m in first if m["type"] == "STATE"]
    first_rows = [m["record"] for m in first if m["type"] == "RECORD"]
    second = run_tap(tmp_path, config, catalog=catalog, state=states[-1] if states else _bookmarks(day))
    want = {r["id"] for rows in _expected(sandbox, DENSE_STREAMS, day).values() for r in rows}
    assert want <= {r["id"] for r in first_rows} | {r["id"] for r in second.records()}
    assert len(first_rows) < len(want), "the kill came after the run had finished; nothing was tested"
    written = [(m["stream"], m["record"]["statistic_id"]) for m in first if m["type"] == "RECORD"]
    written += [(m["stream"], m["record"]["statistic_id"]) for m in second.messages if m["type"] == "RECORD"]
    assert {statistic for stream, statistic in written if stream == "receive"} <= set(real["receive"])


@pytest.mark.parametrize("note", [["x"], {"abc": 7}, "abc"])
def test_a_malformed_note_is_one_clear_line(sandbox, tmp_path, note):
    catalog = catalog_selecting("receive")
    _note(catalog, "receive", note)
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog, check=False)
    assert run.returncode != 0 and run.stdout == ""
    lines = error_lines(run.stderr)
    assert "Traceback" not in run.stderr
    assert len(lines) == 1 and METRICS_KEY in lines[0] and "--discover" in lines[0]


def test_a_table_whose_metric_the_account_no_longer_has_keeps_its_bookmark(sandbox, tmp_path):
    dropped = next(m for m in sandbox.account.metrics if m["attributes"]["name"] == "Dropped Email"
                   and m["attributes"]["integration"]["name"] == "Klaviyo")
    catalog = discovered(sandbox, tmp_path, "dropped_email", "bounce")
    assert _root(next(e for e in catalog["streams"] if e["tap_stream_id"] == "dropped_email"))[METRICS_KEY] == \
        {dropped["id"]: "Dropped Email"}
    # renamed since discovery: no longer the table's metric, though its events are still served by
    # its id, which the noted scan reads and must not write
    dropped["attributes"]["name"] = "Dropped Email (retired)"
    state = {"bookmarks": {"dropped_email": {"since": "2024-01-01T00:00:00Z"}}}
    for note in ({dropped["id"]: "Dropped Email"}, {}):
        _note(catalog, "dropped_email", note)
        run = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=state)
        assert run.records("dropped_email") == []
        assert run.last_state["bookmarks"]["dropped_email"] == {"since": "2024-01-01T00:00:00Z"}
        assert _rows(run)["bounce"] == _expected(sandbox, ["bounce"], START)["bounce"]
        assert "no Klaviyo metric named 'Dropped Email'" in run.stderr
        assert ("out of date" in run.stderr) == bool(note)


def test_a_table_that_read_nothing_writes_no_bookmark(sandbox, tmp_path):
    """Neither path pins a bookmark on a table whose metric the account lacks: a lower start_date
    later still reaches back for it."""
    dropped = next(m for m in sandbox.account.metrics if m["attributes"]["name"] == "Dropped Email"
                   and m["attributes"]["integration"]["name"] == "Klaviyo")
    noted = discovered(sandbox, tmp_path, "dropped_email", "bounce")
    dropped["attributes"]["name"] = "Dropped Email (retired)"
    for catalog in (noted, catalog_selecting("dropped_email", "bounce")):
        run = run_tap(tmp_path, sandbox.config(), catalog=catalog)
        assert run.records("dropped_email") == []
        assert all("dropped_email" not in state.get("bookmarks", {}) for state in run.states())
        assert "bounce" in run.last_state["bookmarks"]


@pytest.mark.parametrize("own_entry", [False, True])
def test_metric_id_bookmarks_are_read_under_the_account_s_ids_not_the_notes(sandbox, tmp_path, own_entry):
    """A state of singer-io tap-klaviyo 1.1.4+ keys bookmarks by metric id: they are the account's
    metrics, which a stale note may lack, so such a table looks its metrics up first."""
    (receive_id,) = _klaviyo_metrics(sandbox)["receive"]
    catalog = discovered(sandbox, tmp_path, "receive")
    _note(catalog, "receive", {"gone42": "Received Email"})
    since = sandbox.account.anchor - 200 * 86400
    early, late = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) for t in (since, since + 100 * 86400))
    state = {"bookmarks": {receive_id: {"since": early}, "gone42": {"since": late}}}
    if own_entry:
        state["bookmarks"]["receive"] = {}      # an entry without "since" is no bookmark of its own
    run = run_tap(tmp_path, sandbox.config(lookback_minutes=0), catalog=catalog, state=state)
    assert _rows(run)["receive"] == _expected(sandbox, ["receive"], since)["receive"]
    assert "as the catalog notes them" not in run.stderr


def test_a_failed_metric_list_writes_no_row_and_one_line(make_sandbox, tmp_path):
    sandbox = make_sandbox(events=3000)
    catalog = discovered(sandbox, tmp_path, *expected.CLASSIC_METRICS)
    sandbox.options.fault_families, sandbox.options.fault_kinds = ("metrics",), ("503",)
    sandbox.options.fault_rate = 1.0
    run = run_tap(tmp_path, sandbox.config(max_retry_seconds=2), catalog=catalog, check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "/api/metrics" in lines[0] and "503" in lines[0], lines
    assert run.records() == []


def test_a_retried_metric_list_does_not_wait_on_pages_fetched_ahead(make_sandbox, tmp_path):
    """Regression: scans waiting for the list each held a page fetched ahead, and with it one of the
    client's body permits; the list, answered 503 once and retried, then waited for a permit that
    only those scans could give back, for ever."""
    sandbox = make_sandbox(events=20000, latency=0.15)
    catalog = discovered(sandbox, tmp_path, *expected.CLASSIC_METRICS)
    options = sandbox.options
    options.fault_families, options.fault_kinds, options.faults_per_target = ("metrics",), ("503",), 1
    options.fault_rate = 1.0
    run = run_tap(tmp_path, sandbox.config(concurrency=32, revision=SMALL_PAGES), catalog=catalog, timeout=90)
    assert sandbox.stats()["faults"] == 1
    want = _expected(sandbox, expected.CLASSIC_METRICS, START)
    assert _rows(run) == {s: rows for s, rows in want.items() if rows}
