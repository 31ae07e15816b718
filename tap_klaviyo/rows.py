"""API resources turned into the classic tables' rows, one function per family."""
import logging

from msgspec.structs import astuple

from . import pages
from .timeutil import iso_to_classic, parse_instant, to_api, to_classic

# What the event requests ask for: every profile attribute the classic person object needs (see
# person_json for where each goes), nothing more.
PROFILE_FIELDS = ("email,first_name,last_name,phone_number,organization,title,external_id,location,properties,"
                  "created,updated")
# every event attribute is nullable: datetime places an event whose timestamp is null
EVENT_FIELDS = "timestamp,datetime,uuid,event_properties"
_NO_LOCATION = pages.Location()
_PERSON_KEYS = ("object", "id", "$email", "$first_name", "$last_name", "$phone_number", "$organization", "$title",
                "$id", "$address1", "$address2", "$city", "$region", "$zip", "$country", "$latitude", "$longitude",
                "$timezone", "created", "updated")
_Person = pages.object_type("Person", _PERSON_KEYS)
_has_person_key = pages.member_test(_PERSON_KEYS)

LOGGER = logging.getLogger("tap_klaviyo")

SUPPRESSION_REASONS = {
    "UNSUBSCRIBE": "unsubscribed",
    "HARD_BOUNCE": "bounced",
    "INVALID_EMAIL": "invalid_email",
    "SPAM_COMPLAINT": "reported_spam",
    "USER_SUPPRESSED": "manually_excluded",
}


def person_json(profile_id, attributes):
    """The classic person object of a profile (attributes: a pages.ProfileAttributes, or None when
    the profile was not included), as JSON text shared by all its events on the page."""
    if attributes is None:     # not included (deleted since): its id, nulls elsewhere
        return pages.Raw(pages.encode(_Person("person", profile_id, *[None] * (len(_PERSON_KEYS) - 2))))
    location = attributes.location or _NO_LOCATION
    # once per profile on every events page: one positional call, not a loop over a key table
    person = _Person(
        "person", profile_id, attributes.email, attributes.first_name, attributes.last_name,
        attributes.phone_number, attributes.organization, attributes.title, attributes.external_id,
        location.address1, location.address2, location.city, location.region, location.zip, location.country,
        location.latitude, location.longitude, location.timezone,
        iso_to_classic(attributes.created), iso_to_classic(attributes.updated))
    standard = pages.encode(person)
    properties = bytes(attributes.properties)
    if not properties.startswith(b"{"):     # null (or, off the spec, not an object): none to add
        return pages.Raw(standard)
    if not _has_person_key(properties):
        # Custom properties follow the standard keys as Klaviyo wrote them, never decoded: the
        # standard part's closing brace gives way to the object's members (none: nothing to add).
        members = properties[1:]
        if members.lstrip(b" \t") == b"}":
            return pages.Raw(standard)
        return pages.Raw(b"".join((standard[:-1], b",", members)))
    row = dict(zip(_PERSON_KEYS, astuple(person)))
    for key, value in pages.decode(properties).items():
        row.setdefault(key, value)      # custom properties never overwrite the standard keys
    return pages.Raw(pages.encode(row))


# A profile's events fill many pages of a run, and each page includes the profile again: its person
# object is remembered with the attributes it was made from, and made again only when they differ
# (mapping the 20 pages of the sparse benchmark takes about half the time). Forgotten all at once
# past a size.
_KNOWN_PERSONS = {}
KNOWN_PERSONS_BYTES = 16 << 20
_ENTRY_OVERHEAD = 400      # bytes an entry costs beyond its two texts (objects, dict slot), measured
_known_bytes = 0


def _person_of(resource):
    global _known_bytes
    attributes = bytes(resource.attributes)
    known = _KNOWN_PERSONS.get(resource.id)
    if known is not None and known[0] == attributes:
        return known[1]
    person = person_json(resource.id, resource.profile_attributes())
    if known is not None:
        _known_bytes -= len(known[0]) + len(known[1]) + _ENTRY_OVERHEAD
    _known_bytes += len(attributes) + len(person) + _ENTRY_OVERHEAD
    if _known_bytes > KNOWN_PERSONS_BYTES:
        _KNOWN_PERSONS.clear()
        _known_bytes = len(attributes) + len(person) + _ENTRY_OVERHEAD
    _KNOWN_PERSONS[resource.id] = (attributes, person)
    return person


