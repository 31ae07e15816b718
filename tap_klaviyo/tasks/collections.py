"""Streams that read one JSON:API collection each, described entirely by their row in STREAMS:
a path (maybe under a parent resource), fixed parameters, a required filter to fan out over, the
columns the catalog selects (sent as a sparse fieldset), and for `profiles` an `updated` range read
like the event streams. One task class serves them all."""
import functools
import logging

from .. import revisions, timeutil
from .. import state as bookmarks
from ..client import RefusedError
from ..discovery import schema
from ..engine import Page, Watermark
from ..output import record_lines, time_extracted
from ..rows import member_row, resource_row
from ..streams import BY_NAME, COLLECTION, STREAMS
from .ranges import RangeReader, RangeScan

LOGGER = logging.getLogger("tap_klaviyo")

PREDICTIVE = "predictive_analytics"
# One small attribute every supported revision has, asked for when a resource is read for its id
# alone (a parent of a selected stream) or when a catalog deselects every attribute column.
_CHEAPEST = {"campaign": "name", "campaign-message": "created_at", "flow": "name", "flow-action": "created",
             "flow-message": "created", "template": "name", "tag": "name", "metric": "name", "profile": "updated"}


class Query:
    """What a run asks of one collection stream and what its rows carry.

    attributes: the attribute columns rows carry (selected in the catalog, existing in the
    configured revision, predictive_analytics only when config asks). params: the sparse fieldset,
    sent only when some column is left out, and the additional fields those columns need. family:
    the rate-limit family (asking for predictive_analytics puts profiles in a lower tier).
    """

    def __init__(self, stream, context):
        config = context.config
        every = set(schema(stream)["properties"]) - {"id", stream.parent_column}
        every -= revisions.absent_attributes(stream.resource, config.revision)
        if not config.profiles_predictive_analytics:
            every.discard(PREDICTIVE)
        chosen = context.columns.get(stream.name)
        attributes = every if chosen is None else every & set(chosen)
        if stream.updated_field:
            attributes.add(stream.updated_field)       # the range is read on it
        self.attributes = frozenset(attributes)
        self.params = dict(stream.params)
        additional = [name for name in stream.additional_fields if name in attributes]
        if additional:
            self.params[f"additional-fields[{stream.resource}]"] = ",".join(additional)
        if attributes != every:
            fields = sorted(attributes) or [_CHEAPEST[stream.resource]]
            self.params[f"fields[{stream.resource}]"] = ",".join(fields)
        self.family = "profiles_predictive" if PREDICTIVE in additional else stream.endpoint

    @staticmethod
    def of(stream, context):
        return context.once(("query", stream.name), lambda: Query(stream, context))


def _children(stream, context):
    """Collection streams read under each resource of stream, that this run needs."""
    return [child for child in STREAMS if child.family == COLLECTION and child.parent == stream.name
            and child.name in context.needed]


def _gone(stream, parent, parent_id):
    LOGGER.warning("stream %s: %s %s is gone (404; deleted during the run); no rows from it",
                   stream.name, parent, parent_id)


class CollectionScan:
    """Every resource of one collection (one fan-out value, one parent id); rows are written when
    the stream is selected, and each resource's child collections are queued."""

    def __init__(self, stream, context, parent_id=None, fan_value=None):
        self.stream = stream
        self.parent_id = parent_id
        self.fan_value = fan_value
        self.emit = stream.name in context.selected
        self.children = _children(stream, context)
        self.context = context

    def run(self, client, config):
        stream = self.stream
        if self.emit:
            query = Query.of(stream, self.context)
            params, family, self._attributes = dict(query.params), query.family, query.attributes
        else:       # read only for the ids its children are listed under
            params = {**dict(stream.params), f"fields[{stream.resource}]": _CHEAPEST[stream.resource]}
            family = stream.endpoint
        if stream.fan_out_filter:
            params["filter"] = stream.fan_out_filter.format(value=self.fan_value)
        params.update(revisions.page_param(stream.endpoint, config.revision))
        path = stream.path.format(id=self.parent_id) if self.parent_id else stream.path
        try:
            yield from client.pages(family, path, params, self._page)
        except RefusedError as exc:
            if exc.status != 404 or not self.parent_id:
                raise
            _gone(stream, stream.parent, self.parent_id)
            yield Page(self, done=True)

    def _page(self, document, last):
        resources = document["data"]
        rows = [resource_row(r, self.stream.parent_column, self.parent_id, self._attributes)
                for r in resources] if self.emit else []
        spawn = [(CollectionScan(child, self.context, parent_id=r["id"]), 0)
                 for r in resources for child in self.children]
        return Page(self, record_lines(self.stream.name, rows, time_extracted()), len(rows), done=last,
                    spawn=spawn)


