from tests.conftest import error_lines, run_tap

EVENT_STREAMS = ["receive", "open", "click", "bounce", "dropped_email", "mark_as_spam", "subscribe_list",
                 "unsub_list", "unsubscribe", "update_email_preferences"]


def test_discover_lists_the_twelve_classic_streams(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config(), "--discover")
    import json
    catalog = json.loads(run.stdout)
    # the classic twelve come first; the opt-in streams after them (tests/test_optin_streams.py)
    by_id = {entry["tap_stream_id"]: entry for entry in catalog["streams"][:12]}
    assert sorted(by_id) == sorted(EVENT_STREAMS + ["global_exclusions", "lists"])
    for name, entry in by_id.items():
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        assert root["inclusion"] == "available"
        fields = [m for m in entry["metadata"] if m["breadcrumb"]]
        assert fields and all(m["metadata"]["inclusion"] == "automatic" for m in fields)
        assert entry["key_properties"] == root["table-key-properties"]
        if name in EVENT_STREAMS:
            assert entry["key_properties"] == ["id"]
            assert root["forced-replication-method"] == "INCREMENTAL"
            assert root["valid-replication-keys"] == ["timestamp"]
            assert set(entry["schema"]["properties"]) == {"id", "uuid", "timestamp", "datetime", "event_name",
                                                          "statistic_id", "object", "event_properties", "person"}
        else:
            assert root["forced-replication-method"] == "FULL_TABLE"
    assert by_id["global_exclusions"]["key_properties"] == ["email"]
    assert by_id["lists"]["key_properties"] == ["id"]
    assert set(by_id["lists"]["schema"]["properties"]) == {"id", "name", "created", "updated", "object", "type",
                                                           "person_count", "list_type", "folder"}
    assert set(by_id["global_exclusions"]["schema"]["properties"]) == {"email", "object", "reason", "timestamp"}


def test_discover_checks_the_key(sandbox, tmp_path):
    run = run_tap(tmp_path, sandbox.config(api_key="pk_wrong_key_123456"), "--discover", check=False)
    assert run.returncode != 0
    assert run.stdout == ""
    lines = error_lines(run.stderr)
    assert "Traceback" not in run.stderr
    assert len(lines) == 1 and "401" in lines[0] and "api_key" in lines[0]
