"""The cluster loop: make a segment under its lease, or wait for the process that holds it.

`ClusterFlight.once` runs inside the in-process singleflight's work, after a lookup missed:

    loop:
        take the lease        -> ours: look again (its last holder may have just stored it);
                                 found: done; else make it, and release the lease in the
                                 background once the segment is durable in output storage
                                 (its write-back stored it, or its first attempt failed)
        held elsewhere        -> wait until it is released or runs out, look again;
                                 found: done; else loop (the holder died, or its
                                 write-back failed: take it over)
        engine down (at any point) -> make it without a lease, counted

The client gets the bytes as soon as they are made; the waiters on other origins wake when
the segment is in storage, so they find it there rather than missing it.

Invariant: every lease taken is released exactly once, by a task in `_releases` until it
has; `close` waits for them (bounded), then closes the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from livetx.cluster.leases import CoordinationDown, Coordinator, EngineState, Lease

T = TypeVar("T")

CLOSE_TIMEOUT = 5.0  # seconds `close` waits for leases still to be released


class ClusterFlight:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.uncoordinated = 0  # segments made without a lease: the engine was down
        self.waits = 0  # segments this process waited for while another process held their lease
        self.takeovers = 0  # segments made after waiting on a lease that ended without them in storage
        self._releases: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.coordinator.start()

    async def close(self) -> None:
        if self._releases:
            await asyncio.wait(self._releases, timeout=CLOSE_TIMEOUT)
        await self.coordinator.close()

    def state(self) -> EngineState:
        return self.coordinator.state()

    async def refresh(self) -> None:
        await self.coordinator.refresh()

    async def once(
        self,
        key: str,
        lookup: Callable[[], Awaitable[T | None]],
        make: Callable[[], Awaitable[T]],
        durable: Callable[[], Awaitable[None]],
    ) -> T:
        """`key`'s segment, made by exactly one process while the engine is up: `lookup`
        finds it (memory, local tier, storage), `make` makes it (and starts its write-back),
        `durable` returns once that write-back has stored it or failed."""
        waited = False
        while True:
            try:
                lease = await self.coordinator.try_acquire(key)
                if lease is None:
                    self.waits += not waited
                    waited = True
                    await self.coordinator.wait_released(key)
            except CoordinationDown:
                self.uncoordinated += 1
                return await make()
            if lease is not None:
                return await self._holding(lease, lookup, make, durable, takeover=waited)
            found = await lookup()
            if found is not None:
                return found

    async def _holding(
        self,
        lease: Lease,
        lookup: Callable[[], Awaitable[T | None]],
        make: Callable[[], Awaitable[T]],
        durable: Callable[[], Awaitable[None]],
        *,
        takeover: bool,
    ) -> T:
        try:
            found = await lookup()
            if found is not None:
                self._release(lease)
                return found
            self.takeovers += takeover
            made = await make()
        except BaseException:
            self._release(lease)  # made by nobody: a waiter takes over
            raise
        self._release(lease, durable())
        return made

    def _release(self, lease: Lease, after: Awaitable[None] | None = None) -> None:
        """Release `lease` in the background, once `after` is done."""
        task = asyncio.create_task(self._release_after(lease, after), name=f"livetx-release {lease.key}")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    @staticmethod
    async def _release_after(lease: Lease, after: Awaitable[None] | None) -> None:
        try:
            if after is not None:
                await after
        finally:
            await lease.release()
