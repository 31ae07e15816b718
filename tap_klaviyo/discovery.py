"""The catalog: the same streams whatever the account holds (the classic tables' entries also note
the account's metric ids, see note_metrics), and reading a catalog back."""
import json
import logging
import re
from functools import cache
from importlib import resources

from .errors import ApiError, ConfigError
from .streams import BY_NAME, INCREMENTAL, STREAMS, detail_columns

LOGGER = logging.getLogger("tap_klaviyo")
# stream-level metadata of a classic event table: {metric id: name} of its metrics at discovery
METRICS_KEY = "tap-klaviyo.metrics"


@cache
def _schema_text(name):
    return resources.files("tap_klaviyo").joinpath("schemas", f"{name}.json").read_text("utf-8")


def schema(stream):
    return json.loads(_schema_text(stream.schema))


def catalog_entry(stream):
    from singer import metadata     # discovery only: see metrics.py for why not at the top
    stream_schema = schema(stream)
    mdata = metadata.get_standard_metadata(
        schema=stream_schema,
        key_properties=list(stream.key),
        valid_replication_keys=[stream.replication_key] if stream.replication_key else None,
        replication_method=stream.method,
    )
    compiled = metadata.to_map(mdata)
    # The classic tables' columns cannot be deselected (as in Stitch): every field is automatic. The
    # opt-in streams' attribute columns can, and a deselected one is left out of the request too.
    fixed = _fixed_columns(stream)
    for breadcrumb in compiled:
        if breadcrumb:
            if stream.classic or breadcrumb[-1] in fixed:
                compiled[breadcrumb]["inclusion"] = "automatic"
            else:
                compiled[breadcrumb]["inclusion"] = "available"
                # a detail column costs a request per row: chosen on purpose (streams.Stream.details)
                compiled[breadcrumb]["selected-by-default"] = breadcrumb[-1] not in detail_columns(stream)
    compiled[()]["inclusion"] = "available"
    # the classic tables come selected, so `--discover > catalog.json` then `--catalog catalog.json`
    # syncs them as written; the opt-in streams need more scopes and are chosen on purpose
    compiled[()]["selected-by-default"] = stream.selected_by_default
    compiled[()]["selected"] = stream.selected_by_default
    entry = {
        "tap_stream_id": stream.name,
        "stream": stream.name,
        "key_properties": list(stream.key),
        "schema": stream_schema,
        "metadata": [{"breadcrumb": list(item["breadcrumb"]), "metadata": item["metadata"]}
                     for item in metadata.to_list(compiled)],
    }
    if stream.method == INCREMENTAL:
        entry["replication_key"] = stream.replication_key
        entry["replication_method"] = INCREMENTAL
    else:
        entry["replication_method"] = stream.method
    return entry


def discover():
    # the classic twelve first, then the opt-in streams, whatever the account holds
    return {"streams": [catalog_entry(stream) for stream in sorted(STREAMS, key=lambda s: not s.selected_by_default)]}


def _fixed_columns(stream):
    """Columns a row always carries: the key, the parent's id, the replication key."""
    return {column for column in (*stream.key, stream.parent_column, stream.replication_key) if column}


def _is_selected(entry):
    for item in entry.get("metadata") or ():
        if isinstance(item, dict) and item.get("breadcrumb") == [] and "selected" in (item.get("metadata") or {}):
            return item["metadata"]["selected"] is True
    return (entry.get("schema") or {}).get("selected") is True


_MAKE_ONE = "run `tap-klaviyo --config CONFIG --discover > catalog.json` for a catalog this tap reads"


def _foreign(catalog, source):
    """One line for a catalog in another tool's format, or None when it is not one that is known."""
    entries = catalog.get("streams") if isinstance(catalog, dict) else None
    first = next((e for e in entries or () if isinstance(e, dict)), None)
    if first is None:
        return None
    if isinstance(first.get("stream"), dict) and ("sync_mode" in first or "destination_sync_mode" in first):
        return (f"{source} is an Airbyte configured catalog (each entry a 'stream' object with 'sync_mode'), "
                f"not a Singer catalog; {_MAKE_ONE}, then select streams in it")
    if (isinstance(first.get("stream"), dict) and "json_schema" in first["stream"]) or "json_schema" in first:
        return (f"{source} is an Airbyte catalog (streams with 'json_schema'), not a Singer catalog; "
                f"{_MAKE_ONE}, then select streams in it")
    return None


