"""A process pool with a typed async submit, priorities, time limits and worker replacement.

Each slot owns one warm worker process (spawned, with av and the transcoder imported) and
talks to it over a pipe. A job that overruns its time limit gets its worker killed and
replaced; a worker that dies is replaced too. Either way only that job fails, with a named
error, and the pool keeps serving. Waiting clients go before lookahead, lookahead before
pre-transcode.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing.connection import Connection
from typing import Any

from livetx.errors import LivetxError, SourceUnreadable, TranscodeFailed, TranscodeTimeout
from livetx.media.model import SegmentJob, SegmentResult

log = logging.getLogger(__name__)

_ERRORS: dict[str, type[LivetxError]] = {"source_unreadable": SourceUnreadable, "transcode_failed": TranscodeFailed}


class Priority(IntEnum):
    CLIENT = 0
    LOOKAHEAD = 1
    PRETRANSCODE = 2


def _worker_main(conn: Connection) -> None:
    """Child process: import once, then run jobs until the pipe closes."""
    from livetx.media.transcode import transcode_segment

    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            conn.send(("ok", transcode_segment(job)))
        except LivetxError as exc:
            conn.send(("error", exc.code, exc.message))
        except Exception as exc:  # noqa: BLE001 - report, never die silently
            conn.send(("error", "transcode_failed", f"{type(exc).__name__}: {exc}"))


class _Worker:
    """Parent-side handle of one worker process. Its methods block: run them in a thread."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.process: Any = None
        self.conn: Connection | None = None

    def start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.process = self.ctx.Process(target=_worker_main, args=(child,), daemon=True, name="livetx-transcode")
        self.process.start()
        child.close()
        self.conn = parent
        if not parent.poll(60):
            raise TranscodeFailed("transcode worker did not start")
        parent.recv()

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.process is not None:
            self.process.join(timeout=2)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join()
        if self.conn is not None:
            self.conn.close()

    def call(self, job: SegmentJob, timeout: float) -> tuple[bool, Any]:
        """Run one job. Returns (restarted, reply)."""
        assert self.conn is not None
        try:
            self.conn.send(job)
            if not self.conn.poll(timeout):
                self.kill()
                self.start()
                return True, ("error", "transcode_timeout", f"transcode exceeded its {timeout:g} s limit")
            return False, self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            self.start()
            return True, ("error", "transcode_failed", "transcode worker died")


@dataclass
class PoolStats:
    queued: int = 0
    in_flight: int = 0
    completed: int = 0
    failed: int = 0
    restarts: int = 0


class TranscodePool:
    def __init__(self, size: int, timeout: float) -> None:
        self.size = size or os.cpu_count() or 1
        self.timeout = timeout
        self.stats = PoolStats()
        self._ctx = multiprocessing.get_context("spawn")
        self._workers = [_Worker(self._ctx) for _ in range(self.size)]
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="livetx-pool")
        self._queue: asyncio.PriorityQueue[tuple[int, int, SegmentJob, asyncio.Future[SegmentResult]]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.start) for w in self._workers))
        self._tasks = [asyncio.create_task(self._dispatch(w), name="livetx-pool-slot") for w in self._workers]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.stop) for w in self._workers))
        self._threads.shutdown(wait=True)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operators and chaos tests)."""
        return [w.process.pid for w in self._workers if w.process is not None and w.process.is_alive()]

    async def run(self, job: SegmentJob, priority: Priority = Priority.CLIENT) -> SegmentResult:
        future: asyncio.Future[SegmentResult] = asyncio.get_running_loop().create_future()
        self.stats.queued += 1
        await self._queue.put((int(priority), next(self._seq), job, future))
        return await future

    async def _dispatch(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        while True:
            _, _, job, future = await self._queue.get()
            self.stats.queued -= 1
            if future.done():  # the caller gave up while it queued
                continue
            self.stats.in_flight += 1
            try:
                restarted, reply = await loop.run_in_executor(self._threads, worker.call, job, self.timeout)
            except Exception as exc:  # noqa: BLE001 - e.g. a worker that cannot be restarted
                restarted, reply = True, ("error", "transcode_failed", f"{type(exc).__name__}")
            finally:
                self.stats.in_flight -= 1
            if restarted:
                self.stats.restarts += 1
                log.warning("transcode worker replaced", extra={"event": "worker_restart", "reason": reply[1]})
            if future.done():
                continue
            if reply[0] == "ok":
                self.stats.completed += 1
                future.set_result(reply[1])
            else:
                self.stats.failed += 1
                _, code, message = reply
                error = TranscodeTimeout(message) if code == "transcode_timeout" else _ERRORS.get(code, TranscodeFailed)(message)
                future.set_exception(error)
