"""Budgets for background work: how many segments one title, and one client, may have made
ahead of need.

Lookahead and pre-transcode spend CPU that nobody asked for yet. Without a bound, a viewer
could seek through a title (or fetch one cached segment over and over from many positions)
and set off `ta` transcodes per request. Each budget is a token bucket per key: `per_minute`
segments a minute, in bursts of up to `per_minute`. A prefetch that turns out to be cached
already costs nothing (its token is given back).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from livetx.lru import Lru

KEYS = 65536  # keys remembered per budget; the least recently used is forgotten (a full bucket again)


class Budget:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self._buckets: Lru[str, tuple[float, float]] = Lru(KEYS)  # key -> (tokens, at)

    def _level(self, key: str) -> float:
        tokens, at = self._buckets.peek(key) or (self.capacity, self.clock())
        return min(self.capacity, tokens + (self.clock() - at) * self.rate)

    def available(self, key: str) -> bool:
        return self._level(key) >= 1.0

    def take(self, key: str) -> None:
        self._set(key, self._level(key) - 1.0)

    def give_back(self, key: str) -> None:
        self._set(key, min(self.capacity, self._level(key) + 1.0))

    def _set(self, key: str, tokens: float) -> None:
        self._buckets.put(key, (tokens, self.clock()))


class PrefetchBudgets:
    """The title's budget and the client's, spent together: a prefetch needs a token from both."""

    def __init__(self, per_title: int, per_client: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.title = Budget(per_title, clock)
        self.client = Budget(per_client, clock)
        self.refused = {"title": 0, "client": 0}

    def take(self, title: str, client: str) -> bool:
        if not self.title.available(title):
            self.refused["title"] += 1
            return False
        if not self.client.available(client):
            self.refused["client"] += 1
            return False
        self.title.take(title)
        self.client.take(client)
        return True

    def give_back(self, title: str, client: str) -> None:
        self.title.give_back(title)
        self.client.give_back(client)
