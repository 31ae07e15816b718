"""Klaviyo beyond the classic tables: campaigns and their messages, flows with their actions and
messages, templates, tags, list and segment members, other integrations' events, the profile
attributes the classic tables never read, and the endpoints that serve them.

Shapes follow the published spec, revision 2026-07-15, which 2026-10-15 keeps for everything
but campaigns; flow actions and flow messages are also served in their shapes before 2025-10-15,
which were different resources. From 2026-10-15 campaigns are omnichannel (campaigns -> audiences
-> messages -> variations, in the shapes of the 2026-07-15.pre beta spec that 2026-10-15 made GA):
that view is derived from the same campaigns and messages (same ids) and served beside the older
one, each under its own revisions.
Everything here is drawn from its own random stream after data.generate() has built the classic
account, so the classic data stays exactly what it was; classic values are never changed, only
keys the classic account lacked are added.

Tests change the account through admin calls (admin_post): delete an item with its children,
touch one (its `updated` moves, its parent's does not, as at Klaviyo), add or remove members, lift
suppressions. Every change is served at once: the memoized sorted orders are per version.
"""
import bisect
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import data as sandbox_data
from . import server as api
from . import catalog     # issue 22: coupons, catalog, reviews (its own module, hooked in below)

iso = sandbox_data.iso


def _forms():
    from . import forms     # Issue 22: forms (tests/sandbox/forms.py imports this module)
    return forms


DAY = 86400
YEAR = sandbox_data.YEAR
WOOCOMMERCE = {"id": "Wc7pQ3", "name": "WooCommerce", "category": "eCommerce"}

# metric name, integration, share of the extra events; "Placed Order" again under another
# integration: metric names are not unique, the (name, integration) pair is
EXTRA_METRICS = (
    ("Ordered Product", sandbox_data.SHOPIFY, 5),
    ("Started Checkout", sandbox_data.SHOPIFY, 4),
    ("Fulfilled Order", sandbox_data.SHOPIFY, 2),
    ("Placed Order", WOOCOMMERCE, 2),
    ("Sent SMS", sandbox_data.KLAVIYO, 3),
    ("Clicked SMS", sandbox_data.KLAVIYO, 2),
    ("Received Push", sandbox_data.KLAVIYO, 2),
    ("Opened Push", sandbox_data.KLAVIYO, 1),
)
CHANNELS = ("email", "sms", "mobile_push")
CAMPAIGNS_PER_CHANNEL = {"email": 14, "sms": 8, "mobile_push": 5}
TEMPLATES = 23
TAG_GROUPS = (("Default", False, True), ("Season", True, False), ("Audience", False, False))
TAGS = (("Black Friday", 1), ("Holiday", 1), ("Spring", 1), ("Summer", 1), ("VIP", 2), ("Winback", 2),
        ("New customers", 2), ("Newsletter", 0), ("Welcome", 0), ("Abandoned cart", 0), ("Loyalty", 0), ("Test", 0))
# name, trigger_type, status, archived, the chain of action types
FLOWS = (
    ("Welcome Series", "Added to List", "live", False,
     ("send-email", "time-delay", "send-email", "conditional-split", "send-sms", "send-email")),
    ("Abandoned Cart", "Metric", "live", False,
     ("time-delay", "send-email", "time-delay", "send-mobile-push", "send-email")),
    ("Browse Abandonment", "Metric", "manual", False, ("time-delay", "send-email", "update-profile")),
    ("Post-Purchase Thank You", "Metric", "live", False, ("time-delay", "send-email", "send-webhook", "send-sms")),
    ("Winback", "Metric", "draft", True, ("send-email", "time-delay", "conditional-split", "send-email")),
    ("Happy Birthday", "Date Based", "live", False, ("send-email",)),
    ("Low Inventory Alert", "Low Inventory", "manual", False, ("send-email", "send-mobile-push")),
    ("Price Drop", "Price Drop", "live", False, ("send-sms", "time-delay", "send-email")),
    ("Untitled flow", None, "draft", False, ()),          # never configured: no trigger, no actions
)
MESSAGE_CHANNEL = {"send-email": "email", "send-sms": "sms", "send-mobile-push": "push", "send-webhook": "webhook"}
TOPICS = ("Spring sale", "Summer drop", "Black Friday", "Holiday gift guide", "New arrivals", "Last chance",
          "Grüße aus Köln 🎉", "VIP early access", "Back in stock", "We miss you")
TYPE_PATHS = {"campaign": "campaigns", "campaign-message": "campaign-messages",
              "campaign-audience": "campaign-audiences", "campaign-variation": "campaign-variations", "flow": "flows",
              "flow-action": "flow-actions", "flow-message": "flow-messages", "template": "templates",
              "tag": "tags", "tag-group": "tag-groups", "profile": "profiles", "list": "lists", "segment": "segments"}
COMPARE = frozenset({"greater-than", "greater-or-equal", "less-than", "less-or-equal"})
TIME_OPS = COMPARE | {"equals"}
NAME_OPS = frozenset({"contains", "ends-with", "equals", "starts-with"})
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LAST_STRING = "\U0010ffff"


# From this revision campaigns are omnichannel (Klaviyo's 2026-10-15 made the beta API GA).
OMNICHANNEL = "2026-10-15"
# the omnichannel message's status, from its campaign's status before 2026-10-15
MESSAGE_STATUS = {"Sent": "sent", "Variations Sent": "sent", "Draft": "draft", "Scheduled": "scheduled",
                  "Cancelled": "cancelled", "Sending": "sending"}
# the message's send_strategy (the beta spec's enum), from its campaign's send_strategy.method
MESSAGE_STRATEGY = {"static": "static", "throttled": "throttled", "smart_send_time": "send_time_optimization",
                    "ab_test_campaign": "content_variation", "immediate": None}
VARIATION_CHANNEL = {"email": "email", "sms": "sms", "mobile_push": "push"}
DESCRIPTIONS = ("Quarterly promotion", "Re-engagement push for lapsed buyers", "Ops: send after the stock sync")


@dataclass
class Omnichannel:
    """The campaigns as served from 2026-10-15: the same campaigns and messages (same ids) in the
    omnichannel shape, with the audiences and variations that shape adds."""
    campaigns: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    variations: list = field(default_factory=list)
    audiences: list = field(default_factory=list)
    index: dict = field(default_factory=dict)           # type -> id -> resource

    def reindex(self):
        self.index = {}
        for items in (self.campaigns, self.messages, self.variations, self.audiences):
            for item in items:
                self.index.setdefault(item["type"], {})[item["id"]] = item

    def get(self, kind, item_id):
        return self.index.get(kind, {}).get(item_id)


@dataclass
class Entities:
    campaigns: list = field(default_factory=list)
    campaign_messages: list = field(default_factory=list)
    flows: list = field(default_factory=list)
    flow_actions: list = field(default_factory=list)
    flow_messages: list = field(default_factory=list)
    templates: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    tag_groups: list = field(default_factory=list)
    members: dict = field(default_factory=lambda: {"list": {}, "segment": {}})   # kind -> group -> {profile: epoch}
    predictive: dict = field(default_factory=dict)      # profile id -> predictive_analytics (or None)
    channel: dict = field(default_factory=dict)         # campaign id -> its messages' channel
    index: dict = field(default_factory=dict)           # type -> id -> resource
    omni: Omnichannel = field(default_factory=Omnichannel)
    # bumped after each admin change: "entities" for campaigns, flows, templates, tags, lists and
    # segments (their listings' sorted orders are memoized per version), "members", "profiles"
    versions: dict = field(default_factory=lambda: {"profiles": 0, "members": 0, "entities": 0})
    cache: dict = field(default_factory=dict)
    # name -> {id: rank}: a collection's own order, fixed the first time it is served, so a cursor
    # into it stays right after items before it are deleted
    ranks: dict = field(default_factory=dict)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)

    def reindex(self):
        self.index = {}
        for items in (self.campaigns, self.campaign_messages, self.flows, self.flow_actions, self.flow_messages,
                      self.templates, self.tags, self.tag_groups):
            for item in items:
                self.index.setdefault(item["type"], {})[item["id"]] = item
        self.omni.reindex()

    def get(self, kind, item_id):
        return self.index.get(kind, {}).get(item_id)


def of(account):
    """The account's entities; an account built without populate() (the benchmark's) has none."""
    entities = getattr(account, "entities", None)
    if entities is None:
        entities = account.entities = Entities()
    return entities


# --- generation ---------------------------------------------------------------------------------
class _Ids:
    def __init__(self, rng, taken=()):
        self.rng, self.taken = rng, set(taken)

    def _fresh(self, make):
        while True:
            value = make()
            if value not in self.taken:
                self.taken.add(value)
                return value

    def short(self):
        return self._fresh(lambda: "".join(self.rng.choice(_ALNUM) for _ in range(6)))

    def ulid(self):
        return self._fresh(lambda: "01" + "".join(self.rng.choice(_CROCKFORD) for _ in range(24)))

    def digits(self):
        return self._fresh(lambda: str(self.rng.randrange(10 ** 7, 10 ** 8)))

    def uuid(self):
        return self._fresh(lambda: str(uuid.UUID(int=self.rng.getrandbits(128))))

    def hex(self):
        return self._fresh(lambda: format(self.rng.getrandbits(128), "032x"))


def _epoch(text):
    if text is None:
        return None
    try:        # fromisoformat is ~30 times faster than strptime: sort keys for a million profiles
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return api._parse_z(text)


def _one(kind, item_id):
    return {"data": {"type": kind, "id": item_id}}


@dataclass
class Scale:
    """populate() at another size (shapes.resources): totals of each kind, every created and updated
    time within `span` before the anchor (never after it), about `members` members per list and
    segment drawn from the account's profiles. The tags are at least the fixed generator's 12; the
    flows begin with its 9 (28 actions), the rest of flow_actions spread over the flows added."""
    campaigns: int = 400
    flows: int = 40
    flow_actions: int = 600
    templates: int = 60
    tags: int = 30
    members: int = 20000
    span: int = YEAR
    # issue 22's areas at another size: each its own module's counts (None: the test account's)
    catalog: object = None          # catalog.Counts
    marketing: object = None        # marketing.Counts
    forms: object = None            # forms.FormCounts
    textmessages: object = None     # textmessages.Counts
    attributions: object = None     # attributions.Counts

    def per_channel(self):
        """The campaigns split over the channels as CAMPAIGNS_PER_CHANNEL splits them."""
        whole = sum(CAMPAIGNS_PER_CHANNEL.values())
        counts = {channel: round(self.campaigns * n / whole) for channel, n in CAMPAIGNS_PER_CHANNEL.items()}
        counts[CHANNELS[-1]] = max(0, self.campaigns - sum(counts[c] for c in CHANNELS[:-1]))
        return counts

    def flow_specs(self, rng):
        """FLOWS, then more flows after their patterns (name, trigger, status) with chains of random
        action types whose lengths add up to flow_actions in all."""
        specs = list(FLOWS[:self.flows])
        more = self.flows - len(specs)
        left = max(0, self.flow_actions - sum(len(chain) for *_, chain in specs))
        if more <= 0:
            return specs
        weights = [rng.uniform(0.3, 1.7) for _ in range(more)]
        lengths = [int(left * w / sum(weights)) for w in weights]
        for _ in range(left - sum(lengths)):
            lengths[rng.randrange(more)] += 1
        patterns = [f for f in FLOWS if f[4]]       # the configured ones
        kinds, kind_weights = zip(*SCALED_ACTION_TYPES)
        for k, length in enumerate(lengths):
            name, trigger, status, archived, _ = patterns[k % len(patterns)]
            archived = archived or k % 10 == 9
            specs.append((f"{name} {k // len(patterns) + 2}", trigger, "draft" if archived else status, archived,
                          tuple(rng.choices(kinds, kind_weights, k=length))))
        return specs


# the action types of Scale's added flows, weighted
SCALED_ACTION_TYPES = (("send-email", 8), ("time-delay", 6), ("send-sms", 2), ("conditional-split", 2),
                       ("send-mobile-push", 1), ("update-profile", 1), ("send-webhook", 1))


