"""Request rate limits: per API key, per channel, and per client IP on the routes that need
no API key. Past a limit the answer is 429 with ``Retry-After``.

Each limit is a token bucket: ``rate`` requests a second on average, ``burst`` at once. The
buckets live in the API process, so with several API replicas a client may get up to that
many times the rate; the limits guard the service from floods, not billing. At most
``MAX_KEYS`` buckets are kept per limit (the least recently used go first), so a flood from
ever-new addresses costs bounded memory.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from api.errors import ApiError
from core.config import Settings

MAX_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key; ``rate`` 0 means no limit."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def wait(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0 when it may go now, else the seconds
        until it may (nothing is taken then)."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[key] = bucket  # now the most recently used
        if len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


@dataclass(frozen=True)
class Limits:
    """The app's limiters (``app.state.limits``)."""

    per_key: RateLimiter
    per_channel: RateLimiter
    per_ip: RateLimiter

    @classmethod
    def of(cls, settings: Settings) -> "Limits":
        return cls(
            per_key=RateLimiter(settings.rate_limit_per_key, settings.rate_limit_burst_per_key),
            per_channel=RateLimiter(
                settings.rate_limit_per_channel, settings.rate_limit_burst_per_channel
            ),
            per_ip=RateLimiter(settings.rate_limit_per_ip, settings.rate_limit_burst_per_ip),
        )


def check(limiter: RateLimiter, key: str, what: str) -> None:
    """Raise the 429 when ``key`` is over ``limiter``'s rate."""
    wait = limiter.wait(key)
    if wait > 0:
        raise ApiError(
            429,
            f"too many requests for this {what}; try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )


def limits(request: Request) -> Limits:
    found: Limits = request.app.state.limits
    return found


def check_client_ip(request: Request) -> None:
    """The per-IP limit of the routes without an API key."""
    address = request.client.host if request.client else "unknown"
    check(limits(request).per_ip, address, "client address")
