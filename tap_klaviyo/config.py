"""Settings: one table that the config loader, `--about` and the docs all read."""
import ipaddress
import json
import logging
from urllib.parse import urlsplit

import msgspec

from . import revisions, timeutil
from .errors import ConfigError, register_secret

DEFAULT_REVISION = revisions.DEFAULT
LOGGER = logging.getLogger("tap_klaviyo")


class Setting(msgspec.Struct, frozen=True):
    name: str
    kind: str          # "string", "integer", "number", "boolean", "date_iso8601"
    default: object
    description: str
    required: bool = False
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None


SETTINGS = (
    Setting("api_key", "string", None, "Klaviyo private API key (pk_…); read-only scopes metrics, events, "
            "profiles, lists, segments", required=True, secret=True),
    Setting("start_date", "date_iso8601", None, "Earliest event time to extract on a first sync, "
            "e.g. 2024-01-01T00:00:00Z; a bare date is midnight UTC", required=True),
    Setting("revision", "string", DEFAULT_REVISION, "Klaviyo API revision header: a GA revision the tap "
            f"supports ({revisions.SUPPORTED[0]} to {revisions.NEWEST}); beta revisions (.pre) are refused"),
    Setting("base_url", "string", "https://a.klaviyo.com", "API root; plain http only for loopback "
            "(the local sandbox)"),
    Setting("user_agent", "string", None, "User-Agent header to send; unset sends tap-klaviyo/<version>"),
    Setting("request_timeout", "number", 300, "Seconds to wait for one HTTP response", minimum=1),
    Setting("lookback_minutes", "integer", 0, "Minutes re-read before each bookmark by every incremental "
            "stream, every run", minimum=0),
    Setting("late_event_days", "integer", 20, "Event streams: UTC days before the run's in which events "
            "Klaviyo shows late are caught; each run compares Klaviyo's per-day counts of each metric (one "
            "request per metric) with the stream's and re-reads only the days that differ (0: off)",
            minimum=0, maximum=365),
    Setting("full_refresh_days", "integer", 7, "Resource streams Klaviyo can filter by change (global_exclusions, "
            "campaigns, flows, templates, members, segments, images, forms): days after a full read before the next, which ends with an "
            "ACTIVATE_VERSION message so that a target drops or marks the rows Klaviyo no longer has; runs between "
            "read only what changed (0: every run, as a target that replaces a table on each run needs)",
            minimum=0),
    Setting("list_person_count", "boolean", True, "Fetch each list's and segment's profile count "
            "(1 call per second); false writes null"),
    Setting("concurrency", "integer", 32, "HTTP requests in flight at once, across and within "
            "streams", minimum=1),
    Setting("decode_processes", "integer", None, "Helper processes that turn events and profiles pages "
            "into records on other cores beside the tap's own (unset: 1 when the process may use 2 or more cores, "
            "else 0; 0: all in the tap's process)", minimum=0, maximum=32),
    Setting("event_metrics", "array", None, "Streams `events` and `event_attributions`: metric names or ids "
            "of the events to extract, and of those whose attributions to extract (default: every metric of every "
            "integration)"),
    Setting("profiles_predictive_analytics", "boolean", False, "Stream `profiles` only: also read each "
            "profile's predictive analytics (CLV, churn); Klaviyo then allows 10 requests a second, 150 a "
            "minute instead of 75 and 750"),
    Setting("max_retry_seconds", "number", 600, "How long one request is retried on 5xx, resets, "
            "timeouts and cut-off bodies before the run fails", minimum=0),
    Setting("conversion_metric", "string", "Placed Order", "Streams `campaign_values`, `flow_series` and "
            "`flow_values`: the metric whose events Klaviyo counts as conversions, by name (any integration) or id"),
    Setting("report_days", "integer", 365, "Report streams: days of history a report covers (the values "
            "streams' rolling timeframe, a series stream's first run)",
            minimum=1, maximum=365),
    Setting("report_lookback_days", "integer", 7, "Series report streams (`flow_series`, `segment_series`, "
            "`form_series`): days before the bookmark re-read every run (Klaviyo attributes conversions days after a send)", minimum=0),
    Setting("watchdog_seconds", "number", 600, "Seconds a run may go without progress (a page written, a "
            "request answered, an announced wait) before it stops with every thread's stack on stderr and a "
            "non-zero exit, instead of hanging; keep it above request_timeout", minimum=1),
)


class Config(msgspec.Struct, frozen=True):
    api_key: str
    start_date: int
    revision: str
    base_url: str
    user_agent: str | None
    request_timeout: float
    lookback_minutes: int
    late_event_days: int
    full_refresh_days: int
    list_person_count: bool
    concurrency: int
    decode_processes: int | None
    event_metrics: tuple | None
    profiles_predictive_analytics: bool
    max_retry_seconds: float
    conversion_metric: str
    report_days: int
    report_lookback_days: int
    watchdog_seconds: float

    def __repr__(self):
        return f"Config(base_url={self.base_url!r}, revision={self.revision!r}, api_key=[redacted])"


