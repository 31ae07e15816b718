"""Campaigns under revision 2026-10-15, Klaviyo's omnichannel Campaigns API: every field of
`campaigns`, `campaign_messages`, `campaign_variations` and `campaign_audiences` against the
sandbox's own resources, the requests that read them (one chain each, children through `include`),
deselected columns, the same warehouse columns meaning the same thing as under 2026-07-15, and the
two new streams under an older revision.

Expected rows are built here from /__sandbox/dump's omnichannel view, by the column meanings
docs/revisions.md gives, not from the tap's own column tables.
"""
import math

import pytest

from tests.conftest import catalog_selecting, log_lines, logged_sandbox, run_tap
from tests.test_optin_streams import check_against_schema, deselecting, keyed, schemas_of

OMNICHANNEL = "2026-10-15"
CAMPAIGN_STREAMS = ("campaigns", "campaign_messages", "campaign_variations", "campaign_audiences")


def _definition(resource):
    return resource["attributes"].get("definition") or {}


def _related(resource, name):
    data = resource["relationships"][name]["data"]
    return [data["id"]] if isinstance(data, dict) else [item["id"] for item in data or ()]


def expected(dump):
    """{stream: {id: row}} of the four campaign streams, from the sandbox's omnichannel resources."""
    view = dump["omnichannel"]
    out = {name: {} for name in CAMPAIGN_STREAMS}
    for campaign in view["campaigns"]:
        d = _definition(campaign)
        out["campaigns"][campaign["id"]] = {
            "id": campaign["id"], "name": d.get("name"), "archived": d.get("archived"), "builder": d.get("builder"),
            "color": d.get("color"), "description": d.get("description"), "send_settings": d.get("send_settings"),
            "created_at": campaign["attributes"].get("created_at"),
            "updated_at": campaign["attributes"].get("updated_at")}
        for audience_id in _related(campaign, "campaign-audiences"):
            audience = next(a for a in view["campaign_audiences"] if a["id"] == audience_id)
            a = _definition(audience)
            out["campaign_audiences"][audience_id] = {
                "id": audience_id, "campaign_id": campaign["id"], "name": a.get("name"),
                "included": a.get("included"), "excluded": a.get("excluded"), "priority": a.get("priority"),
                "created": audience["attributes"].get("created"), "updated": audience["attributes"].get("updated")}
    for message in view["campaign_messages"]:
        d = _definition(message)
        out["campaign_messages"][message["id"]] = {
            "id": message["id"], "campaign_id": _related(message, "campaign")[0], "name": d.get("name"),
            "status": d.get("status"), "send_options": d.get("send_options"),
            "tracking_options": d.get("tracking_options"), "ab_test": d.get("ab_test"),
            "created_at": message["attributes"]["created"], "updated_at": message["attributes"]["updated"]}
        for variation_id in _related(message, "campaign-variations"):
            variation = next(v for v in view["campaign_variations"] if v["id"] == variation_id)
            v = _definition(variation)
            details = v.get("details")
            row = {"id": variation_id, "campaign_message_id": message["id"], "name": v.get("name"),
                   "details": details, "created": variation["attributes"].get("created"),
                   "updated": variation["attributes"].get("updated")}
            for column in ("channel", "template_id", "subject", "preview_text", "from_email", "from_label",
                           "reply_to_email", "cc_email", "bcc_email", "title", "body"):
                row[column] = (details or {}).get(column)
            out["campaign_variations"][variation_id] = row
    return out


