"""Issue 22 (area `events`): event attributions, served on GET /api/events?include=attributions.

Klaviyo attributes a conversion (a placed order, an ordered product) to the message that led to it:
a campaign message or a flow message, and to the earlier event of the same profile that counts as
the touch (a click or a receipt of that message). The spec (every revision the tap supports, from
2025-01-15 on; klaviyo/openapi, openapi/stable.json, GET /api/events) lets `include` name
`attributions`; an event then names them in `relationships.attributions.data`, and each one comes in
`included` as an `attribution` resource: an id, no attributes, relationships `event`,
`attributed-event`, `campaign`, `campaign-message`, `flow`, `flow-message`, `flow-message-variation`
(each {"data": {"type", "id"}}), and `links`. `fields[attribution]` exists from 2026-04-15 on, its
only value `id`; the sandbox's spec rules refuse it before (tests/sandbox/spec.py).

A share of the conversion events get one attribution, some two (a campaign and a flow); the touch
is the profile's latest "Clicked Email" or "Received Email" before the conversion, none when it has
none (the relationship is then left out). The kinds the tests need are forced by index (see
populate), not left to the draws of the anchor. Drawn from this module's own random stream after the rest
of the account is built: nothing else changes.
"""
import random
from dataclasses import dataclass

from . import data as sandbox_data
from . import entities as sandbox_entities
from . import fragments

CONVERSIONS = (("Placed Order", "Shopify"), ("Ordered Product", "Shopify"))
TOUCHES = ("Clicked Email", "Received Email")
RELATIONS = (("event", "event"), ("attributed-event", "event"), ("campaign", "campaign"),
             ("campaign-message", "campaign-message"), ("flow", "flow"), ("flow-message", "flow-message"),
             ("flow-message-variation", "flow-message"))
# the row columns of each relationship (the tap's event_attributions stream)
COLUMNS = {"event": "event_id", "attributed-event": "attributed_event_id", "campaign": "campaign_id",
           "campaign-message": "campaign_message_id", "flow": "flow_id", "flow-message": "flow_message_id",
           "flow-message-variation": "flow_message_variation_id"}


@dataclass
class Counts:
    """The share of conversion events attributed, and of those the share with a second one; at
    least `at_least` conversions before the anchor are attributed, whatever the draws."""
    share: float = 0.4
    second: float = 0.2
    at_least: int = 10


def _all(account):
    found = getattr(account, "attributions", None)
    if found is None:
        found = account.attributions = {}       # event id -> [attribution: relationship name -> id]
    return found


def _sources(account):
    """(campaign message -> campaign, flow message -> flow) of the account's entities."""
    entities = sandbox_entities.of(account)
    campaigns = {m["id"]: m["relationships"]["campaign"]["data"]["id"] for m in entities.campaign_messages
                 if (m["relationships"].get("campaign") or {}).get("data")}
    action_flow = {a["id"]: a["relationships"]["flow"]["data"]["id"] for a in entities.flow_actions}
    flows = {m["id"]: action_flow[m["relationships"]["flow-action"]["data"]["id"]] for m in entities.flow_messages
             if m["relationships"]["flow-action"]["data"]["id"] in action_flow}
    return campaigns, flows


def _touches(account):
    """profile id -> [(timestamp, event id)] of its Klaviyo touch events, sorted."""
    by_profile = {}
    for name in TOUCHES:
        metric = account.metric_by_name(name)
        for other in account.events.get(metric["id"], ()) if metric is not None else ():
            by_profile.setdefault(other.profile_id, []).append((other.timestamp, other.id))
    for touches in by_profile.values():
        touches.sort()
    return by_profile


def _touch(touches, event):
    """The id of the latest touch of the event's profile before it, or None."""
    earlier = [t for t in touches.get(event.profile_id, ()) if t[0] < event.timestamp]
    return earlier[-1][1] if earlier else None


def attribute(account, event, rng, second=False, sources=None, touches=None):
    """Attributions of one event (added to the account): to a campaign message or a flow message,
    and when second to both. Returns them."""
    campaigns, flows = sources or _sources(account)
    touch = _touch(touches if touches is not None else _touches(account), event)
    made = []
    kinds = ["campaign", "flow"] if second else [rng.choice(("campaign", "flow"))]
    for kind in kinds:
        pool = campaigns if kind == "campaign" else flows
        if not pool:
            continue
        message = rng.choice(sorted(pool))
        attribution = {"id": format(rng.getrandbits(128), "032x"), "event": event.id,
                       "attributed-event": touch,
                       "campaign": pool[message] if kind == "campaign" else None,
                       "campaign-message": message if kind == "campaign" else None,
                       "flow": pool[message] if kind == "flow" else None,
                       "flow-message": message if kind == "flow" else None,
                       "flow-message-variation": None}
        made.append(attribution)
    with account.lock:
        _all(account).setdefault(event.id, []).extend(made)
        account.changed()
    return made


