"""The one HTTP client: auth header, revision, timeouts, retries, rate limits and cursor paging.

Nothing else in the tap builds a request or reads a status code.
"""
import email.utils
import json
import logging
import threading
import time
from urllib.parse import urlsplit

import backoff
import orjson
import requests
import requests.auth
from requests.adapters import HTTPAdapter
from singer import metrics
from urllib3.exceptions import NewConnectionError

from . import __version__
from .errors import ApiError, redact
from .ratelimit import RateLimiters

LOGGER = logging.getLogger("tap_klaviyo")

# orjson turns an integer outside [-2**63, 2**64) into a float without a word, so a page that may
# hold one goes through the standard library, which keeps it exact. Such an integer has 19 digits
# or more. Mapping every digit to "0" and searching for 19 zeros in a row costs a sixth of orjson's
# parse on a 1.8 MB page; a regular expression over the whole page cost twice the parse.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def _may_hold_wide_integer(body):
    """A run of 19 or more digits where a JSON number may start: after ':', ',' or '[' (blanks and
    a minus sign between). Such digits inside a string only cost the slower parse."""
    digits = body.translate(_DIGITS_AS_ZERO)
    at = digits.find(_LONG_DIGIT_RUN)
    while at >= 0:
        before = at - 1
        if before >= 0 and body[before] == 0x2D:
            before -= 1
        while before >= 0 and body[before] in b" \t\r\n":
            before -= 1
        if before < 0 or body[before] in b":,[":
            return True
        # the rest of this run follows a digit; a run in a number position starts after a non-digit
        at = digits.find(_LONG_DIGIT_RUN, at + len(_LONG_DIGIT_RUN))
    return False


def parse_json(body):
    if _may_hold_wide_integer(body):
        return json.loads(body)
    return orjson.loads(body)


class Transient(Exception):
    """A failure worth retrying: 5xx, gateway pages, resets, timeouts, cut-off bodies."""


class Throttled(Exception):
    """A 429; the limiter already holds the family for Retry-After."""


class BudgetSpent(ApiError):
    """A 429 asking to wait longer than a throttled request is ever retried (max_retry_seconds, at
    least 600 s): a daily budget is spent (the reporting endpoints allow 225 requests a day). It is
    raised at once instead of waited out, and every later request of the family raises it without
    being sent. A caller that can stop one stream catches it; anywhere else it ends the run.
    resume_at: epoch seconds from when Klaviyo said to come back."""

    def __init__(self, message, resume_at):
        super().__init__(message)
        self.resume_at = resume_at


class RefusedError(ApiError):
    """A 4xx the tap does not retry, with what a caller needs to say more (a 403's missing scope)."""

    def __init__(self, message, status, path, detail):
        super().__init__(message)
        self.status, self.path, self.detail = status, path, detail


def _detail(response):
    """Klaviyo's own words from an error envelope, or a note on what came instead."""
    try:
        errors = response.json().get("errors") or []
        details = [e.get("detail") or e.get("title") for e in errors if isinstance(e, dict)]
        details = [d for d in details if d]
        if details:
            return "; ".join(details)
    except (ValueError, AttributeError):
        pass
    kind = response.headers.get("Content-Type", "")
    if "html" in kind:
        return "an HTML error page from the gateway"
    return (response.reason or "no detail").strip()


