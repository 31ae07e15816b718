"""The one HTTP client: auth header, revision, timeouts, retries, rate limits and cursor paging.

Nothing else in the tap builds a request or reads a status code.
"""
import email.utils
import functools
import logging
import threading
import time
from urllib.parse import urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter
import urllib3.exceptions
from urllib3.exceptions import NewConnectionError

from . import __version__, decoding, metrics, pages, revisions, watchdog
from .errors import ApiError, redact
from .ratelimit import RateLimiters

LOGGER = logging.getLogger("tap_klaviyo")
BODIES_HELD = 4

class Transient(Exception):
    """A failure worth retrying: 5xx, gateway pages, resets, timeouts, cut-off bodies."""


class Throttled(Exception):
    """A 429; the limiter already holds the family for Retry-After."""


class BudgetSpent(ApiError):
    """A 429 asking to wait longer than a throttled request is ever retried (max_retry_seconds, at
    least 600 s): a daily budget is spent (the reporting endpoints allow 225 requests a day). It is
    raised at once instead of waited out, and every later request spending the same budget (every
    report endpoint's, _budget_of) raises it without being sent. A caller that can stop one stream
    catches it; anywhere else it ends the run.
    resume_at: epoch seconds from when Klaviyo said to come back."""

    def __init__(self, message, resume_at):
        super().__init__(message)
        self.resume_at = resume_at


class RefusedError(ApiError):
    """A 4xx the tap does not retry, with what a caller needs to say more (a 403's missing scope)."""

    def __init__(self, message, status, path, detail):
        super().__init__(message)
        self.status, self.path, self.detail = status, path, detail


def _detail(response, body):
    """Klaviyo's own words from an error envelope, or a note on what came instead."""
    try:
        errors = pages.decode(body).get("errors") or []
        details = [e.get("detail") or e.get("title") for e in errors if isinstance(e, dict)]
        details = [d for d in details if d]
        if details:
            return "; ".join(details)
    except (ValueError, AttributeError, TypeError):
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
                f"set config 'revision' to a current one such as {revisions.DEFAULT} (the default)")
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


class _Permits:
    """The body permits: a bounded semaphore whose holders the lock order knows (see watchdog)."""

    def __init__(self, count):
        self._semaphore = threading.BoundedSemaphore(count)

    def acquire(self):
        watchdog.waiting("body permit")
        self._semaphore.acquire()
        watchdog.hold("body permit")

    def release(self):
        watchdog.let_go("body permit")
        self._semaphore.release()

    def free(self):
        return self._semaphore._value


class _Answer:
    """A response and its whole body, holding a body permit (a 200's) until released, by the thread
    that read it."""

    def __init__(self, response, body, permits):
        self.response, self.body, self._permits = response, body, permits

    def release(self):
        permits, self._permits = self._permits, None
        if permits is not None:
            permits.release()


@functools.cache
def _budget_of(family):
    """The daily budget a family's requests spend: the report endpoints share one (225 a day for all
    of them: the issue and the reference notes; the spec lists `daily: 225/d` on each operation without
    saying), every other family is its own."""
    from .streams import REPORT, STREAMS
    reports = {stream.rate_family for stream in STREAMS if stream.family == REPORT}
    return "reports" if family in reports else family


