"""Issue 22, marketing: segments (their definitions), tag groups, images, push tokens, the account,
and each flow's definition (GET /api/flows/{id}?additional-fields[flow]=definition).

Served as Klaviyo's published spec describes them (spec_rules.json: parameters, filters, sorts,
page sizes, limits and scopes are checked by spec.py before these endpoints answer). The data is
drawn from a Random of its own, seeded from this module's name and the account's anchor, so the
rest of the account is what it was without it. Counts come from a Counts (the tests' defaults).

Admin: POST /__sandbox/marketing/delete {"kind": "image" | "push-token", "id"} and
POST /__sandbox/marketing/touch {"kind": "segment" | "image", "id", "updated", "name"} (a segment also
"is_processing": true or false).
"""
import random
from dataclasses import dataclass

from . import entities
from . import server as api

SEED = "tap-klaviyo issue 22: marketing"
DAY = 86400
TAG_GROUP_SHOWN = ("tags",)


@dataclass
class Counts:
    """How many of each: images, and push tokens (of profiles that accept push, at most one each)."""
    images: int = 6
    push_tokens: int = 8


@dataclass
class Marketing:
    images: list
    push_tokens: list
    account: dict
    flow_extras: dict       # flow id -> {"profile_filter", "reentry_criteria", "triggers"}


def of(account):
    return getattr(account, "marketing", None)


# --- generation ---------------------------------------------------------------------------------
def populate(account, counts=None):
    counts = counts or Counts()
    rng = random.Random(f"{SEED} {account.anchor}")
    ids = entities._Ids(rng)
    _segment_definitions(account, rng)
    account.marketing = Marketing(images=_images(account, rng, ids, counts.images),
                                  push_tokens=_push_tokens(account, rng, ids, counts.push_tokens),
                                  account=_account(rng, ids), flow_extras=_flow_extras(account, rng))


def _property_condition(rng):
    return {"type": "profile-property", "property": rng.choice(("properties['Plan']", "properties['Tier']")),
            "filter": {"type": "string", "operator": "equals", "value": rng.choice(("pro", "gold", "basic"))}}


def _segment_definitions(account, rng):
    """Each segment's definition (SegmentDefinition: condition groups, ANDed; conditions ORed)."""
    metric_ids = [m["id"] for m in account.metrics]
    for segment in account.segments:
        groups = [{"conditions": [_property_condition(rng)]}]
        if metric_ids and rng.random() < 0.7:
            groups.append({"conditions": [{
                "type": "profile-metric", "metric_id": rng.choice(metric_ids),
                "measurement": "count", "measurement_filter": {"type": "numeric", "operator": "greater-than",
                                                               "value": rng.randrange(0, 3)},
                "timeframe_filter": {"type": "date", "operator": "in-the-last", "quantity": rng.choice((30, 90)),
                                     "unit": "day"},
                "metric_filters": None}]})
        segment["attributes"]["definition"] = {"condition_groups": groups}


def _images(account, rng, ids, count):
    out = []
    for n in range(count):
        fmt = rng.choice(("png", "jpeg", "gif"))
        name = f"{rng.choice(entities.TOPICS)} banner {n + 1}"
        number = ids.digits()
        out.append({"type": "image", "id": number, "attributes": {
            "name": name, "image_url": f"https://d3k81ch9hvuctc.cloudfront.net/company/SBX/images/{number}.{fmt}",
            "format": fmt, "size": rng.randrange(8_000, 900_000), "hidden": n % 5 == 4,
            "updated_at": entities.iso(account.anchor - rng.randrange(2, 300) * DAY - rng.randrange(DAY))}})
    return out


def _push_tokens(account, rng, ids, count):
    """Tokens of profiles that can receive push (entities._enrich_profiles), one each, up to count."""
    pushing = [pid for pid, p in account.profiles.items()
               if ((p["attributes"].get("subscriptions") or {}).get("mobile_push") or {})
               .get("marketing", {}).get("can_receive_push_marketing")]
    out = []
    for n, pid in enumerate(pushing[:count]):
        ios = rng.random() < 0.6
        created = entities._epoch(account.profiles[pid]["attributes"]["created"]) + rng.randrange(1, 60) * DAY
        created = min(created, account.anchor - DAY)
        out.append({"type": "push-token", "id": ids.uuid(), "attributes": {
            "created": entities.iso(created),
            "token": ids.hex() + ids.hex() if ios else f"f{ids.hex()[:21]}:APA91b{ids.hex()}{ids.hex()[:12]}",
            "enablement_status": rng.choice(("AUTHORIZED", "AUTHORIZED", "AUTHORIZED", "DENIED", "PROVISIONAL")),
            "platform": "ios" if ios else "android", "vendor": "APNs" if ios else "FCM",
            "background": rng.choice(("AVAILABLE", "AVAILABLE", "DENIED")),
            "recorded_date": entities.iso(created),
            # every fifth token without metadata, whatever the draw (the data must show it)
            "metadata": None if n % 5 == 1 or rng.random() < 0.1 else {
                "device_id": ids.uuid().upper(), "klaviyo_sdk": "swift" if ios else "android",
                "sdk_version": rng.choice(("4.1.0", "4.2.1")),
                "device_model": rng.choice(("iPhone15,2", "iPhone16,1")) if ios else rng.choice(("Pixel 8", "SM-S918B")),
                "os_name": "ios" if ios else "android", "os_version": rng.choice(("17.5", "18.1")) if ios else "14",
                "manufacturer": "Apple" if ios else rng.choice(("Google", "Samsung")),
                "app_name": "Shop", "app_version": "3.4.0", "app_build": str(rng.randrange(300, 400)),
                "app_id": "com.shop.example", "environment": "release"}},
            "relationships": {"profile": entities._one("profile", pid)}})
    return out


