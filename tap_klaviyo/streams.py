"""Every stream the tap offers, as data.

A stream is one row of STREAMS: what it reads, its key, how it replicates, which task family runs it
and which schema file describes its rows. The machinery in discovery, the engine and the task
modules is shared; adding a metric-event table or one more JSON:API collection is adding a row.
"""
import itertools

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
    replication_key: str | None = None
    classic: bool = False                   # shaped as the classic tap's tables (columns fixed, cannot be deselected)
    selected_by_default: bool = False       # discovery selects it: the twelve classic tables (issue 22: the classic
                                            # tap's newer tables are classic-shaped, yet opt-in)
    metric_names: tuple = ()                # classic event tables: the metric's names, newest first
    operation: str | None = None            # the API operation it reads ('GET /api/flows/{id}/flow-actions'), its
                                            # facts (page size, limits, scopes, fields) from apispec
    reads: tuple = ()                       # other operations it reads that no parent stream names (a metric
                                            # list, the lists of members); a parent's are added to the scopes
    resource: str | None = None             # the JSON:API type it reads (for fields[...])
    endpoint: str | None = None             # rate-limit family of the operation (default: the stream's name)
    params: tuple = ()                      # collections: fixed query parameters, as pairs
    partitions: tuple = ()                  # collections: Dimensions; one request chain per combination of
                                            # their values (a filter the API requires, or one that shows more)
    parent: str | None = None               # the stream whose rows this one's hang from: a collection read once per
                                            # parent resource (its id fills {id} of the path, or parent_filter), or
                                            # read from the parent's pages (include); the parent's scopes are its too
    parent_column: str | None = None        # the row's column of its owner's id (after `id`): the parent's id for a
                                            # child, else filled from `related` (push tokens' profile_id), from the
                                            # event a row came with (event_attributions), or the list's or segment's
                                            # id (members)
    parent_filter: str | None = None        # a child whose list takes its parent in a filter expression ({id},
                                            # quoted by the tap), not the path: one request chain per parent
    related: tuple = ()                     # collections: (column, relationship, include) triples, columns filled
                                            # from the relationship's data. include: the request includes the
                                            # relationship (fields[type] its cheapest), as the spec's include
                                            # parameter lists it; False where it does not, the data coming without
                                            # (the response schema gives it: catalog variants' item from 2026-04-15)
    updated_field: str | None = None        # collections read incrementally: the attribute filtered on
    changes: str | None = None              # resource streams: the filter that finds what changed in [{since},
                                            # {until}) (between full reads); None: every run reads it in full,
                                            # or, for a child, it is read under the parents its root's filter finds
    additional_fields: tuple = ()           # attributes sent only when asked for (additional-fields[type])
    columns: tuple = ()                     # collections: (column, attribute path) pairs where a row is not the
                                            # resource's attributes one for one; columns missing here stay null
    include: str | None = None              # collections read from their parent's pages, no request of their
                                            # own: the relationship the parent's request includes
    since: str | None = None                # the first revision that has the stream (before it: no rows)
    revised: tuple = ()                     # (first revision, ((field, value), ...)) changes, latest first
    details: tuple = ()                     # (column, operation, additional field): a column the list cannot give,
                                            # unselected by default; when selected, one request per row reads it
                                            # (operation with {id} the row's id, additional-fields[resource])
    scopes: tuple = ()                      # what the API key needs: its operations' scopes (filled below)

    @property
    def path(self):
        return self.operation.split(" ", 1)[1] if self.operation else None

    @property
    def rate_family(self):
        """The rate-limit family of its requests."""
        return self.endpoint or self.name

    def metrics_in(self, metrics):
        """(id, name) of the account's metrics, given as (id, name, integration name), whose events
        this classic table holds: Klaviyo's own metrics of its names."""
        return [(metric_id, name) for metric_id, name, integration in metrics
                if integration == KLAVIYO_INTEGRATION and name in self.metric_names]


