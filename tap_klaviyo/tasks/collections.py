"""Streams that read one JSON:API collection each, described entirely by their row in STREAMS:
a path (maybe under a parent resource), fixed parameters, a required filter to fan out over, the
columns the catalog selects (sent as a sparse fieldset), and for `profiles` an `updated` range read
like the event streams. One task class serves them all."""
import functools
import logging

from .. import apispec, timeutil
from ..client import RefusedError
from ..discovery import schema
from ..engine import Page
from ..state import Mark
from ..output import envelope, time_extracted
from ..ratelimit import family_limits
from ..rows import included_rows, member_row, resource_row, shaped_row
from ..streams import COLLECTION, available, compose_filter, detail_family, partitions, root_of
from .ranges import RangeReader, RangeScan

LOGGER = logging.getLogger("tap_klaviyo")

PREDICTIVE = "predictive_analytics"


def _fieldset(paths):
    """The attribute paths a sparse fieldset names, without those a named parent path covers."""
    chosen = set(paths)
    return sorted(path for path in chosen
                  if not any(path.startswith(other + ".") for other in chosen if other != path))


class Query:
    """What a run asks of one collection stream and what its rows carry.

    attributes: the columns rows carry (selected in the catalog, existing in the configured
    revision, predictive_analytics only when config asks). params: the sparse fieldset, sent only
    when some column is left out, and the additional fields those columns need. family: the
    rate-limit family (asking for predictive_analytics puts profiles in a lower tier).
    """

    def __init__(self, stream, context):
        config = context.config
        # the attributes the type has in this revision, by the spec (a child read through an
        # include is asked for in its parent's request)
        self.operation = context.rows[stream.parent].operation if stream.include else stream.operation
        have = apispec.attributes(self.operation, stream.resource, config.revision)
        every = set(schema(stream)["properties"]) - {"id", stream.parent_column}
        if stream.columns:
            every &= {column for column, path in stream.columns if path.split(".", 1)[0] in have}
        else:
            every &= have
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
        self.fields = None      # the sparse fieldset of the stream's type, when one is sent
        if attributes != every:
            paths = dict(stream.columns) if stream.columns else {}
            self.fields = ",".join(_fieldset(paths.get(name, name) for name in attributes) or
                                   [apispec.cheapest(self.operation, stream.resource, config.revision)])
            self.params[f"fields[{stream.resource}]"] = self.fields
        self.family = "profiles_predictive" if PREDICTIVE in additional else stream.rate_family
        # columns from relationship data (Stream.related): those selected, and the owner's id always;
        # the relationships the request includes for them
        self.related = tuple((column, relationship, include) for column, relationship, include in stream.related
                             if chosen is None or column in chosen or column == stream.parent_column)
        self.includes = tuple(dict.fromkeys(relationship for _, relationship, include in self.related if include))
        # detail columns the catalog selects, each read by a request per row; one the revision's
        # operation does not offer stays null, and nothing is asked for it
        self.details = tuple((column, operation, field) for column, operation, field in stream.details
                             if chosen is not None and column in chosen)
        self.detail_requests = tuple(detail for detail in self.details
                                     if field_offered(detail[1], stream.resource, detail[2], config.revision))

    @staticmethod
    def of(stream, context):
        return context.once(("query", stream.name), lambda: Query(stream, context))

    def row(self, stream, resource, parent_id=None):
        if stream.columns:
            row = shaped_row(resource, stream.columns, stream.parent_column, parent_id, self.attributes)
        else:
            row = resource_row(resource, stream.parent_column, parent_id, self.attributes)
        for column, relationship, _ in self.related:
            row[column] = next(iter(_related_ids(resource, relationship) or ()), None)
        # a selected detail column: null until its request (DetailRead) fills it
        row.update((column, None) for column, _, _ in self.details)
        return row


def field_offered(operation, resource, field, revision):
    """Whether operation takes additional-fields[resource]=field in revision (by the spec's rules)."""
    if not apispec.exists(operation, revision):
        return False
    rule = apispec.rules(operation, revision)["params"].get(f"additional-fields[{resource}]") or {}
    return field in (rule.get("enum") or ())


