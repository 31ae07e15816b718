"""`--about`: what the tap is and what it takes, the way Meltano SDK taps answer.

The JSON, the markdown table and the Meltano plugin definition are all made here from the one
settings table in config.py, so none of them can say something the others do not.
"""
import json
import re

from . import __version__
from .config import SETTINGS
from .streams import STREAMS

CAPABILITIES = ["catalog", "discover", "state", "properties", "about"]
DESCRIPTION = ("Singer tap for Klaviyo: the twelve classic tables (ten email-event tables, lists, "
               "global_exclusions) from Klaviyo's current API, and opt-in streams of Klaviyo's resources (events "
               "and their attributions, profiles, campaigns, flows, templates, tags, segments, memberships, "
               "forms, coupons, the catalog, reviews, images, push tokens, the account), the classic tap's newer "
               "text-message tables and performance reports")

# Setting kinds in Meltano's words (its meltano.yml schema). A secret is a sensitive string:
# Meltano deprecated `kind: password`. A number that may have a fraction is a string to Meltano:
# Meltano (4.4) turns a `decimal` setting given as text (TAP_KLAVIYO_REQUEST_TIMEOUT=30, `meltano
# config set`) into a Decimal that its writer of the tap's config file cannot serialize, and the run
# fails before the tap starts; the tap reads numbers written as strings.
MELTANO_KINDS = {"string": "string", "integer": "integer", "number": "string", "boolean": "boolean",
                 "date_iso8601": "date_iso8601", "array": "array"}
PIP_URL_PLACEHOLDER = "git+https://github.com/<your-org>/tap-klaviyo.git"


def _scopes(streams):
    found = []
    for stream in streams:
        found.extend(scope for scope in stream.scopes if scope not in found)
    return found


def scopes_sentence():
    """Every scope the streams need, from the streams table: the classic tables' first."""
    classic = _scopes(s for s in STREAMS if s.selected_by_default)
    more = [scope for scope in _scopes(STREAMS) if scope not in classic]
    sentence = f"read-only scopes {', '.join(classic)} for the classic tables"
    return sentence + (f"; the opt-in streams also need {', '.join(more)}" if more else "")


def description(setting):
    """A setting's description as --about and Meltano show it: the api_key's names the scopes of
    every stream, taken from the streams table so that a stream added there is named here too."""
    if setting.name == "api_key":
        return f"Klaviyo private API key (pk_…); {scopes_sentence()}"
    return setting.description


def _json_schema(setting):
    if setting.kind == "date_iso8601":
        return {"type": "string", "format": "date-time"}
    if setting.kind == "array":
        return {"type": "array", "items": {"type": "string"}}
    return {"type": setting.kind}


def about():
    return {
        "name": "tap-klaviyo",
        "version": __version__,
        "description": DESCRIPTION,
        "capabilities": CAPABILITIES,
        "streams": [stream.name for stream in STREAMS],
        "settings": {
            "type": "object",
            "properties": {
                s.name: {**_json_schema(s), "default": s.default, "description": description(s), "secret": s.secret}
                for s in SETTINGS
            },
            "required": [s.name for s in SETTINGS if s.required],
        },
    }


def meltano_extractor(pip_url=PIP_URL_PLACEHOLDER):
    """The extractor entry of a meltano.yml, as data."""
    settings = []
    for s in SETTINGS:
        entry = {"name": s.name, "kind": MELTANO_KINDS[s.kind]}
        if s.default is not None:
            entry["value"] = s.default
        if s.secret:
            entry["sensitive"] = True
        entry["description"] = description(s)
        settings.append(entry)
    return {
        "name": "tap-klaviyo",
        "namespace": "tap_klaviyo",
        "pip_url": pip_url,
        "executable": "tap-klaviyo",
        "capabilities": list(CAPABILITIES),
        "settings_group_validation": [[s.name for s in SETTINGS if s.required]],
        "settings": settings,
        # the tables discovery selects by default; an opt-in stream is added here by name
        "select": [f"{stream.name}.*" for stream in STREAMS if stream.selected_by_default],
    }


# --- a small YAML writer: the plugin definition is nested maps, lists and scalars only ----------------

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _scalar(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)    # a JSON string is a YAML double-quoted scalar


def to_yaml(value, indent=0):
    """Block-style YAML lines for maps and lists; a list of scalars nested in a list goes inline."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {_scalar(item) if not isinstance(item, (dict, list)) else json.dumps(item)}")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                inner = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            elif isinstance(item, list):
                lines.append(f"{pad}- [{', '.join(_scalar(v) for v in item)}]")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def render(fmt):
    info = about()
    if fmt == "json":
        return json.dumps(info, indent=2)
    if fmt == "meltano":
        return "\n".join(["# the extractor entry for a meltano.yml (tap-klaviyo --about --format meltano)",
                          *to_yaml({"plugins": {"extractors": [meltano_extractor()]}})])
    lines = [f"# {info['name']} {info['version']}", "", info["description"], "",
             "Capabilities: " + ", ".join(info["capabilities"]), "",
             "Streams: " + ", ".join(info["streams"]), "", "| setting | type | default | required | secret | description |",
             "|---|---|---|---|---|---|"]
    required = set(info["settings"]["required"])
    for name, spec in info["settings"]["properties"].items():
        default = "" if spec["default"] is None else json.dumps(spec["default"])
        lines.append(f"| {name} | {spec['type']} | {default} | {'yes' if name in required else 'no'} | "
                     f"{'yes' if spec['secret'] else 'no'} | {spec['description']} |")
    return "\n".join(lines)
