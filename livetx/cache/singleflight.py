"""Singleflight: concurrent callers for one key share one piece of work.

`SingleFlight` is the interface; `LocalSingleFlight` is the in-process engine. It stays in
front in every deployment: across processes and origins, the work it runs takes the
segment's lease from a coordination engine (livetx/cluster/), so one process asks for one
lease per segment at a time.

The work runs in its own task: a caller that goes away (a client disconnecting) neither
cancels it for the others nor loses the write-back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class SingleFlight(Protocol):
    async def do(self, key: str, work: Coroutine[Any, Any, T]) -> T: ...

    def running(self, key: str) -> bool: ...


class LocalSingleFlight:
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}
        self.joins = 0  # callers that waited on work someone else started
        self.runs = 0  # pieces of work started

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter still gets it raised

    def running(self, key: str) -> bool:
        return key in self._running

    async def do(self, key: str, work: Coroutine[Any, Any, T]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work)
            self._running[key] = task
            self.runs += 1
            task.add_done_callback(lambda t: self._finished(key, t))
        else:
            work.close()  # not needed: someone else's is running
            self.joins += 1
        return await asyncio.shield(task)
