"""Segment leases between the processes of one host, without Redis: flock(2) on lock files.

- A key maps to one of `STRIPES` lock files in the lock directory (named by a hash of the
  key, created on demand, never deleted: unlinking a lock file races another process's open
  and flock of it). Two keys that share a stripe wait for each other: a delay, never a wrong
  answer (a waiter looks in storage when it wakes, and tries again).
- try_acquire opens the file and takes `LOCK_EX | LOCK_NB`: the lease is the open file;
  release unlocks and closes it. flock locks belong to an open file, so two opens in one
  process exclude each other as two processes do.
- wait_released takes a blocking `LOCK_EX` in a thread, then unlocks at once and returns.
  The threads are daemon threads of this engine (at most `WAIT_THREADS` at a time), not the
  default executor's few: a wait may block as long as a transcode, and a thread blocked in
  flock must not hold up the interpreter's exit (a thread pool's workers are joined then,
  and two exiting processes could each wait for the other's lock).
- A process that dies holding a lock loses it at once: the kernel closes its files.
- Files are opened and locked off the event loop. A lock directory that can't be used
  (permissions, a full disk) is `CoordinationDown`: segments are made without leases.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import threading
from pathlib import Path

from livetx.cluster.leases import CoordinationDown, EngineState, Health

STRIPES = 4096  # lock files at most; two keys share one with odds 1/STRIPES
WAIT_THREADS = 64  # blocking waits at a time (more wait their turn)


def stripe(key: str) -> str:
    """The lock file name of `key`."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return f"lease-{int.from_bytes(digest, 'big') % STRIPES:03x}.lock"


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try_lock(path: Path) -> int | None:
    """An open, exclusively locked descriptor of `path`, or None if another holds the lock."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _wait_unlocked(path: Path) -> None:
    """Block until no one holds `path`'s lock (take it, give it back)."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    _unlock(fd)


class FileLease:
    def __init__(self, engine: LockFiles, key: str, fd: int) -> None:
        self._engine = engine
        self._key = key
        self._fd: int | None = fd

    @property
    def key(self) -> str:
        return self._key

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._engine.held -= 1
        try:
            await asyncio.to_thread(_unlock, fd)
        except OSError:
            pass  # closed all the same: the kernel dropped the lock


class LockFiles:
    name = "lockfiles"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.health = Health(self.name, str(directory))
        self.held = 0
        self._waiting = 0
        self._slots = asyncio.Semaphore(WAIT_THREADS)

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            self.health.failed(exc)  # told at start; each try_acquire tries again

    async def close(self) -> None:
        """Nothing to close: a held lock goes with its lease, a waiting thread ends on its own."""

    def _path(self, key: str) -> Path:
        return self.directory / stripe(key)

    async def try_acquire(self, key: str) -> FileLease | None:
        try:
            fd = await asyncio.to_thread(_try_lock, self._path(key))
        except OSError as exc:
            raise self._down(exc) from None
        self.health.succeeded()
        if fd is None:
            return None
        self.held += 1
        return FileLease(self, key, fd)

    async def wait_released(self, key: str) -> None:
        path = self._path(key)
        async with self._slots:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            thread = threading.Thread(target=_wait_in_thread, args=(path, loop, done), name="livetx-lease-wait", daemon=True)
            self._waiting += 1
            try:
                thread.start()
                await done
            except OSError as exc:
                raise self._down(exc) from None
            finally:
                self._waiting -= 1

    def _down(self, error: OSError) -> CoordinationDown:
        self.health.failed(error)
        return CoordinationDown(f"lock files in {self.directory} unusable ({type(error).__name__})")

    def state(self) -> EngineState:
        return EngineState(self.name, self.health.up, self.held, self._waiting)

    async def refresh(self) -> None:
        """Other processes' locks can't be listed without taking them: only this process's are shown."""


def _wait_in_thread(path: Path, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
    error: OSError | None = None
    try:
        _wait_unlocked(path)
    except OSError as exc:
        error = exc
    try:
        loop.call_soon_threadsafe(_settle, done, error)
    except RuntimeError:
        pass  # the loop is closed: no one waits any more


def _settle(done: asyncio.Future[None], error: OSError | None) -> None:
    if done.done():  # the waiter was cancelled
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(None)
