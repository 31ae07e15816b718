"""Every stream the tap offers, as data.

A stream is one row of STREAMS: what it reads, its key, how it replicates, which task family runs it
and which schema file describes its rows. The machinery in discovery, the engine and the task
modules is shared; adding a metric-event table or one more JSON:API collection is adding a row.
"""
import msgspec

from .revisions import OMNICHANNEL_CAMPAIGNS as OMNICHANNEL

# task families (tap_klaviyo/tasks/ has one module per family)
CLASSIC_EVENT = "classic_event"     # one classic metric table: events of named Klaviyo metrics
EVENTS = "events"                   # every event of every metric, API-shaped
EXCLUSION = "exclusion"
LIST = "list"
COLLECTION = "collection"           # one JSON:API collection, maybe once per parent resource
MEMBERS = "members"                 # profiles of each list or segment
REPORT = "report"                   # Klaviyo's reporting API (POST, a daily budget)

INCREMENTAL = "INCREMENTAL"
FULL_TABLE = "FULL_TABLE"


class Stream(msgspec.Struct, frozen=True):
    name: str
    family: str
    key: tuple
    method: str
    schema: str                             # file under schemas/, without .json
    scopes: tuple                           # what the API key needs to read it
    replication_key: str | None = None
    classic: bool = False                   # one of the twelve classic tables (selected by default)
    metric_names: tuple = ()                # classic event tables: the metric's names, newest first
    path: str | None = None                 # collections: the path, {id} filled from the parent
    resource: str | None = None             # collections: the JSON:API type (for fields[...])
    endpoint: str | None = None             # rate-limit family and page-size key of the path
    params: tuple = ()                      # collections: fixed query parameters, as pairs
    fan_out: tuple = ()                     # collections: one request chain per value (a required filter)
    fan_out_filter: str | None = None       # ... the filter with {value} for each
    parent: str | None = None               # collections: the stream whose ids fill {id}
    parent_column: str | None = None        # ... the row column carrying that id
    updated_field: str | None = None        # collections read incrementally: the attribute filtered on
    additional_fields: tuple = ()           # attributes sent only when asked for (additional-fields[type])
    cheapest: str | None = None             # collections: a small attribute, asked for when only ids are wanted
    columns: tuple = ()                     # collections: (column, attribute path) pairs where a row is not the
                                            # resource's attributes one for one; columns missing here stay null
    include: str | None = None              # collections read from their parent's pages, no request of their
                                            # own: the relationship the parent's request includes
    parent_relationship: str | None = None  # a root collection's relationship naming each row's parent (the
                                            # request includes it, so that its data is there)
    since: str | None = None                # the first revision that has the stream (before it: no rows)
    revised: tuple = ()                     # (first revision, ((field, value), ...)) changes, latest first

    def metrics_in(self, metrics):
        """(id, name) of the account's metrics, given as (id, name, integration name), whose events
        this classic table holds: Klaviyo's own metrics of its names."""
        return [(metric_id, name) for metric_id, name, integration in metrics
                if integration == KLAVIYO_INTEGRATION and name in self.metric_names]


def revised(since, **changes):
    """What a stream's row becomes from revision `since` on (an entry of Stream.revised)."""
    return since, tuple(changes.items())


def at_revision(stream, revision):
    """The stream's row as it reads revision (a GA revision, see revisions.check)."""
    for since, changes in stream.revised:
        if revision >= since:
            return msgspec.structs.replace(stream, **dict(changes))
    return stream


def available(stream, revision):
    return stream.since is None or revision >= stream.since


def _classic_event(name, *metric_names):
    return Stream(name, CLASSIC_EVENT, ("id",), INCREMENTAL, "event", ("metrics:read", "events:read"),
                  "timestamp", classic=True, metric_names=metric_names)


def _collection(name, path, resource, endpoint, scopes, **more):
    return Stream(name, COLLECTION, ("id",), FULL_TABLE, name, scopes, path=path, resource=resource,
                  endpoint=endpoint, **more)


