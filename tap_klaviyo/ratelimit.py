"""Client-side rate limiting, one limiter per Klaviyo endpoint family.

Klaviyo counts requests per account and endpoint in fixed one-second and one-minute windows (a
burst and a steady limit). The limiter keeps a sliding log of send times, which never exceeds a
fixed window; each window is padded a little because the server counts arrivals, not sends.
It also obeys what the server says: Retry-After on a 429, and RateLimit-Remaining: 0 with
RateLimit-Reset on a success.
"""
import collections
import threading
import time

# (burst per second, steady per minute), from Klaviyo's published tiers.
TIERS = {
    "XS": (1, 15),
    "S": (3, 60),
    "M": (10, 150),
    "L": (75, 700),
    "XL": (350, 3500),
}

# Which tier each endpoint family the tap calls belongs to.
FAMILY_TIERS = {
    "metrics": "M",
    "events": "XL",
    "lists": "L",
    "segments": "L",
    "list_count": "XS",
    "segment_count": "XS",
    "profiles": "L",
}

BURST_PERIOD = 1.1
STEADY_PERIOD = 61.0


class RateLimiter:
    def __init__(self, burst, steady, clock=time.monotonic, sleep=time.sleep):
        self.burst = burst
        self.steady = steady
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent = collections.deque()   # send times within the last STEADY_PERIOD
        self._paused_until = 0.0

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
            self._sleep(min(delay, 5.0))

    def pause(self, seconds):
        """Hold every request of this family for `seconds` (a 429's Retry-After, an exhausted window)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class RateLimiters:
    """One limiter per endpoint family, created on first use."""

    def __init__(self):
        self._limiters = {}
        self._lock = threading.Lock()

    def __getitem__(self, family):
        with self._lock:
            limiter = self._limiters.get(family)
            if limiter is None:
                burst, steady = TIERS[FAMILY_TIERS[family]]
                limiter = RateLimiter(burst, steady)
                self._limiters[family] = limiter
            return limiter
