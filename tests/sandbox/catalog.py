"""Coupons and their codes, the catalog (items, variants, categories) and reviews (issue 22).

Served as the published spec describes them, revision by revision (tap_klaviyo/spec_rules.json,
from klaviyo/openapi; the rules' checks run before these endpoints, so a parameter, filter field,
operator or page size the spec refuses never reaches them):

- GET /api/coupons: no filter, no sort. GET /api/coupon-codes: the spec requires a filter on the
  coupon or the profile (`coupon.id`, `profile.id`: equals, any), also `expires_at` (gt/ge/lt/le),
  `status` (equals); `include=coupon`.
- GET /api/catalog-items (`ids` any, `category.id` equals, `title` contains, `published` equals;
  `include=variants`), /api/catalog-variants (`ids` any, `item.id` equals, `sku` equals, `title`
  contains, `published` equals), /api/catalog-categories (`ids` any, `item.id` equals, `name`
  contains); each sorts on `created` both ways ("Returns a maximum of 100 ... per request").
- GET /api/reviews: `created` ge/le, `rating` any/equals/ge/le, `id` and `item.id` any/equals,
  `content` contains, `status` equals, `review_type` and `verified` equals; sorts on created,
  rating, updated; `include=events`; pages of 20 by default, 100 at most. `equals(status,'all')`
  matches every status from 2026-04-15 on, where the spec's x-klaviyo-filters list `all` among the
  status values; before, the spec lists no values and the sandbox refuses `all` (inferred: the value
  was not published there). `equals(status,'published')` answers published reviews only, not the
  featured ones (a review holds one status value: the spec's ReviewStatus* oneOf).

Relationship data: a code's coupon, an item's variants and a review's events at every revision; a
code's profile, a variant's item, a category's items and a review's item from 2026-04-15 on (the
spec gives them as links only before). `page[size]` exists from 2026-04-15 on for all but reviews;
before, the page is 100 (the catalog's descriptions say so; for coupons and codes it is inferred).
A review list with no `status` filter answers published reviews only. INFERRED: neither the spec nor
Klaviyo's reference pages (get_reviews, the Reviews overview) say what the list returns without the
filter; a filter value `all` means the unfiltered list is narrower, and published-only is the
narrowest plausible default, so that the tests tell a tap that sends the filter from one that does not.
Coupons have `monitor_configuration` from 2025-07-15 on.

Data is drawn from its own Random (seeded from this module's name and the account's anchor), after
the rest of the account is built, so nothing else changes. Counts are a Counts (test defaults).
Admin: POST /__sandbox/catalog/delete {"kind", "id"} (kind: coupon, coupon-code, catalog-item,
catalog-variant, catalog-category, review) answers {"kind", "id", "deleted": {type: [ids]}}: a
coupon goes with its codes, an item with its variants (categories and reviews stop naming it).
"""
import random
import threading
from dataclasses import dataclass, field

from . import data as sandbox_data
from . import entities as _entities
from . import server as api

iso = sandbox_data.iso
DAY = 86400
ITEM_DATA = "2026-04-15"        # relationship data the spec adds from this revision (see above)
SEED = "tap-klaviyo issue 22 catalog"
PREFIX = "$custom:::$default:::"
PATHS = {"coupon": "coupons", "coupon-code": "coupon-codes", "catalog-item": "catalog-items",
         "catalog-variant": "catalog-variants", "catalog-category": "catalog-categories", "review": "reviews"}


@dataclass
class Counts:
    """How much of each the account holds (the tests' defaults; the benchmark may ask for more)."""
    coupons: int = 4
    codes: int = 70                 # over all coupons
    assigned: float = 0.4           # the share of codes given to a profile
    items: int = 24
    variants: int = 45              # over the items (some have none)
    categories: int = 6
    reviews: int = 40
    store_reviews: int = 4          # reviews of the store, of no item


