"""Issue 22's catalog streams: coupons, coupon_codes, catalog_items, catalog_variants,
catalog_categories and reviews, over HTTP against the sandbox (tests/sandbox/catalog.py), the tap
run as a real process.

Expected rows are built from /__sandbox/dump as the issue defines them: `id`, the owner's id
(coupon_codes.coupon_id and .profile_id, catalog_variants.item_id, reviews.item_id), then every
attribute under its API name as the API holds it. The owners' ids come from relationship data that
the spec gives from 2026-04-15 on (a code's profile, a variant's item, a review's item); before it
a variant is read per item (its id in the filter) and the other two columns are left out.
"""
import re
import time

import pytest

from tap_klaviyo import revisions
from tap_klaviyo.streams import BY_NAME
from tests.conftest import RequestLog, Sandbox, catalog_selecting, error_lines, logged_sandbox, run_tap
from tests.sandbox import catalog as sandbox_catalog
from tests.sandbox.data import generate
from tests.sandbox.server import NO_SCOPES_KEY, Options
from tests.test_optin_streams import check_against_schema, deselecting, keyed, schemas_of

STREAMS = ("coupons", "coupon_codes", "catalog_items", "catalog_variants", "catalog_categories", "reviews")
ITEM_DATA = "2026-04-15"        # relationship data of a code's profile, a variant's and a review's item
OLD = "2025-04-15"              # before monitor_configuration (2025-07-15), page[size] and relationship data


def expected(dump, stream, revision=revisions.DEFAULT):
    """{id: row} of one of the streams, read at revision."""
    rows = {}
    for resource in dump[stream]:
        row = {"id": resource["id"]}
        if stream == "coupon_codes":
            row["coupon_id"] = resource["coupon"]
        if stream == "catalog_variants":
            row["item_id"] = resource["item"]
        row.update(resource["attributes"])
        if revision >= ITEM_DATA and stream == "coupon_codes":
            row["profile_id"] = resource["profile"]
        if revision >= ITEM_DATA and stream == "reviews":
            row["item_id"] = resource["item"]
        if stream == "coupons" and revision < "2025-07-15":
            del row["monitor_configuration"]
        rows[resource["id"]] = row
    return rows


def _versions(run, stream):
    """(the versions its RECORDs carry, the versions it activated, whether each activation follows
    every RECORD of the stream)."""
    records, activated, ordered = set(), [], True
    for position, message in enumerate(run.messages):
        if message.get("stream") != stream:
            continue
        if message["type"] == "RECORD":
            records.add(message.get("version"))
            ordered = ordered and not activated
        elif message["type"] == "ACTIVATE_VERSION":
            activated.append(message["version"])
    return records, activated, ordered