def _account(rng, ids):
    public_key = ids.short()
    return {"type": "account", "id": public_key, "attributes": {
        "test_account": False,
        "contact_information": {"default_sender_name": "Shop", "default_sender_email": "hello@shop.example",
                                "website_url": "https://shop.example", "organization_name": "Shop Example Inc.",
                                "street_address": {"address1": "125 Summer Street", "address2": "5th Floor",
                                                   "city": "Boston", "region": "MA", "country": "US",
                                                   "zip": "02110"}},
        "industry": rng.choice(("Apparel & Accessories", "Home & Garden", "Health & Beauty")),
        "timezone": "US/Eastern", "preferred_currency": "USD", "public_api_key": public_key, "locale": "en-US"}}


def _trigger(flow, account, rng):
    kind = flow["attributes"]["trigger_type"]
    if kind == "Added to List":
        return {"type": "list", "id": rng.choice(account.lists)["id"] if account.lists else None}
    if kind == "Metric":
        return {"type": "metric", "id": rng.choice(account.metrics)["id"], "trigger_filter": None}
    if kind == "Date Based":
        return {"type": "date", "date_field_type": "profile-property", "date_profile_property": "Birthday",
                "timedelta_unit_before_date": "days", "timedelta_value_before_date": 0,
                "recurrence_frequency": "annually", "trigger_time": "09:00:00", "trigger_days": None}
    if kind == "Low Inventory":
        return {"type": "low-inventory", "product_level": "product", "trigger_filter": None,
                "inventory_count": rng.choice((5, 10)), "audience": ["viewed", "added-to-cart"]}
    if kind == "Price Drop":
        return {"type": "price-drop", "trigger_filter": None, "price_drop_amount_value": rng.choice((5, 10)),
                "price_drop_amount_unit": "percent", "audience": ["viewed"]}
    return None     # a flow never configured has no trigger


def _flow_extras(account, rng):
    out = {}
    for n, flow in enumerate(entities.of(account).flows):
        trigger = _trigger(flow, account, rng)
        out[flow["id"]] = {
            "triggers": [trigger] if trigger else [],
            "profile_filter": {"condition_groups": [{"conditions": [_property_condition(rng)]}]}
            if n % 3 == 0 or rng.random() < 0.2 else None,
            "reentry_criteria": {"duration": rng.choice((1, 30)), "unit": rng.choice(("alltime", "day"))}}
    return out


def flow_definition(account, flow, revision):
    """The flow's definition as GET /api/flows/{id} encodes it: its trigger, the profile filter, its
    actions as they are now (each action's own definition, in the newest shape, the flow-action
    endpoint's), the first action as the entry; reentry_criteria from 2026-01-15 (FlowDefinition)."""
    mine = of(account)
    extras = mine.flow_extras.get(flow["id"], {"triggers": [], "profile_filter": None, "reentry_criteria": None})
    store = entities.of(account)
    actions = [store.get("flow-action", ref["id"]) for ref in flow["relationships"]["flow-actions"]["data"]]
    definition = {"triggers": extras["triggers"], "profile_filter": extras["profile_filter"],
                  "actions": [a["attributes"]["definition"] for a in actions if a is not None],
                  "entry_action_id": next((a["id"] for a in actions if a is not None), None)}
    if revision >= "2026-01-15":
        definition["reentry_criteria"] = extras["reentry_criteria"]
    return definition


