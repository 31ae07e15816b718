"""API resources turned into the classic tables' rows, one function per family."""
from .timeutil import iso_to_classic, parse_instant, to_classic

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
EVENT_FIELDS = "timestamp,uuid,event_properties"

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
            timestamp = parse_instant(attributes["datetime"])
        if not lower <= timestamp < upper:
            continue
        statistic_id = _related_id(event, "metric") or metric_id
        rows.append({
            "id": event["id"],
            "uuid": attributes.get("uuid"),
            "timestamp": timestamp,
            "datetime": to_classic(timestamp),
            "event_name": names.get(statistic_id) or metric_name,
            "statistic_id": statistic_id,
            "object": "event",
            "event_properties": attributes.get("event_properties"),
            "person": persons.get(_related_id(event, "profile")),
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
    return max(suppressions, key=lambda s: parse_instant(s.get("timestamp") or "1970-01-01T00:00:00Z"))


def exclusion_row(profile):
    """The classic global_exclusions row of a suppressed profile, or None when it has no email."""
    email = (profile.get("attributes") or {}).get("email")
    suppression = latest_suppression(profile)
    if not email or suppression is None:
        return None
    return {
        "email": email,
        "object": "exclusion",
        "reason": SUPPRESSION_REASONS.get(suppression.get("reason"), str(suppression.get("reason")).lower()),
        "timestamp": iso_to_classic(suppression.get("timestamp")),
    }
