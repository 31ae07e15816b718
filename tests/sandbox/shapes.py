"""Account shapes for the benchmark, beyond data.generate()'s mixed year.

- sparse: a small shop, events of the ten classic tables spread thinly over a year;
- dense: one day holding many thousands of events per classic metric (a big campaign day), with a
  thin history before it that an incremental run from the start of that day must not read;
- profiles: many profiles and no events, for the `profiles` stream at scale;
- resources: campaigns, flows, templates, tags, lists and segments with their members at a real
  account's scale (entities.populate with an entities.Scale), a modest number of events and profiles;
- whole: everything every stream reads, at a mid-size shop's counts (the resources account's
  campaigns and flows, a year of events, catalog, coupons, forms, reviews, push tokens, images and
  report sends), for a first run with every stream selected.

Both carry pages shaped like Klaviyo's: profiles with the attributes and custom properties a
Shopify-connected account has (a 1,000-event page with its included profiles is about 1.8 MB),
event properties as Klaviyo writes them for email events, and an integer wider than 64 bits only
now and then. Same shape, size, seed and anchor give the same account.
"""
import calendar
import random
import time
import uuid

from . import entities
from .data import API, KLAVIYO, SHOPIFY, WIDE_INTEGER, YEAR, Account, Event, iso, metric_time

DAY = 86400

# One metric per classic event table (the unsubscribe table's current name only: an account
# created after Klaviyo's rename has no "Unsubscribed" metric).
CLASSIC_TABLE_METRICS = (
    "Received Email", "Opened Email", "Clicked Email", "Bounced Email", "Dropped Email",
    "Marked Email as Spam", "Subscribed to List", "Unsubscribed from List",
    "Unsubscribed from Email Marketing", "Updated Email Preferences",
)
# every name a classic table reads (the counts of data.generate()'s accounts include the old one)
CLASSIC_METRIC_NAMES = CLASSIC_TABLE_METRICS + ("Unsubscribed",)
# metrics a real account also has, which the classic tables must not read
OTHER_METRICS = (("Clicked Email", API), ("Placed Order", SHOPIFY), ("Viewed Product", API),
                 ("Active on Site", API), ("Received SMS", KLAVIYO))

_ULID = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FIRST = ("Ada", "Björn", "Chloé", "Dmitri", "Emma", "Farah", "Giulia", "Hiroshi", "Ines", "Jamal", "Olivia", "Liam")
_LAST = ("Lovelace", "O'Brien", "Søndergaard", "Nguyen", "García", "Müller", "Smith", "Kowalski", "Okafor")
_CITIES = (("Boston", "MA", "US", "America/New_York"), ("Austin", "TX", "US", "America/Chicago"),
           ("Zürich", "ZH", "CH", "Europe/Zurich"), ("Lyon", "ARA", "FR", "Europe/Paris"),
           ("Toronto", "ON", "CA", "America/Toronto"), ("Melbourne", "VIC", "AU", "Australia/Melbourne"))
_TAGS = ("vip", "wholesale", "newsletter", "returning", "gift-card", "subscription", "b2b", "influencer")
_CATEGORIES = ("Shoes", "Outerwear", "Accessories", "Kids", "Sale", "New Arrivals", "Home", "Beauty")
_SUBJECTS = ("Spring sale: 30% off everything", "Your order is on its way", "Grüße aus Köln 🎉",
             "Last chance: free shipping ends tonight", "We miss you, here is 15% off",
             "New arrivals picked for you", "Your cart is waiting")
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "gmx.de", "example.com")


def _ulid(rng):
    return "01" + "".join(rng.choice(_ULID) for _ in range(24))