def pace_rank(family, context):
    """A resource task's place in the pool's queue: its endpoint's steady limit a minute, so the
    slowest endpoints' requests are queued first (flow messages at 60 a minute ahead of campaign
    messages at 150 and members at 750) and a slow chain never waits for workers held by a fast one.
    Report tasks rank below 0 and event spans at an epoch, so resources stay between them. Measured
    on the whole-account benchmark (docs/benchmark.md)."""
    return family_limits(family, context.config.revision)[1]


class DetailRead:
    """One row of a stream with detail columns (Stream.details): the row its list gave, completed
    by one request per detail column it selects (GET /api/flows/{id}?additional-fields[flow]=definition),
    each sent at its own operation's limits. The row is written once all are read; a resource gone
    meanwhile (404) gives no row and makes the read partial, like a parent gone."""

    def __init__(self, stream, context, row):
        self.stream = stream
        self.context = context
        self.row = row

    @property
    def family(self):
        """The endpoint family of its (first) detail request (the pool caps each at its burst)."""
        return detail_family(self.stream, Query.of(self.stream, self.context).detail_requests[0][0])

    def run(self, client, config):
        stream, row = self.stream, self.row
        for column, operation, field in Query.of(stream, self.context).detail_requests:
            params = {f"additional-fields[{stream.resource}]": field, f"fields[{stream.resource}]": field}
            path = operation.split(" ", 1)[1].format(id=row["id"])
            try:
                document = client.get(detail_family(stream, column), client.url(path), params)
            except RefusedError as exc:
                if exc.status != 404:
                    raise
                yield _gone(self, stream, stream.resource, row["id"])
                return
            attributes = ((document or {}).get("data") or {}).get("attributes") or {}
            row[column] = attributes.get(field)
        yield Page(self, envelope(stream.name).lines([row], time_extracted()), 1, done=True)


def _changes(stream, since, until):
    """The stream's filter for what changed in [since, until): until is the sync's start, so that a
    change made during the run, or dated ahead by a skewed clock, is read by a later run, once."""
    return stream.changes.format(since=timeutil.to_filter(since), until=timeutil.to_filter(until))


def _children(stream, context):
    """Collection streams read under each resource of stream, that this run needs."""
    return [child for child in context.rows.values() if child.family == COLLECTION and child.parent == stream.name
            and child.name in context.needed]


def _gone(task, stream, parent, parent_id):
    """The page a task ends with when its parent answered 404: most likely deleted during the run,
    but not surely, so a full read this page is part of deletes nothing (Mark.partial)."""
    LOGGER.warning("stream %s: %s %s is gone (404; deleted during the run); no rows from it",
                   stream.name, parent, parent_id)
    return Page(task, done=True, mark=Mark(partial=True))


def _owner_filter(stream, parent_id):
    """The filter expression naming a child's parent (Stream.parent_filter), None for a child read
    under its parent's path; the id is quoted as Klaviyo's filters quote strings."""
    if not (stream.parent_filter and parent_id):
        return None
    quote = "'" if "'" not in parent_id else '"'
    return stream.parent_filter.format(id=f"{quote}{parent_id}{quote}")


def _related_ids(resource, relationship):
    """The ids a relationship names; None when it has no data member at all (not even empty)."""
    related = (resource.get("relationships") or {}).get(relationship) or {}
    if "data" not in related:
        return None
    data = related["data"]
    if isinstance(data, dict):
        return [data["id"]]
    return [item["id"] for item in data or () if isinstance(item, dict)]