@dataclass
class Catalog:
    coupons: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    items: list = field(default_factory=list)
    variants: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    reviews: list = field(default_factory=list)
    created: dict = field(default_factory=dict)         # category id -> epoch (sorted on, never served)
    version: int = 0
    # what entities.keyset_page memoizes its sorted orders in
    cache: dict = field(default_factory=dict)
    ranks: dict = field(default_factory=dict)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)


def of(account):
    found = getattr(account, "catalog", None)
    if found is None:
        found = account.catalog = Catalog()
    return found


# --- generation ---------------------------------------------------------------------------------
COUPONS = (("WELCOME10", "10% off a first order", {"low_balance_threshold": 25}),
           ("SUMMER20", "Summer sale: 20% off", None), ("FREESHIP", "Free shipping over $50",
                                                           {"low_balance_threshold": 10}),
           ("VIP30", "VIP tier reward", None), ("WINBACK15", "Win-back offer", {"low_balance_threshold": 5}))
CODE_STATUS = (("UNASSIGNED", 5), ("ASSIGNED_TO_PROFILE", 3), ("USED", 2), ("VERSION_NOT_ACTIVE", 1))
PRODUCTS = ("Linen Shirt", "Canvas Tote", "Trail Runner", "Wool Beanie", "Ceramic Mug", "Denim Jacket", "Rain Shell",
            "Leather Belt", "Cotton Tee", "Silk Scarf", "Travel Bottle", "Desk Lamp")
COLORS = ("Red", "Navy", "Olive", "Sand", "Black")
SIZES = ("S", "M", "L", "XL")
CATEGORIES = ("Apparel", "Accessories", "Footwear", "Home", "Outdoor", "Sale", "New Arrivals", "Gifts")
REVIEW_STATUSES = ("rejected", "published", "featured", "pending", "unpublished")     # the spec's ReviewStatus*
REVIEW_TYPES = (("review", 6), ("rating", 2), ("question", 1))
REJECTIONS = ("other", "fake", "false_or_misleading", "private_information", "profanity_or_inappropriate", "unrelated")
CONTENT = ("Fits as described and arrived quickly.", "Great quality for the price.", "Colour is lighter than shown.",
           "Does this run large?", "Second one I bought, still love it.", "Stitching came loose after a month.")
_CODE = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _weighted(rng, pairs):
    values, weights = zip(*pairs)
    return rng.choices(values, weights)[0]


def _spread(rng, total, parts, empty=0.0):
    """total split into parts counts (some zero when empty > 0)."""
    weights = [0.0 if rng.random() < empty else rng.uniform(0.3, 1.7) for _ in range(parts)]
    if not any(weights):
        weights[0] = 1.0
    counts = [int(total * w / sum(weights)) for w in weights]
    live = [k for k, w in enumerate(weights) if w]
    for _ in range(total - sum(counts)):
        counts[rng.choice(live)] += 1
    return counts


