"""Rate limits for the endpoints that need no key (unsubscribe links, the preference center).

One token bucket per client address: ``server.public_burst`` requests at once, refilled at
``server.public_rate_per_minute``. A client over its budget gets ``429 rate_limited`` with ``Retry-After`` (whole
seconds until a token is back). The buckets live in the server's :class:`~takt.api.context.ApiContext` (one
limiter per app), bounded: the least recently seen clients are forgotten beyond ``MAX_CLIENTS`` (a forgotten
client starts with a full bucket, which only errs towards letting a customer through). Time comes from the
app's clock. Behind a reverse proxy every request has the proxy's address: rate-limit there instead.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import Request

from takt.api.context import ApiContext
from takt.clock import Clock
from takt.errors import TaktError

MAX_CLIENTS = 100_000
"""Buckets kept at most (about 100 bytes each)."""


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, clock: Clock, per_minute: int, burst: int, max_clients: int = MAX_CLIENTS):
        self.clock = clock
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one token of ``client``'s bucket: 0 when allowed, else the seconds until one is back."""
        now = self.clock().timestamp()
        with self._lock:
            b = self._buckets.pop(client, None)
            if b is None:
                b = _Bucket(self.burst, now)
            b.tokens = min(self.burst, b.tokens + max(0.0, now - b.at) * self.rate)
            b.at = now
            self._buckets[client] = b  # most recently seen last
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / self.rate if self.rate > 0 else 60.0


def limiter(c: ApiContext) -> RateLimiter:
    found = c.extras.get("public_rate_limiter")
    if found is None:
        found = c.extras["public_rate_limiter"] = RateLimiter(
            c.clock, c.settings["server.public_rate_per_minute"], c.settings["server.public_burst"])
    return found  # type: ignore[no-any-return]


def check_public(c: ApiContext, request: Request) -> None:
    """Refuse a request from a client over its budget with ``429 rate_limited`` and ``Retry-After``."""
    client = request.client.host if request.client is not None else "unknown"
    wait = limiter(c).take(client)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise TaktError(f"too many requests from this address; retry in {seconds} s", code="rate_limited",
                        status=429, headers={"Retry-After": str(seconds)})
