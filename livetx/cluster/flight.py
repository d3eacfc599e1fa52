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

Background work (pre-transcode, lookahead) takes the lease later: when its job reaches a
worker, not when it is queued. Queued behind this process's clients, it would otherwise hold
the lease while another origin's client waits for it with an idle worker. So a background
flight makes at once, with a gate (`_Gate`) that the pool runs as the job is about to start:
the gate takes the lease and looks again; held elsewhere, or found, the job is refused
(`MadeElsewhere`, which never reaches a client) and the loop waits, or returns what was found.
A background job that a client promoted goes the same way: a local client joins the flight, so
it waits with it.

The client gets the bytes as soon as they are made; the waiters on other origins wake when
the segment is in storage, so they find it there rather than missing it.

Invariant: every lease taken is released exactly once, by a task in `_releases` until it
has; `close` waits for them (bounded), then closes the engine. A gate's lease is released by
the flight once its make has ended, or by the gate itself when that make ended first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from livetx.cluster.leases import CoordinationDown, Coordinator, EngineState, Lease
from livetx.media.pool import Gate

T = TypeVar("T")

# what `once` gives `make`: a gate for its pool job (background work), or None (make it now)
Make = Callable[[Gate | None], Awaitable[T]]


class MadeElsewhere(Exception):
    """A background job's gate found the segment's lease held by another process, or the
    segment made: the job is not run. Caught by the flight; never reaches a client."""


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
        make: Make[T],
        durable: Callable[[], Awaitable[None]],
        *,
        background: bool = False,
    ) -> T:
        """`key`'s segment, made by exactly one process while the engine is up: `lookup`
        finds it (memory, local tier, storage), `make` makes it (and starts its write-back),
        passing the gate it is given to its pool job; `durable` returns once that write-back
        has stored it or failed. `background`: take the lease only as the job starts."""
        waited = False
        while True:
            if background:
                gate = _Gate(self, key, lookup)
                try:
                    return await self._gated(gate, make, durable, takeover=waited)
                except MadeElsewhere:
                    if gate.found is not None:
                        return gate.found
            else:
                try:
                    lease = await self.coordinator.try_acquire(key)
                except CoordinationDown:
                    self.uncoordinated += 1
                    return await make(None)
                if lease is not None:
                    return await self._holding(lease, lookup, make, durable, takeover=waited)
            self.waits += not waited
            waited = True
            try:
                await self.coordinator.wait_released(key)
            except CoordinationDown:
                self.uncoordinated += 1
                return await make(None)
            found = await lookup()
            if found is not None:
                return found

    async def _gated(self, gate: _Gate[T], make: Make[T], durable: Callable[[], Awaitable[None]], *, takeover: bool) -> T:
        """Make it with `gate` on its job; release the lease the gate took, if it took one."""
        try:
            made = await make(gate)
        except BaseException:
            lease = gate.end()
            if lease is not None:
                self._release(lease)  # made by nobody: a waiter takes over
            raise
        lease = gate.end()
        if lease is not None:
            self.takeovers += takeover
            self._release(lease, durable())
        return made

    async def _holding(
        self,
        lease: Lease,
        lookup: Callable[[], Awaitable[T | None]],
        make: Make[T],
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
            made = await make(None)
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


class _Gate(Generic[T]):
    """A background job's lease, taken as the job is about to start (the pool runs the gate
    once). It takes the lease and looks again: held elsewhere, or found, it raises
    `MadeElsewhere` (keeping what it found in `found`); ours and not found, the job runs; the
    engine down, the job runs without a lease, counted."""

    def __init__(self, flight: ClusterFlight, key: str, lookup: Callable[[], Awaitable[T | None]]) -> None:
        self.flight, self.key, self.lookup = flight, key, lookup
        self.found: T | None = None
        self._lease: Lease | None = None
        self._ended = False  # the make it gates has ended: a lease taken now is released here

    async def __call__(self) -> None:
        try:
            lease = await self.flight.coordinator.try_acquire(self.key)
        except CoordinationDown:
            self.flight.uncoordinated += 1
            return
        if lease is None:
            raise MadeElsewhere(f"{self.key}: another process holds its lease")
        try:
            self.found = await self.lookup()  # its last holder may have just stored it
        except BaseException:
            self.flight._release(lease)
            raise
        if self.found is not None or self._ended:  # made, or its caller went away meanwhile
            self.flight._release(lease)
            raise MadeElsewhere(f"{self.key}: made by another process")
        self._lease = lease  # no await since `_ended` was read: the flight releases it

    def end(self) -> Lease | None:
        """The make has ended: the lease the gate took, for the flight to release (None if it
        took none; from now on, one it takes it releases itself)."""
        self._ended = True
        lease, self._lease = self._lease, None
        return lease