def populate(account, counts=None):
    """The account's coupons, codes, catalog and reviews, from a Random of their own."""
    counts = counts or Counts()
    rng = random.Random(f"{SEED}:{account.anchor}")
    catalog = of(account)
    anchor = account.anchor
    profiles = sorted(account.profiles)

    def when(low_days, high_days=0):
        return anchor - rng.randrange(high_days * DAY, low_days * DAY)

    for n in range(counts.coupons):
        name, description, monitor = COUPONS[n % len(COUPONS)]
        coupon_id = name if n < len(COUPONS) else f"{name}{n // len(COUPONS) + 1}"
        attributes = {"external_id": coupon_id, "description": description, "monitor_configuration": monitor}
        catalog.coupons.append({"type": "coupon", "id": coupon_id, "attributes": attributes})
    taken = set()
    for coupon, many in zip(catalog.coupons, _spread(rng, counts.codes, max(1, len(catalog.coupons)))):
        for _ in range(many):
            while True:
                unique = f"{coupon['id']}-" + "".join(rng.choice(_CODE) for _ in range(6))
                if unique not in taken:
                    taken.add(unique)
                    break
            status = _weighted(rng, CODE_STATUS)
            if rng.random() < counts.assigned and status == "UNASSIGNED":
                status = "ASSIGNED_TO_PROFILE"
            profile = rng.choice(profiles) if profiles and status in ("ASSIGNED_TO_PROFILE", "USED") else None
            expires = None if rng.random() < 0.3 else iso(anchor + rng.randrange(-60 * DAY, 300 * DAY))
            catalog.codes.append({"type": "coupon-code", "id": unique,
                                  "attributes": {"unique_code": unique, "expires_at": expires, "status": status},
                                  "coupon": coupon["id"], "profile": profile})

    for n in range(counts.categories):
        name = CATEGORIES[n % len(CATEGORIES)] + ("" if n < len(CATEGORIES) else f" {n // len(CATEGORIES) + 1}")
        external = "CAT-" + name.upper().replace(" ", "-")
        category_id = PREFIX + external
        catalog.created[category_id] = when(400, 200)
        catalog.categories.append({"type": "catalog-category", "id": category_id, "items": [],
                                   "attributes": {"external_id": external, "name": name,
                                                  "updated": iso(when(200))}})
    for n, many in enumerate(_spread(rng, counts.variants, max(1, counts.items), empty=0.25)[:counts.items]):
        product = PRODUCTS[n % len(PRODUCTS)] + ("" if n < len(PRODUCTS) else f" {n // len(PRODUCTS) + 1}")
        external = f"SKU-{1000 + n}"
        item_id = PREFIX + external
        created = when(360, 30)
        price = round(rng.uniform(8, 180), 2)
        slug = product.lower().replace(" ", "-")
        image = f"https://shop.example.com/images/{slug}.jpg"
        item = {"type": "catalog-item", "id": item_id, "variants": [], "attributes": {
            "external_id": external, "title": product, "description": f"{product}, made to last.", "price": price,
            "url": f"https://shop.example.com/products/{slug}", "image_full_url": image,
            "image_thumbnail_url": None if n % 5 == 4 else image.replace(".jpg", "-thumb.jpg"),
            "images": [image] + ([image.replace(".jpg", "-2.jpg")] if rng.random() < 0.5 else []),
            "custom_metadata": {"brand": rng.choice(("Northfold", "Harbor & Pine")), "season": rng.choice(("SS", "AW"))}
            if rng.random() < 0.7 else None,
            "published": rng.random() < 0.85, "created": iso(created),
            "updated": iso(created + rng.randrange(0, 30 * DAY))}}
        catalog.items.append(item)
        for category in rng.sample(catalog.categories, min(len(catalog.categories), rng.randrange(1, 3))):
            category["items"].append(item_id)
        combos = [(c, s) for c in COLORS for s in SIZES]
        for color, size in rng.sample(combos, min(many, len(combos))):
            sku = f"{external}-{color.upper()}-{size}"
            variant_created = created + rng.randrange(0, 5 * DAY)
            variant = {"type": "catalog-variant", "id": PREFIX + sku, "item": item_id, "attributes": {
                "external_id": sku, "title": f"{product} / {color} / {size}",
                "description": f"{product} in {color.lower()}",
                "sku": sku, "inventory_policy": rng.choice((0, 1, 2)), "inventory_quantity": rng.randrange(0, 250),
                "price": price, "url": item["attributes"]["url"] + f"?variant={sku}",
                "image_full_url": image, "image_thumbnail_url": None, "images": [image],
                "custom_metadata": {"color": color, "size": size} if rng.random() < 0.6 else None,
                "published": rng.random() < 0.9, "created": iso(variant_created),
                "updated": iso(variant_created + rng.randrange(0, 20 * DAY))}}
            item["variants"].append(variant["id"])
            catalog.variants.append(variant)

    for n in range(counts.reviews + counts.store_reviews):
        store = n >= counts.reviews
        item = None if store or not catalog.items else rng.choice(catalog.items)
        kind = "store" if store else _weighted(rng, REVIEW_TYPES)
        created = when(300, 1)
        rating = None if kind == "question" else rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
        value = rng.choice(("published", "published", "published", "featured", "pending", "unpublished", "rejected"))
        if n < len(REVIEW_STATUSES):    # every status held at least once, whatever the anchor draws
            value = REVIEW_STATUSES[n]
        status = {"value": value}
        if value == "rejected":
            reason = rng.choice(REJECTIONS)
            status["rejection_reason"] = {"reason": reason}
            if reason == "other":
                status["rejection_reason"]["status_explanation"] = "Off topic"
        profile = account.profiles[rng.choice(profiles)] if profiles else None
        email = (profile or {}).get("attributes", {}).get("email") if profile else None
        first = ((profile or {}).get("attributes") or {}).get("first_name") or "Anonymous"
        replied = rng.random() < 0.25
        shown = item["attributes"] if item else None
        product = {"url": shown["url"], "name": shown["title"], "image_url": shown["image_full_url"],
                   "external_id": shown["external_id"]} \
            if item else {"url": "https://shop.example.com", "name": "Northfold Shop", "image_url": None,
                          "external_id": None}
        updated = created + rng.randrange(0, 20 * DAY)
        attributes = {
            "email": email, "status": status, "verified": rng.random() < 0.6, "review_type": kind,
            "created": iso(created), "updated": iso(updated),
            "images": [f"https://reviews.example.com/{n}.jpg"] if rng.random() < 0.2 else [], "product": product,
            "rating": rating, "author": f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}.",
            "content": rng.choice(CONTENT), "title": None if kind == "question" else rng.choice(
                ("Love it", "Good value", "Not bad", "Would buy again", None)),
            "smart_quote": None if rng.random() < 0.6 else "arrived quickly",
            "public_reply": {"content": "Thanks for the review!", "author": "Northfold team",
                             "updated": iso(updated + DAY)} if replied else None}
        catalog.reviews.append({"type": "review", "id": str(rng.randrange(10 ** 7, 10 ** 8)) + f"{n:03d}",
                                "attributes": attributes, "item": item["id"] if item else None})