class Dimension(msgspec.Struct, frozen=True):
    """One way a collection is split into request chains: a filter, with {value} for each value."""
    filter: str
    values: tuple

    def filters(self):
        return tuple(self.filter.format(value=value) for value in self.values)


def partitions(stream):
    """The filter expressions of each of the stream's request chains: the product of its dimensions'
    values (one chain, with no filter, for a stream without dimensions)."""
    return list(itertools.product(*(dimension.filters() for dimension in stream.partitions)))


def compose_filter(*expressions):
    """One `filter` parameter from expressions Klaviyo ANDs together, None when there are none."""
    return ",".join(expression for expression in expressions if expression) or None


def revised(since, **changes):
    """What a stream's row becomes from revision `since` on (an entry of Stream.revised)."""
    return since, tuple(changes.items())


def at_revision(stream, revision):
    """The stream's row as it reads revision (a GA revision, see revisions.check)."""
    for since, changes in stream.revised:
        if revision >= since:
            return msgspec.structs.replace(stream, **dict(changes))
    return stream


def root_of(stream, rows):
    """The stream a stream's rows hang from (itself when it has no parent); rows: name -> row."""
    while stream.parent:
        stream = rows[stream.parent]
    return stream


def reads_in_full(stream):
    """Whether the stream is a resource stream read in full now and then, a full read ending with
    ACTIVATE_VERSION (the reports keep their own cycle; events and profiles are not deleted)."""
    return stream.method == FULL_TABLE and stream.family in (LIST, EXCLUSION, COLLECTION, MEMBERS)


def available(stream, revision):
    return stream.since is None or revision >= stream.since


def _classic_event(name, *metric_names, selected=True):
    return Stream(name, CLASSIC_EVENT, ("id",), INCREMENTAL, "event", "timestamp", classic=True,
                  selected_by_default=selected, metric_names=metric_names, operation="GET /api/events",
                  reads=("GET /api/metrics",))


def _collection(name, operation, resource, **more):
    return Stream(name, COLLECTION, ("id",), FULL_TABLE, name, operation=operation, resource=resource, **more)


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

# Klaviyo's campaign and flow lists leave archived items out unless the filter asks for them
# (klaviyo-api notes: Airbyte and Estuary read them in requests of their own): both, side by side.
ARCHIVED = Dimension("equals(archived,{value})", ("false", "true"))
# A review's status (get_reviews; see the reviews row): every value, or `all` where the spec lists it.
REVIEW_STATUSES = Dimension("equals(status,'{value}')", ("published", "featured", "pending", "unpublished", "rejected"))
REVIEW_STATUS_ALL = Dimension("equals(status,'{value}')", ("all",))

