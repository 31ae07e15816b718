"""Event pages decoded into types, with event and custom properties copied into the rows as
Klaviyo wrote them: whatever the layout of the answer, every row is one line and equals the
sandbox's data."""
import time

from tests import expected
from tests.conftest import catalog_selecting, run_tap
from tests.sandbox.data import WIDE_INTEGER
from tests.test_optin_streams import expected_rows

START = "2020-01-01T00:00:00Z"
START_EPOCH = 1577836800


def test_answers_indented_across_lines_give_the_same_rows(make_sandbox, tmp_path):
    # raw JSON text is embedded in RECORD lines: a line break between its tokens would split them
    sandbox = make_sandbox(events=1500, indent=2)
    catalog = catalog_selecting(*expected.CLASSIC_METRICS, "events")
    run = run_tap(tmp_path, sandbox.config(start_date=START), catalog=catalog)
    after = int(time.time())
    lines = [line for line in run.stdout.split("\n") if line]
    assert len(lines) == len(run.messages)      # every line one whole message
    dump = sandbox.dump()
    got = run.by_stream()
    for stream in expected.CLASSIC_METRICS:
        want = expected.event_rows(dump, stream, START_EPOCH, after)
        assert want, stream
        assert {r["id"]: r for r in got[stream]} == want, stream
    assert {r["id"]: r for r in got["events"]} == expected_rows(dump, "events", after)


def test_custom_properties_keep_their_text_and_never_overwrite_standard_keys(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config(start_date=START), catalog=catalog_selecting("receive"))
    persons = {r["person"]["id"]: r["person"] for r in run.records("receive") if r["person"]}
    profiles = {p["id"]: p for p in sandbox.dump()["profiles"]}
    shadowed = [pid for pid in persons if "$email" in (profiles[pid]["attributes"].get("properties") or {})]
    assert shadowed, "the sandbox gives some profiles a custom $email"
    for pid in shadowed:
        assert persons[pid]["$email"] == profiles[pid]["attributes"]["email"]
    wide = [p for p in persons.values() if p.get("Lifetime Orders") == WIDE_INTEGER]
    assert wide, "a custom property wider than 64 bits arrives exact"
    assert f'"Lifetime Orders":{WIDE_INTEGER}' in run.stdout