class CollectionScan:
    """Every resource of one collection (one fan-out value, one parent id); rows are written when
    the stream is selected, each resource's child collections are queued, and those read through
    an include are written from the same pages."""

    def __init__(self, stream, context, parent_id=None, partition=()):
        self.stream = stream
        self.parent_id = parent_id
        self.partition = partition      # its filter expressions (streams.partitions)
        self.emit = stream.name in context.selected
        children = _children(stream, context)
        self.children = [child for child in children if not child.include]
        self.included = [child for child in children if child.include]
        self.context = context

    @property
    def family(self):
        """The endpoint family its requests count against (the pool caps each at its burst)."""
        return Query.of(self.stream, self.context).family if self.emit else self.stream.rate_family

    def run(self, client, config):
        stream = self.stream
        if self.emit:
            query = Query.of(stream, self.context)
            params, family = dict(query.params), query.family
        else:       # read only for the ids its children are listed under
            params = {**dict(stream.params),
                      f"fields[{stream.resource}]": apispec.cheapest(stream.operation, stream.resource, config.revision)}
            family = stream.rate_family
        includes = [child.include for child in self.included]
        for child in self.included:
            fields = Query.of(child, self.context).fields
            if fields:
                params[f"fields[{child.resource}]"] = fields
        for relationship in Query.of(stream, self.context).includes if self.emit else ():
            # a column from relationship data Klaviyo sends for an included relationship (Stream.related)
            includes.append(relationship)
            params[f"fields[{relationship}]"] = apispec.cheapest(stream.operation, relationship, config.revision)
        if includes:
            params["include"] = ",".join(includes)
        since = self.context.changed_since.get(stream.name) if stream.changes and not stream.parent else None
        changed = _changes(stream, since, self.context.started) if since is not None else None
        # a child whose list takes its parent in a filter, not in the path (coupon codes of a coupon)
        owner = _owner_filter(stream, self.parent_id)
        if self.partition or changed or owner:
            params["filter"] = compose_filter(owner, *self.partition, changed)
        params.update(apispec.page_param(stream.operation, config.revision))
        path = stream.path.format(id=self.parent_id) if self.parent_id and not stream.parent_filter else stream.path
        try:
            yield from client.pages(family, path, params, self._page)
        except RefusedError as exc:
            if exc.status != 404 or not self.parent_id:
                raise
            yield _gone(self, stream, stream.parent, self.parent_id)

    def _page(self, document, last):
        stream, resources = self.stream, document["data"]
        extracted = time_extracted()
        rows = []
        spawn = []
        if self.emit:
            query = Query.of(stream, self.context)
            # the owner's id: the parent's, or a relationship's data (Query.row fills Stream.related)
            rows = [query.row(stream, resource, self.parent_id) for resource in resources]
            if query.detail_requests:       # each row written once its details are read
                rank = pace_rank(detail_family(stream, query.detail_requests[0][0]), self.context)
                spawn = [(DetailRead(stream, self.context, row), rank) for row in rows]
                rows = []
        spawn += [(CollectionScan(child, self.context, parent_id=r["id"]),
                   pace_rank(child.rate_family, self.context))
                  for r in resources for child in self.children]
        if self.included:
            by_key = {(r.get("type"), r.get("id")): r for r in document.get("included") or ()}
            for child in self.included:
                spawn.append((_included_rows(child, self.context, resources, by_key, extracted), 0))
        return Page(self, envelope(stream.name).lines(rows, extracted), len(rows), done=last, spawn=spawn)


def _included_rows(stream, context, parents, by_key, extracted):
    """The rows of a stream read through its parent's include, from one page of parents."""
    query = Query.of(stream, context)
    # a parent that says nothing of the relationship counts as missing: whatever it holds is not here
    rows, missing = included_rows(parents, lambda parent: _related_ids(parent, stream.include),
                                  lambda related_id: by_key.get((stream.resource, related_id)),
                                  lambda parent, resource: query.row(stream, resource, parent["id"]))
    if missing:
        LOGGER.warning("stream %s: Klaviyo named %d %s resource(s) in relationships '%s' but left them out of "
                       "'included': those rows are missing from this run", stream.name, len(missing),
                       stream.resource, stream.include)
    return IncludedRows(stream, envelope(stream.name).lines(rows, extracted), len(rows), bool(missing))


class IncludedRows:
    """Rows that came with another stream's page: written as this stream's, with no request."""

    def __init__(self, stream, lines, count, partial=False):
        self.stream = stream
        self.lines = lines
        self.count = count
        self.partial = partial      # rows Klaviyo named are not among them

    def run(self, client, config):
        yield Page(self, self.lines, self.count, done=True, mark=Mark(partial=True) if self.partial else None)


def plan_collection(stream, context):
    if not available(stream, context.config.revision):
        LOGGER.warning("stream %s: Klaviyo has it from API revision %s on, and this run uses %s: no rows (set "
                       "config revision to %s to read it)", stream.name, stream.since, context.config.revision,
                       stream.since)
        return []
    if stream.updated_field:
        return _plan_updated_range(stream, context)
    root = root_of(stream, context.rows)
    if root.name != stream.name and root.name in context.selected:
        return []           # the selected root's scan queues this stream under each parent
    # the first selected stream of a tree plans its root, read silently when not itself selected
    if not context.claim(("tree", root.name)):
        return []
    rank = pace_rank(root.rate_family, context)
    return [(CollectionScan(root, context, partition=partition), rank) for partition in partitions(root)]