def populate(account, rng, scale=None):
    """Add the entities to a generated account, drawing only from `rng`; at the fixed small size,
    or at `scale` (a Scale)."""
    entities = of(account)
    ids = _Ids(rng, [m["id"] for m in account.metrics])
    span = 2 * YEAR if scale is None else scale.span
    _enrich_profiles(account, entities, rng)
    _tags(entities, rng, ids, 0 if scale is None else max(0, scale.tags - len(TAGS)))
    _templates(account, entities, rng, ids, TEMPLATES if scale is None else scale.templates, span)
    _campaigns(account, entities, rng, ids, CAMPAIGNS_PER_CHANNEL if scale is None else scale.per_channel(), span,
               past=scale is not None)
    _flows(account, entities, rng, ids, FLOWS if scale is None else scale.flow_specs(rng), span)
    _members(account, entities, rng, None if scale is None else scale.members)
    _tag_everything(account, entities, rng)
    _extra_events(account, entities, rng, ids)
    _omnichannel(account, entities, ids)
    entities.reindex()
    catalog.populate(account, getattr(scale, "catalog", None))     # a Scale may carry a catalog.Counts
    marketing.populate(account, getattr(scale, "marketing", None))     # issue 22: its own Random
    from . import attributions, textmessages    # issue 22 (events): own random streams, after all the rest
    textmessages.populate(account, getattr(scale, "textmessages", None))
    attributions.populate(account, getattr(scale, "attributions", None))
    _forms().populate(account, getattr(scale, "forms", None))     # Issue 22: forms (a forms.FormCounts)


def _enrich_profiles(account, entities, rng):
    list_ids = [g["id"] for g in account.lists]
    for number, (pid, profile) in enumerate(account.profiles.items()):
        a = profile["attributes"]
        created = _epoch(a["created"])
        a["locale"] = rng.choice(("en-US", "de-CH", "fr-FR", "en-GB", None))
        marketing = a["subscriptions"]["email"]["marketing"]
        consented = created + rng.randrange(30 * DAY)
        marketing.update({
            "consent_timestamp": iso(consented), "last_updated": iso(consented + rng.randrange(90 * DAY)),
            "method": rng.choice(("PREBUILT_FORM", "API", "IMPORT")),
            "method_detail": rng.choice(("Footer form", None)),
            "custom_method_detail": None, "double_optin": rng.choice((True, False, None)),
            "list_suppressions": [] if number % 17 != 5 or not list_ids else [
                {"list_id": rng.choice(list_ids), "reason": rng.choice(("USER_SUPPRESSED", "UNSUBSCRIBE")),
                 "timestamp": iso(created + rng.randrange(1, 200) * DAY)}],
        })
        texts = number % 3 == 0
        a["subscriptions"]["sms"] = {
            "marketing": {"can_receive_sms_marketing": texts, "consent": "SUBSCRIBED" if texts else "NEVER_SUBSCRIBED",
                          "consent_timestamp": iso(consented) if texts else None, "method": "TEXT" if texts else None,
                          "method_detail": "JOIN" if texts else None,
                          "last_updated": iso(consented) if texts else None},
            "transactional": None if number % 2 else {
                "can_receive_sms_transactional": texts, "consent": "SUBSCRIBED" if texts else "NEVER_SUBSCRIBED",
                "consent_timestamp": iso(consented) if texts else None, "method": None, "method_detail": None,
                "last_updated": None}}
        pushes = number % 5 == 0
        a["subscriptions"]["mobile_push"] = {"marketing": {
            "can_receive_push_marketing": pushes, "consent": "SUBSCRIBED" if pushes else "NEVER_SUBSCRIBED",
            "consent_timestamp": iso(consented) if pushes else None}}
        if number % 4 == 0:
            entities.predictive[pid] = None      # too little history for a prediction
            continue
        historic = round(rng.uniform(0, 900), 2)
        predicted = round(rng.uniform(0, 400), 2)
        entities.predictive[pid] = {
            "historic_clv": historic, "predicted_clv": predicted, "total_clv": round(historic + predicted, 2),
            "historic_number_of_orders": rng.randrange(0, 12),
            "predicted_number_of_orders": round(rng.uniform(0, 4), 2),
            "average_days_between_orders": None if number % 3 == 1 else round(rng.uniform(10, 120), 1),
            "average_order_value": round(rng.uniform(15, 180), 2), "churn_probability": round(rng.random(), 3),
            "expected_date_of_next_order":
                None if number % 3 == 1 else iso(account.anchor + rng.randrange(1, 90) * DAY),
            "ranked_channel_affinity": None if number % 6 == 1 else rng.sample(["email", "sms", "push", "whatsapp"], 3),
        }


def _tags(entities, rng, ids, extra=0):
    for name, exclusive, default in TAG_GROUPS:
        entities.tag_groups.append({"type": "tag-group", "id": ids.uuid(),
                                    "attributes": {"name": name, "exclusive": exclusive, "default": default},
                                    "relationships": {"tags": {"data": []}}})
    for name, group in TAGS:
        _tags_add(entities, ids, name, group)
    # at scale: more tags, named after the topics, in the three groups by turns
    for n in range(extra):
        _tags_add(entities, ids, f"{TOPICS[n % len(TOPICS)]} {n // len(TOPICS) + 1}", n % len(TAG_GROUPS))


def _tags_add(entities, ids, name, group):
    tag_group = entities.tag_groups[group]
    tag = {"type": "tag", "id": ids.uuid(), "attributes": {"name": name},
           "relationships": {"tag-group": _one("tag-group", tag_group["id"]), "lists": {"data": []},
                             "segments": {"data": []}, "campaigns": {"data": []}, "flows": {"data": []}}}
    entities.tags.append(tag)
    tag_group["relationships"]["tags"]["data"].append({"type": "tag", "id": tag["id"]})


def _template_definition(template_id, name, rng):
    text_block = {"id": None, "data_id": None, "universal_id": None, "content_type": "block", "type": "text",
                  "data": {"content": f"<p>{name}</p>", "display_options": {"show_on": "all"},
                           "styles": {"color": "#222222", "font_size": rng.choice((14, 16)), "text_align": "left"}}}
    section = {"id": None, "data_id": None, "universal_id": None, "content_type": "section", "type": "section",
               "data": {"properties": {"is_ai_generated": False, "is_prebuilt_content": None},
                        "display_options": {"show_on": "all", "content_repeat": None, "visibility": None,
                                            "layout_type": None, "layout_config": None},
                        "styles": {"background_color": "#FFFFFF", "inner_padding_top": 12, "inner_padding_bottom": 12}},
               "rows": [{"id": None, "data_id": None, "data": {"styles": {"column_layout": "1-column-full-width"}},
                         "columns": [{"id": None, "data_id": None, "data": {}, "blocks": [text_block]}]}]}
    return {"id": None, "template_id": template_id,
            "body": {"id": None, "properties": {"id": None, "css_class": None},
                     "styles": {"background_color": "#F7F7F7", "width": 600}, "sections": [section]},
            "styles": [{"id": None, "style_type": "base-styles",
                        "properties": {"currency": "USD", "mobile_optimizations": True},
                        "styles": {"content_background_color": "#FFFFFF", "border_radius": 0}}]}


def _templates(account, entities, rng, ids, count=TEMPLATES, span=2 * YEAR):
    editors = ("SYSTEM_DRAGGABLE", "CODE", "USER_DRAGGABLE", "SIMPLE")
    for n in range(count):
        template_id = ids.short()
        created = account.anchor - span + rng.randrange(span - DAY)
        name = f"{rng.choice(TOPICS)} template {n}"
        editor = editors[n % len(editors)]
        attributes = {
            "name": name, "editor_type": editor,
            "html": f"<!DOCTYPE html><html><body><h1>{name}</h1>"
                    f"<p>Hi {{{{ first_name|default:'there' }}}}</p></body></html>",
            "text": None if n % 3 == 1 else f"{name}\n\nHi {{{{ first_name|default:'there' }}}}",
            "amp": f"<!doctype html><html ⚡4email><body>{name}</body></html>" if n % 7 == 0 else None,
            "created": iso(created),
            "updated": None if n % 9 == 4 else iso(created + rng.randrange(account.anchor - created)),
        }
        # the spec gives a definition to drag-and-drop templates and omits it for code ones
        if editor == "SYSTEM_DRAGGABLE":
            attributes["definition"] = _template_definition(template_id, name, rng)
        elif editor == "SIMPLE":
            attributes["definition"] = None
        entities.templates.append({"type": "template", "id": template_id, "attributes": attributes})


def _email_templates(entities):
    return [t["id"] for t in entities.templates if t["attributes"]["editor_type"] != "SIMPLE"]


def _campaign_message(channel, number, name, status, send_time, created, updated, ids, rng, template_ids):
    if channel == "email":
        definition = {"channel": "email", "label": None if number % 4 == 3 else f"{name} (message)", "content": {
            "subject": name, "preview_text": None if number % 3 == 2 else f"Inside: {name.lower()}",
            "from_email": "news@shop.example", "from_label": "Shop", "reply_to_email":
            "help@shop.example" if number % 2 else None, "cc_email": None, "bcc_email": None}}
    elif channel == "sms":
        definition = {"channel": "sms", "content": {
            "body": f"{name}: 20% off today only {{{{ organization.url }}}}",
            "media_url": "https://cdn.shop.example/mms/banner.png" if number % 3 == 0 else None},
            "render_options": {"shorten_links": True, "add_org_prefix": True, "add_info_link": number % 2 == 0,
                               "add_opt_out_language": number % 3 != 0}}
    elif number % 4 == 3:
        definition = {"channel": "mobile_push", "notification_type": "silent", "kv_pairs": {"refresh": "inbox"}}
    else:
        definition = {"channel": "mobile_push", "notification_type": "standard", "content": {
            "title": name, "body": "Tap to see what is new", "dynamic_image": None,
            "action_buttons": None if number % 2 else [
                {"label": "Shop now", "action_type": "open_url", "position": 0, "url": "https://shop.example/sale"}]},
            "kv_pairs": None if number % 2 else {"screen": "sale"},
            "options": {"on_open": {"type": "deep_link", "ios_deep_link": "shop://sale",
                                    "android_deep_link": "shop://sale"} if number % 2 == 0 else {"type": "open_app"},
                        "badge": {"display": True, "badge_options": {"badge_config": "increment_one"}}
                        if number % 3 == 0 else None,
                        "play_sound": number % 2 == 0}}
    if status == "Draft" and channel == "email" and number == 4:
        definition = None           # a draft whose content was never started
    send_times = None if send_time is None else [{"datetime": iso(send_time), "is_local": False}]
    if status == "Cancelled":
        send_times = []
    template = rng.choice(template_ids) if channel == "email" and template_ids else None
    return {"type": "campaign-message", "id": ids.ulid(), "attributes": {
        "definition": definition, "send_times": send_times, "created_at": iso(created),
        "updated_at": None if number % 6 == 5 else iso(updated)},
        "relationships": {"campaign": None, "template": _one("template", template) if template else {"data": None},
                          "image": {"data": None}}}


