"""`--about`: what the tap is and what it takes, the way Meltano SDK taps answer."""
import json

from . import __version__
from .config import SETTINGS
from .streams import STREAMS

CAPABILITIES = ["catalog", "discover", "state", "properties"]
DESCRIPTION = ("Singer tap for Klaviyo: the twelve classic tables (ten email-event tables, lists, "
               "global_exclusions) from Klaviyo's current API")


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
                s.name: {"type": "string" if s.kind == "date_iso8601" else s.kind,
                         **({"format": "date-time"} if s.kind == "date_iso8601" else {}),
                         "default": s.default, "description": s.description, "secret": s.secret}
                for s in SETTINGS
            },
            "required": [s.name for s in SETTINGS if s.required],
        },
    }


def render(fmt):
    info = about()
    if fmt == "json":
        return json.dumps(info, indent=2)
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