def _rich_profile(rng, anchor, number):
    """A profile with what a Shopify-connected account's profiles hold (about 1.2 KB as JSON)."""
    created = anchor - 2 * YEAR + rng.randrange(2 * YEAR - DAY)
    city, region, country, zone = rng.choice(_CITIES)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    orders = rng.randrange(0, 40)
    spent = round(orders * rng.uniform(20, 180), 2)
    properties = {
        "$source": rng.choice(["Shopify", "Signup form", "API", "Import"]),
        "$consent": ["email"] if number % 5 else ["email", "sms"],
        "$consent_timestamp": iso(created + 60),
        "Accepts Marketing": number % 9 != 0,
        "Shopify Tags": rng.sample(_TAGS, rng.randrange(0, 4)),
        "Total Orders": orders,
        "Total Spent": spent,
        "Average Order Value": round(spent / orders, 2) if orders else 0,
        "First Purchase Date": iso(created + rng.randrange(YEAR)) if orders else None,
        "Last Order Date": iso(created + YEAR + rng.randrange(YEAR // 2)) if orders else None,
        "Preferred Language": rng.choice(["en", "de", "fr", "en-US", "es"]),
        "Birthday": f"{1950 + number % 55}-{1 + number % 12:02d}-{1 + number % 28:02d}",
        "Loyalty Tier": rng.choice(["Bronze", "Silver", "Gold", "Platinum"]),
        "Loyalty Points": rng.randrange(0, 25000),
        "Referral Code": f"REF-{first.upper()[:3]}{number:06d}",
        "Favorite Categories": rng.sample(_CATEGORIES, 2),
        "Newsletter Frequency": rng.choice(["weekly", "monthly", "daily"]),
        "Signup Page": f"https://shop.example/pages/welcome?utm_source=instagram&utm_campaign=spring{number % 40}",
        "Last Viewed Product": f"Merino Crew Sweater – {rng.choice(['Navy', 'Oat', 'Forest'])} / {rng.choice('SML')}",
        "Engagement Score": round(rng.random(), 4),
        "Quiz Results": {"style": rng.choice(["classic", "sporty", "minimal"]), "size": rng.choice("SMLX"),
                         "budget": rng.choice(["$", "$$", "$$$"])},
    }
    if number % 11 == 0:
        properties["$email"] = "shadow@example.invalid"      # a custom key that must not win
    attributes = {
        "email": f"{first.lower()}.{number}@{rng.choice(_DOMAINS)}" if number % 10 != 9 else None,
        "phone_number": f"+1617555{number % 10000:04d}" if number % 3 else None,
        "external_id": f"shopify-{7000000000 + number * 7}" if number % 4 else None,
        "first_name": first,
        "last_name": last,
        "organization": rng.choice(["Acme Outfitters", None, None]),
        "title": rng.choice(["Buyer", None, None]),
        "image": None,
        "created": iso(created),
        "updated": iso(created + rng.randrange(YEAR)),
        "last_event_date": None,
        "location": None if number % 17 == 0 else {
            "address1": f"{10 + number % 990} {rng.choice(['Main St', 'Elm Ave', 'Bahnhofstrasse', 'Rue de la Paix'])}",
            "address2": None if number % 2 else f"Apt {number % 50}",
            "city": city, "region": region, "zip": f"{rng.randrange(10000, 99999)}", "country": country,
            "latitude": round(rng.uniform(-60, 60), 6), "longitude": round(rng.uniform(-120, 120), 6),
            "timezone": zone, "ip": f"203.0.113.{number % 250}",
        },
        "properties": properties,
        "subscriptions": {"email": {"marketing": {"can_receive_email_marketing": True, "consent": "SUBSCRIBED",
                                                  "suppression": []}}},
    }
    return {"type": "profile", "id": _ulid(rng), "attributes": attributes}


def _event_properties(rng, name, n, message_id):
    """Properties as Klaviyo writes them on its own email and list events (about 350 bytes)."""
    subject = rng.choice(_SUBJECTS)
    if name in ("Subscribed to List", "Unsubscribed from List"):
        return {"List": f"Newsletter {n % 5}", "$list": f"Xy{n % 5:04d}", "$source": rng.choice([-9, 5, "API"]),
                "$event_id": f"{message_id}:{n}", "Subscription Method": rng.choice(["Form", "Checkout", "API"])}
    if name in ("Unsubscribed from Email Marketing", "Updated Email Preferences"):
        return {"Campaign Name": f"Spring Sale {n % 40}", "Subject": subject, "$message": message_id,
                "$event_id": f"{message_id}:{n}", "Method": rng.choice(["Unsubscribe link", "Preference page"]),
                "List": f"Newsletter {n % 5}"}
    props = {"Campaign Name": f"Spring Sale {n % 40} – segment B", "Subject": subject, "$message": message_id,
             "$message_interaction": message_id, "$_cohort$message_send_cohort": f"{1700000000 + n % 97}:{message_id}",
             "$flow": "", "$variation": f"{message_id}-A", "Email Domain": rng.choice(_DOMAINS),
             "Inbox Provider": rng.choice(["Gmail", "Yahoo", "Microsoft", "Apple"]), "$ESP": 0,
             "$event_id": f"{message_id}:{n}:0"}
    if name == "Opened Email":
        props.update({"Client Name": rng.choice(["Gmail", "Apple Mail", "Outlook", None]),
                      "Client OS": rng.choice(["iOS", "Android", "Windows", "macOS"]), "Client Type": "Mobile",
                      "machine_open": n % 4 == 0})
    elif name == "Clicked Email":
        props["URL"] = f"https://shop.example/collections/sale/p/{n % 311}?utm_source=klaviyo&utm_medium=email"
    elif name == "Bounced Email":
        props["Bounce Type"] = rng.choice(["hard", "soft"])
    elif name == "Dropped Email":
        props["Drop Reason"] = rng.choice(["Previously bounced", "Marked as spam", "Invalid email"])
    return props


def _new_account(rng, anchor, profile_count, lists=4, segments=2):
    account = Account(anchor=anchor)
    for number, (name, integration) in enumerate([(n, KLAVIYO) for n in CLASSIC_TABLE_METRICS] + list(OTHER_METRICS)):
        mid = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(6))
        account.metrics.append({"type": "metric", "id": mid, "attributes": {
            "name": name, "created": metric_time(anchor - 3 * YEAR + number), "updated": metric_time(anchor - YEAR),
            "integration": {"object": "integration", **integration}}})
    for number in range(profile_count):
        profile = _rich_profile(rng, anchor, number)
        account.profiles[profile["id"]] = profile
    for kind, count, target in (("list", lists, account.lists), ("segment", segments, account.segments)):
        for number in range(count):
            created = anchor - YEAR - rng.randrange(YEAR)
            attributes = {"name": f"{kind.title()} {number}", "created": iso(created),
                          "updated": iso(created + rng.randrange(YEAR)), "opt_in_process": "single_opt_in",
                          "profile_count": rng.randrange(0, 50000)}
            if kind == "segment":
                attributes.update({"definition": None, "is_active": True, "is_processing": False,
                                   "is_starred": False})
            target.append({"type": kind, "id": f"{'Xy' if kind == 'list' else 'Sg'}{rng.randrange(16**4):04x}{number}",
                           "attributes": attributes})
    return account


def _fill(account, rng, timestamps_by_metric, wide_every):
    """Events at the given instants, each with a random profile; sorted per metric as data.Account keeps them.

    Every wide_every-th event (counting across metrics) carries an integer wider than 64 bits, so
    only some pages hold one; a negative one just past int64 comes along, which a 20-digit check misses.
    """
    profile_ids = list(account.profiles)
    n = 0
    for metric in account.metrics[:len(CLASSIC_TABLE_METRICS)]:
        name = metric["attributes"]["name"]
        messages = [_ulid(rng)[:6].upper() for _ in range(8)]
        events = []
        for timestamp in timestamps_by_metric.get(name, ()):
            n += 1
            properties = _event_properties(rng, name, n, rng.choice(messages))
            if wide_every and n % wide_every == wide_every // 2:
                properties["Order Number"] = WIDE_INTEGER + n
                properties["Ledger Delta"] = -(2 ** 63) - n
            events.append(Event(timestamp, account.next_id(rng), str(uuid.UUID(int=rng.getrandbits(128))),
                                rng.choice(profile_ids), metric["id"], properties))
        events.sort(key=lambda e: (e.timestamp, e.id))
        account.events[metric["id"]] = events
        account.keys[metric["id"]] = [(e.timestamp, e.id) for e in events]


def sparse(per_metric=2000, seed=1, anchor=None, profiles=None, wide_every=8000, lists=4, segments=2):
    """per_metric events for each classic table's metric, uniformly over the year before the anchor."""
    anchor = int(time.time()) // 60 * 60 if anchor is None else int(anchor)
    rng = random.Random(seed)
    account = _new_account(rng, anchor, profiles or max(40, per_metric * len(CLASSIC_TABLE_METRICS) // 4),
                           lists, segments)
    times = {name: [anchor - YEAR + rng.randrange(YEAR - 3600) for _ in range(per_metric)]
             for name in CLASSIC_TABLE_METRICS}
    _fill(account, rng, times, wide_every)
    return account


def dense_day(anchor):
    """The dense shape's day: the last whole UTC day before the anchor; its start is the bookmark."""
    return anchor // DAY * DAY - DAY


def dense(per_metric=15000, seed=1, anchor=None, profiles=None, history_per_metric=100, wide_every=8000,
          lists=4, segments=2):
    """per_metric events for each classic table's metric within dense_day(anchor), half of them in a
    two-hour send burst (many per second), plus history_per_metric events in the year before that day."""
    anchor = int(time.time()) // 60 * 60 if anchor is None else int(anchor)
    rng = random.Random(seed)
    account = _new_account(rng, anchor, profiles or max(40, per_metric), lists, segments)
    day = dense_day(anchor)
    times = {}
    for index, name in enumerate(CLASSIC_TABLE_METRICS):
        burst = day + (8 + index) * 3600
        inside = [burst + rng.randrange(7200) if k % 2 else day + rng.randrange(DAY) for k in range(per_metric)]
        before = [day - YEAR + rng.randrange(YEAR) for _ in range(history_per_metric)]
        times[name] = inside + before
    _fill(account, rng, times, wide_every)
    return account


def _updated_before(account, rng, anchor):
    """Each profile's updated between its creation and a minute before the anchor (the rich profile
    may date its update up to a year after creation, past the anchor)."""
    for profile in account.profiles.values():
        attributes = profile["attributes"]
        created = calendar.timegm(time.strptime(attributes["created"], "%Y-%m-%dT%H:%M:%S+00:00"))
        attributes["updated"] = iso(created + rng.randrange(max(1, anchor - 60 - created)))


def profiles(count=50000, seed=1, anchor=None, lists=4, segments=2):
    """count Shopify-like profiles and no events: what the `profiles` stream reads at scale. Each
    profile's updated falls between its creation and a minute before the anchor, so a sync from
    three years back reads every one."""
    anchor = int(time.time()) // 60 * 60 if anchor is None else int(anchor)
    rng = random.Random(seed)
    account = _new_account(rng, anchor, count, lists, segments)
    _updated_before(account, rng, anchor)
    return account


def resources(campaigns=400, flows=40, flow_actions=600, templates=60, tags=30, lists=20, segments=5,
              members=20000, profiles=30000, per_metric=200, seed=1, anchor=None, wide_every=8000, **areas):
    """The resource streams at scale: `campaigns` (with their messages, over the three channels, some
    archived), `flows` with `flow_actions` actions in all and their messages, `templates`, `tags`,
    `lists` and `segments` of about `members` members each, drawn from `profiles` profiles (so a
    profile is in many), and per_metric events per classic table. The campaigns, flows, actions,
    messages and templates are created and updated in the year before the anchor, never after it
    (members joined after their profile was created, in the two years before the anchor). `areas`:
    issue 22's areas' counts, as entities.Scale takes them (the test account's by default)."""
    anchor = int(time.time()) // 60 * 60 if anchor is None else int(anchor)
    rng = random.Random(seed)
    account = _new_account(rng, anchor, profiles, lists, segments)
    _updated_before(account, rng, anchor)
    times = {name: [anchor - YEAR + rng.randrange(YEAR - 3600) for _ in range(per_metric)]
             for name in CLASSIC_TABLE_METRICS}
    _fill(account, rng, times, wide_every)
    scale = entities.Scale(campaigns=campaigns, flows=flows, flow_actions=flow_actions, templates=templates,
                           tags=tags, members=members, **areas)
    entities.populate(account, random.Random(f"entities:{seed}"), scale)
    return account


# A mid-size shop (inferred from the shapes Klaviyo's own docs and the peers' issue threads show: no
# published distribution exists): what shapes.whole holds besides the resources account's entities.
WHOLE = {"profiles": 40000, "per_metric": 4000, "lists": 15, "segments": 8, "members": 4000}


def whole(seed=1, anchor=None, wide_every=8000, **counts):
    """Every stream's data at a mid-size shop's counts: the resources account (campaigns, flows,
    templates, tags, lists and segments with members) with a year of events, then each area's own
    generator at its realistic counts (the catalog, coupons, forms, reviews, push tokens, images,
    attributions, text-message events) and campaign and flow sends for the reports."""
    from . import attributions, catalog, forms, marketing, reports, textmessages
    sizes = dict(WHOLE, **counts)
    areas = {"catalog": catalog.Counts(coupons=30, codes=15000, items=2000, variants=6000, categories=40,
                                       reviews=3000, store_reviews=100),
             "marketing": marketing.Counts(images=300, push_tokens=3000),
             "forms": forms.FormCounts(forms=30, versions=(1, 4), visitors=(5, 60)),
             "textmessages": textmessages.Counts(per_metric=1500),
             "attributions": attributions.Counts()}
    account = resources(profiles=sizes["profiles"], per_metric=sizes["per_metric"], lists=sizes["lists"],
                        segments=sizes["segments"], members=sizes["members"], seed=seed, anchor=anchor,
                        wide_every=wide_every, **areas)
    reports.populate(account, seed=seed)
    return account


def resource_counts(account):
    """What the resource streams hold, per kind (the sandbox's ready line for the resources shape)."""
    held = entities.of(account)
    return {"campaigns": len(held.campaigns), "campaign_messages": len(held.campaign_messages),
            "archived_campaigns": sum(1 for c in held.campaigns if c["attributes"]["archived"]),
            "flows": len(held.flows), "flow_actions": len(held.flow_actions),
            "flow_messages": len(held.flow_messages), "templates": len(held.templates), "tags": len(held.tags),
            "lists": len(account.lists), "segments": len(account.segments),
            "list_members": sum(len(m) for m in held.members["list"].values()),
            "segment_members": sum(len(m) for m in held.members["segment"].values()),
            # issue 22's areas, as the admin dump holds them
            **{kind: len(items) for kind, items in entities.dump(account).items()
               if kind in ISSUE_22_KINDS and items}}


ISSUE_22_KINDS = ("tag_groups", "coupons", "coupon_codes", "catalog_items", "catalog_variants", "catalog_categories",
                  "reviews", "images", "push_tokens", "accounts", "forms", "form_versions", "event_attributions")


def resource_samples(account, members=5):
    """Ids a benchmark changes through the admin calls: a campaign per channel, two flows, a template,
    a list with members and `members` profiles not in it."""
    held = entities.of(account)
    by_channel = {}
    for campaign in held.campaigns:
        by_channel.setdefault(held.channel[campaign["id"]], campaign["id"])
    flows = [f["id"] for f in held.flows if f["relationships"]["flow-actions"]["data"]]
    group = next((g["id"] for g in account.lists if held.members["list"].get(g["id"])), None)
    joined = held.members["list"].get(group, {})
    return {"campaigns": list(by_channel.values()), "flows": flows[len(flows) // 3::len(flows) // 3 or 1][:2],
            "templates": [t["id"] for t in held.templates[len(held.templates) // 2:][:1]], "list": group,
            "profiles_not_in_list": [pid for pid in account.profiles if pid not in joined][:members]}


def classic_counts(account, since, until):
    """Events per classic metric (Klaviyo integration) in [since, until): what a sync of the ten
    tables over that range must read."""
    counts = {}
    for metric in account.metrics:
        attributes = metric["attributes"]
        if attributes["integration"]["name"] != "Klaviyo" or attributes["name"] not in CLASSIC_METRIC_NAMES:
            continue
        counts[metric["id"]] = sum(1 for e in account.events.get(metric["id"], ()) if since <= e.timestamp < until)
    return counts