@pytest.fixture(scope="module")
def account():
    with logged_sandbox(events=300, seed=5, lists=3, segments=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def omnichannel(account, tmp_path_factory):
    account.post("/__sandbox/stats/reset", {})
    account.log.clear()
    run = run_tap(tmp_path_factory.mktemp("omni"), account.config(revision=OMNICHANNEL),
                  catalog=catalog_selecting(*CAMPAIGN_STREAMS))
    return run, account.dump(), account.stats(), list(account.log.entries)


def test_every_field_of_the_campaign_streams(omnichannel):
    run, dump, _, _ = omnichannel
    got, schemas, want = run.by_stream(), schemas_of(run), expected(dump)
    for stream in CAMPAIGN_STREAMS:
        rows = keyed(stream, got.get(stream, []))
        assert want[stream], f"{stream}: the sandbox holds nothing to compare"
        assert set(rows) == set(want[stream]), stream
        for key, row in rows.items():
            assert row == want[stream][key], (stream, key)
        check_against_schema(stream, schemas[stream]["schema"], rows.values())
    # the sandbox's data has what the columns are for: every channel's content, several audiences
    variations = want["campaign_variations"].values()
    assert {row["channel"] for row in variations} >= {"email", "sms", "push"}
    assert any(row["subject"] for row in variations) and any(row["body"] for row in variations)
    assert any(row["template_id"] for row in variations)
    assert len({row["campaign_id"] for row in want["campaign_audiences"].values()}) < len(want["campaign_audiences"])


def test_one_request_chain_per_stream_and_children_through_include(omnichannel):
    _, dump, stats, log = omnichannel
    families = stats["by_family"]
    messages = len(dump["omnichannel"]["campaign_messages"])
    # campaigns: archived or not, each in pages of 100 (no channel fan-out); messages: the flat list
    archived = sum(bool(c["attributes"]["definition"]["archived"]) for c in dump["omnichannel"]["campaigns"])
    assert families.get("campaigns") == math.ceil(archived / 100) + math.ceil(
        (len(dump["omnichannel"]["campaigns"]) - archived) / 100), families
    assert families.get("campaign_message_list") == math.ceil(messages / 100), families
    assert set(families) == {"campaigns", "campaign_message_list"}, families   # nothing per campaign or message
    campaigns = [query for path, query in log if path == "/api/campaigns"]
    assert sorted(q["filter"] for q in campaigns) == ["equals(archived,false)", "equals(archived,true)"]
    assert all(q["include"] == "campaign-audiences" and q["page[size]"] == "100" for q in campaigns), campaigns
    flat = [query for path, query in log if path == "/api/campaign-messages"]
    assert flat[0]["include"].split(",") == ["campaign-variations", "campaign"] and flat[0]["page[size]"] == "100"


def test_deselected_columns_leave_the_request_and_the_rows(account, tmp_path):
    catalog = deselecting(catalog_selecting(*CAMPAIGN_STREAMS), {
        "campaigns": ["description", "send_settings"], "campaign_variations": ["details", "body"],
        "campaign_audiences": ["excluded"], "campaign_messages": ["ab_test"]})
    account.log.clear()
    run = run_tap(tmp_path, account.config(revision=OMNICHANNEL), catalog=catalog)
    got = run.by_stream()
    assert got["campaigns"] and all("description" not in r and "send_settings" not in r and "name" in r
                                    for r in got["campaigns"])
    assert got["campaign_variations"] and all("details" not in r and "body" not in r and "subject" in r
                                              for r in got["campaign_variations"])
    assert all("excluded" not in r and "included" in r for r in got["campaign_audiences"])
    assert all("ab_test" not in r and "status" in r for r in got["campaign_messages"])
    campaigns = next(q for p, q in account.log.entries if p == "/api/campaigns")
    assert set(campaigns["fields[campaign]"].split(",")) == {
        "definition.name", "definition.archived", "definition.builder", "definition.color", "created_at",
        "updated_at"}
    assert set(campaigns["fields[campaign-audience]"].split(",")) == {
        "definition.name", "definition.included", "definition.priority", "created", "updated"}
    flat = next(q for p, q in account.log.entries if p == "/api/campaign-messages")
    assert "definition.details.subject" in flat["fields[campaign-variation]"].split(",")
    assert "definition.details.body" not in flat["fields[campaign-variation]"]
    assert "definition.ab_test" not in flat["fields[campaign-message]"]
    assert flat["fields[campaign]"] == "created_at"


def test_a_column_means_the_same_under_2026_07_15_and_2026_10_15(account, omnichannel, tmp_path):
    before = run_tap(tmp_path, account.config(revision="2026-07-15"),
                     catalog=catalog_selecting("campaigns", "campaign_messages")).by_stream()
    after = omnichannel[0].by_stream()
    for stream, shared in (("campaigns", ("name", "archived", "created_at", "updated_at")),
                           ("campaign_messages", ("campaign_id", "created_at"))):
        old, new = keyed(stream, before[stream]), keyed(stream, after[stream])
        assert set(old) == set(new), stream
        for key in old:
            for column in shared:
                assert old[key][column] == new[key][column], (stream, key, column)
    # columns a revision does not have are absent (null in the warehouse), never another thing
    assert all("status" in r and "builder" not in r for r in before["campaigns"])
    assert all("status" not in r and "builder" in r for r in after["campaigns"])
    assert all("definition" in r and "status" not in r for r in before["campaign_messages"])
    assert all("definition" not in r and "status" in r for r in after["campaign_messages"])


@pytest.mark.parametrize("stream", ["campaign_variations", "campaign_audiences"])
def test_a_stream_2026_10_15_added_is_empty_and_said_under_an_older_revision(account, tmp_path, stream):
    account.post("/__sandbox/stats/reset", {})
    run = run_tap(tmp_path, account.config(revision="2026-07-15"), catalog=catalog_selecting(stream))
    assert run.records(stream) == []
    warnings = [line for line in log_lines(run.stderr) if line.startswith("WARNING ")]
    assert len(warnings) == 1 and stream in warnings[0] and OMNICHANNEL in warnings[0], warnings
    assert account.stats()["requests"] == 0