def event_instant(event):
    """Epoch seconds of an event (a pages.Event): its timestamp, else its datetime; None when it
    has neither."""
    attributes = event.attributes
    timestamp = attributes.timestamp if attributes is not None else None
    if isinstance(timestamp, int):
        return timestamp
    try:
        return parse_instant(attributes.datetime if attributes is not None else None)
    except ValueError:
        # A windowed query cannot match an event without a time, so this is a server anomaly; a row
        # whose replication key is null could not be bookmarked or re-read, so it is left out, loudly.
        LOGGER.warning("event %s has neither timestamp nor datetime; skipped", event.id)
        return None


def _events_in_range(page, lower, upper):
    """(instant, event) of a pages.EventPage's events in [lower, upper), in the page's order."""
    for event in page.data:
        attributes = event.attributes
        timestamp = attributes.timestamp if attributes is not None else None
        if not isinstance(timestamp, int):
            timestamp = event_instant(event)
            if timestamp is None:
                continue
        if lower <= timestamp < upper:
            yield timestamp, event


def event_rows(page, metric_id, metric_name, lower, upper):
    """Classic rows of one /api/events page (a pages.EventPage) in [lower, upper).

    Each included profile becomes one person object, encoded once and shared by its events.
    """
    persons, names = {}, {}
    for resource in page.included or ():
        if resource.type == "profile":
            persons[resource.id] = _person_of(resource)
        elif resource.type == "metric":
            names[resource.id] = resource.metric_name()
    rows = []
    for timestamp, event in _events_in_range(page, lower, upper):
        attributes = event.attributes
        statistic_id, profile_id = event.related_ids()
        # a metric deleted since keeps its id here; the name then comes from the stream's metric
        statistic_id = statistic_id or metric_id
        if profile_id is None:
            person = None
        else:
            person = persons.get(profile_id)
            if person is None:      # a profile not included (deleted since): its id, nulls elsewhere
                person = persons[profile_id] = person_json(profile_id, None)
        rows.append({
            "id": event.id,
            "uuid": attributes.uuid,
            "timestamp": timestamp,
            "datetime": to_classic(timestamp),
            "event_name": names.get(statistic_id) or metric_name,
            "statistic_id": statistic_id,
            "object": "event",
            "event_properties": attributes.event_properties,
            "person": person,
        })
    return rows


def list_row(resource, kind, person_count):
    """kind is "list" or "segment"; v1 returned both as objects of type "list"."""
    attributes = resource.get("attributes") or {}
    return {
        "id": resource.get("id"),
        "name": attributes.get("name"),
        "created": iso_to_classic(attributes.get("created")),
        "updated": iso_to_classic(attributes.get("updated")),
        "object": "list",
        "type": kind,
        "person_count": person_count,
        "list_type": kind,
        "folder": None,
    }


def latest_suppression(profile):
    subscriptions = (profile.get("attributes") or {}).get("subscriptions") or {}
    marketing = ((subscriptions.get("email") or {}).get("marketing")) or {}
    suppressions = [s for s in marketing.get("suppression") or () if isinstance(s, dict)]
    if not suppressions:
        return None
    return max(suppressions, key=_suppressed_at)


def _suppressed_at(suppression):
    """Epoch seconds of a suppression; one without a readable time counts as the oldest."""
    try:
        return parse_instant(suppression.get("timestamp"))
    except ValueError:
        return float("-inf")


def exclusion_row(profile):
    """The classic global_exclusions row of a suppressed profile, or None when it has no email."""
    email = (profile.get("attributes") or {}).get("email")
    suppression = latest_suppression(profile)
    if not email or suppression is None:
        return None
    reason = suppression.get("reason")
    return {
        "email": email,
        "object": "exclusion",
        "reason": SUPPRESSION_REASONS.get(reason, reason.lower() if isinstance(reason, str) else None),
        "timestamp": iso_to_classic(suppression.get("timestamp")),
    }


# --- API-shaped rows of the opt-in streams -------------------------------------------------------