# --- endpoints ----------------------------------------------------------------------------------
def route(sandbox, parts, query):
    """(family, tier, scope, endpoint) of this module's paths, None for others. The tier named here
    is a fallback: server.py takes the spec's limits (spec_rules.json) for every covered operation."""
    name, rest = parts[1], parts[2:]
    if of(sandbox.account) is None:
        return None
    if name == "flows" and len(rest) == 1:
        return "flow", "S", "flows:read", lambda q, r, b: flow(sandbox, rest[0], q, r, b)
    if name == "tag-groups" and not rest:
        return "tag_groups", "S", "tags:read", lambda q, r, b: tag_groups(sandbox, q, r, b)
    if name == "images" and not rest:
        return "images", "M", "images:read", lambda q, r, b: images(sandbox, q, r, b)
    if name == "push-tokens" and not rest:
        return ("push_tokens", "M", ("profiles:read", "push-tokens:read"),
                lambda q, r, b: push_tokens(sandbox, q, r, b))
    if name == "accounts" and not rest:
        return "accounts", "XS", "accounts:read", lambda q, r, b: accounts(sandbox, q, r, b)
    return None


def flow(sandbox, flow_id, query, revision, base):
    """GET /api/flows/{id}: the flow, its definition only when additional-fields[flow] asks."""
    store = entities.of(sandbox.account)
    found = store.get("flow", flow_id)
    if found is None or found not in store.flows:
        raise api.ApiFailure(404, "not_found", f"A flow with id {flow_id} does not exist.")
    includes = entities._includes(query, ("flow-actions", "tags"))
    attributes = dict(found["attributes"])
    if "definition" in entities._additional(query, "flow"):
        attributes["definition"] = flow_definition(sandbox.account, found, revision)
    included = entities._Included()
    for relation, kind in (("flow-actions", "flow-action"), ("tags", "tag")):
        if relation in includes:
            for ref in found["relationships"][relation]["data"]:
                item = store.get(kind, ref["id"])
                shown = entities.flow_action_attributes(item, revision) if kind == "flow-action" else item["attributes"]
                included.add(item, lambda: entities.render(sandbox.base_url, item, shown,
                                                           entities._fields(query, kind)))
    body = {"data": entities.render(sandbox.base_url, found, attributes, entities._fields(query, "flow"), includes),
            "links": {"self": base}}
    if includes:
        body["included"] = included.items
    return body


TAG_GROUP_FILTERS = {"name": (entities._attr("name"), "str", entities.NAME_OPS),
                     "exclusive": (entities._attr("exclusive"), "bool", {"equals"}),
                     "default": (entities._attr("default"), "bool", {"equals"})}
TAG_GROUP_SORTS = {"id": entities._item_id, "name": entities._attr("name")}


def tag_groups(sandbox, query, revision, base):
    store = entities.of(sandbox.account)
    filters = entities._filters(query, TAG_GROUP_FILTERS, "tag groups")
    size = sandbox._page_size(query, 25, 25)
    page, token = entities.keyset_page(store, "tag-groups", store.tag_groups, query, size, TAG_GROUP_SORTS, filters,
                                       version=store.versions["entities"])
    data = [entities.render(sandbox.base_url, g, g["attributes"], entities._fields(query, "tag-group"))
            for g in page]
    return entities._body(sandbox, base, query, data, token)


IMAGE_FILTERS = {"id": (entities._item_id, "str", {"any", "equals"}),
                 "updated_at": (entities._time("updated_at"), "time", entities.COMPARE),
                 "format": (entities._attr("format"), "str", {"any", "equals"}),
                 "name": (entities._attr("name"), "str", entities.NAME_OPS | {"any"}),
                 "size": (entities._attr("size"), "int", entities.COMPARE),
                 "hidden": (entities._attr("hidden"), "bool", {"any", "equals"})}
IMAGE_SORTS = {"format": entities._attr("format"), "id": entities._item_id, "name": entities._attr("name"),
               "size": entities._attr("size"), "updated_at": entities._time("updated_at")}


def _image_filters(query):
    """entities._filters, and `size`, the one integer field (gt/ge/lt/le take an integer)."""
    sizes, rest = [], []
    for op, name, raw in api.parse_filter(query["filter"]) if query.get("filter") else []:
        if name == "size" and op in entities.COMPARE:
            try:
                sizes.append((name, IMAGE_FILTERS["size"][0], op, int(raw)))
            except ValueError:
                raise entities._bad(f"Invalid filter provided: {raw} is not an integer") from None
        else:
            rest.append(f"{op}({name},{raw})")
    return entities._filters({"filter": ",".join(rest)}, IMAGE_FILTERS, "images") + sizes


def images(sandbox, query, revision, base):
    mine = of(sandbox.account)
    store = entities.of(sandbox.account)
    filters = _image_filters(query)
    size = sandbox._page_size(query, 20, 100)
    page, token = entities.keyset_page(store, "images", mine.images, query, size, IMAGE_SORTS, filters,
                                       version=_version(sandbox.account))
    data = [_render(sandbox.base_url, "images", i, entities._fields(query, "image")) for i in page]
    return entities._body(sandbox, base, query, data, token)


