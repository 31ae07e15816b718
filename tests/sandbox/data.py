"""A deterministic generated Klaviyo account, shaped like a real one.

Same seed, size and anchor give the same account. The anchor is the account's "now": ordinary
events lie in the year before it, a few are dated after it (sender clock skew).

An event may also be held: it exists but nothing serves it (not /api/events, not the metric
aggregates) until it is revealed, as Klaviyo's eventually consistent event store shows some events
days after their datetime.
"""
import bisect
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

KLAVIYO = {"id": "0rG4eQ", "name": "Klaviyo", "category": "Internal"}
API = {"id": "7FtS4J", "name": "API", "category": "API"}
SHOPIFY = {"id": "0eMvjm", "name": "Shopify", "category": "eCommerce"}

# metric name, integration, share of events
METRICS = (
    ("Received Email", KLAVIYO, 30),
    ("Opened Email", KLAVIYO, 18),
    ("Clicked Email", KLAVIYO, 7),
    ("Bounced Email", KLAVIYO, 2),
    ("Dropped Email", KLAVIYO, 1),
    ("Marked Email as Spam", KLAVIYO, 1),
    ("Subscribed to List", KLAVIYO, 3),
    ("Unsubscribed from List", KLAVIYO, 1),
    ("Unsubscribed from Email Marketing", KLAVIYO, 1),
    ("Unsubscribed", KLAVIYO, 1),                  # the metric's old name, still holding old events
    ("Updated Email Preferences", KLAVIYO, 1),
    ("Clicked Email", API, 3),                     # a custom event, not the classic table
    ("Received SMS", KLAVIYO, 5),
    ("Placed Order", SHOPIFY, 6),
    ("Viewed Product", API, 12),
    ("Active on Site", API, 8),
)