def _stream_name(entry, source):
    """The stream an entry names (tap_stream_id, else stream), or one clear line."""
    name = entry.get("tap_stream_id") or entry.get("stream")
    if not isinstance(name, str):
        field = "tap_stream_id" if entry.get("tap_stream_id") else "stream"
        shown = json.dumps(name)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ConfigError(f"{source} has a stream entry whose {field!r} is a {type(name).__name__} ({shown}), "
                          f"not a stream name: it is not a Singer catalog of this tap; {_MAKE_ONE}")
    return name


def selected_streams(catalog, source="catalog"):
    """The streams a catalog selects, in the tap's own order; bad catalogs raise one clear line."""
    foreign = _foreign(catalog, source)
    if foreign:
        raise ConfigError(foreign)
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        raise ConfigError(f"{source} must be a JSON object with a 'streams' list; run "
                          "`tap-klaviyo --config CONFIG --discover > catalog.json` to make one")
    chosen = set()
    for entry in catalog["streams"]:
        if not isinstance(entry, dict):
            raise ConfigError(f"{source} has a stream entry that is not an object: {entry!r}")
        name = _stream_name(entry, source)
        if name not in BY_NAME:
            raise ConfigError(f"{source} names stream {name!r}, which this tap does not have (it has "
                              f"{', '.join(BY_NAME)}); run --discover for a fresh catalog")
        if _is_selected(entry):
            chosen.add(name)
    return [stream for stream in STREAMS if stream.name in chosen]


def selected_columns(catalog, source="catalog"):
    """{stream name: the set of columns the catalog selects, or None for all} for the opt-in
    streams it names. A column counts as selected unless its metadata says "selected": false (or
    "selected-by-default": false without a "selected"); fixed columns always are. A selected
    stream's breadcrumbs naming a column the stream does not have are ignored, with one warning per
    stream. Call after selected_streams, which checks the catalog's shape."""
    chosen = {}
    for entry in catalog["streams"]:
        stream = BY_NAME[entry.get("tap_stream_id") or entry.get("stream")]
        columns = set(schema(stream)["properties"])
        fixed = _fixed_columns(stream)
        dropped, unknown = set(), []
        details, chosen_details = set(detail_columns(stream)), set()
        for item in entry.get("metadata") or ():
            breadcrumb = item.get("breadcrumb") if isinstance(item, dict) else None
            meta = item.get("metadata") if isinstance(item, dict) else None
            if not (isinstance(breadcrumb, list) and len(breadcrumb) == 2 and breadcrumb[0] == "properties"
                    and isinstance(meta, dict)):
                continue
            column = breadcrumb[1]
            if not isinstance(column, str) or column not in columns:
                if column not in unknown:
                    unknown.append(column)
            elif column in details:     # read only when the catalog selects it (a request per row)
                if meta.get("selected", meta.get("selected-by-default", False)) is True:
                    chosen_details.add(column)
            elif column not in fixed and meta.get("selected", meta.get("selected-by-default", True)) is False:
                dropped.add(column)
        dropped |= details - chosen_details
        if unknown and _is_selected(entry):
            shown = ", ".join(repr(c) if isinstance(c, str) else json.dumps(c) for c in unknown[:8])
            more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
            LOGGER.warning("%s stream %s: metadata names column%s %s%s, which the stream does not have; ignored "
                           "(a catalog of another tap or version? run --discover for a fresh catalog)", source,
                           stream.name, "s" if len(unknown) > 1 else "", shown, more)
        if not stream.classic:
            # None: every column; a selected detail column is named, as it is not read unless named
            chosen[stream.name] = columns - dropped if dropped or chosen_details else None
    return chosen


def note_metrics(catalog, metrics):
    """Notes in each classic event table's entry the account's metrics it reads (metrics: (id, name,
    integration name) of all). A sync then starts reading them without first fetching the list,
    which it still fetches meanwhile to check them (tasks/events.py)."""
    for entry in catalog["streams"]:
        stream = BY_NAME[entry["tap_stream_id"]]
        if stream.metric_names:
            for item in entry["metadata"]:
                if item["breadcrumb"] == []:
                    item["metadata"][METRICS_KEY] = dict(stream.metrics_in(metrics))


def catalog_metrics(catalog):
    """{classic table: [(metric id, name)]} of the entries noting them (see note_metrics); a table
    missing here has its metrics looked up first. Call after selected_streams."""
    noted = {}
    for entry in catalog["streams"]:
        stream = BY_NAME[entry.get("tap_stream_id") or entry.get("stream")]
        for item in entry.get("metadata") or ():
            if not isinstance(item, dict) or item.get("breadcrumb") != [] or \
                    not isinstance(item.get("metadata"), dict) or METRICS_KEY not in item["metadata"]:
                continue
            value = item["metadata"][METRICS_KEY]
            if not stream.metric_names or not isinstance(value, dict) or \
                    not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise ConfigError(f"catalog stream {stream.name!r}: metadata {METRICS_KEY!r} must map metric ids to "
                                  "names, as --discover writes it on the metric tables; remove it or run --discover "
                                  "for a fresh catalog")
            noted[stream.name] = list(value.items())
    return noted


