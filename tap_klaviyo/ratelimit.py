"""Client-side rate limiting, one limiter per Klaviyo endpoint family.

Klaviyo counts requests per account and endpoint in fixed one-second and one-minute windows (a
burst and a steady limit). The limiter keeps a sliding log of send times, which never exceeds a
fixed window; each window is padded a little because the server counts arrivals, not sends.
It also obeys what the server says: Retry-After on a 429, and RateLimit-Remaining: 0 with
RateLimit-Reset on a success.
"""
import collections
import logging
import threading
import time

from . import apispec, revisions, watchdog
from .streams import families

LOGGER = logging.getLogger("tap_klaviyo")

# What each family is, in the words of the wait message; others read as their name.
FAMILY_NAMES = {
    "list_count": "list profile counts",
    "segment_count": "segment profile counts",
    "list_profiles": "list members",
    "segment_profiles": "segment members",
    "profiles_predictive": "profiles with predictive analytics",
    "campaign_message_list": "campaign messages",
    "campaign_values": "campaign values reports",
    "flow_series": "flow series reports",
}

BURST_PERIOD = 1.1
STEADY_PERIOD = 61.0
# Shorter waits are the limiter's ordinary pacing; a longer one looks like a hang unless it is said.
WAIT_WORTH_SAYING = 2.0


class RateLimiter:
    def __init__(self, burst, steady, clock=time.monotonic, sleep=time.sleep, name=None):
        self.burst = burst
        self.steady = steady
        self.name = name                   # the family in words, for the wait message
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent = collections.deque()   # send times within the last STEADY_PERIOD
        self._paused_until = 0.0
        self._told_until = 0.0             # end of the last wait announced: one line per episode,
                                           # however many threads wait in it

    def _delay(self, now):
        """Seconds to wait before one more request may go; 0 when it may go now."""
        sent = self._sent
        while sent and sent[0] <= now - STEADY_PERIOD:
            sent.popleft()
        delay = self._paused_until - now
        if len(sent) >= self.steady:
            delay = max(delay, sent[-self.steady] + STEADY_PERIOD - now)
        if len(sent) >= self.burst:
            delay = max(delay, sent[-self.burst] + BURST_PERIOD - now)
        return delay

    def acquire(self):
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    self._sent.append(now)
                    return
                if delay > WAIT_WORTH_SAYING:
                    self._tell(now, delay, "")
            self._sleep(min(delay, 5.0))

    def pause(self, seconds, throttled=False):
        """Hold every request of this family for `seconds` (a 429's Retry-After, an exhausted window)."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            if throttled:
                self._tell(now, seconds, ": Klaviyo answered 429 (too many requests)")

    def _tell(self, now, seconds, why):
        """One INFO line when a wait starts outside any wait already announced (caller holds the lock)."""
        if now >= self._told_until:
            LOGGER.info("waiting %.0f s for Klaviyo's rate limit on %s (%d/s, %d/min)%s", max(seconds, 1),
                        self.name or "this endpoint", self.burst, self.steady, why)
        self._told_until = max(self._told_until, now + seconds)
        watchdog.announced(seconds)     # an announced wait is progress while it lasts


def family_limits(family, revision):
    """(burst per second, steady per minute) of an endpoint family in revision, as the published spec
    gives them for the operation the family sends (streams.families)."""
    operation, condition = families()[family]
    return apispec.limits(operation, revision, condition)


class RateLimiters:
    """One limiter per endpoint family, created on first use, at its limits in `revision` (the spec
    raised tier L's steady limit from 700 to 750 a minute in 2026-01-15)."""

    def __init__(self, revision=revisions.DEFAULT):
        self.revision = revision
        self._limiters = {}
        self._lock = threading.Lock()

    def __getitem__(self, family):
        with self._lock:
            limiter = self._limiters.get(family)
            if limiter is None:
                burst, steady = family_limits(family, self.revision)
                limiter = RateLimiter(burst, steady, name=FAMILY_NAMES.get(family, family.replace("_", " ")))
                self._limiters[family] = limiter
            return limiter
