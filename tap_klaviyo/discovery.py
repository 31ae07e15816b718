"""The catalog: twelve streams whatever the account holds, and reading a catalog back."""
import json
from functools import cache
from importlib import resources

from singer import metadata

from .errors import ConfigError
from .streams import BY_NAME, INCREMENTAL, STREAMS


@cache
def _schema_text(family):
    return resources.files("tap_klaviyo").joinpath("schemas", f"{family}.json").read_text("utf-8")


def schema(stream):
    return json.loads(_schema_text(stream.family))


def catalog_entry(stream):
    stream_schema = schema(stream)
    mdata = metadata.get_standard_metadata(
        schema=stream_schema,
        key_properties=list(stream.key),
        valid_replication_keys=[stream.replication_key] if stream.replication_key else None,
        replication_method=stream.method,
    )
    compiled = metadata.to_map(mdata)
    # tables can be selected, columns cannot (as in Stitch): every field is automatic
    for breadcrumb in compiled:
        if breadcrumb:
            compiled[breadcrumb]["inclusion"] = "automatic"
    compiled[()]["inclusion"] = "available"
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
    return {"streams": [catalog_entry(stream) for stream in STREAMS]}


def _is_selected(entry):
    for item in entry.get("metadata") or ():
        if isinstance(item, dict) and item.get("breadcrumb") == [] and "selected" in (item.get("metadata") or {}):
            return item["metadata"]["selected"] is True
    return (entry.get("schema") or {}).get("selected") is True


def selected_streams(catalog, source="catalog"):
    """The streams a catalog selects, in the tap's own order; bad catalogs raise one clear line."""
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        raise ConfigError(f"{source} must be a JSON object with a 'streams' list; run "
                          "`tap-klaviyo --config CONFIG --discover > catalog.json` to make one")
    chosen = set()
    for entry in catalog["streams"]:
        if not isinstance(entry, dict):
            raise ConfigError(f"{source} has a stream entry that is not an object: {entry!r}")
        name = entry.get("tap_stream_id") or entry.get("stream")
        if name not in BY_NAME:
            raise ConfigError(f"{source} names stream {name!r}, which this tap does not have (it has "
                              f"{', '.join(BY_NAME)}); run --discover for a fresh catalog")
        if _is_selected(entry):
            chosen.add(name)
    return [stream for stream in STREAMS if stream.name in chosen]


def discover_all_selected():
    """The catalog with every stream selected: what a run without --catalog syncs."""
    catalog = discover()
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = True
    return catalog