def discover_all_selected():
    """The catalog with the classic twelve selected: what a run without --catalog syncs."""
    catalog = discover()
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = BY_NAME[entry["tap_stream_id"]].selected_by_default
    return catalog


# --- the key's access -----------------------------------------------------------------------------

def _scope_of_path(path):
    """The one scope the spec gives the operation at path ('/api/flows/XyZ/flow-actions'), or None."""
    from . import apispec
    for operation in apispec.operations():
        template = operation.split(" ", 1)[1]
        if re.fullmatch(re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)) + "/?", path):
            scopes = apispec.scopes(operation)
            return scopes[0] if len(scopes) == 1 else None
    return None


# a list's or segment's members need two scopes: a 403 there whose detail names neither may mean either
_MEMBERS_PATH = re.compile(r"^/api/(lists|segments)/[^/]+/profiles/?$")
# answers that concern every request, not one endpoint: the key (401) and the revision (410)
_FATAL_STATUSES = (401, 410)


# A filter that makes a probe's page empty where the operation has no page[size] to keep it small
# (events before 2026-01-15: a range before any event); a saving only, none is needed.
_EMPTY_PAGE = {"GET /api/events": "less-than(datetime,2000-01-01T00:00:00Z)"}


def _probe(scope, revision):
    """(rate family, path, params) of the cheapest request that needs scope alone, or None: the first list
    operation the streams read that needs only it, asking for one small page of one small field, and
    only parameters the revision's spec lists (a filter it requires taken from the stream row that
    fans out over it)."""
    from . import apispec
    from .streams import STREAMS, at_revision, families
    rows = [at_revision(stream, revision) for stream in STREAMS]
    for operation in (op for row in rows for op in (row.operation, *row.reads) if op):
        method, path = operation.split(" ", 1)
        if method != "GET" or "{" in path or operation not in apispec.operations() or \
                apispec.scopes(operation) != (scope,) or not apispec.exists(operation, revision):
            continue
        rules = apispec.rules(operation, revision)
        resource = rules["resource"]
        params = {f"fields[{resource}]": apispec.cheapest(operation, resource, revision),
                  **apispec.page_param(operation, revision, smallest=True)}
        if not params.get("page[size]") and operation in _EMPTY_PAGE:
            params["filter"] = _EMPTY_PAGE[operation]
        if rules["params"].get("filter", {}).get("required"):
            # the dimension the spec requires is the row's first (campaigns' channel before 2026-10-15)
            # or its parent's id, for a child the filter names its parent in (coupon codes): an id
            # no parent has, for an empty page
            row = next(row for row in rows if row.operation == operation and (row.partitions or row.parent_filter))
            params["filter"] = row.partitions[0].filters()[0] if row.partitions else \
                row.parent_filter.format(id="'tap-klaviyo-probe'")
        family = next(name for name, (op, condition) in families().items() if op == operation and not condition)
        return family, path, params
    return None


def _streams_phrase(names):
    return f"stream{'s' if len(names) > 1 else ''} {', '.join(names)}"


def _answer(exc, path):
    """What a failed probe got, as 'GET /api/x: ...' (status and Klaviyo's detail where it answered)."""
    from .client import RefusedError
    if isinstance(exc, RefusedError):
        return f"GET {exc.path or path}: {exc.status} ({exc.detail})"
    text = str(exc)
    return text if text.startswith(("GET /", "POST /")) else f"GET {path}: {text}"


class _Unreadable(ApiError):
    answered = True     # Klaviyo did answer: not a sign that it cannot be reached


def _read_listing(listing, client, path):
    """What listing(client) makes of its answers; an answer it cannot read (a 200 shaped unlike the
    spec's) leaves the scope unchecked like any unusable answer, not a crash of discovery."""
    try:
        return listing(client)
    except (LookupError, TypeError, AttributeError, ValueError) as exc:
        raise _Unreadable(f"GET {path or 'listing'}: an answer shaped unlike Klaviyo's spec ({type(exc).__name__}: "
                         f"{exc})") from None


