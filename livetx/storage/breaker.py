"""A circuit breaker in front of a remote store, so that requests don't pile up on a dead one.

Closed: calls go through. After `threshold` failures in a row it opens: for `open_seconds`
every call fails at once with StorageUnavailable (503, Retry-After). Then one call is let
through as a probe (half-open): success closes the breaker, failure opens it again for twice
as long, up to `max_open_seconds`. A "not found" answer is a success: the store is up.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from livetx.errors import StorageUnavailable

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        threshold: int = 5,
        open_seconds: float = 2.0,
        max_open_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.open_seconds = open_seconds
        self.max_open_seconds = max_open_seconds
        self.clock = clock
        self.failures = 0  # in a row
        self.opened = 0  # times it opened (for metrics)
        self.rejected = 0  # calls failed fast while open
        self._until = 0.0  # open until this time
        self._backoff = open_seconds
        self._probing = False

    @property
    def state(self) -> str:
        if self.failures < self.threshold:
            return "closed"
        return "half-open" if self.clock() >= self._until else "open"

    def before(self) -> None:
        """Call before each operation: raises StorageUnavailable while the breaker is open."""
        if self.failures < self.threshold:
            return
        now = self.clock()
        if now >= self._until and not self._probing:
            self._probing = True  # this call is the probe
            return
        self.rejected += 1
        wait = max(self._until - now, 0.0) or self._backoff
        raise StorageUnavailable(f"{self.name} is failing; not retried for {wait:.1f} s", retry_after=max(1, math.ceil(wait)))

    def success(self) -> None:
        if self.failures >= self.threshold:
            log.warning("storage back: circuit closed", extra={"event": "breaker_closed", "store": self.name})
        self.failures = 0
        self._backoff = self.open_seconds
        self._probing = False

    def abandon(self) -> None:
        """A call ended without a verdict on the store (cancelled): a probe may go again."""
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        if self._probing or self.failures == self.threshold:
            if self._probing:
                self._backoff = min(self._backoff * 2, self.max_open_seconds)
            self._probing = False
            self._until = self.clock() + self._backoff
            self.opened += 1
            log.warning(
                "storage failing: circuit open",
                extra={"event": "breaker_open", "store": self.name, "seconds": self._backoff},
            )