class KlaviyoClient:
    def __init__(self, config, limiters=None):
        self.config = config
        self.limiters = limiters or RateLimiters(config.revision)
        self._local = threading.local()
        self._origin = urlsplit(config.base_url)
        self._reached = False          # a response has come back at least once
        self._counts_lock = threading.Lock()
        # where bodies are decoded: here, one page at a time, unless the engine adds helper processes
        self.decoders = decoding.Decoders()
        # Bodies read and not yet decoded. With 32 requests in flight and a page or two decoded at a
        # time, most answers would otherwise wait their turn in memory (50 MB on the dense
        # benchmark); past this many, an answer waits unread in its socket. More than one, so the
        # next body is read while a page decodes.
        self._bodies = _Permits(BODIES_HELD)
        self.wait_to_decode = lambda: None      # the engine's back-pressure (Pool.wait_for_room)
        self.requests_made = 0
        self.throttled = 0
        self._spent = {}                # budget (_budget_of) -> the BudgetSpent that closed it for this run

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

    def get(self, family, url, params=None, decode=None, shape=None):
        """One GET with retries: the parsed JSON document, or what decode(document) makes of it
        (decode may be a decoding.Mapping, run wherever a page is decoded). shape: a pages type to
        decode the body into (default: dicts and lists)."""
        return self._request("GET", family, url, params, decode, shape=shape)

    def _request(self, method, family, url, params, decode, payload=None, shape=None):
        self._check_same_origin(url)
        arguments = (family, url, params, decode, payload, shape)
        try:
            try:
                return self._attempt(*arguments)
            except (Transient, Throttled) as failure:
                # the retry budget runs from the first failure: the first attempt's waits (limiter,
                # decode turn) are not retrying
                return self._retrying(failure, time.monotonic())(*arguments)
        except Transient as exc:
            raise ApiError(f"{exc}; gave up after retrying for {self.config.max_retry_seconds:g} s "
                           "(max_retry_seconds)") from None
        except Throttled:
            raise ApiError(f"{method} {urlsplit(url).path}: still throttled (429) after waiting "
                           f"{max(self.config.max_retry_seconds, 600):g} s") from None

    def pages(self, family, path, params, decode=None, shape=None):
        """Every page of a collection, following links.next exactly as given.

        Yields the parsed documents, or decode(document, is_last_page) for each, or, for a
        decoding.PageMapper, its finish(mapped, is_last_page) of what its mapping made of the page
        (maybe in a helper process). A decode that makes something compact of a page means the
        parsed page is never held past its turn.
        """
        def split(document):
            next_url = pages.next_link(document)
            return next_url, (decode(document, next_url is None) if decode else document)

        url, query = self.url(path), params
        while url:
            if isinstance(decode, decoding.PageMapper):
                mapping = decode.mapping()
                url, mapped = self.get(family, url, query, decoding.Mapping(
                    decoding.with_next_link, (mapping.function, *mapping.arguments)), shape)
                result = decode.finish(mapped, url is None)
                del mapped
            else:
                url, result = self.get(family, url, query, split, shape)
            query = None   # the next link carries the query and cursor; re-encoding breaks it
            yield result
            del result      # not held while the next page is fetched: a page of lines is megabytes

    def post(self, family, path, body, decode=None):
        """One POST of a JSON:API body (the reporting endpoints, which only read) with the retries,
        limits and errors of get(). path may be a next-page link the API gave, posted as given."""
        url = path if "://" in path else self.url(path)
        return self._request("POST", family, url, None, decode, pages.encode(body))

    def _retrying(self, failure, started):
        """_attempt under the retry policy, as if failure had come from its first call, with the
        time limits counted from started. backoff is imported at the first failure only: it
        imports asyncio, 0.1 s of CPU a run that never needs a retry."""
        import backoff
        replay = [failure]

        def attempt(*arguments):
            if replay:
                raise replay.pop()
            return self._attempt(*arguments)

        def left(limit):
            return lambda: limit - (time.monotonic() - started)
        return backoff.on_exception(
            backoff.expo, Transient, factor=0.5, max_value=60, jitter=backoff.full_jitter,
            max_time=left(self.config.max_retry_seconds), on_backoff=self._log_retry, logger=None,
        )(backoff.on_exception(
            backoff.constant, Throttled, interval=0, jitter=None,
            max_time=left(max(self.config.max_retry_seconds, 600)), logger=None,
        )(attempt))

    def _log_retry(self, details):
        watchdog.announced(details["wait"])     # an announced wait is progress while it lasts
        LOGGER.warning("%s; retry %d in %.1f s", redact(details["exception"]), details["tries"],
                       details["wait"])

    def _exchange(self, family, url, params, payload=None):
        """Send one request and read its answer: an _Answer, or Transient / ApiError when none came.
        A 200's body holds a permit of _bodies until the answer is released."""
        spent = self._spent.get(_budget_of(family))
        if spent is not None and time.time() < spent.resume_at:
            raise BudgetSpent(str(spent), spent.resume_at)
        self.limiters[family].acquire()
        session = self._session()
        path = urlsplit(url).path
        verb = "GET" if payload is None else "POST"
        started = time.monotonic()
        status = None
        held = False
        try:
            timeout = (min(30, self.config.request_timeout), self.config.request_timeout)
            if payload is None:
                response = session.get(url, params=params, timeout=timeout, stream=True)
            else:
                response = session.post(url, data=payload, timeout=timeout, stream=True,
                                        headers={"Content-Type": "application/vnd.api+json"})
            status = response.status_code
            if status == 200:       # an error's few bytes never wait behind pages
                waiting = time.monotonic()
                self._bodies.acquire()
                held = True
                started += time.monotonic() - waiting     # the request's duration leaves the wait out
            # one read of the whole body (which hands the connection back to the pool):
            # Response.content reads it 10 KB at a time, 4-5 ms of CPU on a 2 MB page
            body = response.raw.read(decode_content=True)
        except BaseException as exc:
            if held:
                self._bodies.release()
            raise self._failure(exc, verb, path) from None
        finally:
            elapsed = time.monotonic() - started
            with self._counts_lock:
                self.requests_made += 1
                if status == 429:
                    self.throttled += 1
            metrics.http_request_duration(elapsed, family, status)
        watchdog.progress()     # a request answered
        self._reached = True
        return _Answer(response, body, self._bodies if held else None)

    def _failure(self, exc, verb, path):
        """What a request that got no whole answer raises."""
        if isinstance(exc, requests.exceptions.SSLError):
            return ApiError(f"TLS check failed for {self.config.base_url} ({type(exc).__name__}); "
                            "the tap never turns certificate checks off")
        if isinstance(exc, requests.exceptions.ConnectionError):
            reason = exc.args[0] if exc.args else None
            refused = isinstance(getattr(reason, "reason", reason), NewConnectionError)
            if refused and not self._reached:
                return ApiError(f"cannot reach {self.config.base_url} (connection refused or host "
                                "unknown); check base_url and the network")
            return Transient(f"{verb} {path}: connection failed ({type(exc).__name__})")
        if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError)):  # the latter: mid-body
            return Transient(f"{verb} {path}: no answer within {self.config.request_timeout:g} s "
                             "(request_timeout)")
        if isinstance(exc, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)):
            return Transient(f"{verb} {path}: response broken off ({type(exc).__name__})")
        return exc

    def _attempt(self, family, url, params, decode, payload=None, shape=None):
        answer = self._exchange(family, url, params, payload)
        try:
            path = urlsplit(url).path
            verb = "GET" if payload is None else "POST"
            response, body = answer.response, answer.body
            status, headers, limiter = response.status_code, response.headers, self.limiters[family]
            if status == 200:
                if headers.get("RateLimit-Remaining") == "0":
                    limiter.pause(_seconds(headers.get("RateLimit-Reset")) or 1.0)
                return self._decode(path, body, decode, verb, shape)
            if status == 429:
                wait = _seconds(headers.get("Retry-After"))
                if wait is None:
                    wait = _seconds(headers.get("RateLimit-Reset"))
                if wait is not None and wait > max(self.config.max_retry_seconds, 600):
                    resume_at = time.time() + wait
                    spent = self._spent[_budget_of(family)] = BudgetSpent(
                        f"{verb} {path}: Klaviyo answered 429 asking to wait {_duration(wait)}, longer than a "
                        f"throttled request is retried: a daily request budget is spent; it can resume at "
                        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(resume_at))}", resume_at)
                    raise spent
                limiter.pause(1.0 if wait is None else wait, throttled=True)
                raise Throttled()
            detail = redact(_detail(response, body))
            if status >= 500 or status == 408:
                raise Transient(f"{verb} {path}: {status} {response.reason or ''} ({detail})".replace("  ", " "))
            raise RefusedError(f"{verb} {path}: " + _what_to_do(status, detail, self.config), status, path, detail)
        finally:
            answer.release()

    def _decode(self, path, body, decode, verb, shape):
        """Parse a 200's body (retrying a cut-off one) and hand it to decode (see decoding)."""
        # waited for outside any decoding turn: nothing holding one ever waits on the writer
        self.wait_to_decode()
        try:
            return self.decoders.run(body, shape, decode)
        except decoding.NotAnswered:
            raise Transient(f"{verb} {path}: answer without a JSON:API 'data' member") from None
        except pages.Misshapen as exc:
            if body.lstrip()[:1] != b"{":
                raise Transient(f"{verb} {path}: answer without a JSON:API 'data' member") from None
            raise ApiError(f"{verb} {path}: the answer is not shaped as the tap expects ({redact(exc)}); "
                           "report this line") from None
        except pages.NotJSON:
            raise Transient(f"{verb} {path}: body cut off or not JSON ({len(body)} bytes)") from None
        except decoding.Unmappable as exc:
            cause = exc.args[0]
            raise ApiError(f"{verb} {path}: the answer is not shaped as the tap expects "
                           f"({type(cause).__name__}: {redact(cause)}); report this line") from None
