"""The sandbox's coupon, catalog and review endpoints (tests/sandbox/catalog.py) as the spec describes
them, asked directly over HTTP: parameters, filters and their operators, sorts, page sizes, includes,
relationship data per revision, scopes."""
import pytest

from tests.conftest import Sandbox
from tests.sandbox.data import generate
from tests.sandbox.server import NO_SCOPES_KEY, Options

NEW, OLD = "2026-07-15", "2025-04-15"


@pytest.fixture(scope="module")
def sandbox():
    made = Sandbox(generate(events=100, seed=41, lists=1, segments=1), Options(rate_scale=50.0))
    yield made
    made.close()


def _all(sandbox, path, params, revision):
    """Every resource of a list, following links.next."""
    status, document, _ = sandbox.api(path, params, revision=revision)
    assert status == 200, document
    data, included = list(document["data"]), list(document.get("included") or [])
    while document["links"]["next"]:
        status, document, _ = sandbox.api(document["links"]["next"], revision=revision)
        assert status == 200, document
        data += document["data"]
        included += document.get("included") or []
    return data, included


def test_page_sizes_per_revision(sandbox):
    status, document, _ = sandbox.api("/api/reviews", {"filter": "equals(status,'all')"}, revision=NEW)
    assert status == 200 and len(document["data"]) == 20 and document["links"]["next"]     # default 20
    for path in ("/api/coupons", "/api/catalog-items", "/api/catalog-variants", "/api/catalog-categories",
                 "/api/reviews"):
        assert sandbox.api(path, {"page[size]": "101"}, revision=NEW)[0] == 400, path
        assert sandbox.api(path, {"page[size]": "2"}, revision=NEW)[0] == 200, path
    # before 2026-04-15 only reviews take page[size]
    for path in ("/api/coupons", "/api/catalog-items", "/api/catalog-variants", "/api/catalog-categories"):
        status, document, _ = sandbox.api(path, {"page[size]": "2"}, revision=OLD)
        assert status == 400 and document["errors"][0]["source"] == {"parameter": "page[size]"}, path
    assert sandbox.api("/api/reviews", {"page[size]": "2"}, revision=OLD)[0] == 200


def test_paging_is_complete_and_sorts_both_ways(sandbox):
    dump = sandbox.dump()
    data, _ = _all(sandbox, "/api/catalog-variants", {"page[size]": "7", "sort": "-created"}, NEW)
    assert sorted(r["id"] for r in data) == sorted(v["id"] for v in dump["catalog_variants"])
    created = [r["attributes"]["created"] for r in data]
    assert created == sorted(created, reverse=True)
    data, _ = _all(sandbox, "/api/reviews", {"page[size]": "9", "sort": "rating", "filter": "equals(status,'all')"}, NEW)
    assert len(data) == len(dump["reviews"])
    ratings = [r["attributes"]["rating"] for r in data if r["attributes"]["rating"] is not None]
    assert ratings == sorted(ratings)
    assert sandbox.api("/api/reviews", {"sort": "title"}, revision=NEW)[0] == 400
    assert sandbox.api("/api/coupons", {"sort": "created"}, revision=NEW)[0] == 400      # no sort at all


