"""Who runs a job, and how many run at once: claims on jobs and on pipeline slots.

A claim has two parts:
- an exclusive lease from a coordination engine (livetx/cluster/): with `cluster.redis_url`,
  Redis (`SET NX PX`, renewed by the engine every third of `jobs.lease_ttl`; it runs out when its
  holder dies), cluster-wide; without, lock files in `cluster.lock_dir` (flock(2): the kernel
  drops the lock the moment its holder dies), host-wide;
- the record's `Owner` and `LeaseUntil`, written by the holder and renewed with each progress
  write: what any origin sees, and how an origin on another host knows a job is taken.

A runner takes a job that is queued, or running with a `LeaseUntil` in the past, or running
for an owner on this host that no longer holds its lock and whose process is gone (it died:
taken over at once, not after the lease's time). Server processes of one host are expected
to share `cluster.lock_dir`, as they do for their transcode slots.

Without Redis, two hosts can race for a job whose lease ran out: storage has no
compare-and-swap. Each runner writes its claim into the record, waits `SETTLE` seconds, and
reads the record back: only the one whose claim is still there goes on. That closes the race
unless a runner's read-then-write takes longer than SETTLE (a stalled process): then both can
run the job. Both write the same output key with one PUT each, so the output is still whole,
made twice. Redis removes that window; so do the host's lock files between the processes of one
host. Pipeline concurrency without Redis is likewise per host.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace

from livetx.batch.record import QUEUED, RUNNING, JobRecord
from livetx.batch.store import JobStore
from livetx.cluster.leases import CoordinationDown, Coordinator, Lease
from livetx.cluster.lockfiles import LockFiles
from livetx.settings import Settings

SETTLE = 0.3  # seconds between writing a claim into a record and reading it back (no Redis)
HOST = socket.gethostname()


def owner_id() -> str:
    return f"{HOST}:{os.getpid()}:{os.urandom(3).hex()}"


def owner_host(owner: str) -> str:
    return owner.rsplit(":", 2)[0]


def gone_here(owner: str) -> bool:
    """An owner on this host whose process is gone. (Its lock was free too: see `takeable`;
    the pid is looked at as well, for processes that do not share `cluster.lock_dir`.)"""
    if owner_host(owner) != HOST:
        return False
    try:
        pid = int(owner.rsplit(":", 2)[1])
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (ValueError, IndexError, PermissionError):
        return False
    return pid == os.getpid()  # an earlier runner of this process (whose lock, in this process, we hold now)


def make_engine(settings: Settings) -> Coordinator:
    """The leases of job claims: Redis when configured (cluster-wide), else lock files (host-wide)."""
    cluster = settings.cluster
    if cluster.redis_url:
        from livetx.cluster.redis_engine import RedisCoordinator

        return RedisCoordinator(cluster.redis_url, cluster.key_prefix + "batch:", settings.jobs.lease_ttl)
    return LockFiles(settings.path(cluster.lock_dir) / "batch")


class Claims:
    def __init__(self, engine: Coordinator, store: JobStore, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.owner = owner_id()
        self.cluster_wide = engine.name == "redis"

    async def slot(self, pipeline: str, concurrency: int) -> Lease | None:
        """One of the pipeline's `concurrency` slots, or None when all are taken."""
        for index in range(concurrency):
            try:
                lease = await self.engine.try_acquire(f"slot:{pipeline}:{index}")
            except CoordinationDown:
                return None  # no slot counting without the engine: run nothing rather than too much
            if lease is not None:
                return lease
        return None

    def takeable(self, record: JobRecord, holding: bool = False) -> bool:
        """Whether nobody works on the job now, by its record: queued, or running (or still to
        notify) with its claim run out, or, once this runner holds the job's lease, with an
        owner that could only have held the same lease (Redis; lock files: an owner on this
        host), so is gone."""
        if record.state == QUEUED:
            return True
        if record.state != RUNNING and not record.notice_pending:
            return False
        if record.owner is None or record.lease_until is None or record.lease_until < self.clock():
            return True
        return holding and (self.cluster_wide or gone_here(record.owner))

    async def take(self, record: JobRecord) -> tuple[Lease, JobRecord] | None:
        """The job's lease and its record, claimed by this runner; None if another runner has it."""
        try:
            lease = await self.engine.try_acquire(f"job:{record.id}")
        except CoordinationDown:
            return None
        if lease is None:
            return None
        current = await self.store.get(record.id)
        if current is None or not self.takeable(current, holding=True):
            await lease.release()
            return None
        claimed = replace(current, owner=self.owner, lease_until=self.clock() + self.ttl)
        await self.store.put(claimed)
        if not self.cluster_wide:
            await asyncio.sleep(SETTLE)
            back = await self.store.get(record.id)
            if back is None or back.owner != self.owner:
                await lease.release()
                return None
        return lease, claimed

    def renewed(self, record: JobRecord) -> JobRecord:
        return replace(record, owner=self.owner, lease_until=self.clock() + self.ttl)