def api_event_rows(page, metric_names, lower, upper):
    """`events` rows of one /api/events page (a pages.EventPage) in [lower, upper): the event as
    Klaviyo sends it, its metric and profile by id (no profile object: that is the `profiles`
    stream's job)."""
    rows = []
    for timestamp, event in _events_in_range(page, lower, upper):
        attributes = event.attributes
        metric_id, profile_id = event.related_ids()
        rows.append({
            "id": event.id,
            "uuid": attributes.uuid,
            "timestamp": timestamp,
            "datetime": attributes.datetime or to_api(timestamp),
            "metric_id": metric_id,
            "metric_name": metric_names.get(metric_id),
            "profile_id": profile_id,
            "event_properties": attributes.event_properties,
        })
    return rows


def resource_row(resource, parent_column=None, parent_id=None, columns=None):
    """A JSON:API resource as a row: its id, its parent's id (child streams), then every attribute
    under its API name and value, nested objects kept as objects.

    columns, when given, are the attributes the row may carry (its schema's selected columns): an
    attribute Klaviyo adds in a later revision would otherwise fail the schema's validation.
    """
    row = {"id": resource.get("id")}
    if parent_column:
        row[parent_column] = parent_id
    for name, value in (resource.get("attributes") or {}).items():
        if columns is None or name in columns:
            row.setdefault(name, value)
    return row


def shaped_row(resource, shape, parent_column=None, parent_id=None, columns=None):
    """A JSON:API resource as a row of a stream whose columns are not its attributes one for one:
    shape is (column, attribute path) pairs ("definition.name"); a missing value is null.
    columns, when given, are the columns the row carries (the catalog's selection)."""
    row = {"id": resource.get("id")}
    if parent_column:
        row[parent_column] = parent_id
    attributes = resource.get("attributes") or {}
    for column, path in shape:
        if columns is not None and column not in columns:
            continue
        value = attributes
        for name in path.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        row.setdefault(column, value)
    return row


def member_row(profile, group_column, group_id):
    return {group_column: group_id, "profile_id": profile.get("id"),
            "joined_group_at": (profile.get("attributes") or {}).get("joined_group_at")}


def included_rows(parents, related_ids, lookup, row):
    """Issue 22: the rows of the resources that each parent names in a relationship read through
    `include`, in the parents' order: related_ids(parent) -> the ids it names (None: the parent
    says nothing of the relationship, counted as one missing), lookup(id) -> the page's included
    resource or None, row(parent, resource) -> the row. Returns (rows, missing): missing holds the
    parent of each resource named but not included, once per resource.

    What is missing is never lost, and each caller keeps what follows the read from passing it: a
    collection's read is then partial, so no ACTIVATE_VERSION and its next changes read starts
    from the same point (tasks/collections.py); event_attributions' bookmark is held at the
    earliest event lacking one, so the next run reads it again (tasks/ranges.py, Mark.held)."""
    rows, missing = [], []
    for parent in parents:
        related = related_ids(parent)
        if related is None:
            missing.append(parent)
            continue
        for related_id in related:
            resource = lookup(related_id)
            if resource is None:
                missing.append(parent)
            else:
                rows.append(row(parent, resource))
    return rows, missing


def attribution_rows(page, event_ids, columns, keep=None):
    """Issue 22: `event_attributions` rows of an /api/events page read with include=attributions (a
    pages.AttributedEventPage): the attributions of the events in event_ids (those the page writes),
    in the page's order. columns: (column, relationship) pairs (the stream's row); keep: the
    columns a row carries (None: all). Returns (rows, missing): missing holds the id of the event
    of each attribution the page names but does not include (see included_rows). An event that
    says nothing of its attributions has none."""
    included = {resource.id: resource for resource in page.included or () if resource.type == "attribution"}

    def row_of(event, resource):
        related = resource.related()
        row = {"id": resource.id, "event_id": related.get("event") or event.id}
        for column, relationship in columns:
            row[column] = related.get(relationship)
        if keep is not None:
            row = {name: value for name, value in row.items() if name in keep}
        return row

    events = [event for event in page.data or () if event.id in event_ids]
    rows, missing = included_rows(events, lambda event: event.attribution_ids() or (), included.get, row_of)
    return rows, [event.id for event in missing]