# --- serving ------------------------------------------------------------------------------------
def _attr(name):
    return lambda resource: resource["attributes"].get(name)


def _time(name):
    return lambda resource: _entities._epoch(resource["attributes"].get(name))


def _int_value(raw, op):
    raw = raw.strip()
    if raw.startswith("["):
        return [int(v) for v in raw[1:-1].split(",") if v.strip()]
    return int(raw)


def _filters(query, spec, where, revision=None):
    """[(name, getter, op, value)] of the query's filter (entities' parser, plus integers). A review
    list with no status filter answers published reviews only (inferred: see the module's text)."""
    chosen = []
    status = None
    for op, name, raw in api.parse_filter(query["filter"]) if query.get("filter") else []:
        entry = spec.get(name)
        if entry is None or op not in entry[2]:
            raise _entities._bad(f"Invalid filter provided: {op}({name}) is not supported on {where}")
        getter, kind, _ = entry
        if name == "status" and where == "reviews":
            value = status = _entities._value(raw, "str", op)
            if value == "all":
                if revision is not None and revision < REVIEW_STATUS_ALL:
                    raise _entities._bad(f"Invalid filter provided: 'all' is not a value of status on {where}")
                continue
        else:
            value = _int_value(raw, op) if kind == "int" else _entities._value(raw, kind, op)
        chosen.append((name, getter, op, value))
    if where == "reviews" and status is None:
        chosen.append(("status", spec["status"][0], "equals", "published"))
    return chosen


