"""forms and form_versions (issue 22) over HTTP with the tap as a process: every field of every row
against the sandbox, keys, the full-read cycle (ACTIVATE_VERSION) with reads of what changed between
full reads (the `updated_at` filter the spec offers on GET /api/forms), a deselected column left out
of the request and the rows, and an older revision whose form versions lack `variation_name`."""
import time

from tests.conftest import RequestLog as QueryLog, catalog_selecting, run_tap

DAY = 86400
LATEST = "2026-07-15"


def form_rows(dump):
    return {f["id"]: {"id": f["id"], **f["attributes"]} for f in dump["forms"]}


def version_rows(dump, revision=LATEST):
    rows = {}
    for version in dump["form_versions"]:
        row = {"id": version["id"], "form_id": version["relationships"]["form"]["data"]["id"], **version["attributes"]}
        if revision < "2026-01-15":
            del row["variation_name"]       # the spec lists it from 2026-01-15 on
        rows[version["id"]] = row
    return rows


def by_id(rows):
    found = {row["id"]: row for row in rows}
    assert len(found) == len(rows), "a key written twice"
    return found


def activated(run):
    return {m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}


def test_forms_and_their_versions_are_the_sandbox_rows_read_in_full(sandbox, tmp_path):
    log = QueryLog(sandbox)
    run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("forms", "form_versions"))
    dump = sandbox.dump()
    assert 3 <= len(dump["forms"]) and len(dump["forms"]) < len(dump["form_versions"]) <= 3 * len(dump["forms"])
    assert by_id(run.records("forms")) == form_rows(dump)
    assert by_id(run.records("form_versions")) == version_rows(dump)
    assert any(r["ab_test"] is None for r in run.records("form_versions")) and \
        any(isinstance(r["ab_test"], dict) for r in run.records("form_versions"))
    catalog = {e["tap_stream_id"]: e for e in catalog_selecting()["streams"]}
    assert catalog["forms"]["key_properties"] == catalog["form_versions"]["key_properties"] == ["id"]
    # a full read: every row carries the run's version, then ACTIVATE_VERSION; the state dates it
    assert activated(run) == {"forms", "form_versions"}
    assert {m["version"] for m in run.messages if m["type"] == "RECORD"} == \
        {m["version"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}
    bookmarks = run.last_state["bookmarks"]
    assert bookmarks["forms"]["full_read_at"] == bookmarks["forms"]["since"] and \
        bookmarks["form_versions"]["revision"] == LATEST
    # every attribute (no sparse fieldset), at the largest page the spec allows, one chain per form
    (forms_query,) = log.of("GET /api/forms")
    assert forms_query["page[size]"] == "100" and "filter" not in forms_query and "fields[form]" not in forms_query
    versions = log.of("GET /api/forms/{id}/form-versions")
    assert len(versions) == len(dump["forms"]) and all(q["page[size]"] == "100" for q in versions)
    assert not any("fields[form-version]" in q for q in versions)
    by_family = sandbox.stats()["by_family"]
    assert (by_family["forms"], by_family["form_versions"]) == (1, len(dump["forms"]))


def test_between_full_reads_only_the_changed_forms_are_read(sandbox, tmp_path):
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("forms", "form_versions"))
    dump = sandbox.dump()
    changed, deleted = dump["forms"][0]["id"], dump["forms"][1]["id"]
    time.sleep(1)
    assert sandbox.admin("/__sandbox/forms/touch", {"form_id": changed, "version": True})[0] == 200
    assert sandbox.admin("/__sandbox/forms/delete", {"form_id": deleted})[0] == 200
    time.sleep(1.1)     # the change is dated to the second; the next run starts after it
    log = QueryLog(sandbox)
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("forms", "form_versions"),
                     state=first.last_state)
    dump = sandbox.dump()
    # the forms whose updated_at moved, and their versions (the new one too); no deletion is seen
    (query,) = log.of("GET /api/forms")
    assert query["filter"].startswith("greater-or-equal(updated_at,") and ",less-than(updated_at," in query["filter"]
    assert by_id(second.records("forms")) == {changed: form_rows(dump)[changed]}
    assert by_id(second.records("form_versions")) == {v: row for v, row in version_rows(dump).items()
                                                      if row["form_id"] == changed}
    assert len(second.records("form_versions")) >= 2 and not activated(second)
    before, after = first.last_state["bookmarks"]["forms"], second.last_state["bookmarks"]["forms"]
    assert after["full_read_at"] == before["full_read_at"] and after["since"] > before["since"]

    # full_refresh_days later: a full read, whose ACTIVATE_VERSION tells the target the deleted form is gone
    state = second.last_state
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 40 * DAY))
    for name in ("forms", "form_versions"):
        state["bookmarks"][name]["full_read_at"] = old
    third = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting("forms", "form_versions"), state=state)
    assert activated(third) == {"forms", "form_versions"}
    assert by_id(third.records("forms")) == form_rows(dump) and deleted not in form_rows(dump)
    assert by_id(third.records("form_versions")) == version_rows(dump)


def test_a_deselected_column_and_an_older_revision(sandbox, tmp_path):
    log = QueryLog(sandbox)
    catalog = catalog_selecting("forms", "form_versions")
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if (entry["tap_stream_id"], item["breadcrumb"]) in (("forms", ["properties", "ab_test"]),
                                                                 ("form_versions", ["properties", "form_type"])):
                item["metadata"]["selected"] = False
    run = run_tap(tmp_path, sandbox.config(revision="2025-10-15"), catalog=catalog)
    dump = sandbox.dump()
    schemas = {m["stream"]: m["schema"]["properties"] for m in run.messages if m["type"] == "SCHEMA"}
    assert "ab_test" not in schemas["forms"] and "form_type" not in schemas["form_versions"]
    assert by_id(run.records("forms")) == {i: {k: v for k, v in row.items() if k != "ab_test"}
                                           for i, row in form_rows(dump).items()}
    # 2025-10-15's form versions have no variation_name: not asked for, not in the rows
    assert by_id(run.records("form_versions")) == {i: {k: v for k, v in row.items() if k != "form_type"}
                                                   for i, row in version_rows(dump, "2025-10-15").items()}
    (forms_query,) = log.of("GET /api/forms")
    assert "ab_test" not in forms_query["fields[form]"].split(",")
    for query in log.of("GET /api/forms/{id}/form-versions"):
        assert not {"form_type", "variation_name"} & set(query["fields[form-version]"].split(","))