@pytest.fixture(scope="module")
def account():
    with logged_sandbox(events=300, seed=23, lists=2, segments=1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def full(account, tmp_path_factory):
    account.post("/__sandbox/stats/reset", {})
    account.log.clear()
    run = run_tap(tmp_path_factory.mktemp("catalog"), account.config(), catalog=catalog_selecting(*STREAMS))
    return run, account.dump(), account.stats(), list(account.log.entries)


def test_every_field_of_every_row_and_the_keys(full):
    run, dump, stats, _ = full
    schemas = schemas_of(run)
    assert [m["stream"] for m in run.messages if m["type"] == "SCHEMA"] == list(STREAMS)
    for stream in STREAMS:
        rows = keyed(stream, run.records(stream))
        want = expected(dump, stream)
        assert want, f"{stream}: the sandbox holds nothing"
        assert set(rows) == set(want), stream
        for key, row in rows.items():
            assert row == want[key], (stream, key)
            assert list(row)[:2 if BY_NAME[stream].parent_column else 1] == \
                ["id", BY_NAME[stream].parent_column][:2 if BY_NAME[stream].parent_column else 1]
        check_against_schema(stream, schemas[stream]["schema"], rows.values())
        assert schemas[stream]["key_properties"] == ["id"]
        # read in full: every RECORD carries the run's version, activated once after the last of them
        versions, activated, ordered = _versions(run, stream)
        assert len(versions) == 1 and None not in versions and activated == list(versions) and ordered, stream
    assert stats["throttled"] == 0
    # what the data exercises: codes given to profiles of the account, and not; variants of several
    # items; a store review, of no item; every status a code can hold here
    codes = run.records("coupon_codes")
    profiles = {p["id"] for p in dump["profiles"]}
    assert {r["profile_id"] for r in codes} - {None} <= profiles and any(r["profile_id"] for r in codes)
    assert any(r["profile_id"] is None for r in codes)
    assert len({r["coupon_id"] for r in codes}) == len(dump["coupons"]) > 1
    assert len({r["item_id"] for r in run.records("catalog_variants")}) > 5
    assert any(r["item_id"] is None and r["review_type"] == "store" for r in run.records("reviews"))
    # every status a review holds (the sandbox answers published reviews only to a list with no
    # status filter: the tap asks for `all`)
    assert {r["status"]["value"] for r in run.records("reviews")} == \
        {"published", "featured", "pending", "unpublished", "rejected"}


def test_the_required_coupon_filter_one_chain_per_coupon_each_in_its_family(full):
    run, dump, stats, entries = full
    code_queries = [query for path, query in entries if path == "/api/coupon-codes"]
    assert sorted(q["filter"] for q in code_queries) == sorted(f"any(coupon.id,['{c['id']}'])" for c in dump["coupons"])
    assert all(q["page[size]"] == "100" for q in code_queries)
    families = stats["by_family"]
    assert families == {"coupons": 1, "coupon_codes": len(dump["coupons"]), "catalog_items": 1, "catalog_variants": 1,
                        "catalog_categories": 1, "reviews": 1}
    # the variants' item comes with each variant (2026-04-15 on): one list, no filter
    assert [q for path, q in entries if path == "/api/catalog-variants"] == [{"page[size]": "100"}]
    # every status in one chain: the spec lists the value `all` from 2026-04-15 on
    assert [q for path, q in entries if path == "/api/reviews"] == [{"filter": "equals(status,'all')",
                                                                      "page[size]": "100"}]


def test_the_coupon_code_list_refuses_a_request_without_its_filter(account):
    for revision in (OLD, revisions.DEFAULT, revisions.NEWEST):
        status, document, _ = account.api("/api/coupon-codes", {}, revision=revision)
        assert status == 400 and document["errors"][0]["source"] == {"parameter": "filter"}, revision
    # from 2026-04-15 the spec's x-klaviyo-filters give coupon.id a list only: the example's
    # equals(coupon.id,'…') is refused there, the tap's any(coupon.id,[…]) is not
    status, _, _ = account.api("/api/coupon-codes", {"filter": "equals(coupon.id,'WELCOME10')"}, revision="2026-07-15")
    assert status == 400
    for revision in (OLD, revisions.DEFAULT):
        status, document, _ = account.api("/api/coupon-codes", {"filter": "any(coupon.id,['WELCOME10'])"},
                                          revision=revision)
        assert status == 200 and document["data"] and \
            {r["relationships"]["coupon"]["data"]["id"] for r in document["data"]} == {"WELCOME10"}
        # "A coupon/coupons or a profile/profiles must be provided": a profile alone will do, another
        # field alone will not
        code = next(c for c in account.dump()["coupon_codes"] if c["profile"])
        status, document, _ = account.api("/api/coupon-codes", {"filter": f"any(profile.id,['{code['profile']}'])"},
                                          revision=revision)
        assert status == 200 and code["id"] in {r["id"] for r in document["data"]}
        status, document, _ = account.api("/api/coupon-codes", {"filter": "equals(status,'USED')"}, revision=revision)
        assert status == 400 and "coupon/coupons or a profile/profiles" in document["errors"][0]["detail"]


DESELECTED = {"coupons": ["description"], "coupon_codes": ["expires_at", "profile_id"],
              "catalog_items": ["custom_metadata", "images"], "catalog_variants": ["inventory_quantity"],
              "catalog_categories": ["updated"], "reviews": ["content", "product", "item_id"]}
FIELDSETS = {   # the fields[...] each list is sent with: what is kept, and nothing else
    "/api/coupons": ("fields[coupon]", {"external_id", "monitor_configuration"}),
    "/api/coupon-codes": ("fields[coupon-code]", {"unique_code", "status"}),
    "/api/catalog-items": ("fields[catalog-item]", {"external_id", "title", "description", "price", "url",
                                                    "image_full_url", "image_thumbnail_url", "published", "created",
                                                    "updated"}),
    "/api/catalog-categories": ("fields[catalog-category]", {"external_id", "name"}),
}


def test_deselected_columns_are_left_out_of_requests_schemas_and_rows(account, tmp_path):
    catalog = deselecting(catalog_selecting(*STREAMS), DESELECTED)
    account.log.clear()
    run = run_tap(tmp_path, account.config(), catalog=catalog)
    dump = account.dump()
    schemas = schemas_of(run)
    for stream, dropped in DESELECTED.items():
        assert not set(dropped) & set(schemas[stream]["schema"]["properties"]), stream
        rows = keyed(stream, run.records(stream))
        want = expected(dump, stream)
        assert set(rows) == set(want), stream
        for key, row in rows.items():
            assert row == {k: v for k, v in want[key].items() if k not in dropped}, (stream, key)
        check_against_schema(stream, schemas[stream]["schema"], rows.values())
    for path, (parameter, kept) in FIELDSETS.items():
        queries = account.log.queries(re.escape(path))
        assert queries and all(set(q[parameter].split(",")) == kept for q in queries), path
    variants = account.log.queries("/api/catalog-variants")
    assert variants and all(set(q["fields[catalog-variant]"].split(",")) ==
                            set(schemas["catalog_variants"]["schema"]["properties"]) - {"id", "item_id"}
                            for q in variants)
    reviews = account.log.queries("/api/reviews")
    kept = set(schemas["reviews"]["schema"]["properties"]) - {"id"}
    assert reviews and all(set(q["fields[review]"].split(",")) == kept for q in reviews)


def test_each_run_reads_in_full_and_a_deletion_leaves_with_activate_version(make_sandbox, tmp_path):
    # no list of these offers a filter on an `updated` (coupons none, the catalog lists and codes other
    # fields, reviews `created` alone): every run reads them in full and activates the new version
    sandbox = make_sandbox(events=200, seed=29)
    sandbox.log = RequestLog(sandbox)
    catalog = catalog_selecting(*STREAMS)
    first = run_tap(tmp_path, sandbox.config(), catalog=catalog)
    dump = sandbox.dump()
    code = next(c for c in dump["coupon_codes"] if c["profile"])
    item = next(i for i in dump["catalog_items"] if len(i["variants"]) > 1)
    review = next(r for r in dump["reviews"] if r["item"] and r["item"] != item["id"])
    coupon = next(c for c in dump["coupons"] if c["id"] != code["coupon"])
    deleted = {"coupon_codes": {code["id"]}, "catalog_items": {item["id"]}, "catalog_variants": set(item["variants"]),
               "reviews": {review["id"]}, "coupons": {coupon["id"]},
               "catalog_categories": set()}
    deleted["coupon_codes"] |= {c["id"] for c in dump["coupon_codes"] if c["coupon"] == coupon["id"]}
    for kind, item_id in (("coupon-code", code["id"]), ("catalog-item", item["id"]), ("review", review["id"]),
                          ("coupon", coupon["id"])):
        status, answer = sandbox.admin("/__sandbox/catalog/delete", {"kind": kind, "id": item_id})
        assert status == 200 and answer["id"] == item_id
    assert answer["deleted"]["coupon-code"] and set(answer["deleted"]["coupon-code"]) < deleted["coupon_codes"]
    assert sandbox.admin("/__sandbox/catalog/delete", {"kind": "review", "id": review["id"]})[0] == 404
    while int(time.time()) * 1000 <= max(_versions(first, "coupons")[0]):
        time.sleep(0.05)
    sandbox.log.clear()
    second = run_tap(tmp_path, sandbox.config(), catalog=catalog, state=first.last_state)
    after = sandbox.dump()
    for stream in STREAMS:
        before_ids = set(keyed(stream, first.records(stream)))
        rows = keyed(stream, second.records(stream))
        assert set(rows) == before_ids - deleted[stream], stream
        assert rows == expected(after, stream), stream
        versions, activated, ordered = _versions(second, stream)
        assert len(versions) == 1 and activated == list(versions) and ordered, stream
        assert activated[0] > _versions(first, stream)[1][0], stream
        state = second.last_state["bookmarks"][stream]
        assert state["full_read_at"] and state["since"], stream
    # nothing a change read would send: only the coupon filter and the reviews' status
    assert all(set(q) <= {"filter", "page[size]"} for path, q in sandbox.log.entries)
    assert {q.get("filter") for path, q in sandbox.log.entries
            if path not in ("/api/coupon-codes", "/api/reviews")} == {None}
    assert {q.get("filter") for path, q in sandbox.log.entries if path == "/api/reviews"} == {"equals(status,'all')"}
    # the items of a category stop naming a deleted item, its reviews lose their item
    assert not any(item["id"] in c["items"] for c in after["catalog_categories"])


def test_codes_and_reviews_over_many_pages(tmp_path):
    account = generate(events=100, seed=31, lists=1, segments=1)
    account.catalog = None
    sandbox_catalog.populate(account, sandbox_catalog.Counts(coupons=2, codes=430, reviews=260, items=30,
                                                             variants=150))
    sandbox = Sandbox(account, Options(rate_scale=20.0))
    try:
        sandbox.log = RequestLog(sandbox)
        run = run_tap(tmp_path, sandbox.config(), catalog=catalog_selecting(*STREAMS))
        dump = sandbox.dump()
        for stream in STREAMS:
            assert keyed(stream, run.records(stream)) == expected(dump, stream), stream
        assert max(len([c for c in dump["coupon_codes"] if c["coupon"] == coupon["id"]])
                   for coupon in dump["coupons"]) > 200
        pages = sandbox.stats()["by_family"]
        assert pages["coupon_codes"] >= 5 and pages["reviews"] == 3 and pages["catalog_variants"] == 2
        assert sum("page[cursor]" in q for q in sandbox.log.queries("/api/coupon-codes")) >= 3
    finally:
        sandbox.close()


def test_an_older_revision_reads_variants_per_item_and_leaves_out_what_it_lacks(account, tmp_path):
    account.log.clear()
    account.post("/__sandbox/stats/reset", {})
    run = run_tap(tmp_path, account.config(revision=OLD), catalog=catalog_selecting(*STREAMS))
    dump = account.dump()
    for stream in STREAMS:
        rows = keyed(stream, run.records(stream))
        assert rows == expected(dump, stream, OLD), stream
        versions, activated, ordered = _versions(run, stream)
        assert len(versions) == 1 and activated == list(versions) and ordered, stream
    assert not any("profile_id" in r for r in run.records("coupon_codes"))
    assert not any("item_id" in r for r in run.records("reviews"))
    assert not any("monitor_configuration" in r for r in run.records("coupons"))
    # no relationship data names a variant's item: one chain per item, its id in the filter
    variants = account.log.queries("/api/catalog-variants")
    assert sorted(q["filter"] for q in variants) == sorted(f"equals(item.id,'{i['id']}')" for i in dump["catalog_items"])
    # the items are read (for the variants too) once; no page[size] where the revision lacks it
    assert len(account.log.queries("/api/catalog-items")) == 1
    for path in ("/api/coupons", "/api/coupon-codes", "/api/catalog-items", "/api/catalog-variants",
                 "/api/catalog-categories"):
        assert all("page[size]" not in q for q in account.log.queries(re.escape(path))), path
    assert all(q["page[size]"] == "100" for q in account.log.queries("/api/reviews"))
    # the spec lists no status values before 2026-04-15 (no `all`): one chain per status
    assert sorted(q["filter"] for q in account.log.queries("/api/reviews")) == \
        sorted(f"equals(status,'{value}')" for value in ("published", "featured", "pending", "unpublished", "rejected"))
    assert {r["status"]["value"] for r in run.records("reviews")} == \
        {"published", "featured", "pending", "unpublished", "rejected"}


def test_variants_alone_read_their_items_for_ids_only_in_an_older_revision(account, tmp_path):
    account.log.clear()
    run = run_tap(tmp_path, account.config(revision=OLD), catalog=catalog_selecting("catalog_variants"))
    assert keyed("catalog_variants", run.records("catalog_variants")) == \
        expected(account.dump(), "catalog_variants", OLD)
    assert not run.records("catalog_items")
    items = account.log.queries("/api/catalog-items")
    assert items == [{"fields[catalog-item]": "created"}]
    # and an ACTIVATE_VERSION for the variants only
    assert {m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"} == {"catalog_variants"}


def test_a_missing_scope_is_one_line_naming_the_streams(account, tmp_path):
    run = run_tap(tmp_path, account.config(api_key=NO_SCOPES_KEY), catalog=catalog_selecting("coupon_codes"),
                  check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "coupon_codes" in lines[0] and "coupons:read" in lines[0], run.stderr
    assert NO_SCOPES_KEY not in run.stderr + run.stdout


def test_scopes_and_tiers_from_the_spec():
    from tap_klaviyo.ratelimit import family_limits
    assert BY_NAME["coupons"].scopes == ("coupons:read",)
    assert BY_NAME["coupon_codes"].scopes == ("coupons:read", "coupon-codes:read")
    assert all(BY_NAME[name].scopes == ("catalogs:read",) for name in STREAMS if name.startswith("catalog_"))
    assert BY_NAME["reviews"].scopes == ("reviews:read",)
    for revision in revisions.SUPPORTED:
        assert family_limits("coupons", revision) == (75, 750 if revision >= "2026-01-15" else 700)
        for name in ("coupon_codes", "catalog_items", "catalog_variants", "catalog_categories"):
            assert family_limits(name, revision) == (350, 3500), (name, revision)
        assert family_limits("reviews", revision) == (10, 150)


@pytest.mark.parametrize("revision, field", [(revisions.DEFAULT, "id"), (OLD, "description")])
def test_codes_alone_read_the_coupons_for_their_ids_only(account, tmp_path, revision, field):
    account.log.clear()
    run = run_tap(tmp_path, account.config(revision=revision), catalog=catalog_selecting("coupon_codes"))
    assert keyed("coupon_codes", run.records("coupon_codes")) == expected(account.dump(), "coupon_codes", revision)
    assert not run.records("coupons")
    # the smallest field the spec lists for a coupon (`id` itself from 2026-04-15)
    assert [q[f"fields[coupon]"] for q in account.log.queries("/api/coupons")] == [field]
    assert {m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"} == {"coupon_codes"}


def test_a_child_has_the_scopes_of_every_stream_it_hangs_from():
    # streams._with_scopes adds the parent chain's operations: coupon codes are read under the coupon
    # list (coupons:read) with no `reads` listed by hand; so is every child, in every revision's shape
    from tap_klaviyo.streams import STREAMS, _rows_of
    children = 0
    for stream in STREAMS:
        for row in _rows_of(stream):
            if row.parent:
                children += 1
                assert set(BY_NAME[row.parent].scopes) <= set(stream.scopes), (stream.name, row.parent)
    assert children >= 8
    assert BY_NAME["coupon_codes"].reads == ()


def test_a_related_column_includes_its_relationship_exactly_where_the_spec_lets_it():
    # Stream.related (column, relationship, include): include where the operation's `include` lists
    # the relationship (its data is then the included resource's: push tokens' profile, omnichannel
    # messages' campaign), not where it cannot be included (a variant's or a review's item, a code's
    # profile: the response schema gives the data from 2026-04-15 on, with no include to ask for)
    from tap_klaviyo import apispec
    from tap_klaviyo.streams import STREAMS, at_revision, available
    seen = set()
    for stream in STREAMS:
        for revision in revisions.SUPPORTED:
            row = at_revision(stream, revision)
            if not available(row, revision) or not row.operation or not apispec.exists(row.operation, revision):
                continue
            listed = (apispec.rules(row.operation, revision)["params"].get("include") or {}).get("enum") or ()
            for column, relationship, include in row.related:
                assert include == (relationship in listed), (stream.name, column, revision)
                seen.add((stream.name, column, include))
    assert {("push_tokens", "profile_id", True), ("campaign_messages", "campaign_id", True),
            ("reviews", "item_id", False), ("catalog_variants", "item_id", False),
            ("coupon_codes", "profile_id", False)} <= seen