def _relationship(base_url, resource, name, data, shown=True):
    path = f"{base_url}/api/{PATHS[resource['type']]}/{resource['id']}"
    out = {"links": {"self": f"{path}/relationships/{name}/", "related": f"{path}/{name}/"}}
    if shown and data is not ...:
        out["data"] = data
    return out


def _render(base_url, resource, fields, relationships):
    out = {"type": resource["type"], "id": resource["id"],
           "attributes": _entities.sparse(resource["attributes"], fields)}
    if relationships:
        out["relationships"] = relationships
    out["links"] = {"self": f"{base_url}/api/{PATHS[resource['type']]}/{resource['id']}/"}
    return out


def _page(sandbox, catalog, name, items, query, sorts, filters, default=100, version=None):
    size = sandbox._page_size(query, default, 100)
    return _entities.keyset_page(catalog, name, items, query, size, sorts, filters,
                                 version=catalog.version if version is None else version)


def _related_filter(key):
    return lambda resource: resource.get(key)


COUPON_CODE_FILTERS = {
    "coupon.id": (_related_filter("coupon"), "str", {"any", "equals"}),
    "profile.id": (_related_filter("profile"), "str", {"any", "equals"}),
    "expires_at": (_time("expires_at"), "time", {"greater-than", "greater-or-equal", "less-than", "less-or-equal"}),
    "status": (_attr("status"), "str", {"equals"}),
}
CREATED = {"created": _time("created")}


MONITORED = "2025-07-15"         # coupons have monitor_configuration from this revision on


def _coupon(url, coupon, query, revision):
    if revision < MONITORED:
        kept = {k: v for k, v in coupon["attributes"].items() if k != "monitor_configuration"}
        coupon = {**coupon, "attributes": kept}
    return _render(url, coupon, _entities._fields(query, "coupon"), None)


def coupons(sandbox, query, revision, base):
    catalog = of(sandbox.account)
    version = catalog.version
    page, token = _page(sandbox, catalog, "coupons", list(catalog.coupons), query, {}, [], version=version)
    data = [_coupon(sandbox.base_url, c, query, revision) for c in page]
    return _entities._body(sandbox, base, query, data, token)


def coupon_codes(sandbox, query, revision, base):
    catalog = of(sandbox.account)
    version = catalog.version
    filters = _filters(query, COUPON_CODE_FILTERS, "coupon-codes")
    includes = _entities._includes(query, ("coupon",))
    page, token = _page(sandbox, catalog, "coupon_codes", list(catalog.codes), query, {}, filters, version=version)
    url, data, included = sandbox.base_url, [], _entities._Included()
    coupons_by_id = {c["id"]: c for c in catalog.coupons}
    for code in page:
        profile = {"type": "profile", "id": code["profile"]} if code["profile"] else None
        relationships = {"coupon": _relationship(url, code, "coupon", {"type": "coupon", "id": code["coupon"]}),
                         "profile": _relationship(url, code, "profile", profile, revision >= ITEM_DATA)}
        data.append(_render(url, code, _entities._fields(query, "coupon-code"), relationships))
        coupon = coupons_by_id.get(code["coupon"])
        if "coupon" in includes and coupon is not None:
            included.add(coupon, lambda: _coupon(url, coupon, query, revision))
    return _entities._body(sandbox, base, query, data, token, included.items if includes else None)


ITEM_FILTERS = {
    "ids": (lambda r: r["id"], "str", {"any"}), "title": (_attr("title"), "str", {"contains"}),
    "published": (_attr("published"), "bool", {"equals"}),
}