REASONS = ("UNSUBSCRIBE", "HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "USER_SUPPRESSED")
YEAR = 365 * 86400
WIDE_INTEGER = 2 ** 70 + 7


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def metric_time(epoch):
    """A metric's created/updated as the spec describes them: "ISO 8601 format
    (YYYY-MM-DDTHH:MM:SS.mmmmmm)", a plain string with no offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000", time.gmtime(epoch))


@dataclass
class Event:
    timestamp: int
    id: str
    uuid: str
    profile_id: str
    metric_id: str
    properties: dict


@dataclass
class Account:
    anchor: int
    metrics: list = field(default_factory=list)         # JSON:API metric resources
    profiles: dict = field(default_factory=dict)        # id -> JSON:API profile resource (all attributes)
    lists: list = field(default_factory=list)
    segments: list = field(default_factory=list)
    events: dict = field(default_factory=dict)          # metric id -> [Event] sorted by (timestamp, id)
    keys: dict = field(default_factory=dict)            # metric id -> [(timestamp, id)] for bisect
    held: dict = field(default_factory=dict)            # event id -> Event not served yet, in the order held
    lock: threading.Lock = field(default_factory=threading.Lock)
    # what /api/events serves as null though the account knows it (see nullify): (type, id) -> names,
    # "*" for the whole attributes member; and resources gone from `included` (deleted since)
    served_null: dict = field(default_factory=dict)
    not_included: set = field(default_factory=set)
    _serial: int = 0
    # bumped by every change to what the API serves: the server's memoized events and profiles
    # (fragments.py) are valid for one version only
    version: int = 0

    def changed(self):
        """Call after changing the account (add_event and nullify do): memoized JSON is dropped."""
        self.version += 1

    def metric_by_name(self, name, integration="Klaviyo"):
        for metric in self.metrics:
            if metric["attributes"]["name"] == name and metric["attributes"]["integration"]["name"] == integration:
                return metric
        return None

    def next_id(self, rng):
        self._serial += 1
        return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(6)) \
            + format(self._serial, "07x")

    def add_event(self, event):
        with self.lock:
            self._insert(event)
            self.changed()

    def _insert(self, event):
        # the caller holds the lock
        keys = self.keys.setdefault(event.metric_id, [])
        events = self.events.setdefault(event.metric_id, [])
        at = bisect.bisect_right(keys, (event.timestamp, event.id))
        keys.insert(at, (event.timestamp, event.id))
        events.insert(at, event)

    def hold(self, event):
        """Keep an event the API does not serve until reveal() (nothing served changes: no version bump)."""
        with self.lock:
            self.held[event.id] = event

    def reveal(self, ids=None):
        """Serve held events from now on, exactly as if added now; every held one when ids is None.
        Returns their ids; an id not held raises KeyError and reveals none (the call is all or nothing)."""
        with self.lock:
            chosen = list(self.held) if ids is None else list(dict.fromkeys(ids))
            unknown = [event_id for event_id in chosen if event_id not in self.held]
            if unknown:
                raise KeyError(unknown[0])
            for event_id in chosen:
                self._insert(self.held.pop(event_id))
            self.changed()
            return chosen

    def all_events(self):
        with self.lock:
            return [e for events in self.events.values() for e in events]

    def held_events(self):
        with self.lock:
            return list(self.held.values())


def _properties(rng, name, n):
    subject = rng.choice(["Spring sale", "Your order", "Grüße aus Köln 🎉", "Last chance", "We miss you"])
    if name in ("Received Email", "Opened Email", "Clicked Email", "Bounced Email", "Dropped Email",
                "Marked Email as Spam"):
        props = {"Campaign Name": f"Campaign {n % 97}", "Subject": subject, "$message": f"M{n % 997:04d}",
                 "$_cohort$message_send_cohort": f"{n % 53}:{n % 7}", "$flow": ""}
        if name == "Opened Email":
            props["Client Name"] = rng.choice(["Gmail", "Apple Mail", "Outlook", None])
        if name == "Clicked Email":
            props["URL"] = f"https://shop.example/p/{n % 311}?utm_source=klaviyo"
        if name == "Bounced Email":
            props["Bounce Type"] = rng.choice(["hard", "soft"])
        return props
    if name in ("Subscribed to List", "Unsubscribed from List"):
        return {"List": f"List {n % 5}", "$list": f"L{n % 5}", "$source": rng.choice([-9, 5, "API"])}
    if name == "Placed Order":
        return {"$value": round(rng.uniform(5, 500), 2), "Items": [{"SKU": f"SKU-{n % 41}", "Quantity": 1 + n % 3,
                "Price": 19.99}], "$event_id": str(1000000 + n)}
    return {"Source": rng.choice(["web", "ios", "android"]), "n": n}


def _profile(rng, account, number):
    pid = "01" + "".join(rng.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(24))
    has_email = number % 10 != 9
    created = account.anchor - YEAR - rng.randrange(YEAR)
    location = None if number % 7 == 0 else {
        "address1": f"{number} Main St", "address2": None if number % 2 else "Apt 4",
        "city": rng.choice(["Boston", "Zürich", "Austin", "Lyon"]), "region": rng.choice(["MA", "ZH", "TX", None]),
        "zip": f"{rng.randrange(10000, 99999)}", "country": rng.choice(["US", "CH", "FR"]),
        "latitude": round(rng.uniform(-60, 60), 4) if number % 3 else str(round(rng.uniform(-60, 60), 4)),
        "longitude": round(rng.uniform(-120, 120), 4), "timezone": rng.choice(["America/New_York", "Europe/Zurich"]),
        "ip": "203.0.113.9",
    }
    properties = {"Plan": rng.choice(["free", "pro", "team"]), "Favorite Color": rng.choice(["red", "blue", None])}
    if number % 11 == 0:
        properties["$email"] = "shadow@example.invalid"      # a custom key that must not win
        properties["created"] = "not the profile's created"
    if number % 13 == 0:
        properties["Lifetime Orders"] = WIDE_INTEGER
    suppression = []
    if number % 12 == 3:
        first = REASONS[(number // 12) % 5]
        suppression.append({"reason": first, "timestamp": iso(created + 86400 * (1 + number % 90))})
        if number % 24 == 3:   # suppressed twice: the later reason is the one that counts
            second = REASONS[(number // 12 + 2) % 5]
            suppression.append({"reason": second, "timestamp": iso(created + 86400 * (100 + number % 90))})
    attributes = {
        "email": f"person{number}@example.com" if has_email else None,
        "phone_number": f"+1617555{number % 10000:04d}",
        "external_id": f"ext-{number}" if number % 4 else None,
        "first_name": rng.choice(["Ada", "Björn", "Chloé", "Dmitri", None]),
        "last_name": rng.choice(["Lovelace", "O'Brien", "Søndergaard", None]),
        "organization": rng.choice(["Acme", None]),
        "title": rng.choice(["CTO", "Buyer", None]),
        "image": None,
        "created": iso(created),
        "updated": iso(created + rng.randrange(YEAR)),
        "last_event_date": None,
        "location": location,
        "properties": properties,
        "subscriptions": {"email": {"marketing": {"can_receive_email_marketing": not suppression,
                                                  "consent": "SUBSCRIBED", "suppression": suppression}}},
    }
    return {"type": "profile", "id": pid, "attributes": attributes}


def generate(events=3000, seed=1, anchor=None, lists=4, segments=2):
    """An account with about `events` events (plus three dated after the anchor)."""
    anchor = int(time.time()) // 60 * 60 if anchor is None else int(anchor)
    rng = random.Random(seed)
    account = Account(anchor=anchor)
    for number, (name, integration, _) in enumerate(METRICS):
        mid = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(6))
        account.metrics.append({"type": "metric", "id": mid, "attributes": {
            "name": name, "created": metric_time(anchor - 3 * YEAR + number), "updated": metric_time(anchor - YEAR),
            "integration": {"object": "integration", **integration}}})
    profile_ids = []
    for number in range(max(40, events // 15)):
        profile = _profile(rng, account, number)
        account.profiles[profile["id"]] = profile
        profile_ids.append(profile["id"])
    for kind, count, target in (("list", lists, account.lists), ("segment", segments, account.segments)):
        for number in range(count):
            created = anchor - YEAR - rng.randrange(YEAR)
            attributes = {"name": f"{kind.title()} {number}", "created": iso(created),
                          "updated": iso(created + rng.randrange(YEAR)), "opt_in_process": "single_opt_in",
                          "profile_count": rng.randrange(0, 5000)}
            if kind == "segment":
                attributes.update({"definition": None, "is_active": True, "is_processing": False,
                                   "is_starred": number % 2 == 0})
            target.append({"type": kind, "id": f"{'Xy' if kind == 'list' else 'Sg'}{rng.randrange(16**4):04x}{number}",
                           "attributes": attributes})

    weights = [w for _, _, w in METRICS]
    received = account.metrics[0]["id"]
    # a campaign send: many events in one second, more than one page of 1000 when the account is big
    cluster = 1200 if events >= 8000 else max(1, events // 12)
    cluster_at = anchor - YEAR // 2 + 17
    for n in range(events):
        if n < cluster:
            metric, timestamp = account.metrics[0], cluster_at
        else:
            metric = account.metrics[rng.choices(range(len(METRICS)), weights)[0]]
            timestamp = anchor - 3600 - rng.randrange(YEAR - 3600)
        account.add_event(Event(timestamp, account.next_id(rng), str(uuid.UUID(int=rng.getrandbits(128))),
                                rng.choice(profile_ids), metric["id"],
                                _properties(rng, metric["attributes"]["name"], n)))
    wide = account.events[received][len(account.events[received]) // 3]
    wide.properties["Order Number"] = WIDE_INTEGER
    for days, name in ((1, "Opened Email"), (2, "Clicked Email"), (3, "Received Email")):
        metric = account.metric_by_name(name)
        account.add_event(Event(anchor + days * 86400, account.next_id(rng), str(uuid.UUID(int=rng.getrandbits(128))),
                                profile_ids[days], metric["id"], {"Subject": "from the future"}))
    assert received == account.metric_by_name("Received Email")["id"]
    from . import entities      # campaigns, flows, members...: their own random stream, so the above stays as it was
    entities.populate(account, random.Random(f"entities:{seed}"))
    return account


def new_event(account, metric_name, timestamp, integration="Klaviyo", seed=0, held=False):
    """An event added after generation (the tests' "new events since the last sync"); held: one
    Klaviyo has not shown yet (see Account.reveal)."""
    rng = random.Random(f"{seed}:{metric_name}:{timestamp}:{account._serial}")
    metric = account.metric_by_name(metric_name, integration)
    profile_id = sorted(account.profiles)[rng.randrange(len(account.profiles))]
    event = Event(int(timestamp), account.next_id(rng), str(uuid.UUID(int=rng.getrandbits(128))), profile_id,
                  metric["id"], {"Subject": "added later", "n": account._serial})
    if held:
        account.hold(event)
    else:
        account.add_event(event)
    return event


# Every value the spec lets Klaviyo send as null or leave out, one kind at a time (see nullify).
NULL_KINDS = (
    "event_without_profile",        # no profile relationship at all ("if available")
    "profile_not_included",         # a profile relationship whose profile is not in `included`
    "null_uuid", "null_event_properties",
    "null_timestamp",               # timestamp null, datetime present
    "null_times",                   # timestamp and datetime both null
    "deleted_metric",               # the metric is gone from `included` (deleted after listing)
    "null_profile_attributes", "null_profile_location", "null_profile_properties",
    "null_suppression_timestamp",
)


def nullify(account, kind, metric_name="Received Email", count=3):
    """Put one kind of null into the account; returns the ids it touched (events, profiles or the
    metric). Events, and the profiles of the null_profile_ kinds and profile_not_included, are chosen
    evenly among the metric's events before the anchor."""
    if kind not in NULL_KINDS:
        raise ValueError(f"unknown null kind {kind!r}; one of {', '.join(NULL_KINDS)}")
    metric = account.metric_by_name(metric_name)
    if kind == "deleted_metric":
        account.not_included.add(("metric", metric["id"]))
        account.changed()
        return [metric["id"]]
    if kind == "null_suppression_timestamp":
        touched = _null_suppression_timestamps(account, count)
        account.changed()
        return touched
    events = [e for e in account.events[metric["id"]] if e.timestamp < account.anchor and e.profile_id]
    chosen = [events[(len(events) - 1) * n // max(1, count - 1)] for n in range(count)] if count > 1 else events[:1]
    if kind.startswith("null_profile_") or kind == "profile_not_included":
        touched = list(dict.fromkeys(e.profile_id for e in chosen))
        for profile_id in touched:
            member = kind[len("null_profile_"):]
            if kind == "profile_not_included":
                account.not_included.add(("profile", profile_id))
            elif member == "attributes":
                account.served_null.setdefault(("profile", profile_id), set()).add("*")
            else:
                account.profiles[profile_id]["attributes"][member] = None
        account.changed()
        return touched
    for event in chosen:
        if kind == "event_without_profile":
            event.profile_id = None
        elif kind == "null_uuid":
            event.uuid = None
        elif kind == "null_event_properties":
            event.properties = None
        else:
            names = {"timestamp"} if kind == "null_timestamp" else {"timestamp", "datetime"}
            account.served_null.setdefault(("event", event.id), set()).update(names)
    account.changed()
    return [e.id for e in chosen]


def _null_suppression_timestamps(account, count):
    """The latest suppression of `count` suppressed profiles loses its timestamp."""
    touched = []
    for profile in account.profiles.values():
        suppressions = profile["attributes"]["subscriptions"]["email"]["marketing"]["suppression"]
        if suppressions and profile["attributes"]["email"] and len(touched) < count:
            max(suppressions, key=lambda s: s["timestamp"])["timestamp"] = None
            touched.append(profile["id"])
    return touched
