"""What the classic tables must hold, computed from the sandbox's own data by the tests' own code
(independently of tap_klaviyo.rows), following the field map in the reference doc."""
import time

CLASSIC_METRICS = {
    "receive": ["Received Email"], "open": ["Opened Email"], "click": ["Clicked Email"],
    "bounce": ["Bounced Email"], "dropped_email": ["Dropped Email"], "mark_as_spam": ["Marked Email as Spam"],
    "subscribe_list": ["Subscribed to List"], "unsub_list": ["Unsubscribed from List"],
    "unsubscribe": ["Unsubscribed from Email Marketing", "Unsubscribed"],
    "update_email_preferences": ["Updated Email Preferences"],
}
REASON_WORDS = {"UNSUBSCRIBE": "unsubscribed", "HARD_BOUNCE": "bounced", "INVALID_EMAIL": "invalid_email",
                "SPAM_COMPLAINT": "reported_spam", "USER_SUPPRESSED": "manually_excluded"}


def classic_time(iso_text):
    # the sandbox writes "YYYY-MM-DDTHH:MM:SS+00:00"
    return iso_text.replace("T", " ") if iso_text else None


def person(profile):
    a = profile["attributes"]
    loc = a.get("location") or {}
    row = {"object": "person", "id": profile["id"], "$email": a.get("email"), "$first_name": a.get("first_name"),
           "$last_name": a.get("last_name"), "$phone_number": a.get("phone_number"),
           "$organization": a.get("organization"), "$title": a.get("title"), "$id": a.get("external_id"),
           "$address1": loc.get("address1"), "$address2": loc.get("address2"), "$city": loc.get("city"),
           "$region": loc.get("region"), "$zip": loc.get("zip"), "$country": loc.get("country"),
           "$latitude": loc.get("latitude"), "$longitude": loc.get("longitude"), "$timezone": loc.get("timezone"),
           "created": classic_time(a.get("created")), "updated": classic_time(a.get("updated"))}
    for key, value in (a.get("properties") or {}).items():
        if key not in row:
            row[key] = value
    return row


def event_rows(dump, stream, since, until):
    metrics = {m["id"]: m["attributes"]["name"] for m in dump["metrics"]
               if m["attributes"]["integration"]["name"] == "Klaviyo"
               and m["attributes"]["name"] in CLASSIC_METRICS[stream]}
    profiles = {p["id"]: p for p in dump["profiles"]}
    rows = {}
    for e in dump["events"]:
        if e["metric_id"] in metrics and since <= e["timestamp"] < until:
            rows[e["id"]] = {
                "id": e["id"], "uuid": e["uuid"], "timestamp": e["timestamp"],
                "datetime": time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(e["timestamp"])),
                "event_name": metrics[e["metric_id"]], "statistic_id": e["metric_id"], "object": "event",
                "event_properties": e["event_properties"], "person": person(profiles[e["profile_id"]]),
            }
    return rows


def list_rows(dump, with_counts):
    rows = {}
    for kind in ("list", "segment"):
        for g in dump[kind + "s"]:
            a = g["attributes"]
            rows[g["id"]] = {"id": g["id"], "name": a["name"], "created": classic_time(a["created"]),
                             "updated": classic_time(a["updated"]), "object": "list", "type": kind,
                             "person_count": a["profile_count"] if with_counts else None, "list_type": kind,
                             "folder": None}
    return rows


def exclusion_rows(dump):
    rows = {}
    for p in dump["profiles"]:
        a = p["attributes"]
        suppressions = a["subscriptions"]["email"]["marketing"]["suppression"]
        if a.get("email") and suppressions:
            latest = sorted(suppressions, key=lambda s: s["timestamp"])[-1]
            rows[a["email"]] = {"email": a["email"], "object": "exclusion", "reason": REASON_WORDS[latest["reason"]],
                                "timestamp": classic_time(latest["timestamp"])}
    return rows
