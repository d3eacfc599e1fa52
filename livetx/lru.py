"""One bounded mapping for every "keep the last N" in livetx: least recently used dropped first.

The bound counts entries, or, with `weigh`, the sum of the entries' weights (bytes, segments).
`get` and `put` make an entry the most recent; `peek` and `in` do not, so a cache that only
refreshes on write (first in, first out) uses `peek`. Beyond the bound, `put` drops the least
recent entries, never the one it just put (an entry heavier than the bound stays alone until
the next put), and returns what it dropped, for callers that must free it (a file, a task).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
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