def _campaigns(account, entities, rng, ids, per_channel=CAMPAIGNS_PER_CHANNEL, span=2 * YEAR, past=False):
    """past: nothing created, scheduled or updated after the anchor (a scheduled campaign was
    scheduled in the hours before it; only its send time is ahead)."""
    anchor = account.anchor
    audience = [g["id"] for g in account.lists + account.segments]
    template_ids = _email_templates(entities)
    statuses = ("Sent", "Sent", "Variations Sent", "Sent", "Draft", "Scheduled", "Cancelled", "Sent", "Sending")
    for channel in CHANNELS:
        for number in range(per_channel[channel]):
            status = statuses[number % len(statuses)]
            if status == "Variations Sent" and channel != "email":
                status = "Sent"
            created = anchor - span + rng.randrange(span - 30 * DAY)
            if status == "Scheduled":
                send_time = anchor + rng.randrange(1, 20) * DAY + 9 * 3600
            elif status in ("Draft", "Cancelled"):
                send_time = None
            elif status == "Sending":
                send_time = anchor - 600
            else:
                send_time = created + rng.randrange(DAY, 20 * DAY)
            scheduled = None if status == "Draft" else (send_time or created + 5 * DAY) - rng.randrange(3600, 3 * DAY)
            if past and scheduled is not None and scheduled > anchor - 3600:
                scheduled = anchor - rng.randrange(3600, 3 * DAY)
            updated = max(created, scheduled or created) + rng.randrange(3600)
            name = f"{rng.choice(TOPICS)} – {channel} {number}"
            if send_time is None or status == "Draft":
                strategy = {"method": "immediate"} if status == "Draft" else {
                    "method": "static", "datetime": iso(scheduled + 5 * DAY), "options": None}
            elif status == "Variations Sent":
                strategy = {"method": "ab_test_campaign"}
            elif number % 5 == 1:
                strategy = {"method": "throttled", "datetime": iso(send_time), "throttle_percentage": 20}
            elif number % 5 == 3:
                strategy = {"method": "smart_send_time", "date": time.strftime("%Y-%m-%d", time.gmtime(send_time))}
            else:
                strategy = {"method": "static", "datetime": iso(send_time), "options": {
                    "is_local": True, "send_past_recipients_immediately": False} if number % 4 == 2 else None}
            if channel == "email":
                tracking = {"add_tracking_params": number % 2 == 0, "custom_tracking_params": None if number % 2 else [
                    {"type": "dynamic", "value": "campaign_name", "name": "utm_campaign"},
                    {"type": "static", "value": "klaviyo", "name": "utm_source"}],
                    "is_tracking_clicks": True, "is_tracking_opens": number % 3 != 1}
            elif channel == "sms":
                tracking = {"add_tracking_params": number % 2 == 1, "custom_tracking_params": None}
            else:
                tracking = None
            included = rng.sample(audience, min(len(audience), 1 + number % 2))
            others = [g for g in audience if g not in included] or audience
            excluded = None if number % 3 == 1 else \
                [] if number % 3 == 0 or len(audience) < 2 else [rng.choice(others)]
            campaign = {"type": "campaign", "id": ids.ulid(), "attributes": {
                "name": name, "status": status, "archived": status == "Sent" and number % 5 == 0,
                "audiences": {"included": included, "excluded": excluded},
                "send_options": {"use_smart_sending": None if number % 7 == 6 else number % 2 == 0},
                "tracking_options": tracking, "send_strategy": strategy, "created_at": iso(created),
                "scheduled_at": None if scheduled is None else iso(scheduled), "updated_at": iso(updated),
                "send_time": None if send_time is None else iso(send_time)},
                "relationships": {"campaign-messages": {"data": []}, "tags": {"data": []}}}
            entities.channel[campaign["id"]] = channel
            for variation in range(2 if status == "Variations Sent" else 1):
                message = _campaign_message(channel, number + variation, name, status, send_time, created, updated,
                                            ids, rng, template_ids)
                message["relationships"]["campaign"] = _one("campaign", campaign["id"])
                entities.campaign_messages.append(message)
                campaign["relationships"]["campaign-messages"]["data"].append(
                    {"type": "campaign-message", "id": message["id"]})
            entities.campaigns.append(campaign)


def _flow_message_definition(kind, number, flow_name, message_id, rng, template_ids):
    label = f"{flow_name} {MESSAGE_CHANNEL[kind]} #{number + 1}"
    if kind == "send-email":
        return {"from_email": "hello@shop.example", "from_label": "Shop", "reply_to_email": None, "cc_email": None,
                "bcc_email": None, "subject_line": f"{flow_name}: {rng.choice(TOPICS)}",
                "preview_text": None if number % 2 else "A note for you",
                "template_id": rng.choice(template_ids) if template_ids else None, "smart_sending_enabled": True,
                "transactional": False, "add_tracking_params": number % 2 == 0,
                "custom_tracking_params": [{"param": "utm_source", "value": "klaviyo"}] if number % 2 == 0 else None,
                "additional_filters": None, "name": label, "id": message_id}
    if kind == "send-sms":
        return {"body": f"{flow_name}: see you soon {{{{ organization.url }}}}", "image_id": None,
                "dynamic_image": None, "message_hierarchy": None, "shorten_links": True,
                "include_contact_card": False, "add_org_prefix": True, "add_info_link": True, "add_opt_out_language": number % 2 == 0, "smart_sending_enabled": True,
                "sms_quiet_hours_enabled": True, "transactional": False, "add_tracking_params": False,
                "custom_tracking_params": None, "template_id": None, "additional_filters": None, "name": label,
                "id": message_id}
    if kind == "send-mobile-push":
        return {"title": flow_name, "body": "Something you liked is waiting", "sound": True, "badge": number % 2 == 0,
                "badge_options": {"badge_config": "increment_one"}, "image_id": None, "dynamic_image": None,
                "video_asset_id": None, "on_open": "home", "ios_link": None, "android_link": None, "web_url": None,
                "push_type": "standard", "kv_pairs": None, "conversion_metric_id": None, "smart_sending_enabled": True,
                "additional_filters": None, "action_buttons": None, "name": label, "id": message_id}
    return {"url": "https://hooks.shop.example/klaviyo", "headers": {"X-Source": "klaviyo"},
            "body": '{"profile": "{{ person.KlaviyoID }}"}', "name": label, "id": message_id}


def _action_data(kind, status, number, rng):
    if kind == "time-delay":
        return {"unit": rng.choice(("days", "hours")), "value": rng.randrange(1, 5), "secondary_value": None,
                "timezone": "profile", "delay_until_time": "09:00:00" if number % 2 else None,
                "delay_until_weekdays":
                    ["monday", "tuesday", "wednesday", "thursday", "friday"] if number % 3 == 0 else None}
    if kind == "conditional-split":
        return {"profile_filter": {"condition_groups": [{"conditions": [{
            "type": "profile-property", "property": "properties['Plan']",
            "filter": {"type": "string", "operator": "equals", "value": "pro"}}]}]}}
    if kind == "update-profile":
        return {"profile_operations": [{"operator": "update", "property_type": "string", "property_key": "Lifecycle",
                                        "property_value": "browsed"}], "status": status}
    return {"message": None, "status": status}