_ROWS = (
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
    # Issue 22: the classic tap's newer tables (singer-io tap-klaviyo 1.2.0's table names and metric
    # names, tap_klaviyo/__init__.py EVENT_MAPPINGS, July 2026), classic-shaped but opt-in. Klaviyo
    # renamed "SMS" to "Text Message" in July 2026: each text table reads its metric under the new
    # name and the old one (singer-io 1.1.5's EVENT_MAPPINGS; Klaviyo's help center "SMS Metrics").
    # INFERRED: the old names of the two transactional metrics (no source names them: they follow
    # "Subscribed to SMS Marketing"), and "Failed to Deliver Automated Response SMS" capitalized as
    # Klaviyo writes "Failed to Deliver SMS" (singer-io 1.1.5 spelled it "Failed to deliver ...").
    _classic_event("subscribed_to_email", "Subscribed to Email Marketing", selected=False),
    _classic_event("received_text_message", "Received Text Message", "Received SMS", selected=False),
    _classic_event("clicked_text_message", "Clicked Text Message", "Clicked SMS", selected=False),
    _classic_event("sent_text_message", "Sent Text Message", "Sent SMS", selected=False),
    _classic_event("failed_to_deliver_text_message", "Failed to Deliver Text Message", "Failed to Deliver SMS",
                   selected=False),
    _classic_event("failed_to_deliver_automated_response_text_message",
                   "Failed to Deliver Automated Response Text Message", "Failed to Deliver Automated Response SMS",
                   "Failed to deliver Automated Response SMS", selected=False),
    _classic_event("received_automated_response_text_message", "Received Automated Response Text Message",
                   "Received Automated Response SMS", selected=False),
    _classic_event("subscribed_to_text_message", "Subscribed to Text Messaging Marketing",
                   "Subscribed to SMS Marketing", selected=False),
    _classic_event("unsubscribed_from_text_message", "Unsubscribed from Text Messaging Marketing",
                   "Unsubscribed from SMS Marketing", selected=False),
    _classic_event("subscribed_to_text_message_transactional", "Subscribed to Text Messaging Transactional",
                   "Subscribed to SMS Transactional", selected=False),
    _classic_event("unsubscribed_from_text_message_transactional", "Unsubscribed from Text Messaging Transactional",
                   "Unsubscribed from SMS Transactional", selected=False),
    # email-suppressed profiles, one row per email with its latest reason
    Stream("global_exclusions", EXCLUSION, ("email",), FULL_TABLE, "exclusion", classic=True, selected_by_default=True,
           operation="GET /api/profiles",
           changes="greater-or-equal(subscriptions.email.marketing.suppression.timestamp,{since}),less-than(subscriptions.email.marketing.suppression.timestamp,{until})"),
    # lists and segments together, as v1 returned them (with each one's profile count)
    Stream("lists", LIST, ("id",), FULL_TABLE, "list", classic=True, selected_by_default=True,
           operation="GET /api/lists",
           reads=("GET /api/lists/{id}", "GET /api/segments", "GET /api/segments/{id}")),

    # Opt-in streams: Klaviyo's own resources, rows shaped like the API's.
    Stream("events", EVENTS, ("id",), INCREMENTAL, "events", "datetime", operation="GET /api/events",
           reads=("GET /api/metrics",), resource="event"),
    # Issue 22: event_attributions. Read from the events pages (include=attributions, in every
    # supported revision's spec), no request of its own; selected without `events`, the events are
    # read for it and not written; its bookmark follows the events read (no column of its own holds
    # a time: the replication key is the event's datetime, kept in the state only). An attribution
    # has no attributes: its columns are its relationships' ids (spec: AttributionResponseObjectResource).
    Stream("event_attributions", EVENTS, ("id",), INCREMENTAL, "event_attributions", parent="events",
           parent_column="event_id", include="attributions", resource="attribution",
           columns=(("attributed_event_id", "attributed-event"), ("campaign_id", "campaign"),
                    ("campaign_message_id", "campaign-message"), ("flow_id", "flow"),
                    ("flow_message_id", "flow-message"), ("flow_message_variation_id", "flow-message-variation"))),
    _collection("metrics", "GET /api/metrics", "metric"),
    Stream("profiles", COLLECTION, ("id",), INCREMENTAL, "profiles", "updated", operation="GET /api/profiles",
           resource="profile", updated_field="updated",
           # predictive_analytics only when config profiles_predictive_analytics asks: it drops the tier
           additional_fields=("subscriptions", "predictive_analytics")),
    # Campaigns changed shape in 2026-10-15 (omnichannel: campaign -> audiences -> messages ->
    # variations); each column keeps one meaning across revisions, and a revision without it leaves
    # it null (docs/revisions.md lists which revision fills which).
    _collection("campaigns", "GET /api/campaigns", "campaign",
                # before 2026-10-15 the list takes one channel at a time, and requires it
                partitions=(Dimension("equals(messages.channel,'{value}')", ("email", "sms", "mobile_push")),
                            ARCHIVED),
                columns=CAMPAIGN_COLUMNS, changes="greater-or-equal(updated_at,{since}),less-than(updated_at,{until})",
                revised=(revised(OMNICHANNEL, partitions=(ARCHIVED,), columns=OMNICHANNEL_CAMPAIGN_COLUMNS),)),
    _collection("campaign_messages", "GET /api/campaigns/{id}/campaign-messages", "campaign-message",
                parent="campaigns", parent_column="campaign_id", columns=CAMPAIGN_MESSAGE_COLUMNS,
                # one request chain for every message, not one request per campaign
                revised=(revised(OMNICHANNEL, operation="GET /api/campaign-messages", endpoint="campaign_message_list",
                                 parent=None, related=(("campaign_id", "campaign", True),),
                                 columns=OMNICHANNEL_MESSAGE_COLUMNS,
                                 changes="greater-or-equal(updated,{since}),less-than(updated,{until})"),)),
    _collection("campaign_variations", None, "campaign-variation", parent="campaign_messages",
                parent_column="campaign_message_id", include="campaign-variations", columns=VARIATION_COLUMNS,
                since=OMNICHANNEL),
    _collection("campaign_audiences", None, "campaign-audience", parent="campaigns", parent_column="campaign_id",
                include="campaign-audiences", columns=AUDIENCE_COLUMNS, since=OMNICHANNEL),
    _collection("flows", "GET /api/flows", "flow", partitions=(ARCHIVED,), changes="greater-or-equal(updated,{since}),less-than(updated,{until})",
                details=(("definition", "GET /api/flows/{id}", "definition"),)),
    _collection("flow_actions", "GET /api/flows/{id}/flow-actions", "flow-action", parent="flows",
                parent_column="flow_id"),
    _collection("flow_messages", "GET /api/flow-actions/{id}/flow-messages", "flow-message",
                parent="flow_actions", parent_column="flow_action_id"),
    _collection("templates", "GET /api/templates", "template", additional_fields=("definition",),
                changes="greater-or-equal(updated,{since}),less-than(updated,{until})"),
    _collection("tags", "GET /api/tags", "tag"),
    # Issue 22: segments, tag groups, images, push tokens, accounts
    # segments: only greater-than on updated (get_segments), so no upper bound: a change made during
    # the run is read again by the next run; profile_count is left to `lists` (its own XS limits)
    _collection("segments", "GET /api/segments", "segment", changes="greater-than(updated,{since})"),
    _collection("tag_groups", "GET /api/tag-groups", "tag-group"),
    _collection("images", "GET /api/images", "image",
                changes="greater-or-equal(updated_at,{since}),less-than(updated_at,{until})"),
    # the profile's id is the relationship's data, the relationship included (get_push_tokens lists
    # include=profile); no filter of get_push_tokens finds changes (id, profile.id,
    # enablement_status, platform: equals only)
    _collection("push_tokens", "GET /api/push-tokens", "push-token", parent_column="profile_id",
                related=(("profile_id", "profile", True),), since="2025-04-15"),
    _collection("accounts", "GET /api/accounts", "account"),
    Stream("list_members", MEMBERS, ("list_id", "profile_id"), FULL_TABLE, "list_members",
           operation="GET /api/lists/{id}/profiles", reads=("GET /api/lists",), resource="list",
           endpoint="list_profiles", parent_column="list_id", changes="greater-or-equal(joined_group_at,{since}),less-than(joined_group_at,{until})"),
    Stream("segment_members", MEMBERS, ("segment_id", "profile_id"), FULL_TABLE, "segment_members",
           operation="GET /api/segments/{id}/profiles", reads=("GET /api/segments",), resource="segment",
           endpoint="segment_profiles", parent_column="segment_id",
           changes="greater-or-equal(joined_group_at,{since}),less-than(joined_group_at,{until})"),
    # Issue 22: catalog, coupons, reviews (docs/catalog.md). No list offers a filter on an `updated`
    # (catalog items, variants, categories and coupon codes filter on other fields, coupons on none,
    # reviews on `created` alone): each is read in full every run. Before 2026-04-15 the spec gives a
    # coupon code's profile, a variant's item and a review's item as links only, no data.
    _collection("coupons", "GET /api/coupons", "coupon"),
    # the list requires a coupon (or profile) filter: one request chain per coupon. From 2026-04-15
    # the spec's x-klaviyo-filters give coupon.id's operators a list only (its example a single value):
    # any() with a one-id list is valid in every revision
    _collection("coupon_codes", "GET /api/coupon-codes", "coupon-code", parent="coupons", parent_column="coupon_id",
                parent_filter="any(coupon.id,[{id}])",
                revised=(revised("2026-04-15", related=(("profile_id", "profile", False),)),)),
    _collection("catalog_items", "GET /api/catalog-items", "catalog-item"),
    # before 2026-04-15 a variant names no item: one request chain per item, filtered on it
    _collection("catalog_variants", "GET /api/catalog-variants", "catalog-variant", parent="catalog_items",
                parent_column="item_id", parent_filter="equals(item.id,{id})",
                revised=(revised("2026-04-15", parent=None, parent_filter=None,
                                 related=(("item_id", "item", False),)),)),
    _collection("catalog_categories", "GET /api/catalog-categories", "catalog-category"),
    # a store review has no item; before 2026-04-15 no review names its item (item_id left out).
    # Every status is asked for: from 2026-04-15 the spec's x-klaviyo-filters give `status` (equals)
    # the values published, unpublished, rejected, featured, pending and `all`, so one chain filtered
    # on `all`; before, the spec names no values, so one chain per status (the five of the spec's
    # ReviewStatus* schemas and Klaviyo's Reviews API overview). INFERRED: what the list answers
    # without the filter (no source says; a value `all` suggests fewer than every status).
    _collection("reviews", "GET /api/reviews", "review", partitions=(REVIEW_STATUSES,),
                revised=(revised("2026-04-15", partitions=(REVIEW_STATUS_ALL,),
                                 related=(("item_id", "item", False),)),)),

    # Opt-in: Klaviyo's Reporting API, the numbers its own dashboards show (tasks/reports.py). The
    # metric list finds the conversion metric (config conversion_metric).
    Stream("campaign_values", REPORT, ("campaign_message_id", "send_channel"), FULL_TABLE, "campaign_values",
           operation="POST /api/campaign-values-reports", reads=("GET /api/metrics",),
           resource="campaign-values-report"),
    Stream("flow_series", REPORT, ("flow_message_id", "send_channel", "date"), INCREMENTAL, "flow_series", "date",
           operation="POST /api/flow-series-reports", reads=("GET /api/metrics",), resource="flow-series-report"),

    # Issue 22: forms and reports
    # Forms and their versions (spec 2024-07-15 on; every supported revision has them). A version's change is
    # read under the forms whose updated_at the filter finds, as flows' actions are (docs/reports.md).
    _collection("forms", "GET /api/forms", "form",
                changes="greater-or-equal(updated_at,{since}),less-than(updated_at,{until})"),
    _collection("form_versions", "GET /api/forms/{id}/form-versions", "form-version", parent="forms",
                parent_column="form_id"),
    # More reports (spec 2024-10-15 on), read one after another after the two above and in this order
    # (tasks/reports.py ORDER); they share the reports' daily budget. Segment and form reports need no
    # conversion metric.
    Stream("flow_values", REPORT, ("flow_message_id", "send_channel"), FULL_TABLE, "flow_values",
           operation="POST /api/flow-values-reports", reads=("GET /api/metrics",), resource="flow-values-report"),
    Stream("segment_values", REPORT, ("segment_id",), FULL_TABLE, "segment_values",
           operation="POST /api/segment-values-reports", resource="segment-values-report"),
    Stream("segment_series", REPORT, ("segment_id", "date"), INCREMENTAL, "segment_series", "date",
           operation="POST /api/segment-series-reports", resource="segment-series-report"),
    Stream("form_values", REPORT, ("form_version_id",), FULL_TABLE, "form_values",
           operation="POST /api/form-values-reports", resource="form-values-report"),
    Stream("form_series", REPORT, ("form_version_id", "date"), INCREMENTAL, "form_series", "date",
           operation="POST /api/form-series-reports", resource="form-series-report"),
)

