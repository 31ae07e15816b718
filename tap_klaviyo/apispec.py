"""What Klaviyo's published spec allows, per operation ('GET /api/flows') and revision.

The facts live in spec_rules.json beside this module, written by scripts/extract_spec_rules.py
from klaviyo/openapi (docs/revisions.md says which source each revision's rules come from); the
local sandbox the tests run against refuses whatever they refuse. The tap reads from them every
per-request fact it would otherwise keep by hand: the largest page a request may ask for, its rate
limits, the scopes it needs, the attributes a resource type has, the smallest field to ask for when
only ids are wanted, and whether a report body takes `group_by`. An operation the tap sends must be
in the file: scripts/extract_spec_rules.py lists the operations of tap_klaviyo.streams.
"""
import functools
from importlib import resources

import msgspec

# Attributes small enough to ask for when a resource is read for its id alone (a sparse fieldset
# must name one), in order of preference; the spec's field list of the type decides which exist.
_SMALL_FIELDS = ("created", "created_at", "updated", "updated_at", "name", "timestamp")


@functools.cache
def _document():
    return msgspec.json.decode(resources.files("tap_klaviyo").joinpath("spec_rules.json").read_bytes())


def _enum(value):
    return _document()["enums"][value] if isinstance(value, str) else value


def revisions():
    """The revisions the rules cover, oldest first."""
    return tuple(_document()["revisions"])


def operations():
    return tuple(_document()["operations"])


def rules(operation, revision):
    """The spec's rules of operation in revision (a GA revision); None where that revision lacks it."""
    ranges = _document()["operations"].get(operation)
    if ranges is None:
        raise KeyError(f"{operation} is not in spec_rules.json: list it in tap_klaviyo.streams and rerun "
                       "scripts/extract_spec_rules.py")
    for entry in ranges:
        first, last = entry["revisions"]
        if first <= revision <= last:
            return None if entry.get("absent") else entry
    return None


def exists(operation, revision):
    return rules(operation, revision) is not None


def _params(operation, revision):
    entry = rules(operation, revision)
    if entry is None:
        raise KeyError(f"{operation} does not exist in revision {revision}")
    return entry["params"]


def page_size(operation, revision):
    """The largest page[size] of operation in revision; None where it has no such parameter (the
    request must then not send it, and gets the endpoint's fixed page)."""
    rule = _params(operation, revision).get("page[size]")
    return rule["max"] if rule else None


def page_param(operation, revision, smallest=False):
    """{"page[size]": the largest (or smallest) page} where the parameter exists, else {}."""
    rule = _params(operation, revision).get("page[size]")
    return {"page[size]": rule["min" if smallest else "max"]} if rule else {}


def limits(operation, revision, condition=None):
    """(burst per second, steady per minute) of operation in revision. condition: a (parameter,
    value) the requests send for which the spec gives lower limits (a list's profile_count)."""
    entry = rules(operation, revision)
    if entry is None:
        raise KeyError(f"{operation} does not exist in revision {revision}")
    chosen = entry["rate_limit"]
    for when in entry.get("rate_limit_when", ()):
        if condition == (when["parameter"], when["value"]):
            chosen = when
    return chosen["burst"], chosen["steady"]


def scopes(operation):
    """The scopes operation needs (no operation the tap reads changes them across revisions)."""
    if operation not in _document()["operations"]:
        rules(operation, "")        # the error that says what to do
    return tuple(next(entry["scopes"] for entry in reversed(_document()["operations"][operation])
                      if not entry.get("absent")))


def fields(operation, resource, revision):
    """The names fields[resource] may hold in operation and revision (dotted paths included)."""
    rule = _params(operation, revision).get(f"fields[{resource}]")
    return frozenset(_enum(rule["enum"])) if rule else frozenset()


def attributes(operation, resource, revision):
    """The top-level attributes resource has in operation and revision."""
    return frozenset(name.split(".", 1)[0] for name in fields(operation, resource, revision)) - {"id"}


def cheapest(operation, resource, revision):
    """A small attribute of resource to ask for when only its id is wanted."""
    allowed = fields(operation, resource, revision)
    for name in _SMALL_FIELDS + ("id",):
        if name in allowed:
            return name
    top = sorted(name for name in allowed if "." not in name)
    if not top:
        raise KeyError(f"{operation}: the spec lists no fields[{resource}] in {revision}")
    return top[0]       # a type with none of the usual small ones: any field will do


def report_takes(operation, revision, attribute):
    """Whether a report body may carry attribute (group_by) in revision: sending one it does not
    take is a 400."""
    return attribute in rules(operation, revision)["body"]["attributes"]
