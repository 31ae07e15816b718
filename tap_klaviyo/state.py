"""Bookmarks in and out.

The classic shape is kept: {"bookmarks": {"<stream>": {"since": "YYYY-MM-DDTHH:MM:SSZ"}}}.
singer-io tap-klaviyo 1.1.4+ keyed the same thing by metric id; that is read too. Every key the
tap does not know is carried through unchanged.
"""
import copy
import logging

from . import timeutil
from .errors import ConfigError

LOGGER = logging.getLogger("tap_klaviyo")


def read(path):
    """The state in the file at path. A file not there yet, or empty, is a first run: no bookmarks."""
    from .config import read_json_file
    try:
        with open(path, "rb") as handle:
            empty = not handle.read(4096).strip()
    except FileNotFoundError:
        LOGGER.info("state file %s does not exist yet: a first run, every stream starts at start_date", path)
        return {}
    except OSError:
        empty = False       # a directory or an unreadable file: read_json_file says what is wrong
    if empty:
        LOGGER.info("state file %s is empty: a first run, every stream starts at start_date", path)
        return {}
    return validate(read_json_file(path, "state"), f"state file {path}")


# Top-level keys of a Singer state this tap reads or knows (currently_syncing: other taps' way of
# saying where a run stopped; this tap does not need it, and keeps it).
KNOWN_KEYS = ("bookmarks", "currently_syncing")


def _unwrap(raw, source):
    """The state inside the envelopes that tools save around it: a whole STATE message
    ({"type": "STATE", "value": ...}), the shape that `grep STATE | tail -1 > state.json` saves, and
    Meltano's {"singer_state": ...}, the shape `meltano state get` prints. Taken as the state, either
    lost every bookmark (a full re-read from start_date) and the STATE written next nested it once
    more, each run."""
    messages = meltano = 0
    while isinstance(raw, dict):
        if raw.get("type") == "STATE" and "value" in raw:
            raw, messages = raw["value"], messages + 1
        elif "singer_state" in raw and "bookmarks" not in raw:
            raw, meltano = raw["singer_state"], meltano + 1
        else:
            break
    if messages:
        nested = f", nested {messages} deep" if messages > 1 else ""
        LOGGER.warning("%s holds a whole Singer STATE message ({\"type\": \"STATE\", \"value\": ...}%s); "
                       "using its value, bookmarks included. To save only the value: "
                       "`grep '\"type\":\"STATE\"' tap-output | tail -1 | jq -c .value > state.json`",
                       source, nested)
    if meltano:
        LOGGER.warning("%s holds a state as Meltano prints it ({\"singer_state\": ...}, from `meltano state "
                       "get`); using its singer_state, bookmarks included. To save only the tap's state: "
                       "`meltano state get STATE_ID | jq -c .singer_state > state.json`", source)
    return raw


def _warn_unknown_shape(state, source):
    """A state object none of whose top-level keys this tap knows is read as no bookmarks at all:
    every stream starts again at start_date. Most likely another tool's wrapper or a hand-made
    file; say so instead of re-reading the account in silence."""
    if state and not any(key in state for key in KNOWN_KEYS):
        shown = ", ".join(repr(key) for key in list(state)[:5]) + (", ..." if len(state) > 5 else "")
        LOGGER.warning("%s has no 'bookmarks' (its top-level keys: %s), so every stream starts at start_date; "
                       "a state this tap reads looks like {\"bookmarks\": {\"receive\": {\"since\": "
                       "\"2024-01-01T00:00:00Z\"}}}, the value of the last STATE message the tap wrote",
                       source, shown)


def validate(raw, source="state"):
    """Check a parsed state object; return it (a deep copy) or raise one clear line."""
    raw = _unwrap(raw, source)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a JSON object like {{\"bookmarks\": {{\"receive\": "
                          f"{{\"since\": \"2024-01-01T00:00:00Z\"}}}}}}, got {type(raw).__name__}")
    state = copy.deepcopy(raw)
    _warn_unknown_shape(state, source)
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return state
    if not isinstance(bookmarks, dict):
        raise ConfigError(f"{source} 'bookmarks' must be an object keyed by stream name, got "
                          f"{type(bookmarks).__name__}")
    for key, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            raise ConfigError(f"{source} bookmark for {key!r} must be an object like "
                              f"{{\"since\": \"2024-01-01T00:00:00Z\"}}, got {bookmark!r}")
        if "since" in bookmark:
            try:
                timeutil.parse_instant(bookmark["since"])
            except ValueError as exc:
                raise ConfigError(f"{source} bookmark {key!r} has since={bookmark['since']!r}: {exc}; "
                                  "fix or delete that bookmark") from None
    return state


def since(state, stream_name, metric_ids=()):
    """The stream's bookmark as epoch seconds, or None when the state holds none.

    The stream-name key wins; else the earliest of the metric-id keys of the stream's metrics.
    """
    bookmarks = state.get("bookmarks") or {}
    own = (bookmarks.get(stream_name) or {}).get("since")
    if own is not None:
        return timeutil.parse_instant(own)
    legacy = [timeutil.parse_instant(bookmarks[m]["since"]) for m in metric_ids
              if "since" in (bookmarks.get(m) or {})]
    return min(legacy) if legacy else None


def set_since(state, stream_name, epoch):
    bookmark = state.setdefault("bookmarks", {}).setdefault(stream_name, {})
    bookmark["since"] = timeutil.to_bookmark(epoch)