def populate(account, counts=None):
    counts = counts or Counts()
    rng = random.Random(f"events:attributions:{account.anchor}")
    _all(account)
    sources, touches = _sources(account), _touches(account)
    eligible = []       # the conversions of a profile, in a fixed order
    for name, integration in CONVERSIONS:
        metric = account.metric_by_name(name, integration)
        if metric is not None:
            eligible += [event for event in account.events.get(metric["id"], ()) if event.profile_id is not None]
    chosen = {}         # index in eligible -> whether it has a second attribution
    for at, event in enumerate(eligible):
        if rng.random() < counts.share:
            chosen[at] = rng.random() < counts.second
    # The kinds the tests look for, forced by index whatever the anchor draws (review 22, section 2):
    # among the conversions before the anchor (those a run reads), the first has two attributions;
    # one attributed has an earlier touch, one has none, and each conversion metric has one (when the
    # account has such a conversion); and at least `at_least` are attributed.
    past = [at for at, event in enumerate(eligible) if event.timestamp < account.anchor]
    if past:
        chosen[past[0]] = True
    kinds = [lambda event, touched=touched: (_touch(touches, event) is not None) is touched
             for touched in (True, False)]
    kinds += [lambda event, metric=metric: event.metric_id == metric
              for metric in sorted({eligible[at].metric_id for at in past})]
    for kind in kinds:
        if not any(at in past and kind(eligible[at]) for at in chosen):
            found = next((at for at in past if kind(eligible[at])), None)
            if found is not None:
                chosen[found] = False
    for at in past:
        if len(chosen) >= counts.at_least:
            break
        chosen.setdefault(at, False)
    for at in sorted(chosen):
        attribute(account, eligible[at], rng, chosen[at], sources, touches)


def _resource(attribution, base_url):
    relationships = {name: {"data": {"type": kind, "id": attribution[name]}}
                     for name, kind in RELATIONS if attribution.get(name) is not None}
    return {"type": "attribution", "id": attribution["id"], "relationships": relationships,
            "links": {"self": f"{base_url}/api/attributions/{attribution['id']}/"}}


def serve(account, events, data, included, base_url):
    """include=attributions of one /api/events page: each event's JSON (data, in the order of
    events) names its attributions, which are appended to `included`."""
    found = _all(account)
    marker = b',"relationships":{'
    for at, event in enumerate(events):
        mine = found.get(event.id, ())
        piece = data[at]
        cut = piece.rfind(marker) + len(marker)
        named = fragments.encode({"data": [{"type": "attribution", "id": a["id"]} for a in mine]})
        data[at] = piece[:cut] + b'"attributions":' + named + b"," + piece[cut:]
        for attribution in mine:
            if attribution["id"] not in getattr(account, "attributions_not_included", ()):   # a test's anomaly
                included.append(fragments.encode(_resource(attribution, base_url)))


def rows(account, held=False):
    """The event_attributions rows the account serves (and holds, when held), as the tap writes them."""
    out = []
    served = {e.id for events in account.events.values() for e in events}
    if held:
        served |= {e.id for e in account.held_events()}
    for event_id, made in _all(account).items():
        if event_id not in served:
            continue        # held (not shown yet)
        for attribution in made:
            row = {"id": attribution["id"]}
            row.update((COLUMNS[name], attribution.get(name)) for name, _ in RELATIONS)
            out.append(row)
    return out


def dump(account):
    with account.lock:
        return {"event_attributions": rows(account)}


def admin(account, path, payload):
    """POST /__sandbox/attributions/add {"event_ids": [...], "second": false}: attributions of those
    events (served or held), as populate() makes them; answers (status, {"attributions": [their
    rows, once their events are served]})."""
    if path != "/__sandbox/attributions/add":
        return None
    served = {e.id: e for events in account.events.values() for e in events}
    served.update((e.id, e) for e in account.held_events())
    unknown = [i for i in payload.get("event_ids", ()) if i not in served]
    if unknown:
        return 404, {"error": f"no event {unknown[0]}"}
    rng = random.Random(f"events:attributions:admin:{account.anchor}:{len(_all(account))}")
    made = []
    for event_id in payload.get("event_ids", ()):
        made += attribute(account, served[event_id], rng, bool(payload.get("second")))
    ids = {a["id"] for a in made}
    return 200, {"attributions": [row for row in rows(account, held=True) if row["id"] in ids]}
