"""A token bucket on an injected clock: ``rate`` tokens per second, at most ``burst`` saved up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Monotonic = Callable[[], float]
Sleeper = Callable[[float], None]


class TokenBucket:
    """Thread-safe. :meth:`reserve` takes a token and answers how long the caller must wait before using it
    (0 when one was saved up); :meth:`acquire` waits that long with the injected sleeper."""

    def __init__(self, rate: float, burst: float | None = None, monotonic: Monotonic = time.monotonic,
                 sleep: Sleeper = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.burst
        self._at = monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