def test_filters_and_their_operators(sandbox):
    dump = sandbox.dump()
    item = next(i for i in dump["catalog_items"] if i["variants"])
    data, _ = _all(sandbox, "/api/catalog-variants", {"filter": f"equals(item.id,'{item['id']}')"}, OLD)
    assert sorted(r["id"] for r in data) == sorted(item["variants"])
    category = next(c for c in dump["catalog_categories"] if c["items"])
    data, _ = _all(sandbox, "/api/catalog-items", {"filter": f"equals(category.id,'{category['id']}')"}, NEW)
    assert sorted(r["id"] for r in data) == sorted(category["items"])
    data, _ = _all(sandbox, "/api/catalog-categories", {"filter": f"equals(item.id,'{item['id']}')"}, NEW)
    assert {r["id"] for r in data} == {c["id"] for c in dump["catalog_categories"] if item["id"] in c["items"]}
    data, _ = _all(sandbox, "/api/reviews", {"filter": "greater-or-equal(rating,4),equals(verified,true),"
                                                       "equals(status,'all')"}, NEW)
    assert {r["id"] for r in data} == {r["id"] for r in dump["reviews"] if (r["attributes"]["rating"] or 0) >= 4
                                       and r["attributes"]["verified"]}
    data, _ = _all(sandbox, "/api/reviews", {"filter": "equals(status,'rejected')"}, NEW)
    assert data and all(r["attributes"]["status"]["value"] == "rejected" for r in data)
    assert len(_all(sandbox, "/api/reviews", {"filter": "equals(status,'all')"}, NEW)[0]) == len(dump["reviews"])
    # no status filter: published reviews only (the sandbox's inferred default, tests/sandbox/catalog.py);
    # `published` is not `featured`; `all` only where the spec lists it (2026-04-15 on)
    for revision in (OLD, NEW):
        for value in ("published", "featured", "pending", "unpublished", "rejected"):
            data, _ = _all(sandbox, "/api/reviews", {"filter": f"equals(status,'{value}')"}, revision)
            assert data and {r["id"] for r in data} == \
                {r["id"] for r in dump["reviews"] if r["attributes"]["status"]["value"] == value}, (revision, value)
        data, _ = _all(sandbox, "/api/reviews", {}, revision)
        assert {r["id"] for r in data} == \
            {r["id"] for r in dump["reviews"] if r["attributes"]["status"]["value"] == "published"}
    status, document, _ = sandbox.api("/api/reviews", {"filter": "equals(status,'all')"}, revision=OLD)
    assert status == 400 and document["errors"][0]["source"] == {"parameter": "filter"}
    data, _ = _all(sandbox, "/api/coupon-codes", {"filter": "any(coupon.id,['WELCOME10']),equals(status,'USED')"}, NEW)
    assert {r["id"] for r in data} == {c["id"] for c in dump["coupon_codes"]
                                       if c["coupon"] == "WELCOME10" and c["attributes"]["status"] == "USED"}
    # what the spec does not list is refused: a field, an operator
    for path, bad in (("/api/catalog-items", "equals(updated,2026-01-01T00:00:00Z)"),
                      ("/api/reviews", "greater-than(created,2026-01-01T00:00:00Z)"),
                      ("/api/reviews", "greater-or-equal(updated,2026-01-01T00:00:00Z)"),
                      ("/api/catalog-variants", "any(item.id,['x'])"),
                      ("/api/coupons", "equals(external_id,'x')")):
        status, document, _ = sandbox.api(path, {"filter": bad}, revision=NEW)
        assert status == 400 and document["errors"][0]["source"] == {"parameter": "filter"}, (path, bad)


def test_relationship_data_and_includes_per_revision(sandbox):
    dump = sandbox.dump()
    for revision, shown in ((OLD, False), (NEW, True)):
        codes, included = _all(sandbox, "/api/coupon-codes", {"filter": "any(coupon.id,['WELCOME10'])",
                                                              "include": "coupon"}, revision)
        assert all(r["relationships"]["coupon"]["data"]["id"] == "WELCOME10" for r in codes)
        assert all(("data" in r["relationships"]["profile"]) is shown for r in codes), revision
        assert [i["id"] for i in included] == ["WELCOME10"]
        assert ("monitor_configuration" in included[0]["attributes"]) is (revision >= "2025-07-15")
        variants, _ = _all(sandbox, "/api/catalog-variants", {}, revision)
        assert all(("data" in r["relationships"]["item"]) is shown for r in variants), revision
        reviews, _ = _all(sandbox, "/api/reviews", {"page[size]": "100"}, revision)     # published ones
        item_data = [r["relationships"]["item"].get("data") for r in reviews]
        assert (any(item_data)) is shown
        items, included = _all(sandbox, "/api/catalog-items", {"include": "variants",
                                                               "fields[catalog-variant]": "sku"}, revision)
        assert sorted(i["id"] for i in included) == sorted(v["id"] for v in dump["catalog_variants"])
        assert all(set(i["attributes"]) == {"sku"} for i in included)
        assert all(r["relationships"]["variants"]["data"] is not None for r in items)
    # a store review names no item
    store = [r for r in dump["reviews"] if r["attributes"]["review_type"] == "store"]
    assert store and all(r["item"] is None for r in store)


def test_scopes(sandbox):
    for path, scope in (("/api/coupons", "coupons:read"), ("/api/catalog-items", "catalogs:read"),
                        ("/api/reviews", "reviews:read")):
        status, document, _ = sandbox.api(path, {}, revision=NEW, key=NO_SCOPES_KEY)
        assert status == 403 and scope in document["errors"][0]["detail"], path
    status, document, _ = sandbox.api("/api/coupon-codes", {"filter": "any(coupon.id,['VIP30'])"}, revision=NEW,
                                      key=NO_SCOPES_KEY)
    assert status == 403 and "coupon-codes:read" in document["errors"][0]["detail"]


def test_admin_delete(sandbox):
    assert sandbox.admin("/__sandbox/catalog/delete", {"kind": "list", "id": "x"})[0] == 400
    assert sandbox.admin("/__sandbox/catalog/delete", {"kind": "coupon", "id": "NOPE"})[0] == 404
    dump = sandbox.dump()
    category = dump["catalog_categories"][0]
    status, answer = sandbox.admin("/__sandbox/catalog/delete", {"kind": "catalog-category", "id": category["id"]})
    assert status == 200 and answer["deleted"] == {"catalog-category": [category["id"]]}
    ids = {r["id"] for r in _all(sandbox, "/api/catalog-categories", {}, NEW)[0]}
    assert category["id"] not in ids and len(ids) == len(dump["catalog_categories"]) - 1