# Requests the tasks send that no stream row names as its operation, as rate-limit families: family
# -> (operation, the (parameter, value) the requests carry that the spec gives other limits, or None).
OTHER_FAMILIES = {
    "lists": ("GET /api/lists", None),
    "segments": ("GET /api/segments", None),
    "list_count": ("GET /api/lists/{id}", ("additional-fields[list]", "profile_count")),
    "segment_count": ("GET /api/segments/{id}", ("additional-fields[segment]", "profile_count")),
    "profiles_predictive": ("GET /api/profiles", ("additional-fields[profile]", "predictive_analytics")),
    # per-day event counts, by which the event streams find the days Klaviyo has shown events late
    "metric_aggregates": ("POST /api/metric-aggregates", None),
}


def _rows_of(stream):
    """The stream's row in each of its revised shapes."""
    return (stream, *(at_revision(stream, since) for since, _ in stream.revised))


def _operations(stream):
    """Every operation the stream may send, in any revision, those it reads first (a metric list)
    before its own."""
    return tuple(dict.fromkeys(op for row in _rows_of(stream)
                               for op in (*row.reads, row.operation, *(d[1] for d in row.details)) if op))


# Operations a row names that spec_rules.json lacks (a stream just added: run
# scripts/extract_spec_rules.py); a test asserts there are none.
MISSING_OPERATIONS = set()


