"""The host's transcode slots, shared by the server processes of one host: lock files.

`livetx serve --processes N` runs N server processes, each with its own `TranscodePool` of
`transcode.workers` warm worker processes, so that one process can use every core while the
others idle. The host still never runs more than `transcode.workers` transcodes at once: a
pool slot takes one of the host's slots before it hands a job to its worker and gives it back
when the job is over.

A host slot is an exclusive `flock` on one of `count` files in `cluster.lock_dir`
(`transcode-slot-<i>.lock`). The kernel does the bookkeeping: a lock belongs to an open file
description, which this module opens afresh for every attempt (so two pool slots of one
process exclude each other as two processes do) and never lets a child inherit (close-on-exec:
a worker spawned while a slot is held does not hold it too). A process that dies, even by
SIGKILL, has its slots freed by the kernel at once.

Taking a slot never blocks the event loop: `take` (one non-blocking try over the files, each
from a different start, so processes spread over them) runs in a thread, and so does `wait`,
the blocking `flock` on one file a client job waits on when every slot is taken. A blocking
`flock` cannot be interrupted, so a waiter runs in a daemon thread of its own: one that is
given up (the pool closing) holds the slot it finally gets only to give it back, and never
keeps the process from exiting.

On a local disk only: `flock` on NFS is not a lock between hosts, nor reliably within one.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SLOT_NAME = "transcode-slot-{}.lock"


class HostSlot:
    """One host slot, held until `release` (or until this process ends)."""

    def __init__(self, index: int, fd: int) -> None:
        self.index = index
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the slot back: an unlock and a close, neither of which waits."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


class HostSlots:
    def __init__(self, folder: Path, count: int) -> None:
        self.folder = folder
        self.count = count
        # the non-blocking tries, at most one per pool slot at a time
        self._threads = ThreadPoolExecutor(max_workers=count, thread_name_prefix="livetx-host-slot")

    async def prepare(self) -> None:
        """Create the folder and the slot files."""
        await asyncio.get_running_loop().run_in_executor(self._threads, self._prepare)

    def _prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for index in range(self.count):
            os.close(self._open(index))

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    def _open(self, index: int) -> int:
        # os.open's descriptors are close-on-exec: a spawned worker never inherits a slot
        return os.open(self.folder / SLOT_NAME.format(index), os.O_RDWR | os.O_CREAT, 0o600)

    def _lock(self, index: int, blocking: bool) -> HostSlot | None:
        fd = self._open(index)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return HostSlot(index, fd)

    def _take(self, first: int, only: bool) -> HostSlot | None:
        tries = [first % self.count] if only else [(first + i) % self.count for i in range(self.count)]
        for index in tries:
            slot = self._lock(index, blocking=False)
            if slot is not None:
                return slot
        return None

    async def take(self, first: int, only: bool = False) -> HostSlot | None:
        """A free slot without waiting, trying the files from `first` on (`only`: that file
        alone); None if all of them are taken."""
        trying = asyncio.get_running_loop().run_in_executor(self._threads, self._take, first, only)
        try:
            return await asyncio.shield(trying)
        except asyncio.CancelledError:  # the caller went away: a slot taken meanwhile goes back
            trying.add_done_callback(_release_unclaimed)
            raise

    async def wait(self, index: int) -> HostSlot:
        """Slot `index`, waiting for it as long as it is taken, in a daemon thread of its own."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[HostSlot] = loop.create_future()

        def settle(slot: HostSlot) -> None:
            if future.cancelled():  # the waiter went away: not needed any more
                slot.release()
            else:
                future.set_result(slot)

        def fail(exc: OSError) -> None:
            if not future.cancelled():
                future.set_exception(exc)

        def block() -> None:
            try:
                slot = self._lock(index % self.count, blocking=True)
            except OSError as exc:
                loop.call_soon_threadsafe(fail, exc)
                return
            assert slot is not None
            try:
                loop.call_soon_threadsafe(settle, slot)
            except RuntimeError:  # the loop is closed: the process is ending
                slot.release()

        threading.Thread(target=block, name="livetx-host-slot-wait", daemon=True).start()
        return await future


def _release_unclaimed(trying: asyncio.Future[HostSlot | None]) -> None:
    if not trying.cancelled() and trying.exception() is None and (slot := trying.result()) is not None:
        slot.release()