def _plan_updated_range(stream, context):
    """An incremental collection (profiles): [bookmark − lookback, sync start) of its updated field,
    read like the event streams (split side by side when dense, a watermark for the bookmark)."""
    config = context.config
    stream_state = context.state_of(stream.name)
    begin = stream_state.begin(config.start_date, context.started)
    lower = begin - config.lookback_minutes * 60
    field = stream.updated_field
    query = Query.of(stream, context)
    params = {"sort": field, **query.params, **apispec.page_param(stream.operation, config.revision)}

    def range_filter(partition, lo, hi):
        # the filter takes only greater-than and less-than: from one second below the range (times
        # may carry fractions of a second), rows before lo trimmed after
        return compose_filter(*partition, f"greater-than({field},{timeutil.to_filter(lo - 1)})",
                              f"less-than({field},{timeutil.to_filter(hi)})")

    watermark = stream_state.track(begin, context.started)
    planned = []
    for partition in partitions(stream):      # each its own unit of the watermark
        reader = RangeReader(query.family, stream.path, params, functools.partial(range_filter, partition),
                             functools.partial(_updated_rows, field, query.attributes),
                             apispec.page_size(stream.operation, config.revision) or 20)
        unit = compose_filter(*partition) or "all"
        scan = RangeScan(stream, unit, lower, context.started, reader, max(2, config.concurrency))
        watermark.plan(unit, [scan])
        planned.append((scan, scan.lower))
    return planned


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
        # a segment Klaviyo is still computing lists only some of its members: its read is partial
        fields = "name,is_processing" if kind == "segment" else "name"
        params = {f"fields[{kind}]": fields, **apispec.page_param(f"GET /api/{kind}s", config.revision)}
        chosen = self.context.columns.get(self.stream.name)
        keep = chosen is None or "joined_group_at" in chosen
        since = self.context.changed_since.get(self.stream.name)

        def page(document, last):
            processing = [r["id"] for r in document["data"] if (r.get("attributes") or {}).get("is_processing")]
            if processing:
                LOGGER.warning("stream %s: Klaviyo is still computing segment(s) %s: their members may be "
                               "incomplete", self.stream.name, ", ".join(processing))
            return Page(self, done=last, mark=Mark(partial=True) if processing else None,
                        spawn=[(MemberScan(self.stream, r["id"], keep, since, self.context.started),
                                pace_rank(self.stream.rate_family, self.context)) for r in document["data"]])
        yield from client.pages(f"{kind}s", f"/api/{kind}s", params, page)


class MemberScan:
    """The profiles of one list or segment, as (group id, profile id, joined_group_at) rows: all of
    them, or those that joined since an instant (a member removed shows only in a full read)."""

    def __init__(self, stream, group_id, keep_joined=True, since=None, until=None):
        self.stream = stream
        self.group_id = group_id
        self.keep_joined = keep_joined
        self.since, self.until = since, until
        self.family = stream.rate_family     # the pool caps each endpoint family at its burst

    def run(self, client, config):
        # joined_group_at is the smallest attribute there is: asked for even when deselected
        params = {"fields[profile]": "joined_group_at", **apispec.page_param(self.stream.operation, config.revision)}
        if self.since is not None:
            params["filter"] = _changes(self.stream, self.since, self.until)
        path = self.stream.path.format(id=self.group_id)

        def page(document, last):
            rows = [member_row(r, self.stream.parent_column, self.group_id) for r in document["data"]]
            if not self.keep_joined:
                for row in rows:
                    del row["joined_group_at"]
            return Page(self, envelope(self.stream.name).lines(rows), len(rows), done=last)
        try:
            yield from client.pages(self.stream.rate_family, path, params, page)
        except RefusedError as exc:
            if exc.status != 404:
                raise
            yield _gone(self, self.stream, self.stream.resource, self.group_id)


def plan_members(stream, context):
    return [(GroupIds(stream, context), 0)]
