"""Background segments: pre-transcode when a playlist is created, lookahead while a client plays.

Invariants:
- `_background[key]` is the task making `key` ahead of need, from queueing until it ends;
  never more than `limit` at once (beyond: `prefetch_dropped`). A key already queued, being
  made or held in memory (`busy`) is not queued again.
- Every queued task took a token from the title's and the client's budget (cache/budget.py);
  it gives the token back unless it made the segment. A refused budget ends the batch.
- `_playheads[head]` is the last segment a client fetched of one rendition of one source
  version; at most `PLAYHEADS` are kept, the least recently played forgotten first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from livetx.cache.budget import PrefetchBudgets
from livetx.cache.stats import CacheStats
from livetx.errors import LivetxError
from livetx.hls.plan import lookahead_indexes, pretranscode_indexes
from livetx.layout import segment_key
from livetx.lru import Lru
from livetx.media.model import INIT, SegmentPart
from livetx.media.pool import Priority
from livetx.titles import Rendition, Title

log = logging.getLogger("livetx.cache.service")  # the segment service's log, as before the split

IN_ORDER_AHEAD = 2  # segments prefetched while a client plays in order
PLAYHEADS = 4096  # renditions whose last played segment is remembered

# makes one segment at a priority; answers whether it was made (False: found cached)
Make = Callable[[Title, Rendition, SegmentPart, Priority], Awaitable[bool]]


class Prefetcher:
    def __init__(
        self,
        make: Make,
        busy: Callable[[str], bool],
        stats: CacheStats,
        budgets: PrefetchBudgets,
        limit: int,
        lookahead: bool,
    ) -> None:
        self.make = make
        self.busy = busy
        self.stats = stats
        self.budgets = budgets
        self.limit = limit
        self.lookahead = lookahead
        self._background: dict[str, asyncio.Task[None]] = {}
        self._playheads: Lru[str, int] = Lru(PLAYHEADS)

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._background.values())

    def __contains__(self, key: str) -> bool:
        return key in self._background

    def pretranscode(self, title: Title, client: str = "") -> None:
        """Queue the first `initd` ms of every rendition (when its playlist is created), and
        an fMP4 rendition's init segment, which a player fetches before them. Subtitle
        segments are cheap (no video decoded): made when asked for, never ahead, and so are
        I-frame segments (a player fetches a few, where it scrubs to)."""
        for rendition in title.renditions:
            if rendition.subtitle is not None or rendition.iframes_only:
                continue
            indexes: list[SegmentPart] = [*pretranscode_indexes(rendition.windows, rendition.initd)]
            if indexes and rendition.container == "fmp4":
                indexes.insert(0, INIT)
            self.prefetch(title, rendition, indexes, Priority.PRETRANSCODE, client)

    def played(self, title: Title, rendition: Rendition, index: int, client: str = "") -> None:
        """A client fetched segment `index`: prefetch ahead of it. Playing in order, the next
        two; after a start or a seek, the title's `ta` segments. The same segment asked for
        again (a retry, a range request, a replay) sets off nothing new."""
        if not self.lookahead or rendition.subtitle is not None or rendition.iframes_only:
            return
        head = f"{title.source.key}\n{title.source.etag}\n{rendition.spec_id}\n{client}"
        previous = self._playheads.pop(head)
        self._playheads.put(head, index)
        if previous == index:
            return
        ahead = IN_ORDER_AHEAD if previous == index - 1 else rendition.ta
        self.prefetch(title, rendition, lookahead_indexes(rendition.windows, index, ahead), Priority.LOOKAHEAD, client)

    def prefetch(self, title: Title, rendition: Rendition, indexes: Iterable[SegmentPart], priority: Priority, client: str = "") -> None:
        """Queue background segments, within `limit` and within the title's and the client's
        budgets: what they refuse is simply not made ahead."""
        budget_key = f"{title.profile.name}\n{title.source.key}\n{title.source.etag}"
        for index in indexes:
            key = segment_key(title, rendition, index)
            if key in self._background or self.busy(key):
                continue
            if len(self._background) >= self.limit:
                self.stats.prefetch_dropped += 1
                continue
            if not self.budgets.take(budget_key, client):
                return  # the rest would be refused too
            task = asyncio.create_task(self._prefetch_one(title, rendition, index, priority, budget_key, client))
            self._background[key] = task
            task.add_done_callback(lambda _, key=key: self._background.pop(key, None))  # type: ignore[misc]

    def cancel(self) -> None:
        """Drop all background work (at shutdown)."""
        for task in list(self._background.values()):
            task.cancel()

    async def _prefetch_one(
        self, title: Title, rendition: Rendition, index: SegmentPart, priority: Priority, budget_key: str, client: str
    ) -> None:
        made = False
        try:
            made = await self.make(title, rendition, index, priority)
            self.stats.prefetched += made
        except LivetxError as exc:
            log.warning("prefetch failed", extra={"event": "prefetch_failed", "code": exc.code})
        finally:
            if not made:  # found cached (or failed): it cost no transcode
                self.budgets.give_back(budget_key, client)