def check_access(client, streams, listings=None):
    """({scope: "ok" | "missing" | "unchecked"} for every scope the streams need, {scope: listed}):
    one cheap request per scope, or for a scope in listings ({scope: function(client)}) that
    listing, whose answer is kept as listed.

    A 403 makes the scope missing: one WARNING names it and every stream it disables. Any other
    failure of a probe (a 400, a 404, a 5xx or a gateway page after the client's retries, a 200
    that is no JSON:API document) leaves it unchecked: one WARNING names the scope, the request and
    the answer, and discovery goes on. What concerns every request ends the run: a 401 (the key),
    a 410 (the revision), and the first two probes both failing without a 4xx (Klaviyo unreachable
    or down, base_url or TLS wrong; the first one's line). So does a key that lacks a scope of each
    classic table among streams (the tables discovery selects): one line naming the scopes to grant,
    and no warnings."""
    from .client import RefusedError     # discovery also serves catalog reading, which needs no HTTP
    from .errors import ApiError, redact
    needed = {}
    for stream in streams:
        for scope in stream.scopes:
            needed.setdefault(scope, []).append(stream.name)
    access, listed, failures = {}, {}, {}
    answered, unanswered = False, None      # whether Klaviyo answered a probe; the first failure before it did
    for scope in needed:
        probe = _probe(scope, client.config.revision)
        if probe is None and scope not in (listings or {}):
            access[scope] = "unchecked"     # no list needs it alone: a sync names it if it is lacking
            continue
        family, path, params = probe or (None, "", None)
        try:
            if scope in (listings or {}):
                listed[scope] = _read_listing(listings[scope], client, path)
            else:
                client.get(family, client.url(path), params)
            access[scope], answered = "ok", True
        except RefusedError as exc:
            if exc.status in _FATAL_STATUSES:
                raise
            answered = True
            access[scope], failures[scope] = ("missing" if exc.status == 403 else "unchecked"), (exc, path)
        except ApiError as exc:     # no answer, or none usable, after the client's retries
            if getattr(exc, "answered", False):
                answered = True
            elif not answered:
                if unanswered is not None:
                    raise unanswered from None
                unanswered = exc
            access[scope], failures[scope] = "unchecked", (exc, path)

    missing = [scope for scope in needed if access[scope] == "missing"]
    classic = [stream for stream in streams if stream.selected_by_default]
    if classic and all(any(access[scope] == "missing" for scope in stream.scopes) for stream in classic):
        grant = [scope for scope in missing if any(scope in stream.scopes for stream in classic)]
        others = [scope for scope in missing if scope not in grant]
        raise ApiError(f"the API key can read none of the classic tables discovery selects: it lacks scope"
                       f"{'s' if len(grant) > 1 else ''} {', '.join(grant)} (a 403 on each); grant the key "
                       f"{'these' if len(grant) > 1 else 'this'} read access in Klaviyo"
                       + (f" (the opt-in streams also need {', '.join(others)})" if others else ""))
    for scope, (exc, path) in failures.items():
        names = needed[scope]
        if access[scope] == "missing":
            LOGGER.warning("the API key lacks scope %s (403 on %s): %s will fail; give the key that read "
                           "access in Klaviyo or leave %s unselected", scope, exc.path or path,
                           _streams_phrase(names), "them" if len(names) > 1 else "it")
        else:
            LOGGER.warning("could not check scope %s: %s; discovery goes on (%s may fail if selected)",
                           scope, redact(_answer(exc, path)), _streams_phrase(names))
    return access, listed


def scope_failure(error, streams):
    """One line for a sync's 403: which selected streams need which scope the key lacks."""
    found = re.search(r"\b([a-z][a-z_-]*:(?:read|write))\b", error.detail or "")
    members = _MEMBERS_PATH.match(error.path or "")
    if not found and members:
        # the members endpoints need the group's scope and profiles:read: either may be the one lacking
        scopes = (f"{members.group(1)}:read", "profiles:read")
        names = [stream.name for stream in streams if set(scopes) <= set(stream.scopes)]
        if names:
            return (f"{_streams_phrase(names)} need{'' if len(names) > 1 else 's'} scopes {scopes[0]} and "
                    f"{scopes[1]}, and the API key lacks one of them (403 on {error.path}: {error.detail}); give "
                    "the key both read accesses in Klaviyo, or leave the stream unselected")
    scope = found.group(1) if found else _scope_of_path(error.path or "")
    names = [stream.name for stream in streams if scope in stream.scopes]
    if not scope or not names:
        return str(error)
    return (f"{_streams_phrase(names)} need{'' if len(names) > 1 else 's'} "
            f"scope {scope}, which the API key lacks (403 on {error.path}: {error.detail}); give the key "
            "that read access in Klaviyo, or leave the stream unselected")