def catalog_items(sandbox, query, revision, base):
    catalog = of(sandbox.account)
    version = catalog.version
    in_category = {}
    for category in catalog.categories:
        for item_id in category["items"]:
            in_category.setdefault(item_id, []).append(category["id"])
    spec = dict(ITEM_FILTERS, **{"category.id": (lambda r: tuple(in_category.get(r["id"], ())), "str", {"equals"})})
    filters = _filters(query, spec, "catalog-items")
    includes = _entities._includes(query, ("variants",))
    page, token = _page(sandbox, catalog, "catalog_items", list(catalog.items), query, CREATED, filters, version=version)
    url, data, included = sandbox.base_url, [], _entities._Included()
    variants = {v["id"]: v for v in catalog.variants}
    for item in page:
        relationships = {"variants": _relationship(url, item, "variants",
                                                   [{"type": "catalog-variant", "id": v} for v in item["variants"]])}
        data.append(_render(url, item, _entities._fields(query, "catalog-item"), relationships))
        if "variants" in includes:
            for variant_id in item["variants"]:
                variant = variants[variant_id]
                included.add(variant, lambda: _variant(url, variant, query, revision))
    return _entities._body(sandbox, base, query, data, token, included.items if includes else None)


def _variant(url, variant, query, revision):
    relationships = {"item": _relationship(url, variant, "item", {"type": "catalog-item", "id": variant["item"]},
                                           revision >= ITEM_DATA)}
    return _render(url, variant, _entities._fields(query, "catalog-variant"), relationships)


VARIANT_FILTERS = dict(ITEM_FILTERS, **{"item.id": (_related_filter("item"), "str", {"equals"}),
                                        "sku": (_attr("sku"), "str", {"equals"})})


def catalog_variants(sandbox, query, revision, base):
    catalog = of(sandbox.account)
    version = catalog.version
    filters = _filters(query, VARIANT_FILTERS, "catalog-variants")
    page, token = _page(sandbox, catalog, "catalog_variants", list(catalog.variants), query, CREATED, filters,
                        version=version)
    return _entities._body(sandbox, base, query, [_variant(sandbox.base_url, v, query, revision) for v in page], token)


def catalog_categories(sandbox, query, revision, base):
    catalog = of(sandbox.account)
    version = catalog.version
    spec = {"ids": (lambda r: r["id"], "str", {"any"}), "name": (_attr("name"), "str", {"contains"}),
            "item.id": (lambda r: tuple(r["items"]), "str", {"equals"})}
    filters = _filters(query, spec, "catalog-categories")
    created = {"created": lambda r: catalog.created.get(r["id"])}
    page, token = _page(sandbox, catalog, "catalog_categories", list(catalog.categories), query, created, filters,
                        version=version)
    url = sandbox.base_url
    data = [_render(url, c, _entities._fields(query, "catalog-category"),
                    {"items": _relationship(url, c, "items", [{"type": "catalog-item", "id": i} for i in c["items"]],
                                            revision >= ITEM_DATA)})
            for c in page]
    return _entities._body(sandbox, base, query, data, token)


REVIEW_FILTERS = {
    "created": (_time("created"), "time", {"greater-or-equal", "less-or-equal"}),
    "rating": (_attr("rating"), "int", {"any", "equals", "greater-or-equal", "less-or-equal"}),
    "id": (lambda r: r["id"], "str", {"any", "equals"}), "item.id": (_related_filter("item"), "str", {"any", "equals"}),
    "content": (_attr("content"), "str", {"contains"}),
    "status": (lambda r: (r["attributes"]["status"] or {}).get("value"), "str", {"equals"}),
    "review_type": (_attr("review_type"), "str", {"equals"}), "verified": (_attr("verified"), "bool", {"equals"}),
}
REVIEW_STATUS_ALL = "2026-04-15"    # the first revision whose spec lists `all` among the status values
REVIEW_SORTS = {"created": _time("created"), "rating": _attr("rating"), "updated": _time("updated")}