# (column, attribute path) of the campaign streams, per shape. Sources: the spec branches up to
# 2026-07-15; for 2026-10-15, Klaviyo's reference pages (get_campaigns, get_campaign_messages) for the
# field names and its beta spec 2026-07-15.pre for the rest (inferred; see docs/revisions.md).
CAMPAIGN_COLUMNS = tuple((name, name) for name in (
    "name", "status", "archived", "audiences", "send_options", "tracking_options", "send_strategy", "created_at",
    "scheduled_at", "updated_at", "send_time"))
OMNICHANNEL_CAMPAIGN_COLUMNS = (
    ("name", "definition.name"), ("archived", "definition.archived"), ("builder", "definition.builder"),
    ("color", "definition.color"), ("description", "definition.description"),
    ("send_settings", "definition.send_settings"), ("created_at", "created_at"), ("updated_at", "updated_at"))
CAMPAIGN_MESSAGE_COLUMNS = (
    ("name", "definition.label"), ("definition", "definition"), ("send_times", "send_times"),
    ("created_at", "created_at"), ("updated_at", "updated_at"))
OMNICHANNEL_MESSAGE_COLUMNS = (
    ("name", "definition.name"), ("status", "definition.status"), ("send_options", "definition.send_options"),
    ("tracking_options", "definition.tracking_options"), ("ab_test", "definition.ab_test"),
    ("created_at", "created"), ("updated_at", "updated"))
VARIATION_COLUMNS = (
    ("name", "definition.name"),
    *((name, f"definition.details.{name}") for name in (
        "channel", "template_id", "subject", "preview_text", "from_email", "from_label", "reply_to_email",
        "cc_email", "bcc_email", "title", "body")),
    ("details", "definition.details"), ("created", "created"), ("updated", "updated"))
AUDIENCE_COLUMNS = (
    ("name", "definition.name"), ("included", "definition.included"), ("excluded", "definition.excluded"),
    ("priority", "definition.priority"), ("created", "created"), ("updated", "updated"))