PUSH_FILTERS = {"id": (entities._item_id, "str", {"equals"}),
                "profile.id": (lambda t: t["relationships"]["profile"]["data"]["id"], "str", {"equals"}),
                "enablement_status": (entities._attr("enablement_status"), "str", {"equals"}),
                "platform": (entities._attr("platform"), "str", {"equals"})}


def push_tokens(sandbox, query, revision, base):
    """GET /api/push-tokens (2025-04-15 on): the profile relationship's data only when included."""
    account = sandbox.account
    mine, store = of(account), entities.of(account)
    filters = entities._filters(query, PUSH_FILTERS, "push tokens")
    includes = entities._includes(query, ("profile",))
    size = sandbox._page_size(query, 20, 100)
    page, token = entities.keyset_page(store, "push-tokens", mine.push_tokens, query, size, {}, filters,
                                       version=_version(account))
    data, included = [], entities._Included()
    for item in page:
        rendered = _render(sandbox.base_url, "push-tokens", item, entities._fields(query, "push-token"))
        relation = {"links": {"self": f"{sandbox.base_url}/api/push-tokens/{item['id']}/relationships/profile/",
                              "related": f"{sandbox.base_url}/api/push-tokens/{item['id']}/profile/"}}
        if "profile" in includes:
            relation["data"] = item["relationships"]["profile"]["data"]
            profile = account.profiles.get(relation["data"]["id"])
            if profile is not None:
                included.add(profile, lambda: {"type": "profile", "id": profile["id"], "attributes": entities.sparse(
                    profile["attributes"], entities._fields(query, "profile"))})
        rendered["relationships"] = {"profile": relation}
        data.append(rendered)
    return entities._body(sandbox, base, query, data, token, included.items if includes else None)


def accounts(sandbox, query, revision, base):
    """GET /api/accounts: the key's one account, no paging."""
    item = of(sandbox.account).account
    return {"data": [_render(sandbox.base_url, "accounts", item, entities._fields(query, "account"))],
            "links": {"self": base, "next": None, "prev": None}}


def _render(base_url, path, item, fields):
    return {"type": item["type"], "id": item["id"], "attributes": entities.sparse(item["attributes"], fields),
            "links": {"self": f"{base_url}/api/{path}/{item['id']}/"}}


def _version(account):
    return entities.of(account).versions.setdefault("marketing", 0)


# --- dump and admin -----------------------------------------------------------------------------
def dump(account):
    mine = of(account)
    if mine is None:
        return {}
    return {"images": mine.images, "push_tokens": mine.push_tokens, "accounts": [mine.account],
            # each flow's definition as the newest revision serves it (see flow_definition)
            "flow_definitions": {f["id"]: flow_definition(account, f, "2026-10-15")
                                 for f in entities.of(account).flows}}


def _kind_items(account, kind):
    mine = of(account)
    items = {"image": mine.images, "push-token": mine.push_tokens}.get(kind)
    if items is None:
        raise entities._Refusal(400, f"kind must be one of image, push-token, not {kind!r}")
    return items


def _delete(account, store, payload):
    kind, item_id = payload.get("kind"), payload.get("id")
    items = _kind_items(account, kind)
    with account.lock:
        found = [item for item in items if item["id"] == item_id]
        if not found:
            raise entities._Refusal(404, f"no {kind} {item_id}")
        items.remove(found[0])
        store.versions["marketing"] = _version(account) + 1
    return 200, {"kind": kind, "id": item_id, "deleted": {kind: [item_id]}}


def _touch(account, store, payload):
    """A segment's `updated` or an image's `updated_at` moves (and its name, when given)."""
    kind, item_id = payload.get("kind"), payload.get("id")
    at = entities._when(payload, "updated")
    if kind == "segment":
        items, field, bump = account.segments, "updated", "entities"
    elif kind == "image":
        items, field, bump = of(account).images, "updated_at", "marketing"
    else:
        raise entities._Refusal(400, f"kind must be segment or image, not {kind!r}")
    with account.lock:
        found = next((item for item in items if item["id"] == item_id), None)
        if found is None:
            raise entities._Refusal(404, f"no {kind} {item_id}")
        found["attributes"][field] = entities.iso(at)
        if payload.get("name") is not None:
            found["attributes"]["name"] = payload["name"]
        if kind == "segment" and payload.get("is_processing") is not None:     # Klaviyo computing it again
            found["attributes"]["is_processing"] = bool(payload["is_processing"])
        store.versions[bump] = store.versions.get(bump, 0) + 1
    return 200, {"kind": kind, "id": item_id, "updated": entities.iso(at), "name": found["attributes"]["name"]}


ADMIN = {"/__sandbox/marketing/delete": _delete, "/__sandbox/marketing/touch": _touch}
