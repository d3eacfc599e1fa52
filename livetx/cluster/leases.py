"""Segment leases: what an engine offers the loop in flight.py.

A lease on a segment key says "this process is making that segment". At most one process holds
a key's lease at a time: cluster-wide (Redis), or host-wide (lock files). The holder keeps it
while it makes the segment and until the segment is durable in output storage, then releases
it, which wakes the processes waiting for it: they find the segment in storage. A holder that
dies loses its lease (it runs out, or the kernel drops the lock), and a waiter takes over.

An engine that can't be reached raises `CoordinationDown`, fast: the caller then makes the
segment on its own (at worst it is made twice) and keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("livetx.cluster")


class CoordinationDown(Exception):
    """The coordination engine can't be reached: make the segment without it. The message
    names the engine and its host, never a URL (it may hold a password)."""


class Lease(Protocol):
    """A lease held by this process on one segment key."""

    @property
    def key(self) -> str: ...

    async def release(self) -> None:
        """Stop renewing; give the lease up if it is still ours; wake its waiters. Never
        raises: a lease that can't be given up now runs out by itself."""
        ...


@dataclass(frozen=True)
class EngineState:
    """What /metrics shows of an engine, read without I/O."""

    engine: str
    up: bool
    held: int  # leases this process holds now
    waiting: int  # segments this process waits on while another holds their lease
    lost: int = 0  # leases found gone when renewed (Redis restarted, or the process stalled past the TTL)
    listed: bool = False  # the engine lists the leases held cluster-wide (lock files can't)
    # cluster-wide, as last listed (bounded): segment key -> owner
    holders: Mapping[str, str] = field(default_factory=dict)
    truncated: bool = False  # more leases exist than `holders` lists


class Coordinator(Protocol):
    """An engine of segment leases."""

    name: str  # "redis", "lockfiles": the `engine` label of its metrics

    async def start(self) -> None:
        """Open what it needs. An engine that is down at start is not an error: it is retried."""
        ...

    async def close(self) -> None: ...

    async def try_acquire(self, key: str) -> Lease | None:
        """The lease on `key`, or None if another process holds it. Doesn't wait."""
        ...

    async def wait_released(self, key: str) -> None:
        """Return once the holder of `key`'s lease released it or lost it (it died), or
        spuriously (the caller looks in storage and tries again). Never polls storage."""
        ...

    def state(self) -> EngineState: ...

    async def refresh(self) -> None:
        """Renew the cluster-wide view of `state().holders` (a bounded listing). Never raises."""
        ...


class Health:
    """Up or down, with one log line on each change (not one per failed call)."""

    def __init__(self, engine: str, target: str) -> None:
        self.engine = engine
        self.target = target  # where it is, safe to log (host:port, a directory)
        self.up = True
        self.downs = 0  # times it went down

    def failed(self, error: BaseException) -> bool:
        """A call failed; True when this took it down."""
        if not self.up:
            return False
        self.up = False
        self.downs += 1
        log.warning(
            "coordination engine down: segments are made without it (some may be made twice)",
            extra={"event": "coordination_down", "engine": self.engine, "target": self.target, "error": type(error).__name__},
        )
        return True

    def succeeded(self) -> None:
        if self.up:
            return
        self.up = True
        log.warning(
            "coordination engine back: segments are made once again",
            extra={"event": "coordination_up", "engine": self.engine, "target": self.target},
        )
