"""Per-token limits on key URL requests: plain state, no aiohttp."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from livetx.errors import KeyRateLimited
from livetx.lru import Lru

TOKENS_KEPT = 65536  # token buckets kept; a forgotten token starts full again


class KeyRequestLimits:
    """A token bucket per viewer token: `burst` requests at once, refilled at `per_minute` a
    minute. Per process (several processes or origins each allow as much): a cap on a leaked
    token's key fetches, not an exact quota."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: Lru[str, tuple[float, float]] = Lru(TOKENS_KEPT)  # who -> (tokens, when)

    def take(self, who: str) -> None:
        """One request of `who`, or KeyRateLimited with the seconds until one is allowed."""
        now = self.clock()
        tokens, then = self._buckets.get(who) or (float(self.burst), now)
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets.put(who, (tokens, now))
            raise KeyRateLimited("too many key requests for this token; retry later", retry_after=math.ceil((1 - tokens) / self.rate))
        self._buckets.put(who, (tokens - 1, now))
