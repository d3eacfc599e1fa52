"""Segments being made on the transcode pool: admission, priorities and promotion.

Invariants:
- `_wanted[key]` is the most urgent priority any request asked for `key` while it is not
  found cached: set by `ask`, read when the job is submitted, removed when the segment is
  found cached (`found`) or its job ends, whichever comes first. A job its gate refused
  (another process holds the segment's lease) leaves it: the flight waits, then finds the
  segment (`found`) or submits a job again, at that priority.
- `_tickets[key]` is the pool job making `key`, from its submission until it ends (made,
  failed or cancelled); a client asking for a key whose job runs at a lower priority
  promotes that job.
- A client job is admitted only while fewer than `max_queue` client jobs wait for a worker:
  checked and submitted with no await in between, so a burst can't slip past.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from livetx.cache.stats import CacheStats
from livetx.cluster.flight import MadeElsewhere
from livetx.errors import Overloaded
from livetx.media.model import SegmentJob, SegmentResult
from livetx.media.pool import Gate, Listener, Priority, Ticket, TranscodePool


class Admission:
    def __init__(self, pool: TranscodePool, stats: CacheStats, max_queue: int) -> None:
        self.pool = pool
        self.stats = stats
        self.max_queue = max_queue
        self._tickets: dict[str, Ticket[SegmentResult]] = {}  # segment key -> its pool job, while it is made
        self._wanted: dict[str, Priority] = {}  # segment key -> most urgent priority asked for it

    def ask(self, key: str, priority: Priority) -> None:
        """A request for `key` (not found nearby): remember its priority for the job to come,
        and promote a job already under way at a lower one."""
        wanted = self._wanted.get(key)
        if wanted is None or priority < wanted:
            self._wanted[key] = priority  # read when the job is submitted, if it is not yet
        ticket = self._tickets.get(key)
        if ticket is not None and priority < ticket.priority:  # a client waits on background work: it goes first now
            self.stats.promotions += 1
            self.pool.promote(ticket, priority)

    def found(self, key: str) -> None:
        """`key` turned out to be cached: nothing will be submitted for it."""
        self._wanted.pop(key, None)

    def making(self, key: str) -> bool:
        return key in self._tickets

    def keys(self) -> list[str]:
        """The segments being made now."""
        return list(self._tickets)

    def futures(self) -> list[asyncio.Future[SegmentResult]]:
        return [ticket.future for ticket in self._tickets.values()]

    async def run(
        self, key: str, job: Awaitable[SegmentJob], priority: Priority, gate: Gate | None = None, listener: Listener | None = None
    ) -> SegmentResult:
        """Admit and submit the job making `key` (at the most urgent priority asked for it
        meanwhile; past `gate`, see the pool; its bytes heard by `listener` as they are muxed),
        and wait for its result. Raises `Overloaded` when clients queue too long."""
        refused = False
        try:
            submitted = await job
            # whoever asked while the job was being set up counts too
            priority = min(priority, self._wanted.get(key, priority))
            # admission: checked and taken with no await in between, so a burst can't slip past
            if priority == Priority.CLIENT and self.pool.waiting_clients >= self.max_queue:
                self.stats.overloaded += 1
                waiting = self.pool.waiting_clients
                raise Overloaded(f"{waiting} segments are already waiting for a transcoder", retry_after=self.pool.retry_after())
            ticket = self.pool.submit(submitted, priority, gate, listener)
            self._tickets[key] = ticket
            return await ticket.future
        except MadeElsewhere:
            refused = True
            raise
        finally:
            self._tickets.pop(key, None)
            if not refused:
                self._wanted.pop(key, None)
