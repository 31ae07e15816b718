"""API resources turned into the classic tables' rows, one function per family."""
import logging

from .timeutil import iso_to_classic, parse_instant, to_api, to_classic

# classic person key -> profile attribute
_PROFILE_KEYS = (
    ("$email", "email"), ("$first_name", "first_name"), ("$last_name", "last_name"),
    ("$phone_number", "phone_number"), ("$organization", "organization"), ("$title", "title"),
    ("$id", "external_id"),
)
# classic person key -> profile attributes.location member
_LOCATION_KEYS = (
    ("$address1", "address1"), ("$address2", "address2"), ("$city", "city"), ("$region", "region"),
    ("$zip", "zip"), ("$country", "country"), ("$latitude", "latitude"), ("$longitude", "longitude"),
    ("$timezone", "timezone"),
)

# What the event requests ask for: every attribute a classic column needs, nothing more.
PROFILE_FIELDS = ",".join([attr for _, attr in _PROFILE_KEYS] + ["location", "properties", "created", "updated"])
# every event attribute is nullable: datetime places an event whose timestamp is null
EVENT_FIELDS = "timestamp,datetime,uuid,event_properties"

LOGGER = logging.getLogger("tap_klaviyo")

SUPPRESSION_REASONS = {
    "UNSUBSCRIBE": "unsubscribed",
    "HARD_BOUNCE": "bounced",
    "INVALID_EMAIL": "invalid_email",
    "SPAM_COMPLAINT": "reported_spam",
    "USER_SUPPRESSED": "manually_excluded",
}


def person(profile):
    attributes = profile.get("attributes") or {}
    location = attributes.get("location") or {}
    row = {"object": "person", "id": profile.get("id")}
    for key, attr in _PROFILE_KEYS:
        row[key] = attributes.get(attr)
    for key, attr in _LOCATION_KEYS:
        row[key] = location.get(attr)
    row["created"] = iso_to_classic(attributes.get("created"))
    row["updated"] = iso_to_classic(attributes.get("updated"))
    for key, value in (attributes.get("properties") or {}).items():
        row.setdefault(key, value)      # custom properties never overwrite the standard keys
    return row


def _related_id(resource, name):
    data = ((resource.get("relationships") or {}).get(name) or {}).get("data")
    return data.get("id") if isinstance(data, dict) else None


def event_instant(event):
    """Epoch seconds of an event: its timestamp, else its datetime; None when it has neither."""
    attributes = event.get("attributes") or {}
    timestamp = attributes.get("timestamp")
    if isinstance(timestamp, int):
        return timestamp
    try:
        return parse_instant(attributes.get("datetime"))
    except ValueError:
        # A windowed query cannot match an event without a time, so this is a server anomaly; a row
        # whose replication key is null could not be bookmarked or re-read, so it is left out, loudly.
        LOGGER.warning("event %s has neither timestamp nor datetime; skipped", event.get("id"))
        return None


def event_rows(document, metric_id, metric_name, lower, upper):
    """Classic rows of one /api/events page, keeping only events in [lower, upper).

    Each included profile becomes one person object, shared by its events on the page.
    """
    persons, names = {}, {}
    for resource in document.get("included") or ():
        kind = resource.get("type")
        if kind == "profile":
            persons[resource.get("id")] = person(resource)
        elif kind == "metric":
            names[resource.get("id")] = (resource.get("attributes") or {}).get("name")
    rows = []
    for event in document["data"]:
        attributes = event.get("attributes") or {}
        timestamp = attributes.get("timestamp")
        if not isinstance(timestamp, int):
            timestamp = event_instant(event)
            if timestamp is None:
                continue
        if not lower <= timestamp < upper:
            continue
        # a metric deleted since keeps its id here; the name then comes from the stream's metric
        statistic_id = _related_id(event, "metric") or metric_id
        profile_id = _related_id(event, "profile")
        rows.append({
            "id": event["id"],
            "uuid": attributes.get("uuid"),
            "timestamp": timestamp,
            "datetime": to_classic(timestamp),
            "event_name": names.get(statistic_id) or metric_name,
            "statistic_id": statistic_id,
            "object": "event",
            "event_properties": attributes.get("event_properties"),
            # no profile: null; a profile not included (deleted since): its id, nulls elsewhere
            "person": (persons.get(profile_id) or person({"id": profile_id})) if profile_id else None,
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

def api_event_rows(document, metric_names, lower, upper):
    """`events` rows of one /api/events page in [lower, upper): the event as Klaviyo sends it, its
    metric and profile by id (no profile object: that is the `profiles` stream's job)."""
    rows = []
    for event in document["data"]:
        attributes = event.get("attributes") or {}
        timestamp = attributes.get("timestamp")
        if not isinstance(timestamp, int):
            timestamp = event_instant(event)
            if timestamp is None:
                continue
        if not lower <= timestamp < upper:
            continue
        metric_id = _related_id(event, "metric")
        rows.append({
            "id": event["id"],
            "uuid": attributes.get("uuid"),
            "timestamp": timestamp,
            "datetime": attributes.get("datetime") or to_api(timestamp),
            "metric_id": metric_id,
            "metric_name": metric_names.get(metric_id),
            "profile_id": _related_id(event, "profile"),
            "event_properties": attributes.get("event_properties"),
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


def member_row(profile, group_column, group_id):
    return {group_column: group_id, "profile_id": profile.get("id"),
            "joined_group_at": (profile.get("attributes") or {}).get("joined_group_at")}