def _flows(account, entities, rng, ids, specs=FLOWS, span=2 * YEAR):
    anchor = account.anchor
    template_ids = _email_templates(entities)
    for name, trigger, status, archived, chain in specs:
        created = anchor - span + rng.randrange(span // 2)
        flow = {"type": "flow", "id": ids.short(), "attributes": {
            "name": name, "status": status, "archived": archived, "created": iso(created),
            "updated": iso(created + rng.randrange(span // 2)), "trigger_type": trigger},
            "relationships": {"flow-actions": {"data": []}, "tags": {"data": []}}}
        entities.flows.append(flow)
        action_ids = [ids.digits() for _ in chain]
        sent = 0
        for position, (kind, action_id) in enumerate(zip(chain, action_ids)):
            following = action_ids[position + 1] if position + 1 < len(action_ids) else None
            action_status = "disabled" if (name, position) == ("Abandoned Cart", 3) else status
            action_created = created + 60 * (position + 1)
            action_updated = action_created + rng.randrange(min(180 * DAY, span // 2 - DAY))
            data = _action_data(kind, action_status, position, rng)
            links = {"next_if_true": following, "next_if_false": None} if kind == "conditional-split" \
                else {"next": following}
            action = {"type": "flow-action", "id": action_id, "attributes": {
                "created": iso(action_created), "updated": iso(action_updated),
                "definition": {"id": action_id, "temporary_id": None, "type": kind, "links": links, "data": data}},
                "relationships": {"flow": _one("flow", flow["id"]), "flow-messages": {"data": []}}}
            if kind in MESSAGE_CHANNEL:
                message_id = ids.short()
                definition = _flow_message_definition(kind, sent, name, message_id, rng, template_ids)
                sent += 1
                data["message"] = definition
                template = definition.get("template_id")
                entities.flow_messages.append({"type": "flow-message", "id": message_id, "attributes": {
                    "channel": MESSAGE_CHANNEL[kind], "created": iso(action_created),
                    "updated": iso(action_updated), "definition": definition},
                    "relationships": {"flow-action": _one("flow-action", action_id),
                                      "template": _one("template", template) if template else {"data": None}}})
                action["relationships"]["flow-messages"]["data"].append({"type": "flow-message", "id": message_id})
            entities.flow_actions.append(action)
            flow["relationships"]["flow-actions"]["data"].append({"type": "flow-action", "id": action_id})


def _members(account, entities, rng, size=None):
    """Members of each list and segment: a share of the profiles, or about `size` of them."""
    anchor = account.anchor
    profiles = list(account.profiles.values())
    for kind, groups in (("list", account.lists), ("segment", account.segments)):
        for number, group in enumerate(groups):
            share = 0.0 if kind == "list" and number == 2 else 0.25 + 0.1 * (number % 4)   # the third list is empty
            if size is not None:
                share = min(1.0, size / max(1, len(profiles)))
            imported = anchor - rng.randrange(30 * DAY, YEAR)     # a bulk import: many join in the same second
            members = {}
            for profile in profiles:
                if rng.random() >= share:
                    continue
                created = _epoch(profile["attributes"]["created"])
                if kind == "list" and len(members) % 6 == 0 and imported > created:
                    members[profile["id"]] = imported
                else:
                    members[profile["id"]] = created + rng.randrange(max(1, anchor - 3600 - created))
            entities.members[kind][group["id"]] = members
            group["attributes"]["profile_count"] = len(members)     # as an account's: its members, counted


def _tag_everything(account, entities, rng):
    season_group = entities.tag_groups[1]["id"]
    season = {t["id"] for t in entities.tags if t["relationships"]["tag-group"]["data"]["id"] == season_group}
    tags = {t["id"]: t for t in entities.tags}

    def tag(resource_type, resource_id, relationships=None):
        chosen = rng.sample(sorted(tags), rng.choice((0, 1, 1, 2)))
        if len(season.intersection(chosen)) > 1:     # an exclusive group: one of its tags at most
            chosen = chosen[:1]
        for tag_id in chosen:
            tags[tag_id]["relationships"][TYPE_PATHS[resource_type]]["data"].append(
                {"type": resource_type, "id": resource_id})
            if relationships is not None:
                relationships["tags"]["data"].append({"type": "tag", "id": tag_id})

    for campaign in entities.campaigns:
        tag("campaign", campaign["id"], campaign["relationships"])
    for flow in entities.flows:
        tag("flow", flow["id"], flow["relationships"])
    for group in account.lists:
        tag("list", group["id"])
    for group in account.segments:
        tag("segment", group["id"])


def _extra_events(account, entities, rng, ids):
    anchor = account.anchor
    existing = sum(len(v) for v in account.events.values())
    profile_ids = list(account.profiles)
    messages = {channel: [m["id"] for m in entities.campaign_messages if entities.channel[m["relationships"]["campaign"]
                                                                                        ["data"]["id"]] == channel]
                for channel in CHANNELS}
    metrics = []
    for number, (name, integration, _) in enumerate(EXTRA_METRICS):
        metric = {"type": "metric", "id": ids.short(), "attributes": {
            "name": name, "created": sandbox_data.metric_time(anchor - 2 * YEAR + number),
            "updated": sandbox_data.metric_time(anchor - YEAR // 2),
            "integration": {"object": "integration", **integration}}}
        account.metrics.append(metric)
        metrics.append(metric)
    weights = [w for _, _, w in EXTRA_METRICS]
    for n in range(max(40, existing // 8)):
        number = rng.choices(range(len(EXTRA_METRICS)), weights)[0]
        name, integration, _ = EXTRA_METRICS[number]
        anonymous = name == "Started Checkout" and n % 5 == 0    # a checkout before the shopper was known
        event_id = "".join(rng.choice(_ALNUM) for _ in range(6)) + format(0xE000000 + n, "07x")
        account.add_event(sandbox_data.Event(
            anchor - 3600 - rng.randrange(YEAR - 3600), event_id, str(uuid.UUID(int=rng.getrandbits(128))),
            None if anonymous else rng.choice(profile_ids), metrics[number]["id"],
            _event_properties(name, n, rng, messages)))


def _omnichannel(account, entities, ids):
    """The 2026-10-15 view of the campaigns, derived from them (tags included, so after
    _tag_everything). Its own random stream, seeded by the campaigns' ids: nothing drawn here
    changes any other data."""
    rng = random.Random("omnichannel:" + ",".join(c["id"] for c in entities.campaigns))
    ids = _Ids(rng, ids.taken)
    omni = entities.omni
    metric_ids = [m["id"] for m in account.metrics if m["attributes"]["name"] in ("Placed Order", "Ordered Product")]
    groups = [g["id"] for g in account.lists + account.segments]
    messages = {m["id"]: m for m in entities.campaign_messages}
    # a few campaigns send to two audiences (priority 0, then 1): the two-message ones and two more
    single = [c["id"] for c in entities.campaigns if len(c["relationships"]["campaign-messages"]["data"]) == 1]
    two_audiences = {c["id"] for c in entities.campaigns if len(c["relationships"]["campaign-messages"]["data"]) > 1}
    two_audiences.update(rng.sample(single, min(2, len(single))))
    for campaign in entities.campaigns:
        a = campaign["attributes"]
        channel = entities.channel[campaign["id"]]
        strategy = a["send_strategy"]
        options = strategy.get("options") or {}
        local = bool(options.get("is_local"))
        exit_enabled = rng.random() < 0.2
        created, updated = a["created_at"], a["updated_at"] or a["created_at"]
        omni_campaign = {"type": "campaign", "id": campaign["id"], "attributes": {
            "created_at": a["created_at"], "updated_at": a["updated_at"], "definition": {
                "name": a["name"], "archived": a["archived"],
                "builder": "drag_and_drop" if channel == "email" and rng.random() < 0.6 else "classic",
                "color": None if rng.random() < 0.5 else f"#{rng.randrange(0x1000000):06x}",
                "description": None if rng.random() < 0.6 else rng.choice(DESCRIPTIONS),
                "send_settings": {
                    "send_strategy": strategy["method"],
                    "send_timezone": None if local or a["status"] == "Draft" else "UTC",
                    "send_passed_rltz_immediately": options.get("send_past_recipients_immediately") if local else None,
                    "exit_condition_enabled": exit_enabled,
                    "exit_condition_conversion_metric_id":
                        rng.choice(metric_ids) if exit_enabled and metric_ids else None}}},
            "relationships": {"campaign-audiences": {"data": []},
                              "campaign-messages": {"data": [dict(r) for r in
                                                             campaign["relationships"]["campaign-messages"]["data"]]},
                              "tags": {"data": [dict(r) for r in campaign["relationships"]["tags"]["data"]]}}}
        audiences = []
        included, excluded = a["audiences"]["included"], a["audiences"]["excluded"]
        for priority in range(2 if campaign["id"] in two_audiences else 1):
            if priority == 0:
                name, chosen = f"{a['name']} audience", list(included)
            else:
                others = [g for g in groups if g not in included] or groups
                name, chosen = "Second wave", [rng.choice(others)]
            audience = {"type": "campaign-audience", "id": ids.hex(), "attributes": {
                "created": created, "updated": updated, "definition": {
                    "name": name, "included": chosen, "excluded": None if excluded is None else list(excluded),
                    "priority": priority}},
                "relationships": {"campaign": _one("campaign", campaign["id"]), "campaign-messages": {"data": []}}}
            audiences.append(audience)
            omni.audiences.append(audience)
            omni_campaign["relationships"]["campaign-audiences"]["data"].append(
                {"type": "campaign-audience", "id": audience["id"]})
        refs = campaign["relationships"]["campaign-messages"]["data"]
        for number, ref in enumerate(refs):
            audience = audiences[min(number, len(audiences) - 1)]
            message, variation = _omni_message(campaign, messages[ref["id"]], channel, len(refs), audience, rng, ids)
            omni.messages.append(message)
            audience["relationships"]["campaign-messages"]["data"].append({"type": "campaign-message", "id": ref["id"]})
            if variation is not None:
                omni.variations.append(variation)
        omni.campaigns.append(omni_campaign)


def _omni_message(campaign, old, channel, siblings, audience, rng, ids):
    """(message, its variation or None) for one message of the campaign."""
    a = campaign["attributes"]
    strategy = a["send_strategy"]
    local = bool((strategy.get("options") or {}).get("is_local"))
    content = old["attributes"]["definition"]
    name = (content or {}).get("label") or a["name"]
    created = old["attributes"]["created_at"]
    updated = old["attributes"]["updated_at"] or created
    send_strategy = MESSAGE_STRATEGY[strategy["method"]]
    if send_strategy == "static" and local:
        send_strategy = "local_timezone"
    variation = None if content is None else _omni_variation(old, channel, created, updated, rng, ids)
    tracking = a["tracking_options"] or {}
    throttled = strategy["method"] == "throttled"
    definition = {
        "name": name, "status": MESSAGE_STATUS[a["status"]],
        "send_options": {
            "send_time": a["send_time"],
            "send_times": {variation["id"]: a["send_time"]}
            if send_strategy == "send_time_optimization" and variation and a["send_time"] else None,
            "send_strategy": send_strategy, "recipient_percentage": 100 // siblings,
            "throttling_type": "throttle-for-campaigns" if throttled else "none",
            "throttle_unit": "hour" if throttled else None,
            "is_ignoring_unsubscribes": None if a["send_options"]["use_smart_sending"] is None else False},
        "tracking_options": {"is_add_utm": tracking.get("add_tracking_params"),
                             "is_tracking_clicks": tracking.get("is_tracking_clicks"),
                             "is_tracking_opens": tracking.get("is_tracking_opens")}}
    if strategy["method"] == "ab_test_campaign" or (channel == "email" and rng.random() < 0.15):
        definition["ab_test"] = {"winner_metric": rng.choice(("open_rate", "click_rate")),
                                 "winner_percentage": rng.choice((10, 20, 25, 50)),
                                 "winner_wait_hours": rng.choice((1, 4, 6, 24))}
    message = {"type": "campaign-message", "id": old["id"], "attributes": {
        "created": created, "updated": updated, "definition": definition},
        "relationships": {"campaign": _one("campaign", campaign["id"]),
                          "campaign-audience": _one("campaign-audience", audience["id"]),
                          "campaign-variations": {"data": [] if variation is None else
                                                  [{"type": "campaign-variation", "id": variation["id"]}]}}}
    return message, variation


def _omni_variation(old, channel, created, updated, rng, ids):
    """The message's content for its channel (the beta spec's Email/SMS/PushChannelDetails)."""
    d = old["attributes"]["definition"]
    if channel == "email":
        c = d["content"]
        template = old["relationships"]["template"]["data"]
        details = {"channel": "email", "template_id": template["id"] if template else None,
                   "from_label": c["from_label"] or "", "from_email": c["from_email"] or "",
                   "reply_to_email": c["reply_to_email"] or "", "cc_email": c["cc_email"] or "",
                   "bcc_email": c["bcc_email"] or "", "subject": c["subject"] or "",
                   "preview_text": c["preview_text"] or ""}
    elif channel == "sms":
        c, render_options = d["content"], d["render_options"]
        mms = c["media_url"] is not None
        details = {"channel": "sms", "template_id": None, "cost": 3.0 if mms else float(rng.choice((1, 1, 2))),
                   "mms_static_image_asset_id": rng.randrange(10 ** 6, 10 ** 7) if mms else None,
                   "shorten_links": render_options["shorten_links"], "include_contact_card": False,
                   "body": c["body"] or "", "add_org_prefix": render_options["add_org_prefix"],
                   "add_info_link": render_options["add_info_link"],
                   "add_opt_out_language": render_options["add_opt_out_language"],
                   "mms_dynamic_image_template": None, "text_message_type": "MMS" if mms else "SMS",
                   "message_hierarchy": None}
    else:
        c, options = d.get("content") or {}, d.get("options") or {}
        silent = d["notification_type"] == "silent"
        on_open = options.get("on_open") or {}
        badge = options.get("badge")
        details = {"channel": "push", "title": c.get("title") or "", "body": c.get("body") or "",
                   "badge": bool(badge and badge["display"]), "badge_config": "increment-one", "badge_value": "1",
                   "sound_file_name": "", "static_asset_id": None, "sound": bool(options.get("play_sound")),
                   "open_action": 1 if on_open.get("type") == "deep_link" else 0, "dynamic_media_template": "",
                   "kv_pairs": d.get("kv_pairs"), "push_type": "silent" if silent else "standard",
                   "ios_deep_link": on_open.get("ios_deep_link"), "android_deep_link": on_open.get("android_deep_link"),
                   "web_url": None, "content_available": True if silent else None,
                   "mutable_content": None if silent else False, "video_asset_id": None,
                   "action_buttons": None if not c.get("action_buttons") else [
                       {"label": b["label"], "action_type": b["action_type"], "url": b.get("url"), "icon": None,
                        "custom_action_id": None} for b in c["action_buttons"]]}
    return {"type": "campaign-variation", "id": ids.hex(), "attributes": {
        "created": created, "updated": updated,
        "definition": {"name": "Variation A", "details": details}},
        "relationships": {"campaign-message": _one("campaign-message", old["id"]), "translation": {"data": None},
                          "image": {"data": None}}}


def _event_properties(name, n, rng, messages):
    if name in ("Ordered Product", "Fulfilled Order", "Placed Order"):
        return {"$value": round(rng.uniform(5, 400), 2), "ProductName": rng.choice(("Rain jacket", "Tote", "Socks")),
                "SKU": f"SKU-{n % 41}", "Quantity": 1 + n % 3, "$event_id": f"{2000000 + n}"}
    if name == "Started Checkout":
        return {"$value": round(rng.uniform(5, 400), 2), "ItemNames": ["Rain jacket", "Socks"][: 1 + n % 2],
                "CheckoutURL": f"https://shop.example/checkouts/{n}", "$event_id": f"c{n}"}
    channel = "sms" if "SMS" in name else "mobile_push"
    props = {"Campaign Name": f"Campaign {n % 13}",
             "$message": rng.choice(messages[channel]) if messages[channel] else ""}
    if name == "Clicked SMS":
        props["URL"] = "https://shop.example/sale"
    if channel == "mobile_push":
        props["Push Platform"] = rng.choice(("ios", "android"))
    return props


# --- request parsing ----------------------------------------------------------------------------
_LIST_ITEM = re.compile(r"""\s*("[^"]*"|'[^']*'|[^,]+?)\s*(?:,|$)""")


def _bad(detail, parameter="filter"):
    return api.ApiFailure(400, "invalid", detail, parameter)


def _instant(raw):
    """A filter's datetime as epoch seconds: any ISO 8601 the spec's date-time allows (fractions,
    offsets; none means UTC), a float only when it falls between two seconds."""
    if raw[:1] in "\"'":
        raise _bad(f"Invalid filter provided: datetimes are not quoted ({raw})")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _bad(f"Invalid filter provided: {raw!r} is not a datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    seconds = moment.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


def _scalar(raw, kind):
    raw = raw.strip()
    if kind == "time":
        return _instant(raw)
    if kind == "bool":
        if raw not in ("true", "false"):
            raise _bad(f"Invalid filter provided: {raw} is not true or false")
        return raw == "true"
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    raise _bad(f"Invalid filter provided: {raw} must be a quoted string")


def _value(raw, kind, op):
    raw = raw.strip()
    listed = raw.startswith("[") and raw.endswith("]")
    if op == "any" and not listed:
        raise _bad(f"Invalid filter provided: any() takes a list, not {raw}")
    if not listed or op not in ("any", "equals"):       # equals takes a list where the spec says so
        return _scalar(raw, kind)
    return [_scalar(item, kind) for item in _LIST_ITEM.findall(raw[1:-1]) if item]


def _filters(query, spec, where):
    """[(name, getter, op, value)] of the query's filter; a field or operator the endpoint lacks is a 400."""
    chosen = []
    for op, name, raw in api.parse_filter(query["filter"]) if query.get("filter") else []:
        entry = spec.get(name)
        if entry is None or op not in entry[2]:
            raise _bad(f"Invalid filter provided: {op}({name}) is not supported on {where}")
        getter, kind, _ = entry
        chosen.append((name, getter, op, _value(raw, kind, op)))
    return chosen


def _test(op, actual, wanted):
    if isinstance(actual, tuple):           # a list attribute: any entry matching is enough
        return any(_test(op, a, wanted) for a in actual)
    if actual is None:
        return False
    if op == "any" or (op == "equals" and isinstance(wanted, list)):
        return actual in wanted
    if op == "equals":
        return actual == wanted
    if op == "contains":
        return wanted in actual
    if op == "starts-with":
        return actual.startswith(wanted)
    if op == "ends-with":
        return actual.endswith(wanted)
    if op == "greater-than":
        return actual > wanted
    if op == "greater-or-equal":
        return actual >= wanted
    if op == "less-than":
        return actual < wanted
    return actual <= wanted


def _unless_archived_asked(filters, getter):
    """Klaviyo's campaign and flow lists leave archived items out unless the filter names `archived`
    (Airbyte and Estuary read them in requests of their own for this): the filter the list applies."""
    if any(name == "archived" for name, _, _, _ in filters):
        return filters
    return [*filters, ("archived", getter, "equals", False)]


def _accepts(filters):
    return lambda item: all(_test(op, getter(item), wanted) for _, getter, op, wanted in filters)


def _fields(query, kind):
    raw = query.get(f"fields[{kind}]")
    return None if raw is None else [f for f in raw.split(",") if f]


def _includes(query, allowed):
    chosen = [i for i in (query.get("include") or "").split(",") if i]
    for name in chosen:
        if name not in allowed:
            raise _bad(f"Invalid include: {name}", "include")
    return set(chosen)


def _additional(query, kind):
    return set((query.get(f"additional-fields[{kind}]") or "").split(","))


def sparse(attributes, fields):
    """Sparse fieldsets, dotted paths (definition.content.subject) included."""
    if fields is None:
        return attributes
    whole, nested = set(), {}
    for path in fields:
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, []).append(rest)
        else:
            whole.add(head)
    out = {}
    for name, value in attributes.items():
        if name in whole or (name in nested and not isinstance(value, dict)):
            out[name] = value
        elif name in nested:
            out[name] = sparse(value, nested[name])
    return out


# --- paging -------------------------------------------------------------------------------------
def _attr(name):
    return lambda item: item["attributes"].get(name)


def _time(name):
    return lambda item: _epoch(item["attributes"].get(name))


def _item_id(item):
    return item["id"]


def _sort_key(value, item_id):
    # None first; the id breaks ties so the order, and so the cursor, is total
    return (0, 0, item_id) if value is None else (1, value, item_id)


def _rank(ranks):
    # an item first seen later (none is created yet) ranks after every other
    return lambda item: ranks.setdefault(item["id"], len(ranks))


def _ordered(entities, name, items, sort, getter, version):
    """The collection sorted ascending, with its keys; kept until the collection changes."""
    with entities.cache_lock:
        cached = entities.cache.get((name, sort))
        if cached and cached[0] == version:
            return cached[1], cached[2]
        if getter is None:
            getter = _rank(entities.ranks.setdefault(name, {}))
        pairs = sorted(((_sort_key(getter(item), item["id"]), item) for item in items), key=lambda pair: pair[0])
        keys, ordered = [k for k, _ in pairs], [i for _, i in pairs]
        entities.cache[(name, sort)] = (version, ordered, keys)
        return ordered, keys


def _decode_cursor(token):
    try:
        key = json.loads(api._uncursor(token))
        if not (isinstance(key, list) and len(key) == 3):
            raise ValueError(token)
    except ValueError:
        raise _bad("Invalid cursor provided", "page[cursor]") from None
    return tuple(key)


def _bounds(keys, filters, sort):
    """A range filter on the sorted field narrows the scan (profiles come by the million). A field
    holding many values (a profile's suppressions) is sorted by its latest and matched by any: only
    a lower bound may narrow it, as an earlier value can be under an upper bound the latest is not."""
    lo, hi = 0, len(keys)
    for name, getter, op, wanted in filters:
        if name != sort or op not in COMPARE or not isinstance(wanted, (int, float)):
            continue
        if getattr(getter, "many", False) and op in ("less-than", "less-or-equal"):
            continue
        if op == "greater-than":
            lo = max(lo, bisect.bisect_right(keys, (1, wanted, _LAST_STRING)))
        elif op == "greater-or-equal":
            lo = max(lo, bisect.bisect_left(keys, (1, wanted, "")))
        elif op == "less-than":
            hi = min(hi, bisect.bisect_left(keys, (1, wanted, "")))
        else:
            hi = min(hi, bisect.bisect_right(keys, (1, wanted, _LAST_STRING)))
    return lo, hi


def keyset_page(entities, name, items, query, size, sorts, filters, default=None, version=0):
    """One page and the next cursor; the cursor is the last key, so items added or changed meanwhile
    move in or out of later pages as they would at Klaviyo rather than shifting an offset.

    `version` is the collection's version read before `items`: an admin change bumps it after
    changing the account, so a memo never holds an older collection under a newer version."""
    sort = query.get("sort") or default
    descending = bool(sort) and sort.startswith("-")
    field_name = sort.lstrip("-") if sort else None
    if field_name is not None and field_name not in sorts:
        raise _bad(f"Invalid sort field: {sort}", "sort")
    getter = sorts[field_name] if field_name else None
    ordered, keys = _ordered(entities, name, items, field_name, getter, version)
    lo, hi = _bounds(keys, filters, field_name)
    accepts = _accepts(filters)
    after = _decode_cursor(query["page[cursor]"]) if query.get("page[cursor]") else None
    chosen, chosen_keys = [], []
    if descending:
        position = min(hi, bisect.bisect_left(keys, after) if after else hi) - 1
        step, stop = -1, lo - 1
    else:
        position = max(lo, bisect.bisect_right(keys, after) if after else lo)
        step, stop = 1, hi
    while position != stop and len(chosen) <= size:
        if accepts(ordered[position]):
            chosen.append(ordered[position])
            chosen_keys.append(keys[position])
        position += step
    token = api._cursor(json.dumps(list(chosen_keys[size - 1]))) if len(chosen) > size else None
    return chosen[:size], token


# --- rendering ----------------------------------------------------------------------------------
def _relationships(base_url, resource, shown, includes):
    path = f"{base_url}/api/{TYPE_PATHS[resource['type']]}/{resource['id']}"
    out = {}
    for name in shown:
        relation = {"links": {"self": f"{path}/relationships/{name}/", "related": f"{path}/{name}/"}}
        data = (resource.get("relationships", {}).get(name) or {}).get("data")
        if name in includes and data is not None:
            relation["data"] = data
        out[name] = relation
    return out


SHOWN = {"campaign": ("campaign-messages", "tags"), "campaign-message": ("campaign", "template", "image"),
         "flow": ("flow-actions", "tags"), "flow-action": ("flow", "flow-messages"),
         "flow-message": ("flow-action", "template"), "tag": ("tag-group", "lists", "segments", "campaigns", "flows"),
         "tag-group": ("tags",), "template": ()}
# the relationships of the omnichannel resources (2026-10-15 on)
OMNI_SHOWN = {"campaign": ("campaign-audiences", "campaign-messages", "tags"),
              "campaign-audience": ("campaign", "campaign-messages"),
              "campaign-message": ("campaign", "campaign-audience", "campaign-variations"),
              "campaign-variation": ("campaign-message", "translation", "image")}


def render(base_url, resource, attributes, fields, includes=(), shown=None):
    out = {"type": resource["type"], "id": resource["id"], "attributes": sparse(attributes, fields)}
    if shown is None:
        shown = SHOWN.get(resource["type"], ())
    if shown:
        out["relationships"] = _relationships(base_url, resource, shown, includes)
    out["links"] = {"self": f"{base_url}/api/{TYPE_PATHS[resource['type']]}/{resource['id']}/"}
    return out


def _template_attributes(template, with_definition):
    attributes = dict(template["attributes"])
    if not with_definition:
        attributes.pop("definition", None)
    return attributes


def flow_action_attributes(action, revision):
    """The newest shape, or the one before 2025-10-15 (action_type, status, settings and options)."""
    attributes = action["attributes"]
    if revision >= "2025-10-15":
        return attributes
    definition = attributes["definition"] or {}
    data = definition.get("data") or {}
    message = data.get("message") or {}
    kind = definition.get("type")
    legacy = {"action_type": kind.upper().replace("-", "_") if kind else None, "status": data.get("status"),
              "created": attributes["created"], "updated": attributes["updated"],
              "settings": {k: v for k, v in data.items() if k not in ("message", "status")},
              "tracking_options": None, "send_options": None}
    # the message's options; none when the action's message was deleted (admin)
    sends = kind if message else None
    if sends in ("send-email", "send-sms"):
        legacy["tracking_options"] = {"add_utm": message["add_tracking_params"], "utm_params": [
            {"name": p["param"], "value": p["value"]} for p in message["custom_tracking_params"] or []]}
        if sends == "send-email":
            legacy["tracking_options"].update({"is_tracking_opens": True, "is_tracking_clicks": True})
    if sends in ("send-email", "send-sms", "send-mobile-push"):
        legacy["send_options"] = {"use_smart_sending": message["smart_sending_enabled"],
                                  "is_transactional": message.get("transactional", False)}
    if revision >= "2025-04-15":
        legacy["badge_options"] = message.get("badge_options") if sends == "send-mobile-push" else None
    legacy["render_options"] = {k: message[k] for k in ("shorten_links", "add_org_prefix", "add_info_link",
                                                         "add_opt_out_language")} if sends == "send-sms" else None
    return legacy


def flow_message_attributes(message, revision):
    """channel + definition; only definition in 2025-10-15; name, channel and content before."""
    attributes = message["attributes"]
    if revision >= "2026-01-15":
        return attributes
    if revision >= "2025-10-15":
        return {k: attributes[k] for k in ("created", "updated", "definition")}
    d, channel = attributes["definition"], attributes["channel"]
    if channel == "email":
        content = {"subject": d["subject_line"], "preview_text": d["preview_text"], "from_email": d["from_email"],
                   "from_label": d["from_label"], "reply_to_email": d["reply_to_email"], "cc_email": d["cc_email"],
                   "bcc_email": d["bcc_email"]}
    elif channel == "sms":
        content = {"body": d["body"], "media_url": None}
    else:
        content = {"title": d["title"], "body": d["body"], "sound": d["sound"], "badge": d["badge"], "media_url": None,
                   "dynamic_image": d["dynamic_image"], "ios_link": d["ios_link"], "android_link": d["android_link"],
                   "on_open": d["on_open"]}
    return {"name": d["name"], "channel": channel, "content": content, "created": attributes["created"],
            "updated": attributes["updated"]}


def _legacy_message_listed(message, revision):
    # before 2025-10-15 flow messages were email, SMS or push content only
    return revision >= "2025-10-15" or message["attributes"]["channel"] != "webhook"


# --- endpoints ----------------------------------------------------------------------------------
def route(sandbox, parts, query):
    """(family, tier, scope or scopes, endpoint) for the paths the classic server does not know."""
    name, rest = parts[1], parts[2:]
    if (served := catalog.route(sandbox, parts, query)) is not None:
        return served
    if mine := marketing.route(sandbox, parts, query):      # issue 22: tag groups, images, ..., flows/{id}
        return mine
    if name == "campaigns" and not rest:
        return "campaigns", "M", "campaigns:read", lambda q, r, b: campaigns(sandbox, q, r, b)
    if name == "campaigns" and len(rest) == 2 and rest[1] == "campaign-messages":
        return ("campaign_messages", "M", "campaigns:read",
                lambda q, r, b: campaign_messages(sandbox, rest[0], q, r, b))
    # the omnichannel campaign endpoints (2026-10-15 on; the spec rules answer 404 before)
    if name == "campaigns" and len(rest) == 2 and rest[1] == "campaign-audiences":
        return ("campaign_audiences", "M", "campaigns:read",
                lambda q, r, b: omni_children(sandbox, "campaign", rest[0], "campaign-audiences", q, r, b))
    if name == "campaign-messages" and not rest:
        return "campaign_message_list", "M", "campaigns:read", lambda q, r, b: omni_message_list(sandbox, q, r, b)
    if name == "campaign-messages" and len(rest) == 2 and rest[1] == "campaign-variations":
        return ("campaign_variations", "M", "campaigns:read",
                lambda q, r, b: omni_children(sandbox, "campaign-message", rest[0], "campaign-variations", q, r, b))
    if name == "flows" and not rest:
        return "flows", "S", "flows:read", lambda q, r, b: flows(sandbox, q, r, b)
    if name == "flows" and len(rest) == 2 and rest[1] == "flow-actions":
        return "flow_actions", "S", "flows:read", lambda q, r, b: flow_actions(sandbox, rest[0], q, r, b)
    if name == "flow-actions" and len(rest) == 2 and rest[1] == "flow-messages":
        return "flow_messages", "S", "flows:read", lambda q, r, b: flow_messages(sandbox, rest[0], q, r, b)
    if name == "templates" and not rest:
        return "templates", "L", "templates:read", lambda q, r, b: templates(sandbox, q, r, b)
    if name == "tags" and not rest:
        return "tags", "S", "tags:read", lambda q, r, b: tags(sandbox, q, r, b)
    if name in ("lists", "segments") and len(rest) == 2 and rest[1] == "profiles":
        kind = name[:-1]
        predictive = kind == "list" and "predictive_analytics" in _additional(query, "profile")
        return (f"{kind}_profiles_predictive" if predictive else f"{kind}_profiles", "M" if predictive else "L",
                tuple(sorted((f"{name}:read", "profiles:read"))),
                lambda q, r, b: group_profiles(sandbox, kind, rest[0], q, r, b))
    if (found := _forms().route(sandbox, parts, query)) is not None:     # Issue 22: forms
        return found
    raise api.ApiFailure(404, "not_found", f"No endpoint at /{'/'.join(parts)}")


def profiles_route(sandbox, query):
    if "predictive_analytics" in _additional(query, "profile"):
        return "profiles_predictive", "M", "profiles:read", lambda q, r, b: profiles(sandbox, q, r, b)
    return "profiles", "L", "profiles:read", lambda q, r, b: profiles(sandbox, q, r, b)


def _body(sandbox, base, query, data, token, included=None):
    body = {"data": data, "links": sandbox._links(base, query, token)}
    if included is not None:
        body["included"] = included
    return body


class _Included:
    def __init__(self):
        self.items, self.seen = [], set()

    def add(self, resource, rendered):
        key = (resource["type"], resource["id"])
        if key not in self.seen:
            self.seen.add(key)
            self.items.append(rendered())


CAMPAIGN_FILTERS = {
    "id": (_item_id, "str", {"any"}), "name": (_attr("name"), "str", {"contains"}),
    "status": (_attr("status"), "str", {"any", "equals"}), "archived": (_attr("archived"), "bool", {"equals"}),
    "created_at": (_time("created_at"), "time", COMPARE), "scheduled_at": (_time("scheduled_at"), "time", COMPARE),
    "updated_at": (_time("updated_at"), "time", COMPARE),
}
CAMPAIGN_SORTS = {"created_at": _time("created_at"), "id": _item_id, "name": _attr("name"),
                  "scheduled_at": _time("scheduled_at"), "updated_at": _time("updated_at")}


def campaigns(sandbox, query, revision, base):
    if revision >= OMNICHANNEL:
        return omni_campaigns(sandbox, query, revision, base)
    entities = of(sandbox.account)
    version = entities.versions["entities"]
    spec = dict(CAMPAIGN_FILTERS, **{"messages.channel": (lambda c: entities.channel.get(c["id"]), "str", {"equals"})})
    filters = _unless_archived_asked(_filters(query, spec, "campaigns"), CAMPAIGN_FILTERS["archived"][0])
    channels = [wanted for name, _, _, wanted in filters if name == "messages.channel"]
    if not channels:
        raise _bad("A channel filter is required to list campaigns: filter=equals(messages.channel,'email'), "
                   "'sms' or 'mobile_push'")
    if any(c not in CHANNELS for c in channels):
        raise _bad(f"Invalid filter provided: messages.channel must be one of {', '.join(CHANNELS)}")
    includes = _includes(query, ("campaign-messages", "tags"))
    size = sandbox._page_size(query, 100, 100)
    page, token = keyset_page(entities, "campaigns", entities.campaigns, query, size, CAMPAIGN_SORTS, filters,
                              version=version)
    base_url = sandbox.base_url
    included = _Included()
    for campaign in page:
        for relation, kind, fields in (("campaign-messages", "campaign-message", _fields(query, "campaign-message")),
                                       ("tags", "tag", _fields(query, "tag"))):
            if relation in includes:
                for ref in campaign["relationships"][relation]["data"]:
                    child = entities.get(kind, ref["id"])
                    included.add(child, lambda: render(base_url, child, child["attributes"], fields))
    data = [render(base_url, c, c["attributes"], _fields(query, "campaign"), includes) for c in page]
    return _body(sandbox, base, query, data, token, included.items if includes else None)


def campaign_messages(sandbox, campaign_id, query, revision, base):
    if revision >= OMNICHANNEL:
        return omni_children(sandbox, "campaign", campaign_id, "campaign-messages", query, revision, base)
    entities = of(sandbox.account)
    campaign = entities.get("campaign", campaign_id)
    if campaign is None:
        raise api.ApiFailure(404, "not_found", f"A campaign with id {campaign_id} does not exist.")
    includes = _includes(query, ("campaign", "image", "template"))
    base_url = sandbox.base_url
    included = _Included()
    data = []
    for ref in campaign["relationships"]["campaign-messages"]["data"]:
        message = entities.get("campaign-message", ref["id"])
        data.append(render(base_url, message, message["attributes"], _fields(query, "campaign-message"), includes))
        if "campaign" in includes:
            included.add(campaign, lambda: render(base_url, campaign, campaign["attributes"],
                                                  _fields(query, "campaign")))
        template_ref = message["relationships"]["template"]["data"]
        if "template" in includes and template_ref:
            template = entities.get("template", template_ref["id"])
            included.add(template, lambda: render(base_url, template, _template_attributes(template, False),
                                                  _fields(query, "template")))
    # the spec gives this endpoint no paging: every message of the campaign in one answer
    return _body(sandbox, base, query, data, None, included.items if includes else None)


# --- omnichannel campaigns (2026-10-15 on) ------------------------------------------------------
def _definition(name):
    return lambda item: (item["attributes"]["definition"] or {}).get(name)


def _message_campaign(message):
    return message["relationships"]["campaign"]["data"]["id"]


OMNI_CAMPAIGN_FILTERS = {
    "id": (_item_id, "str", {"any"}), "name": (_definition("name"), "str", {"contains"}),
    "archived": (_definition("archived"), "bool", {"equals"}), "builder": (_definition("builder"), "str", {"equals"}),
    "created_at": (_time("created_at"), "time", COMPARE), "updated_at": (_time("updated_at"), "time", COMPARE),
}
OMNI_CAMPAIGN_SORTS = {"created_at": _time("created_at"), "id": _item_id, "name": _definition("name"),
                       "updated_at": _time("updated_at")}
OMNI_MESSAGE_FILTERS = {
    "id": (_item_id, "str", {"any", "equals"}), "campaign_id": (_message_campaign, "str", {"equals"}),
    "name": (_definition("name"), "str", {"contains"}), "status": (_definition("status"), "str", {"equals"}),
    "created": (_time("created"), "time", COMPARE), "updated": (_time("updated"), "time", COMPARE),
}
OMNI_MESSAGE_SORTS = {"created": _time("created"), "id": _item_id, "name": _definition("name"),
                      "status": _definition("status"), "updated": _time("updated")}


def _omni(sandbox, revision):
    if revision < OMNICHANNEL:      # the spec rules answer first; this guards a path they do not cover
        raise api.ApiFailure(404, "not_found", "No valid revisions found for method.")
    return of(sandbox.account)


def _omni_render(base_url, resource, query, includes=()):
    return render(base_url, resource, resource["attributes"], _fields(query, resource["type"]), includes,
                  OMNI_SHOWN[resource["type"]])


def _include_related(entities, included, base_url, query, resource, relation, kind):
    refs = resource["relationships"][relation]["data"]
    for ref in refs if isinstance(refs, list) else [refs]:
        if kind == "tag":
            tag = entities.get("tag", ref["id"])
            included.add(tag, lambda: render(base_url, tag, tag["attributes"], _fields(query, "tag")))
        else:
            child = entities.omni.get(kind, ref["id"])
            included.add(child, lambda: _omni_render(base_url, child, query))


def omni_campaigns(sandbox, query, revision, base):
    entities = _omni(sandbox, revision)
    version = entities.versions["entities"]
    filters = _unless_archived_asked(_filters(query, OMNI_CAMPAIGN_FILTERS, "campaigns"),
                                     OMNI_CAMPAIGN_FILTERS["archived"][0])
    includes = _includes(query, ("campaign-audiences", "campaign-messages", "tags"))
    size = sandbox._page_size(query, 100, 100)
    page, token = keyset_page(entities, "omni-campaigns", entities.omni.campaigns, query, size, OMNI_CAMPAIGN_SORTS,
                              filters, version=version)
    base_url = sandbox.base_url
    included = _Included()
    for campaign in page:
        for relation, kind in (("campaign-audiences", "campaign-audience"), ("campaign-messages", "campaign-message"),
                               ("tags", "tag")):
            if relation in includes:
                _include_related(entities, included, base_url, query, campaign, relation, kind)
    data = [_omni_render(base_url, c, query, includes) for c in page]
    return _body(sandbox, base, query, data, token, included.items if includes else None)


def omni_message_list(sandbox, query, revision, base):
    """GET /api/campaign-messages: every message of every campaign, paged."""
    entities = _omni(sandbox, revision)
    version = entities.versions["entities"]
    filters = _filters(query, OMNI_MESSAGE_FILTERS, "campaign messages")
    includes = _includes(query, ("campaign", "campaign-variations"))
    size = sandbox._page_size(query, 20, 100)
    page, token = keyset_page(entities, "omni-campaign-messages", entities.omni.messages, query, size,
                              OMNI_MESSAGE_SORTS, filters, version=version)
    base_url = sandbox.base_url
    included = _Included()
    for message in page:
        for relation, kind in (("campaign", "campaign"), ("campaign-variations", "campaign-variation")):
            if relation in includes:
                _include_related(entities, included, base_url, query, message, relation, kind)
    data = [_omni_render(base_url, m, query, includes) for m in page]
    return _body(sandbox, base, query, data, token, included.items if includes else None)


def omni_children(sandbox, parent_type, parent_id, relation, query, revision, base):
    """The `relation` resources of one campaign or message: the spec gives these endpoints no paging
    and no include, so every one at once."""
    entities = _omni(sandbox, revision)
    parent = entities.omni.get(parent_type, parent_id)
    if parent is None:
        raise api.ApiFailure(404, "not_found", f"A {parent_type.replace('-', ' ')} with id {parent_id} does not exist.")
    kind = relation[:-1]
    data = [_omni_render(sandbox.base_url, entities.omni.get(kind, ref["id"]), query)
            for ref in parent["relationships"][relation]["data"]]
    return _body(sandbox, base, query, data, None)


FLOW_FILTERS = {
    "id": (_item_id, "str", {"any"}), "name": (_attr("name"), "str", NAME_OPS),
    "status": (_attr("status"), "str", {"equals"}), "archived": (_attr("archived"), "bool", {"equals"}),
    "created": (_time("created"), "time", TIME_OPS), "updated": (_time("updated"), "time", TIME_OPS),
    "trigger_type": (_attr("trigger_type"), "str", {"equals"}),
}
FLOW_SORTS = {"created": _time("created"), "id": _item_id, "name": _attr("name"), "status": _attr("status"),
              "trigger_type": _attr("trigger_type"), "updated": _time("updated")}


def flows(sandbox, query, revision, base):
    entities = of(sandbox.account)
    version = entities.versions["entities"]
    filters = _unless_archived_asked(_filters(query, FLOW_FILTERS, "flows"), FLOW_FILTERS["archived"][0])
    includes = _includes(query, ("flow-actions", "tags"))
    size = sandbox._page_size(query, 50, 50)
    page, token = keyset_page(entities, "flows", entities.flows, query, size, FLOW_SORTS, filters, version=version)
    base_url = sandbox.base_url
    included = _Included()
    for flow in page:
        if "flow-actions" in includes:
            for ref in flow["relationships"]["flow-actions"]["data"]:
                action = entities.get("flow-action", ref["id"])
                included.add(action, lambda: render(base_url, action, flow_action_attributes(action, revision),
                                                    _fields(query, "flow-action")))
        if "tags" in includes:
            for ref in flow["relationships"]["tags"]["data"]:
                tag = entities.get("tag", ref["id"])
                included.add(tag, lambda: render(base_url, tag, tag["attributes"], _fields(query, "tag")))
    data = [render(base_url, f, f["attributes"], _fields(query, "flow"), includes) for f in page]
    return _body(sandbox, base, query, data, token, included.items if includes else None)


def _definition_type(action):
    return (action["attributes"]["definition"] or {}).get("type")


def _definition_status(action):
    return ((action["attributes"]["definition"] or {}).get("data") or {}).get("status")


ACTION_FILTERS = {
    "id": (_item_id, "str", {"any"}), "action_type": (_definition_type, "str", {"any", "equals"}),
    "status": (_definition_status, "str", {"equals"}),
    "created": (_time("created"), "time", TIME_OPS), "updated": (_time("updated"), "time", TIME_OPS),
}
ACTION_SORTS = {"action_type": _definition_type, "created": _time("created"), "id": _item_id,
                "status": _definition_status, "updated": _time("updated")}


def flow_actions(sandbox, flow_id, query, revision, base):
    entities = of(sandbox.account)
    version = entities.versions["entities"]
    flow = entities.get("flow", flow_id)
    if flow is None:
        raise api.ApiFailure(404, "not_found", f"A flow with id {flow_id} does not exist.")
    filters = _filters(query, ACTION_FILTERS, "flow actions")
    size = sandbox._page_size(query, 50, 50)
    actions = [entities.get("flow-action", ref["id"]) for ref in flow["relationships"]["flow-actions"]["data"]]
    page, token = keyset_page(entities, f"flow-actions:{flow_id}", actions, query, size, ACTION_SORTS, filters,
                              version=version)
    fields = _fields(query, "flow-action")
    data = [render(sandbox.base_url, a, flow_action_attributes(a, revision), fields) for a in page]
    return _body(sandbox, base, query, data, token)


def _message_name(message):
    return (message["attributes"]["definition"] or {}).get("name")


MESSAGE_FILTERS = {
    "id": (_item_id, "str", {"any"}), "name": (_message_name, "str", NAME_OPS),
    "created": (_time("created"), "time", TIME_OPS), "updated": (_time("updated"), "time", TIME_OPS),
}
MESSAGE_SORTS = {"created": _time("created"), "id": _item_id, "name": _message_name, "updated": _time("updated")}


def flow_messages(sandbox, action_id, query, revision, base):
    entities = of(sandbox.account)
    version = entities.versions["entities"]
    action = entities.get("flow-action", action_id)
    if action is None:
        raise api.ApiFailure(404, "not_found", f"A flow action with id {action_id} does not exist.")
    filters = _filters(query, MESSAGE_FILTERS, "flow messages")
    size = sandbox._page_size(query, 50, 50)
    messages = [entities.get("flow-message", ref["id"]) for ref in action["relationships"]["flow-messages"]["data"]]
    messages = [m for m in messages if _legacy_message_listed(m, revision)]
    page, token = keyset_page(entities, f"flow-messages:{action_id}:{revision >= '2025-10-15'}", messages, query, size,
                              MESSAGE_SORTS, filters, version=version)
    data = [render(sandbox.base_url, m, flow_message_attributes(m, revision), _fields(query, "flow-message"))
            for m in page]
    return _body(sandbox, base, query, data, token)


TEMPLATE_FILTERS = {
    "id": (_item_id, "str", {"any", "equals"}), "name": (_attr("name"), "str", {"any", "contains", "equals"}),
    "created": (_time("created"), "time", TIME_OPS), "updated": (_time("updated"), "time", TIME_OPS),
}
TEMPLATE_SORTS = {"created": _time("created"), "id": _item_id, "name": _attr("name"), "updated": _time("updated")}


def templates(sandbox, query, revision, base):
    entities = of(sandbox.account)
    version = entities.versions["entities"]
    filters = _filters(query, TEMPLATE_FILTERS, "templates")
    size = sandbox._page_size(query, 10, 10)
    page, token = keyset_page(entities, "templates", entities.templates, query, size, TEMPLATE_SORTS, filters,
                              version=version)
    with_definition = "definition" in _additional(query, "template")
    data = [render(sandbox.base_url, t, _template_attributes(t, with_definition), _fields(query, "template"))
            for t in page]
    return _body(sandbox, base, query, data, token)


TAG_FILTERS = {"name": (_attr("name"), "str", NAME_OPS)}
TAG_SORTS = {"id": _item_id, "name": _attr("name")}


def tags(sandbox, query, revision, base):
    entities = of(sandbox.account)
    version = entities.versions["entities"]
    filters = _filters(query, TAG_FILTERS, "tags")
    includes = _includes(query, ("tag-group",))
    size = sandbox._page_size(query, 50, 50)
    page, token = keyset_page(entities, "tags", entities.tags, query, size, TAG_SORTS, filters, version=version)
    base_url = sandbox.base_url
    included = _Included()
    if "tag-group" in includes:
        for tag in page:
            group = entities.get("tag-group", tag["relationships"]["tag-group"]["data"]["id"])
            included.add(group, lambda: render(base_url, group, group["attributes"], _fields(query, "tag-group")))
    data = [render(base_url, t, t["attributes"], _fields(query, "tag"), includes) for t in page]
    return _body(sandbox, base, query, data, token, included.items if includes else None)


# --- profiles and members -----------------------------------------------------------------------
def _marketing(profile):
    return ((profile["attributes"].get("subscriptions") or {}).get("email") or {}).get("marketing") or {}


def _suppressions(key, member):
    def values(profile):
        return tuple(s[member] if member != "timestamp" else _epoch(s[member])
                     for s in _marketing(profile).get(key) or ())
    values.many = True      # any value may match: see _bounds
    return values


def _latest(key):
    def latest(profile):
        # a suppression whose timestamp was nulled (data.nullify) has no place in the order
        stamps = [stamp for stamp in _suppressions(key, "timestamp")(profile) if stamp is not None]
        return max(stamps) if stamps else None
    return latest


def _nothing(_):
    return None


SUPPRESSION = "subscriptions.email.marketing.suppression"
LIST_SUPPRESSION = "subscriptions.email.marketing.list_suppressions"
PROFILE_FILTERS = {
    "id": (_item_id, "str", {"any", "equals"}), "email": (_attr("email"), "str", {"any", "equals"}),
    "phone_number": (_attr("phone_number"), "str", {"any", "equals"}),
    "external_id": (_attr("external_id"), "str", {"any", "equals"}), "_kx": (_nothing, "str", {"equals"}),
    # Klaviyo takes only these two operators on created and updated
    "created": (_time("created"), "time", {"greater-than", "less-than"}),
    "updated": (_time("updated"), "time", {"greater-than", "less-than"}),
    f"{SUPPRESSION}.reason": (_suppressions("suppression", "reason"), "str", {"equals"}),
    f"{SUPPRESSION}.timestamp": (_suppressions("suppression", "timestamp"), "time", COMPARE),
    f"{LIST_SUPPRESSION}.reason": (_suppressions("list_suppressions", "reason"), "str", {"equals"}),
    f"{LIST_SUPPRESSION}.timestamp": (_suppressions("list_suppressions", "timestamp"), "time", COMPARE),
    f"{LIST_SUPPRESSION}.list_id": (_suppressions("list_suppressions", "list_id"), "str", {"equals"}),
}
PROFILE_SORTS = {"created": _time("created"), "email": _attr("email"), "id": _item_id, "updated": _time("updated"),
                 f"{SUPPRESSION}.timestamp": _latest("suppression"),
                 f"{LIST_SUPPRESSION}.timestamp": _latest("list_suppressions")}


def profile_attributes(entities, profile, query):
    attributes = dict(profile["attributes"])
    additional = _additional(query, "profile")
    if "subscriptions" not in additional:
        attributes.pop("subscriptions", None)
    if "predictive_analytics" in additional:
        attributes["predictive_analytics"] = entities.predictive.get(profile["id"])
    return attributes


def profiles(sandbox, query, revision, base):
    account = sandbox.account
    entities = of(account)
    size = sandbox._page_size(query, 20, 100)
    filters = _filters(query, PROFILE_FILTERS, "profiles")
    for name, _, _, wanted in filters:
        if name == f"{SUPPRESSION}.reason" and wanted not in sandbox_data.REASONS:
            raise _bad(f"Invalid suppression reason {wanted!r}")
    if query.get("sort"):
        page, token = keyset_page(entities, "profiles", list(account.profiles.values()), query, size, PROFILE_SORTS,
                                  filters, version=entities.versions["profiles"])
    else:
        # unsorted pages keep the sandbox's first paging: an offset in the account's own order
        accepts = _accepts(filters)
        chosen = [p for p in account.profiles.values() if accepts(p)]
        try:
            offset = int(api._uncursor(query["page[cursor]"])) if "page[cursor]" in query else 0
        except ValueError:
            raise _bad("Invalid cursor provided", "page[cursor]") from None
        page = chosen[offset:offset + size]
        token = api._cursor(str(offset + size)) if offset + size < len(chosen) else None
    fields = _fields(query, "profile")
    data = [{"type": "profile", "id": p["id"], "attributes": sparse(profile_attributes(entities, p, query), fields)}
            for p in page]
    included = [] if query.get("include") else None      # the account holds no push tokens or conversations
    return _body(sandbox, base, query, data, token, included)


# --- lists and segments -------------------------------------------------------------------------
GROUP_FILTERS = {
    "name": (_attr("name"), "str", {"any", "equals"}), "id": (_item_id, "str", {"any", "equals"}),
    # the spec allows only greater-than on these two: a change since a time, nothing else
    "created": (_time("created"), "time", {"greater-than"}), "updated": (_time("updated"), "time", {"greater-than"}),
}
SEGMENT_FILTERS = dict(GROUP_FILTERS, is_active=(_attr("is_active"), "bool", {"any", "equals"}),
                       is_starred=(_attr("is_starred"), "bool", {"equals"}))
GROUP_SORTS = {"created": _time("created"), "id": _item_id, "name": _attr("name"), "updated": _time("updated")}


def groups(sandbox, name, query, revision, base):
    """GET /api/lists and /api/segments: filtered, sorted and keyset-paged as the spec allows (the
    account's own order unless sorted); profile_count is never listed."""
    if "page[size]" in query and revision < "2026-04-15":
        raise api.ApiFailure(400, "invalid", "page[size] is not a valid parameter for this revision", "page[size]")
    account = sandbox.account
    entities = of(account)
    version = entities.versions["entities"]
    kind = name[:-1]
    filters = _filters(query, SEGMENT_FILTERS if kind == "segment" else GROUP_FILTERS, name)
    size = sandbox._page_size(query, 10, 10)
    items = account.lists if kind == "list" else account.segments
    page, token = keyset_page(entities, name, items, query, size, GROUP_SORTS, filters, version=version)
    fields = _fields(query, kind)
    data = [{"type": kind, "id": g["id"], "attributes": sparse(
        {k: v for k, v in g["attributes"].items() if k != "profile_count"}, fields)} for g in page]
    return _body(sandbox, base, query, data, token)


def _member_profile(account, name):
    return lambda member: account.profiles[member["id"]]["attributes"].get(name)


def group_profiles(sandbox, kind, group_id, query, revision, base):
    account = sandbox.account
    entities = of(account)
    groups = account.lists if kind == "list" else account.segments
    if not any(g["id"] == group_id for g in groups):
        raise api.ApiFailure(404, "not_found", f"A {kind} with id {group_id} does not exist.")
    spec = {"email": (_member_profile(account, "email"), "str", {"any", "equals"}),
            "phone_number": (_member_profile(account, "phone_number"), "str", {"any", "equals"}),
            "push_token": (_nothing, "str", {"any", "equals"}), "_kx": (_nothing, "str", {"equals"}),
            "profile_id": (_item_id, "str", {"any", "equals"}),
            "joined_group_at": (lambda m: m["joined"], "time", COMPARE)}
    filters = _filters(query, spec, f"{kind} profiles")
    size = sandbox._page_size(query, 20, 100)
    with account.lock:      # the members and their version, of one state
        members = [{"id": pid, "joined": joined}
                   for pid, joined in entities.members[kind].get(group_id, {}).items()]
        version = entities.versions["members"]
    page, token = keyset_page(entities, f"{kind}-members:{group_id}", members, query, size,
                              {"joined_group_at": lambda m: m["joined"]}, filters, default="joined_group_at",
                              version=version)
    fields = _fields(query, "profile")
    data = []
    for member in page:
        attributes = profile_attributes(entities, account.profiles[member["id"]], query)
        attributes["joined_group_at"] = iso(member["joined"])
        data.append({"type": "profile", "id": member["id"], "attributes": sparse(attributes, fields),
                     "links": {"self": f"{sandbox.base_url}/api/profiles/{member['id']}/"}})
    return _body(sandbox, base, query, data, token)


# --- admin --------------------------------------------------------------------------------------
def dump(account):
    entities = of(account)
    with account.lock:
        members = {kind: [{f"{kind}_id": group, "profile_id": pid, "joined_group_at": iso(joined)}
                          for group, joined_by in entities.members[kind].items() for pid, joined in joined_by.items()]
                   for kind in ("list", "segment")}
    return {"campaigns": entities.campaigns, "campaign_channels": entities.channel,
            "campaign_messages": entities.campaign_messages, "flows": entities.flows,
            "flow_actions": entities.flow_actions, "flow_messages": entities.flow_messages,
            "templates": entities.templates, "tags": entities.tags, "tag_groups": entities.tag_groups,
            "list_members": members["list"], "segment_members": members["segment"],
            "predictive_analytics": entities.predictive,
            # the campaigns as served from 2026-10-15 (same campaign and message ids)
            "omnichannel": {"campaigns": entities.omni.campaigns, "campaign_messages": entities.omni.messages,
                            "campaign_variations": entities.omni.variations,
                            "campaign_audiences": entities.omni.audiences},
            **catalog.dump(account),
            **marketing.dump(account),
            **_forms().dump(account)}      # Issue 22: forms


class _Refusal(Exception):
    """An admin call refused: answered (status, {"error": detail})."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _when(payload, key):
    raw = payload.get(key)
    if raw is None:
        return int(time.time())
    try:
        return api._parse_z(raw)
    except (TypeError, ValueError):
        raise _Refusal(400, f"{key} must look like 2024-01-01T00:00:00Z") from None


def _group(account, group_id, kind=None):
    """(kind, group) of a list or segment id (of `kind` when given); 404 when there is none."""
    for candidate, items in (("list", account.lists), ("segment", account.segments)):
        if kind in (None, candidate):
            for group in items:
                if group["id"] == group_id:
                    return candidate, group
    raise _Refusal(404, f"no {kind or 'list or segment'} {group_id}")


def _profile_ids(account, payload, key):
    ids = list(dict.fromkeys(payload.get(key) or []))
    unknown = [i for i in ids if i not in account.profiles]
    if unknown:
        raise _Refusal(404, f"no profile {unknown[0]}")
    return ids


def _touch_profiles(account, entities, payload):
    at = _when(payload, "updated")
    ids = _profile_ids(account, payload, "ids")
    with account.lock:
        for pid in ids:
            account.profiles[pid]["attributes"]["updated"] = iso(at)
        entities.versions["profiles"] += 1
    return 200, {"ids": ids, "updated": iso(at)}


def _add_members(account, entities, payload):
    kind, group = _group(account, payload.get("group_id"))
    at = _when(payload, "joined_group_at")
    ids = [pid for pid in payload.get("profile_ids") or [] if pid in account.profiles]
    with account.lock:
        members = entities.members[kind].setdefault(group["id"], {})
        added = [pid for pid in dict.fromkeys(ids) if pid not in members]
        for pid in added:
            members[pid] = at       # a profile already in the group keeps the time it joined
        group["attributes"]["profile_count"] = len(members)
        entities.versions["members"] += 1
    return 200, {"added": added, "joined_group_at": iso(at)}


def _remove_members(account, entities, payload):
    kind, group = _group(account, payload.get("group_id"))
    ids = _profile_ids(account, payload, "profile_ids")
    with account.lock:
        members = entities.members[kind].setdefault(group["id"], {})
        removed = [pid for pid in ids if pid in members]
        for pid in removed:
            del members[pid]
        group["attributes"]["profile_count"] = len(members)
        entities.versions["members"] += 1
    return 200, {"removed": removed}


def _lift_suppressions(account, entities, payload):
    """The profiles' global email suppressions removed. The spec's EmailMarketing: with none left,
    can_receive_email_marketing is true, and consent stays what the profile gave (SUBSCRIBED, or
    NEVER_SUBSCRIBED): a suppression never changed it."""
    at = _when(payload, "updated")
    ids = _profile_ids(account, payload, "profile_ids")
    lifted = []
    with account.lock:
        for pid in ids:
            marketing = _marketing(account.profiles[pid])
            if not marketing.get("suppression"):
                continue        # nothing to lift: the profile does not change
            marketing.update({"suppression": [], "can_receive_email_marketing": True, "last_updated": iso(at)})
            account.profiles[pid]["attributes"]["updated"] = iso(at)
            lifted.append(pid)
        entities.versions["profiles"] += 1
    return 200, {"lifted": lifted, "updated": iso(at)}


TOUCHED = {"campaign": "updated_at", "flow": "updated", "flow-action": "updated", "flow-message": "updated",
           "template": "updated"}


def _rename(item, name):
    # a flow message and an omnichannel campaign keep their name in their definition
    if "name" in item["attributes"]:
        item["attributes"]["name"] = name
    else:
        item["attributes"]["definition"]["name"] = name


def _touch(account, entities, payload):
    kind, name = payload.get("kind"), payload.get("name")
    if kind not in TOUCHED:
        raise _Refusal(400, f"kind must be one of {', '.join(TOUCHED)}")
    item = entities.get(kind, payload.get("id"))
    if item is None:
        raise _Refusal(404, f"no {kind} {payload.get('id')}")
    if name is not None and kind == "flow-action":
        raise _Refusal(400, "a flow action has no name")
    at = _when(payload, "updated")
    with account.lock:
        # the item alone: Klaviyo does not move a parent's updated when a child changes
        for view in (item, entities.omni.get(kind, item["id"])):      # a campaign's 2026-10-15 view too
            if view is not None:
                view["attributes"][TOUCHED[kind]] = iso(at)
                if name is not None:
                    _rename(view, name)
        entities.versions["entities"] += 1
    return 200, {"kind": kind, "id": item["id"], "updated": iso(at), "name": name}


# the relationships that hold a resource's children, in either view: deleting it deletes them
CHILDREN = {"campaign": ("campaign-messages", "campaign-audiences"), "campaign-message": ("campaign-variations",),
            "flow": ("flow-actions",), "flow-action": ("flow-messages",)}
DELETABLE = ("list", "segment", "campaign", "flow", "flow-action", "flow-message", "template", "tag")


def _descendants(entities, kind, item_id, gone):
    gone.setdefault(kind, set()).add(item_id)
    for view in (entities, entities.omni):
        relationships = (view.get(kind, item_id) or {}).get("relationships") or {}
        for relation in CHILDREN.get(kind, ()):
            for ref in (relationships.get(relation) or {}).get("data") or ():
                _descendants(entities, ref["type"], ref["id"], gone)


def _unlink(resource, gone):
    """The resource's relationships without what is gone."""
    for relation in (resource.get("relationships") or {}).values():
        data = (relation or {}).get("data")
        if isinstance(data, list):
            kept = [ref for ref in data if ref["id"] not in gone.get(ref["type"], ())]
            if len(kept) != len(data):
                relation["data"] = kept
        elif data is not None and data["id"] in gone.get(data["type"], ()):
            relation["data"] = None


def _relink(entities, gone):
    """What names a deleted action or message outside relationships: a link to a deleted action
    leads where that action led (as the flow builder reconnects a removed step), and a send action
    whose message is deleted embeds none. Runs before the index forgets the deleted actions."""
    actions, messages = gone.get("flow-action", set()), gone.get("flow-message", set())

    def onward(action_id):
        while action_id in actions:
            links = (entities.get("flow-action", action_id)["attributes"]["definition"] or {}).get("links") or {}
            action_id = links.get("next", links.get("next_if_true"))
        return action_id

    for action in entities.flow_actions:
        definition = action["attributes"]["definition"] or {}
        links = definition.get("links") or {}
        for key, target in links.items():
            if target in actions:
                links[key] = onward(target)
        data = definition.get("data") or {}
        if (data.get("message") or {}).get("id") in messages:
            data["message"] = None


def _forget_templates(entities, gone):
    """A deleted template's id leaves the flow messages (and so their actions, which embed the same
    definition) and the omnichannel variations that named it."""
    templates = gone.get("template", set())
    details = [m["attributes"]["definition"] for m in entities.flow_messages] + \
        [v["attributes"]["definition"]["details"] for v in entities.omni.variations]
    for detail in details:
        if (detail or {}).get("template_id") in templates:
            detail["template_id"] = None


def _prune(account, entities, gone):
    """What is gone, out of every collection and every relationship. Collections are replaced, not
    changed in place, so a request iterating one meanwhile sees it whole."""
    def kept(items):
        return [item for item in items if item["id"] not in gone.get(item["type"], ())]

    omni = entities.omni
    for owner, names in ((entities, ("campaigns", "campaign_messages", "flows", "flow_actions", "flow_messages",
                                     "templates", "tags")),
                         (omni, ("campaigns", "messages", "variations", "audiences")),
                         (account, ("lists", "segments"))):
        for name in names:
            setattr(owner, name, kept(getattr(owner, name)))
    campaigns = gone.get("campaign", ())
    entities.channel = {cid: channel for cid, channel in entities.channel.items() if cid not in campaigns}
    for kind in ("list", "segment"):
        entities.members[kind] = {gid: members for gid, members in entities.members[kind].items()
                                  if gid not in gone.get(kind, ())}
    for items in (entities.campaigns, entities.campaign_messages, entities.flows, entities.flow_actions,
                  entities.flow_messages, entities.tags, entities.tag_groups, omni.campaigns, omni.messages,
                  omni.variations, omni.audiences):
        for resource in items:
            _unlink(resource, gone)


def _delete(account, entities, payload):
    kind, item_id = payload.get("kind"), payload.get("id")
    if kind not in DELETABLE:
        raise _Refusal(400, f"kind must be one of {', '.join(DELETABLE)}")
    with account.lock:
        gone = {}
        if kind in ("list", "segment"):
            _group(account, item_id, kind)
            gone[kind] = {item_id}
        elif entities.get(kind, item_id) is None:
            raise _Refusal(404, f"no {kind} {item_id}")
        else:
            _descendants(entities, kind, item_id, gone)
        _relink(entities, gone)
        _forget_templates(entities, gone)
        _prune(account, entities, gone)
        entities.reindex()
        entities.versions["entities"] += 1
        entities.versions["members"] += 1
    return 200, {"kind": kind, "id": item_id, "deleted": {k: sorted(ids) for k, ids in sorted(gone.items())}}


ADMIN = {"/__sandbox/profiles/touch": _touch_profiles, "/__sandbox/members/add": _add_members,
         "/__sandbox/members/remove": _remove_members, "/__sandbox/suppression/lift": _lift_suppressions,
         "/__sandbox/touch": _touch, "/__sandbox/delete": _delete}


def admin_post(account, path, payload):
    """(status, body) for the entities' admin calls, None for a path that is not one of them."""
    call = ADMIN.get(path) or marketing.ADMIN.get(path)
    if call is None:
        return _forms().admin(account, path, payload) if isinstance(payload, dict) else None   # Issue 22: forms
    if not isinstance(payload, dict):
        return 400, {"error": "the body must be a JSON object"}
    try:
        return call(account, of(account), payload)
    except _Refusal as refusal:
        return refusal.status, {"error": refusal.detail}


from . import marketing  # noqa: E402  (issue 22; it builds on this module's helpers)