STREAMS = (
    _classic_event("receive", "Received Email"),
    _classic_event("open", "Opened Email"),
    _classic_event("click", "Clicked Email"),
    _classic_event("bounce", "Bounced Email"),
    _classic_event("dropped_email", "Dropped Email"),
    _classic_event("mark_as_spam", "Marked Email as Spam"),
    _classic_event("subscribe_list", "Subscribed to List"),
    _classic_event("unsub_list", "Unsubscribed from List"),
    # Klaviyo renamed the global unsubscribe metric; older accounts still hold events under the old name.
    _classic_event("unsubscribe", "Unsubscribed from Email Marketing", "Unsubscribed"),
    _classic_event("update_email_preferences", "Updated Email Preferences"),
    # email-suppressed profiles, one row per email with its latest reason
    Stream("global_exclusions", EXCLUSION, ("email",), FULL_TABLE, "exclusion", ("profiles:read",), classic=True),
    # lists and segments together, as v1 returned them
    Stream("lists", LIST, ("id",), FULL_TABLE, "list", ("lists:read", "segments:read"), classic=True),

    # Opt-in streams: Klaviyo's own resources, rows shaped like the API's.
    Stream("events", EVENTS, ("id",), INCREMENTAL, "events", ("metrics:read", "events:read"), "datetime",
           path="/api/events", resource="event", endpoint="events"),
    _collection("metrics", "/api/metrics", "metric", "metrics", ("metrics:read",), cheapest="name"),
    Stream("profiles", COLLECTION, ("id",), INCREMENTAL, "profiles", ("profiles:read",), "updated",
           path="/api/profiles", resource="profile", endpoint="profiles", updated_field="updated",
           # predictive_analytics only when config profiles_predictive_analytics asks: it drops the tier
           additional_fields=("subscriptions", "predictive_analytics"), cheapest="updated"),
    # Campaigns changed shape in 2026-10-15 (omnichannel: campaign -> audiences -> messages ->
    # variations); each column keeps one meaning across revisions, and a revision without it leaves
    # it null (docs/revisions.md lists which revision fills which).
    _collection("campaigns", "/api/campaigns", "campaign", "campaigns", ("campaigns:read",), cheapest="name",
                # before 2026-10-15 the list takes one channel at a time, and requires it
                fan_out=("email", "sms", "mobile_push"), fan_out_filter="equals(messages.channel,'{value}')",
                columns=CAMPAIGN_COLUMNS,
                revised=(revised(OMNICHANNEL, fan_out=(), fan_out_filter=None, cheapest="created_at",
                                 columns=OMNICHANNEL_CAMPAIGN_COLUMNS),)),
    _collection("campaign_messages", "/api/campaigns/{id}/campaign-messages", "campaign-message",
                "campaign_messages", ("campaigns:read",), parent="campaigns", parent_column="campaign_id",
                cheapest="created_at", columns=CAMPAIGN_MESSAGE_COLUMNS,
                # one request chain for every message, not one request per campaign
                revised=(revised(OMNICHANNEL, path="/api/campaign-messages", endpoint="campaign_message_list",
                                 parent=None, parent_relationship="campaign", cheapest="created",
                                 columns=OMNICHANNEL_MESSAGE_COLUMNS),)),
    _collection("campaign_variations", None, "campaign-variation", None, ("campaigns:read",),
                parent="campaign_messages", parent_column="campaign_message_id", include="campaign-variations",
                columns=VARIATION_COLUMNS, since=OMNICHANNEL),
    _collection("campaign_audiences", None, "campaign-audience", None, ("campaigns:read",),
                parent="campaigns", parent_column="campaign_id", include="campaign-audiences",
                columns=AUDIENCE_COLUMNS, since=OMNICHANNEL),
    _collection("flows", "/api/flows", "flow", "flows", ("flows:read",), cheapest="name"),
    _collection("flow_actions", "/api/flows/{id}/flow-actions", "flow-action", "flow_actions", ("flows:read",),
                parent="flows", parent_column="flow_id", cheapest="created"),
    _collection("flow_messages", "/api/flow-actions/{id}/flow-messages", "flow-message", "flow_messages",
                ("flows:read",), parent="flow_actions", parent_column="flow_action_id", cheapest="created"),
    _collection("templates", "/api/templates", "template", "templates", ("templates:read",),
                additional_fields=("definition",), cheapest="name"),
    _collection("tags", "/api/tags", "tag", "tags", ("tags:read",), cheapest="name"),
    Stream("list_members", MEMBERS, ("list_id", "profile_id"), FULL_TABLE, "list_members",
           ("lists:read", "profiles:read"), path="/api/lists/{id}/profiles", resource="list",
           endpoint="list_profiles", parent_column="list_id"),
    Stream("segment_members", MEMBERS, ("segment_id", "profile_id"), FULL_TABLE, "segment_members",
           ("segments:read", "profiles:read"), path="/api/segments/{id}/profiles", resource="segment",
           endpoint="segment_profiles", parent_column="segment_id"),

    # Opt-in: Klaviyo's Reporting API, the numbers its own dashboards show (tasks/reports.py). The
    # metrics scope finds the conversion metric (config conversion_metric).
    Stream("campaign_values", REPORT, ("campaign_message_id", "send_channel"), FULL_TABLE, "campaign_values",
           ("campaigns:read", "metrics:read"), path="/api/campaign-values-reports",
           resource="campaign-values-report", endpoint="campaign_values"),
    Stream("flow_series", REPORT, ("flow_message_id", "send_channel", "date"), INCREMENTAL, "flow_series",
           ("flows:read", "metrics:read"), "date", path="/api/flow-series-reports",
           resource="flow-series-report", endpoint="flow_series"),
)

BY_NAME = {stream.name: stream for stream in STREAMS}
CLASSIC = tuple(stream for stream in STREAMS if stream.classic)

# The integration whose metrics are the classic tables; an "API"-integration metric of the same
# name holds custom events, not Klaviyo's own.
KLAVIYO_INTEGRATION = "Klaviyo"
