"""UTC instants as integer epoch seconds, and the formats the tap reads and writes.

Everything is UTC: no function here consults the machine's time zone.
"""
import datetime as dt
import re
import time
from functools import lru_cache


CLASSIC_FORMAT = "%Y-%m-%d %H:%M:%S+00:00"
BOOKMARK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now():
    return int(time.time())


def parse_instant(text):
    """ISO 8601 text to epoch seconds; a bare date is midnight UTC, no offset means UTC.

    Raises ValueError with a reason when the text is not an ISO 8601 date or date-time.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected an ISO 8601 date-time string such as 2024-01-01T00:00:00Z")
    try:
        parsed = _parse_iso(text.strip())
    except (ValueError, OverflowError) as exc:
        # datetime's range checks read well ("month must be in 1..12"); the parser's internals
        # ("invalid literal for int() with base 10: b'yest'") do not
        reason = str(exc)
        shown = f" ({reason})" if re.search(r"must be in|out of range|time zone", reason, re.I) else ""
        raise ValueError(f"not an ISO 8601 date-time{shown}; write it like 2024-01-01T00:00:00Z "
                         "(a bare date such as 2024-01-01 is midnight UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp() // 1)


def _parse_iso(text):
    # the standard library reads the usual forms; dateutil, imported only then, the rest of ISO 8601
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        from dateutil import parser as dateutil_parser
        return dateutil_parser.isoparse(text)


def to_classic(epoch):
    """The classic tables' datetime format: '2021-05-17 23:43:28+00:00'."""
    # once per event row: an hour's prefix is formatted once, the rest looked up (a tenth of strftime)
    hour, second = divmod(epoch, 3600)
    return _classic_hour(hour) + _MINUTES_SECONDS[second]


@lru_cache(maxsize=4096)
def _classic_hour(hour):
    return time.strftime("%Y-%m-%d %H:", time.gmtime(hour * 3600))


_MINUTES_SECONDS = tuple(f"{second // 60:02d}:{second % 60:02d}+00:00" for second in range(3600))


def to_bookmark(epoch):
    return time.strftime(BOOKMARK_FORMAT, time.gmtime(epoch))


def to_api(epoch):
    """The way Klaviyo writes a datetime: '2022-11-08T01:23:45+00:00'."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


to_filter = to_bookmark  # Klaviyo filters take unquoted datetimes ending in Z


def iso_to_classic(text):
    """An API datetime string ('2022-11-08T01:23:45+00:00', maybe with fractions or another offset)
    in the classic format; None stays None."""
    if not text:
        return None
    if len(text) == 25 and text[10] == "T" and text.endswith("+00:00"):
        return f"{text[:10]} {text[11:19]}+00:00"
    try:
        return to_classic(parse_instant(text))
    except ValueError:
        return None
