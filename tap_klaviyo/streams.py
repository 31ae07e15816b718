"""The twelve classic tables, as data.

A stream is one row of STREAMS; the machinery in discovery, sync and rows is shared by family.
Adding a metric-event table is adding a row here.
"""
from dataclasses import dataclass

EVENT = "event"
LIST = "list"
EXCLUSION = "exclusion"

INCREMENTAL = "INCREMENTAL"
FULL_TABLE = "FULL_TABLE"


@dataclass(frozen=True)
class Stream:
    name: str
    family: str
    key: tuple
    method: str
    metric_names: tuple = ()
    replication_key: str | None = None


def _event(name, *metric_names):
    return Stream(name, EVENT, ("id",), INCREMENTAL, metric_names, "timestamp")


STREAMS = (
    _event("receive", "Received Email"),
    _event("open", "Opened Email"),
    _event("click", "Clicked Email"),
    _event("bounce", "Bounced Email"),
    _event("dropped_email", "Dropped Email"),
    _event("mark_as_spam", "Marked Email as Spam"),
    _event("subscribe_list", "Subscribed to List"),
    _event("unsub_list", "Unsubscribed from List"),
    # Klaviyo renamed the global unsubscribe metric; older accounts still hold events under the old name.
    _event("unsubscribe", "Unsubscribed from Email Marketing", "Unsubscribed"),
    _event("update_email_preferences", "Updated Email Preferences"),
    # email-suppressed profiles, one row per email with its latest reason
    Stream("global_exclusions", EXCLUSION, ("email",), FULL_TABLE),
    # lists and segments together, as v1 returned them
    Stream("lists", LIST, ("id",), FULL_TABLE),
)

BY_NAME = {stream.name: stream for stream in STREAMS}

# The integration whose metrics are the classic tables; an "API"-integration metric of the same
# name holds custom events, not Klaviyo's own.
KLAVIYO_INTEGRATION = "Klaviyo"