def reviews(sandbox, query, revision, base):
    catalog = of(sandbox.account)
    version = catalog.version
    filters = _filters(query, REVIEW_FILTERS, "reviews", revision)
    includes = _entities._includes(query, ("events",))
    page, token = _page(sandbox, catalog, "reviews", list(catalog.reviews), query, REVIEW_SORTS, filters, default=20,
                        version=version)
    url, data = sandbox.base_url, []
    for review in page:
        item = {"type": "catalog-item", "id": review["item"]} if review["item"] else ...   # a store review: no data
        relationships = {"events": _relationship(url, review, "events", []),
                         "item": _relationship(url, review, "item", item, revision >= ITEM_DATA)}
        data.append(_render(url, review, _entities._fields(query, "review"), relationships))
    # no event of the account is a review's (its events relationship is empty): nothing to include
    return _entities._body(sandbox, base, query, data, token, [] if includes else None)


# family, tier (the spec's, every revision), scope, endpoint
ROUTES = {
    "coupons": ("coupons", "L", "coupons:read", coupons),
    "coupon-codes": ("coupon_codes", "XL", "coupon-codes:read", coupon_codes),
    "catalog-items": ("catalog_items", "XL", "catalogs:read", catalog_items),
    "catalog-variants": ("catalog_variants", "XL", "catalogs:read", catalog_variants),
    "catalog-categories": ("catalog_categories", "XL", "catalogs:read", catalog_categories),
    "reviews": ("reviews", "M", "reviews:read", reviews),
}


def route(sandbox, parts, query):
    """(family, tier, scope, endpoint) of this module's list endpoints; None for any other path."""
    if len(parts) != 2 or parts[1] not in ROUTES:
        return None
    family, tier, scope, endpoint = ROUTES[parts[1]]
    return family, tier, scope, lambda q, r, b: endpoint(sandbox, q, r, b)


# --- admin --------------------------------------------------------------------------------------
def dump(account):
    """The resources as served at the newest revision, each with its owners' ids: a code's `coupon`
    and `profile`, a variant's and a review's `item`, an item's `variants`, a category's `items`."""
    catalog = of(account)
    return {"coupons": catalog.coupons, "coupon_codes": catalog.codes, "catalog_items": catalog.items,
            "catalog_variants": catalog.variants, "catalog_categories": catalog.categories, "reviews": catalog.reviews}


DELETABLE = ("coupon", "coupon-code", "catalog-item", "catalog-variant", "catalog-category", "review")


def _delete(account, payload):
    kind, item_id = payload.get("kind"), payload.get("id")
    if kind not in DELETABLE:
        return 400, {"error": f"kind must be one of {', '.join(DELETABLE)}"}
    catalog = of(account)
    with account.lock:
        lists = {"coupon": catalog.coupons, "coupon-code": catalog.codes, "catalog-item": catalog.items,
                 "catalog-variant": catalog.variants, "catalog-category": catalog.categories, "review": catalog.reviews}
        if not any(r["id"] == item_id for r in lists[kind]):
            return 404, {"error": f"no {kind} {item_id}"}
        gone = {kind: {item_id}}
        if kind == "coupon":
            gone["coupon-code"] = {c["id"] for c in catalog.codes if c["coupon"] == item_id}
        if kind == "catalog-item":
            gone["catalog-variant"] = {v["id"] for v in catalog.variants if v["item"] == item_id}
        for name, ids in gone.items():
            lists[name][:] = [r for r in lists[name] if r["id"] not in ids]
        dropped_items, dropped_variants = gone.get("catalog-item", set()), gone.get("catalog-variant", set())
        for category in catalog.categories:
            category["items"] = [i for i in category["items"] if i not in dropped_items]
        for item in catalog.items:
            item["variants"] = [v for v in item["variants"] if v not in dropped_variants]
        for review in catalog.reviews:
            if review["item"] in dropped_items:
                review["item"] = None
        catalog.version += 1
    return 200, {"kind": kind, "id": item_id, "deleted": {k: sorted(v) for k, v in sorted(gone.items())}}


def admin(account, path, payload):
    """(status, body) of this module's admin calls, None for another path."""
    if path != "/__sandbox/catalog/delete":
        return None
    if not isinstance(payload, dict):
        return 400, {"error": "the body must be a JSON object"}
    return _delete(account, payload)
