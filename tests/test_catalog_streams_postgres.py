"""Issue 22's catalog streams into PostgreSQL (MeltanoLabs target-postgres, as tests/test_postgres.py
runs it): every run reads them in full, so what Klaviyo deleted since is marked `_sdc_deleted_at` on
the very next run, and nothing live is."""
from tests.conftest import catalog_selecting
from tests.test_catalog_streams import STREAMS, expected
from tests.test_postgres import _live_and_deleted, pipe, postgres  # noqa: F401 (postgres: the fixture)


def _keys(dump, stream):
    return {(key,) for key in expected(dump, stream)}


def test_a_deleted_code_item_and_review_are_marked_on_the_next_run(make_sandbox, postgres, tmp_path):  # noqa: F811
    sandbox = make_sandbox(events=200, seed=37)
    catalog = catalog_selecting(*STREAMS)
    schema = "klaviyo_catalog"
    state = pipe(tmp_path, postgres, sandbox.config(), catalog=catalog, schema=schema, name="first")
    dump = sandbox.dump()
    for stream in STREAMS:
        live, deleted = _live_and_deleted(postgres, schema, stream)
        assert live == _keys(dump, stream) and not deleted, stream
    # nested objects arrive as JSON; a code's profile is one of the account's
    assert postgres.sql(f"select count(*) from {schema}.reviews where status->>'value' = 'rejected'")[0][0] != "0"
    assert postgres.sql(f"""select count(*) from {schema}.coupon_codes c where c.profile_id is not null and
                            c.coupon_id not in (select id from {schema}.coupons)""") == [["0"]]

    code = next(c for c in dump["coupon_codes"] if c["profile"])
    item = next(i for i in dump["catalog_items"] if len(i["variants"]) > 1)
    review = dump["reviews"][0]
    for kind, item_id in (("coupon-code", code["id"]), ("catalog-item", item["id"]), ("review", review["id"])):
        assert sandbox.admin("/__sandbox/catalog/delete", {"kind": kind, "id": item_id})[0] == 200
    # full_refresh_days (default 7) does not hold these back: no filter finds their changes
    pipe(tmp_path, postgres, sandbox.config(), catalog=catalog, state=state, schema=schema, name="second")
    after = sandbox.dump()
    gone = {"coupon_codes": {(code["id"],)}, "catalog_items": {(item["id"],)},
            "catalog_variants": {(v,) for v in item["variants"]}, "reviews": {(review["id"],)},
            "coupons": set(), "catalog_categories": set()}
    for stream in STREAMS:
        live, deleted = _live_and_deleted(postgres, schema, stream)
        assert live == _keys(after, stream) and deleted == gone[stream], stream