def _chain_operations(stream, by_name):
    """The operations a stream's reads send in any revision: those of the streams its rows hang from
    (the root first: a child is read under the ids its parent's list gives, whatever the parent's
    scope), then its own (none for a stream read through its parent's include)."""
    ancestors = tuple(dict.fromkeys(row.parent for row in _rows_of(stream) if row.parent))
    own = () if stream.include else _operations(stream)
    return tuple(dict.fromkeys((*(op for parent in ancestors for op in _chain_operations(by_name[parent], by_name)),
                                *own)))


def _with_scopes(stream, by_name):
    """The stream with its scopes: those of every operation its chain of parents and itself send."""
    from . import apispec       # facts of the published spec (apispec.py)
    scopes = []
    for operation in _chain_operations(stream, by_name):
        if operation in apispec.operations():
            scopes.extend(apispec.scopes(operation))
        else:
            MISSING_OPERATIONS.add(operation)
    return msgspec.structs.replace(stream, scopes=tuple(dict.fromkeys(scopes)))


STREAMS = tuple(_with_scopes(stream, {row.name: row for row in _ROWS}) for stream in _ROWS)


def detail_family(stream, column):
    """The rate-limit family of the per-row requests reading a detail column (flows_definition)."""
    return f"{stream.name}_{column}"


def detail_columns(stream):
    return tuple(column for column, _, _ in stream.details)


def families():
    """{rate-limit family: (operation, condition)} of every request the tap sends (see OTHER_FAMILIES)."""
    table = dict(OTHER_FAMILIES)
    for stream in STREAMS:
        for row in _rows_of(stream):
            if row.operation and row.family in (EVENTS, COLLECTION, MEMBERS, REPORT):
                table.setdefault(row.rate_family, (row.operation, None))
            for column, operation, field in row.details:
                table.setdefault(detail_family(row, column), (operation, (f"additional-fields[{row.resource}]", field)))
    return table


def operations():
    """Every operation some stream sends: what scripts/extract_spec_rules.py must extract."""
    out = {op: None for stream in _ROWS for op in _operations(stream)}
    out.update((op, None) for op, _ in OTHER_FAMILIES.values())
    return tuple(out)


BY_NAME = {stream.name: stream for stream in STREAMS}
CLASSIC = tuple(stream for stream in STREAMS if stream.selected_by_default)     # the twelve discovery selects

# The integration whose metrics are the classic tables; an "API"-integration metric of the same
# name holds custom events, not Klaviyo's own.
KLAVIYO_INTEGRATION = "Klaviyo"
