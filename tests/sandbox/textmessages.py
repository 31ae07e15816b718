"""Issue 22 (area `events`): the metrics of the classic tap's newer tables, and their events.

singer-io tap-klaviyo 1.2.0 added tables for "Subscribed to Email Marketing" and the text-message
metrics, which Klaviyo renamed from "SMS" to "Text Message" in July 2026: an account holds events
under the old name, the new one, or both (a metric keeps its old events). The account already has
"Received SMS" (data.METRICS), "Sent SMS" and "Clicked SMS" (entities.EXTRA_METRICS), all of the
Klaviyo integration; this adds the other metrics, some under the old name and some under the new
one, and one metric of a text table's name under another integration (custom events, which the
classic table leaves out).

Everything is drawn from this module's own random stream, after data.generate() and
entities.populate() built the rest: no existing event, metric or id changes (new metrics and events
are only added), and account._serial (which later events' ids use) is untouched.
"""
import random
import uuid
from dataclasses import dataclass

from . import data as sandbox_data

_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

# (metric name, integration): added metrics. Old (SMS) names and new (Text Message) names mixed, so
# that some tables read one name, some the other, and some both (Received, Clicked, Subscribed).
METRICS = (
    ("Subscribed to Email Marketing", sandbox_data.KLAVIYO),
    ("Received Text Message", sandbox_data.KLAVIYO),            # beside "Received SMS"
    ("Clicked Text Message", sandbox_data.KLAVIYO),             # beside "Clicked SMS"
    ("Failed to Deliver SMS", sandbox_data.KLAVIYO),
    ("Failed to Deliver Automated Response Text Message", sandbox_data.KLAVIYO),
    ("Received Automated Response SMS", sandbox_data.KLAVIYO),
    ("Subscribed to Text Messaging Marketing", sandbox_data.KLAVIYO),
    ("Subscribed to SMS Marketing", sandbox_data.KLAVIYO),
    ("Unsubscribed from SMS Marketing", sandbox_data.KLAVIYO),
    ("Subscribed to Text Messaging Transactional", sandbox_data.KLAVIYO),
    ("Unsubscribed from Text Messaging Transactional", sandbox_data.KLAVIYO),
    ("Sent Text Message", sandbox_data.API),                    # custom events: not the classic table
)


@dataclass
class Counts:
    """How many events each added metric gets (the test account's; a benchmark may ask for more)."""
    per_metric: int = 6


def populate(account, counts=None):
    counts = counts or Counts()
    rng = random.Random(f"events:textmessages:{account.anchor}")
    anchor = account.anchor
    profile_ids = sorted(account.profiles)
    base = len(account.metrics)
    taken = {m["id"] for m in account.metrics}
    for number, (name, integration) in enumerate(METRICS):
        metric_id = None
        while metric_id is None or metric_id in taken:
            metric_id = "T" + "".join(rng.choice(_ALNUM) for _ in range(5))
        taken.add(metric_id)
        metric = {"type": "metric", "id": metric_id, "attributes": {
            "name": name, "created": sandbox_data.metric_time(anchor - 2 * sandbox_data.YEAR + base + number),
            "updated": sandbox_data.metric_time(anchor - sandbox_data.YEAR // 3),
            "integration": {"object": "integration", **integration}}}
        account.metrics.append(metric)
        for n in range(counts.per_metric):
            serial = number * 1000 + n
            event_id = "".join(rng.choice(_ALNUM) for _ in range(6)) + format(0xF000000 + serial, "07x")
            properties = {"$message": f"TM{serial:05d}", "Message Type": rng.choice(("SMS", "MMS")),
                          "Carrier": rng.choice(("Verizon", "T-Mobile", None))}
            if "Failed" in name:
                properties["Failure Reason"] = rng.choice(("Device Unreachable", "Carrier Violation"))
            account.add_event(sandbox_data.Event(
                anchor - 3600 - rng.randrange(sandbox_data.YEAR - 3600), event_id,
                str(uuid.UUID(int=rng.getrandbits(128))), rng.choice(profile_ids), metric["id"], properties))
