"""One bounded mapping for every "keep the last N" in livetx: least recently used dropped first.

The bound counts entries, or, with `weigh`, the sum of the entries' weights (bytes, segments).
`get` and `put` make an entry the most recent; `peek` and `in` do not, so a cache that only
refreshes on write (first in, first out) uses `peek`. Beyond the bound, `put` drops the least
recent entries, never the one it just put (an entry heavier than the bound stays alone until
the next put), and returns what it dropped, for callers that must free it (a file, a task).

`Once` puts an Lru behind values made by a coroutine: each key is made once however many
callers ask at once, and kept.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _one(_: object) -> int:
    return 1


class Lru(Generic[K, V]):
    def __init__(self, capacity: int, weigh: Callable[[V], int] = _one) -> None:
        self.capacity = capacity
        self.weigh = weigh
        self.weight = 0  # of all entries: their number, without `weigh`
        self._entries: OrderedDict[K, V] = OrderedDict()  # least recent first

    def get(self, key: K) -> V | None:
        """The entry (now the most recent), or None."""
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def peek(self, key: K) -> V | None:
        """The entry, leaving its recency as it is, or None."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Set `key` (now the most recent), then drop the least recent beyond the bound."""
        self.pop(key)
        self._entries[key] = value
        self.weight += self.weigh(value)
        dropped = []
        while self.weight > self.capacity and len(self._entries) > 1:
            old = self._entries.popitem(last=False)
            self.weight -= self.weigh(old[1])
            dropped.append(old)
        return dropped

    def pop(self, key: K) -> V | None:
        """Remove the entry and return it, or None."""
        if key not in self._entries:
            return None
        value = self._entries.pop(key)
        self.weight -= self.weigh(value)
        return value

    def clear(self) -> None:
        self._entries.clear()
        self.weight = 0

    def keys(self) -> list[K]:
        """Least recent first."""
        return list(self._entries)

    def items(self) -> list[tuple[K, V]]:
        """Least recent first."""
        return list(self._entries.items())

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)


class Once(Generic[K, V]):
    """Values by key, each made once by `make()` however many callers ask for it meanwhile, then
    kept in `kept` (when `keep` says so). A caller that leaves does not cancel the making the
    others wait for; a failure is every waiter's and is not kept (the next caller makes it again)."""

    def __init__(self, kept: Lru[K, V], keep: Callable[[V], bool] = lambda _: True) -> None:
        self.kept = kept
        self.keep = keep
        self.made = 0  # values made (not failed)
        self._making: dict[K, asyncio.Future[V]] = {}

    def held(self, key: K) -> V | None:
        """The value if it is kept (no coroutine), else None."""
        return self.kept.get(key)

    async def get(self, key: K, make: Callable[[], Awaitable[V]]) -> V:
        found = self.kept.get(key)
        if found is not None:
            return found
        making = self._making.get(key)
        if making is None:
            making = asyncio.ensure_future(make())
            self._making[key] = making
            making.add_done_callback(lambda done: self._made(key, done))
        return await asyncio.shield(making)

    def _made(self, key: K, done: asyncio.Future[V]) -> None:
        if self._making.get(key) is done:
            del self._making[key]
        if done.cancelled() or done.exception() is not None:  # retrieved here; each waiter got it
            return
        self.made += 1
        if self.keep(done.result()):
            self.kept.put(key, done.result())