def _seconds(value):
    """A Retry-After or RateLimit-Reset value (seconds or an HTTP date) as seconds from now."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _duration(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _what_to_do(status, detail, config):
    if status == 401:
        return ("Klaviyo refused the API key (401: " + detail + "); set api_key to a valid private "
                "key (pk_…) of this account")
    if status == 403:
        return ("the API key lacks a scope (403: " + detail + "); give it read access to metrics, "
                "events, profiles, lists and segments")
    if status == 410:
        return (f"Klaviyo says revision {config.revision} or this endpoint is retired (410: {detail}); "
                "set config 'revision' to a current one such as 2026-10-15")
    if status == 400:
        return (f"Klaviyo rejected the request (400: {detail}); if 'revision' is set, check it is a "
                "published revision, otherwise report this line as a tap bug")
    if status == 404:
        return f"not found (404: {detail}); check base_url points at the Klaviyo API"
    return f"Klaviyo answered {status} ({detail})"


class _KlaviyoKey(requests.auth.AuthBase):
    """The key header, set on each request. As the session's auth it also keeps requests from
    reading ~/.netrc on every call, where a matching entry would replace the header with Basic auth."""

    def __init__(self, key):
        self._header = "Klaviyo-API-Key " + key

    def __call__(self, request):
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self):
        return "_KlaviyoKey([redacted])"


class KlaviyoClient:
    def __init__(self, config, limiters=None):
        self.config = config
        self.limiters = limiters or RateLimiters(config.revision)
        self._local = threading.local()
        self._origin = urlsplit(config.base_url)
        self._reached = False          # a response has come back at least once
        self._counts_lock = threading.Lock()
        # Decoding (parse, map, serialize) holds the GIL anyway; doing it one page at a time costs no
        # speed and keeps at most one parsed page in memory, whatever the concurrency.
        self._decode_lock = threading.Lock()
        self.requests_made = 0
        self.throttled = 0
        self._spent = {}                # family -> the BudgetSpent that closed it for this run
        self._get_retrying = backoff.on_exception(
            backoff.expo, Transient, factor=0.5, max_value=60, jitter=backoff.full_jitter,
            max_time=lambda: self.config.max_retry_seconds, on_backoff=self._log_retry, logger=None,
        )(backoff.on_exception(
            backoff.constant, Throttled, interval=0, jitter=None,
            max_time=lambda: max(self.config.max_retry_seconds, 600), logger=None,
        )(self._attempt))

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.mount("https://", HTTPAdapter(pool_maxsize=4))
            session.mount("http://", HTTPAdapter(pool_maxsize=4))
            session.auth = _KlaviyoKey(self.config.api_key)
            session.headers.update({
                "revision": self.config.revision,
                "Accept": "application/vnd.api+json",
                "User-Agent": self.config.user_agent or f"tap-klaviyo/{__version__}",
            })
            self._local.session = session
        return session

    def url(self, path):
        return self.config.base_url + path

    def _check_same_origin(self, url):
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._origin.scheme, self._origin.netloc):
            raise ApiError(f"Klaviyo sent a next-page link to {parts.scheme}://{parts.netloc}, not "
                           f"{self.config.base_url}; refusing to send the API key there")

    def get(self, family, url, params=None, decode=None):
        """One GET with retries: the parsed JSON document, or what decode(document) makes of it."""
        return self._request("GET", family, url, params, decode)

    def _request(self, method, family, url, params, decode, payload=None):
        self._check_same_origin(url)
        try:
            return self._get_retrying(family, url, params, decode, payload)
        except Transient as exc:
            raise ApiError(f"{exc}; gave up after retrying for {self.config.max_retry_seconds:g} s "
                           "(max_retry_seconds)") from None
        except Throttled:
            raise ApiError(f"{method} {urlsplit(url).path}: still throttled (429) after waiting "
                           f"{max(self.config.max_retry_seconds, 600):g} s") from None

    def pages(self, family, path, params, decode=None):
        """Every page of a collection, following links.next exactly as given.

        Yields the parsed documents, or decode(document, is_last_page) for each: a decode that
        makes something compact of a page means the parsed page is never held past its turn.
        """
        def split(document):
            next_url = (document.get("links") or {}).get("next")
            return next_url, (decode(document, next_url is None) if decode else document)

        url, query = self.url(path), params
        while url:
            url, result = self.get(family, url, query, split)
            query = None   # the next link carries the query and cursor; re-encoding breaks it
            yield result

    def post(self, family, path, body, decode=None):
        """One POST of a JSON:API body (the reporting endpoints, which only read) with the retries,
        limits and errors of get(). path may be a next-page link the API gave, posted as given."""
        url = path if "://" in path else self.url(path)
        return self._request("POST", family, url, None, decode, orjson.dumps(body))

    def _log_retry(self, details):
        LOGGER.warning("%s; retry %d in %.1f s", redact(details["exception"]), details["tries"],
                       details["wait"])

    def _attempt(self, family, url, params, decode, payload=None):
        spent = self._spent.get(family)
        if spent is not None and time.time() < spent.resume_at:
            raise BudgetSpent(str(spent), spent.resume_at)
        limiter = self.limiters[family]
        limiter.acquire()
        path = urlsplit(url).path
        verb = "GET" if payload is None else "POST"
        started = time.monotonic()
        status = None
        try:
            timeout = (min(30, self.config.request_timeout), self.config.request_timeout)
            if payload is None:
                response = self._session().get(url, params=params, timeout=timeout)
            else:
                response = self._session().post(url, data=payload, timeout=timeout,
                                                headers={"Content-Type": "application/vnd.api+json"})
            status = response.status_code
            body = response.content
        except requests.exceptions.SSLError as exc:
            raise ApiError(f"TLS check failed for {self.config.base_url} ({type(exc).__name__}); "
                           "the tap never turns certificate checks off") from None
        except requests.exceptions.ConnectionError as exc:
            reason = exc.args[0] if exc.args else None
            refused = isinstance(getattr(reason, "reason", reason), NewConnectionError)
            if refused and not self._reached:
                raise ApiError(f"cannot reach {self.config.base_url} (connection refused or host "
                               "unknown); check base_url and the network") from None
            raise Transient(f"{verb} {path}: connection failed ({type(exc).__name__})") from None
        except requests.exceptions.Timeout:
            raise Transient(f"{verb} {path}: no answer within {self.config.request_timeout:g} s "
                            "(request_timeout)") from None
        except requests.exceptions.RequestException as exc:
            raise Transient(f"{verb} {path}: response broken off ({type(exc).__name__})") from None
        finally:
            elapsed = time.monotonic() - started
            with self._counts_lock:
                self.requests_made += 1
                if status == 429:
                    self.throttled += 1
            metrics.log(LOGGER, metrics.Point("timer", metrics.Metric.http_request_duration, elapsed, {
                metrics.Tag.endpoint: family, metrics.Tag.http_status_code: status,
                metrics.Tag.status: "succeeded" if status == 200 else "failed"}))
        self._reached = True
        headers = response.headers
        if status == 200:
            if headers.get("RateLimit-Remaining") == "0":
                limiter.pause(_seconds(headers.get("RateLimit-Reset")) or 1.0)
            return self._decode(path, body, decode, verb)
        if status == 429:
            wait = _seconds(headers.get("Retry-After"))
            if wait is None:
                wait = _seconds(headers.get("RateLimit-Reset"))
            if wait is not None and wait > max(self.config.max_retry_seconds, 600):
                resume_at = time.time() + wait
                self._spent[family] = BudgetSpent(
                    f"{verb} {path}: Klaviyo answered 429 asking to wait {_duration(wait)}, longer than a "
                    f"throttled request is retried: a daily request budget is spent; it can resume at "
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(resume_at))}", resume_at)
                raise self._spent[family]
            limiter.pause(1.0 if wait is None else wait, throttled=True)
            raise Throttled()
        detail = redact(_detail(response))
        if status >= 500 or status == 408:
            raise Transient(f"{verb} {path}: {status} {response.reason or ''} ({detail})".replace("  ", " "))
        raise RefusedError(f"{verb} {path}: " + _what_to_do(status, detail, self.config), status, path, detail)

    def _decode(self, path, body, decode, verb="GET"):
        """Parse a 200's body (retrying a cut-off one) and hand it to decode, one page at a time."""
        with self._decode_lock:
            try:
                document = parse_json(body)
            except ValueError:
                raise Transient(f"{verb} {path}: body cut off or not JSON ({len(body)} bytes)") from None
            if not isinstance(document, dict) or not isinstance(document.get("data"), (list, dict)):
                raise Transient(f"{verb} {path}: answer without a JSON:API 'data' member")
            if decode is None:
                return document
            try:
                return decode(document)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise ApiError(f"{verb} {path}: the answer is not shaped as the tap expects "
                               f"({type(exc).__name__}: {redact(exc)}); report this line") from None

