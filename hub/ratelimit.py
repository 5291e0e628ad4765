"""A token bucket: per-connection chat rate limiting, no I/O, no shared state."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """Allows `burst` events at once, refilled at `rate_per_s`. Not thread-safe; one per connection."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> int:
        """Take one token: 0 when allowed, else the milliseconds until one is available (nothing taken)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self._tokens) / self.rate * 1000))