def _root(stream):
    while stream.parent:
        stream = BY_NAME[stream.parent]
    return stream


def plan_collection(stream, context):
    if stream.updated_field:
        return _plan_updated_range(stream, context)
    root = _root(stream)
    if root.name != stream.name and root.name in context.selected:
        return []           # the selected root's scan queues this stream under each parent
    # the first selected stream of a tree plans its root, read silently when not itself selected
    if not context.claim(("tree", root.name)):
        return []
    values = root.fan_out or (None,)
    return [(CollectionScan(root, context, fan_value=value), 0) for value in values]


def _plan_updated_range(stream, context):
    """An incremental collection (profiles): [bookmark − lookback, sync start) of its updated field,
    read like the event streams (split side by side when dense, a watermark for the bookmark)."""
    config = context.config
    begin = bookmarks.since(context.state, stream.name)
    begin = config.start_date if begin is None else begin
    if begin > context.started:
        LOGGER.warning("stream %s: bookmark %s is after the sync start; reading from %s", stream.name,
                       timeutil.to_bookmark(begin), timeutil.to_bookmark(context.started))
        begin = context.started
    lower = begin - config.lookback_minutes * 60
    field = stream.updated_field
    query = Query.of(stream, context)
    params = {"sort": field, **query.params, **revisions.page_param(stream.endpoint, config.revision)}

    def range_filter(lo, hi):
        # the filter takes only greater-than and less-than: from one second below the range (times
        # may carry fractions of a second), rows before lo trimmed after
        return (f"greater-than({field},{timeutil.to_filter(lo - 1)}),"
                f"less-than({field},{timeutil.to_filter(hi)})")

    reader = RangeReader(query.family, stream.path, params, range_filter,
                         functools.partial(_updated_rows, field, query.attributes),
                         revisions.page_size(stream.endpoint, config.revision) or 20)
    watermark = context.watermarks[stream.name] = Watermark(begin, context.started)
    scan = RangeScan(stream, "all", lower, context.started, reader, max(2, config.concurrency))
    watermark.plan("all", [scan])
    return [(scan, scan.lower)]


def _updated_rows(field, columns, document, lo, hi):
    """(instant, row) of a page's resources whose `field` time lies in [lo, hi)."""
    out = []
    for resource in document["data"]:
        text = (resource.get("attributes") or {}).get(field)
        try:
            instant = timeutil.parse_instant(text)
        except ValueError:
            continue    # a resource without the time cannot be placed in a range
        if lo <= instant < hi:
            out.append((instant, resource_row(resource, columns=columns)))
    return out


class GroupIds:
    """The ids of every list (or segment), each queued for its members."""

    def __init__(self, stream, context):
        self.stream = stream
        self.context = context

    def run(self, client, config):
        kind = self.stream.resource
        params = {f"fields[{kind}]": "name", **revisions.page_param(f"{kind}s", config.revision)}
        chosen = self.context.columns.get(self.stream.name)
        keep = chosen is None or "joined_group_at" in chosen

        def page(document, last):
            return Page(self, done=last, spawn=[(MemberScan(self.stream, r["id"], keep), 0)
                                                for r in document["data"]])
        yield from client.pages(f"{kind}s", f"/api/{kind}s", params, page)


class MemberScan:
    """The profiles of one list or segment, as (group id, profile id, joined_group_at) rows."""

    def __init__(self, stream, group_id, keep_joined=True):
        self.stream = stream
        self.group_id = group_id
        self.keep_joined = keep_joined

    def run(self, client, config):
        # joined_group_at is the smallest attribute there is: asked for even when deselected
        params = {"fields[profile]": "joined_group_at", **revisions.page_param(self.stream.endpoint, config.revision)}
        path = self.stream.path.format(id=self.group_id)

        def page(document, last):
            rows = [member_row(r, self.stream.parent_column, self.group_id) for r in document["data"]]
            if not self.keep_joined:
                for row in rows:
                    del row["joined_group_at"]
            return Page(self, record_lines(self.stream.name, rows, time_extracted()), len(rows), done=last)
        try:
            yield from client.pages(self.stream.endpoint, path, params, page)
        except RefusedError as exc:
            if exc.status != 404:
                raise
            _gone(self.stream, self.stream.resource, self.group_id)
            yield Page(self, done=True)


def plan_members(stream, context):
    return [(GroupIds(stream, context), 0)]