def read_json_file(path, what):
    """Load a JSON file the user named, or raise one clear line about it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path!r} does not exist; pass the path of a JSON file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"{what} file {path!r} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} file {path!r} is not UTF-8 text; it must hold JSON") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} file {path!r} is not valid JSON ({exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}); fix the file or regenerate it") from None


def _coerce(setting, value):
    """Hosts (Meltano, Stitch) pass numbers and booleans as strings at times; accept both."""
    if setting.kind == "array":
        if isinstance(value, str):      # hosts that pass settings as environment strings
            try:
                value = json.loads(value) if value.strip().startswith("[") else value.split(",")
            except ValueError:
                raise ValueError("expected a list of strings such as [\"Placed Order\"]") from None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError("expected a list of strings such as [\"Placed Order\"]")
        return tuple(v.strip() for v in value)
    if setting.kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise ValueError("expected true or false")
    if setting.kind in ("integer", "number"):
        wanted = "an integer" if setting.kind == "integer" else "a number"
        if isinstance(value, bool):
            raise ValueError(f"expected {wanted}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected {wanted}") from None
        if setting.kind == "integer":
            if number != int(number):
                raise ValueError("expected a whole number")
            number = int(number)
        if setting.minimum is not None and number < setting.minimum:
            raise ValueError(f"must be at least {setting.minimum:g}")
        if setting.maximum is not None and number > setting.maximum:
            raise ValueError(f"must be at most {setting.maximum:g}")
        return number
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(url):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected a URL such as https://a.klaviyo.com")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("plain http would send the API key in clear; use https "
                         "(http is allowed only for a loopback sandbox)")
    return url.rstrip("/")


# Settings of earlier versions that the tap no longer reads: what became of each.
RETIRED = {
    "window_days": "a setting of earlier versions, no longer read (the tap sizes its requests from the data, see docs/planning.md)",
}


def _edits(a, b):
    """Edits (insert, delete, substitute, or swap two neighbours) that turn a into b: the optimal
    string alignment distance, so `base_ulr` is one edit from `base_url`."""
    previous2, previous = None, list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def near_setting(key):
    """The setting a mistyped key most likely meant: one edit away (two for names of ten
    characters or more, where two slips are as likely as one in a short name); else None."""
    found = [(_edits(key.lower(), s.name), s.name) for s in SETTINGS]
    distance, name = min(found)
    return name if distance <= (2 if len(name) >= 10 else 1) else None


def _warn_unknown_keys(raw):
    """One WARNING per key the tap does not read. Hosts (Meltano, Stitch) pass keys of their own,
    so an unknown key is not an error; but a typo (`base_ulr`) would otherwise go unnoticed while
    the setting it meant keeps its default."""
    known = {s.name for s in SETTINGS}
    for key in raw:
        if key in known:
            continue
        if key in RETIRED:
            LOGGER.warning("config key %r is ignored: %s; remove it from the config", key, RETIRED[key])
            continue
        near = near_setting(key) if isinstance(key, str) else None
        if near:
            LOGGER.warning("config key %r is not a setting of this tap and is ignored; did you mean %r? "
                           "(`tap-klaviyo --about` lists the settings)", key, near)
        else:
            LOGGER.warning("config key %r is not a setting of this tap and is ignored "
                           "(`tap-klaviyo --about` lists the settings)", key)


def load_config(raw):
    """Validate a parsed config object into a Config; unknown keys are accepted, with a warning."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a JSON object with api_key and start_date "
                          "(see sample_config.json)")
    _warn_unknown_keys(raw)
    values = {}
    for setting in SETTINGS:
        value = raw.get(setting.name)
        if value is None or value == "":
            if setting.required:
                raise ConfigError(f"config is missing {setting.name!r}: {setting.description} "
                                  "(see sample_config.json)")
            values[setting.name] = setting.default
            continue
        try:
            value = _coerce(setting, value)
            if setting.name == "start_date":
                value = timeutil.parse_instant(value)
            elif setting.name == "base_url":
                value = _check_base_url(value)
            elif setting.name == "revision":
                revisions.check(value)
        except ValueError as exc:
            shown = "[redacted]" if setting.secret else repr(raw.get(setting.name))
            raise ConfigError(f"config {setting.name!r} = {shown} is invalid: {exc}") from None
        values[setting.name] = value
    register_secret(values["api_key"])
    if values["watchdog_seconds"] <= values["request_timeout"]:
        LOGGER.warning("config watchdog_seconds (%g) is not above request_timeout (%g): an answer that takes "
                       "longer than %g s will be taken for a hang and end the run; raise watchdog_seconds",
                       values["watchdog_seconds"], values["request_timeout"], values["watchdog_seconds"])
    return Config(**values)

