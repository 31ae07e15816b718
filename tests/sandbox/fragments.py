"""/api/events pages put together from memoized JSON, so serving costs the sandbox little CPU.

Built as dicts and dumped whole, a 1,000-event page cost the sandbox ~65 ms of CPU: on the
benchmark's two cores that hid the tap's own speed, while Klaviyo serves pages on its own machines.
Here each event and each profile is encoded once with every attribute, and once more for each
sparse fieldset that picks other attributes or another order (from one JSON member per attribute,
which Pages.warm() keeps for profiles); a page is one join of its resources' bytes.

Staleness: a memo holds for one account state only, stamped with data.Account.version (bumped by
add_event and nullify, and by whatever else changes the account through account.changed()), the
entities' profile version (the admin profile touch) and the base URL the links name. Any other
stamp starts an empty memo.
"""
import gc
from operator import itemgetter

import msgspec

from . import entities
from .data import iso

# exact for integers wider than 64 bits (orjson refuses them), as real accounts hold
encode = msgspec.json.Encoder().encode


def fieldset(query, kind):
    """fields[kind] as a tuple of names without repeats, in the order asked; None when not asked."""
    raw = query.get(f"fields[{kind}]")
    return None if raw is None else tuple(dict.fromkeys(raw.split(",")))


def page(data, links, included=None):
    """A page's JSON from its resources' JSON, in one join: each concatenation of megabyte-long
    bytes costs more in fresh memory pages (~2 ms) than a whole page's joins do."""
    out = [b'{"data":[', *_commas(data), b'],"links":', encode(links)]
    if included is not None:
        out += [b',"included":[', *_commas(included), b"]"]
    out.append(b"}")
    return b"".join(out)


def _commas(pieces):
    separated = [b","] * (2 * len(pieces) - 1) if pieces else []
    separated[::2] = pieces
    return separated


def _event_parts(event, served_null, base_url):
    """(JSON before the attributes, the attributes, JSON after them) of an event resource."""
    attributes = {"timestamp": event.timestamp, "datetime": iso(event.timestamp), "uuid": event.uuid,
                  "event_properties": event.properties}
    attributes.update(dict.fromkeys(served_null.get(("event", event.id), ())))
    relationships = {} if event.profile_id is None else {
        "profile": {"data": {"type": "profile", "id": event.profile_id}}}
    relationships["metric"] = {"data": {"type": "metric", "id": event.metric_id}}
    return (b'{"type":"event","id":' + encode(event.id) + b',"attributes":', attributes,
            b',"relationships":' + encode(relationships) + b',"links":'
            + encode({"self": f"{base_url}/api/events/{event.id}/"}) + b"}")


def _profile_parts(profile, served_null, base_url):
    """The same for an included profile; its attributes are null when served_null says "*"."""
    attributes = None if "*" in served_null.get(("profile", profile["id"]), ()) else {
        k: v for k, v in profile["attributes"].items() if k != "subscriptions"}
    return b'{"type":"profile","id":' + encode(profile["id"]) + b',"attributes":', attributes, b"}"


class _Fieldset:
    """One sparse fieldset of one resource type: its resources' JSON, and their members it picks."""

    def __init__(self, names):
        self.names, self.json = names, {}
        # itemgetter picks in C, which counts on a first run; it needs two names or more, all present
        self.pick = itemgetter(*names) if len(names) > 1 else None

    def members(self, members):
        if self.pick is not None:
            try:
                return self.pick(members)
            except KeyError:
                pass
        return [members[name] for name in self.names if name in members]


class _Resources:
    """The JSON of one type of resource in one account state: each resource whole (every attribute,
    in the account's order) and as each sparse fieldset asked for it."""

    def __init__(self, parts, base_url):
        self.parts, self.base_url = parts, base_url
        self.whole = {}         # id -> (JSON, its attribute names in order; None for null attributes)
        self.asked = {}         # names -> _Fieldset
        self.members = {}       # id -> split(): kept by Pages.warm() for profiles
        self.orders = {}        # one tuple per distinct attribute order, shared by the resources

    def fieldset(self, names):
        """What json() takes as `asked`: fetched once a page, not once a resource."""
        if names is None:
            return None
        found = self.asked.get(names)
        if found is None:
            found = self.asked[names] = _Fieldset(names)
        return found

    def json(self, rid, source, served_null, names, asked):
        found = self.whole.get(rid)
        if found is None:
            head, attributes, tail = self.parts(source, served_null, self.base_url)
            order = None if attributes is None else self.orders.setdefault(tuple(attributes), tuple(attributes))
            found = self.whole[rid] = (head + encode(attributes) + tail, order)
        if names is None or found[1] is None or names == found[1]:
            return found[0]
        piece = asked.json.get(rid)
        if piece is None:
            head, members, tail = self.members.get(rid) or self.split(source, served_null)
            piece = asked.json[rid] = head + b"{" + b",".join(asked.members(members)) + b"}" + tail
        return piece

    def split(self, source, served_null):
        """(JSON before the attributes, one JSON member per attribute, JSON after): what the
        resource is joined from for any sparse fieldset."""
        head, attributes, tail = self.parts(source, served_null, self.base_url)
        return head, {name: encode(name) + b":" + encode(value) for name, value in attributes.items()}, tail


class Memo:
    """The JSON of one account state's events and profiles (see the module's note on staleness)."""

    def __init__(self, stamp):
        self.stamp = stamp
        base_url = stamp[-1] if stamp else None
        self.events = _Resources(_event_parts, base_url)
        self.profiles = _Resources(_profile_parts, base_url)
        self.ordered = None     # every event across metrics, by (timestamp, id): (keys, events)

    def all_events(self, account):
        """(keys, events) of every metric in one (timestamp, id) order; the caller holds account.lock."""
        if self.ordered is None:
            # concatenated in the account's metric order, then a stable sort: ties keep that order
            events = sorted((e for events in account.events.values() for e in events),
                            key=lambda e: (e.timestamp, e.id))
            self.ordered = ([(e.timestamp, e.id) for e in events], events)
        return self.ordered


class Pages:
    """The memo of one Sandbox, replaced whenever the account's stamp changes."""

    def __init__(self, account):
        self.account = account
        self.current = Memo(None)

    def memo(self, base_url):
        """The memo for the account as it is now. Read it under account.lock with the events a page
        takes: a mutation bumps the version after its change, so a memo never outlives its state."""
        account = self.account
        stamp = (account.version, entities.of(account).versions["profiles"], base_url)
        memo = self.current
        if memo.stamp != stamp:
            memo = self.current = Memo(stamp)
        return memo

    def warm(self, base_url):
        """Encode every event and profile now (the benchmark's sandbox does, before it says it is
        ready), so that no page a run asks for pays for its encoding."""
        with self.account.lock:
            memo = self.memo(base_url)
            memo.all_events(self.account)
        served_null = self.account.served_null
        collecting = gc.isenabled()
        gc.disable()        # all it makes is kept: a collection would walk the whole account for nothing
        try:
            for events in list(self.account.events.values()):
                for event in events:
                    memo.events.json(event.id, event, served_null, None, None)
            # the tap asks for some of a profile's attributes, so every profile is split up front;
            # events, which it asks for whole, are not (their members would double the memo)
            for profile in list(self.account.profiles.values()):
                memo.profiles.json(profile["id"], profile, served_null, None, None)
                if memo.profiles.whole[profile["id"]][1] is not None:      # None: attributes served null
                    memo.profiles.members[profile["id"]] = memo.profiles.split(profile, served_null)
        finally:
            if collecting:
                gc.enable()
