"""Segments being made, readable while they are made: what a streamed response sends.

A cold segment's bytes leave the worker as they are muxed (`Chunk`s, livetx/media/messages.py)
and land in its `LiveSegment`. Every client of the singleflight making it reads the same
bytes from the start: those buffered so far, then the rest as it comes. When the segment is
whole, its readers get the seal (and the end of the body); when its making fails, or an
attempt that had readers starts over, they get `StreamBroken` and abort their connections,
so that no client, proxy or CDN ever sees a short body end cleanly.

Invariants:
- `LiveSegments` holds a key's `LiveSegment` from the job's submission until the segment is
  whole (then it is in memory for any later request, see writebacks.py) or has failed.
- The bytes a reader gets are a prefix of the segment as stored, sealed: `finish` checks that
  what was streamed is a prefix of the sealed whole, and breaks the readers otherwise.
- Only the first attempt's bytes are read. An attempt started again (a background job
  preempted, a worker replaced) resets the buffer while nobody has read it; once somebody
  has, the segment breaks for its readers, and later requests wait for the whole.
- Readers wake on every change, with no polling: one future per change, replaced each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from livetx.errors import LivetxError, TranscodeFailed


class StreamBroken(Exception):
    """A streamed segment will not be completed: its readers abort their responses."""


class LiveSegment:
    """One segment's bytes as they are made (a `Listener` of its pool job)."""

    def __init__(self, on_start: Callable[[], None] | None = None) -> None:
        self._on_start = on_start  # called once, when it first has bytes, ends or fails
        self._chunks: list[bytes] = []
        self.size = 0  # bytes heard (of the current attempt)
        self._tail: bytes | None = None  # what follows the chunks once whole: the seal
        self._error: BaseException | None = None
        self.read_from = False  # somebody has read bytes of it
        self._change: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def started(self) -> bool:
        """It has bytes to send, is whole, or has failed: a request waiting for it can go on."""
        return bool(self.size) or self.ended

    @property
    def ended(self) -> bool:
        return self._tail is not None or self._error is not None

    @property
    def broken(self) -> bool:
        return self._error is not None

    # ---- what the pool and the maker tell it --------------------------------------------

    def begin(self) -> None:
        if not self.size or self.ended:
            return
        if self.read_from:
            self.fail(StreamBroken("the transcode started over"))
        else:
            self._chunks, self.size = [], 0

    def chunk(self, data: bytes) -> None:
        if self.ended or not data:
            return
        self._chunks.append(data)
        self.size += len(data)
        self._changed()

    def finish(self, whole: bytes) -> None:
        """The segment as stored (sealed): what the chunks lack is sent after them."""
        if self.ended:
            return
        if whole[: self.size] != b"".join(self._chunks):  # (a worker bug: never send two versions)
            self.fail(StreamBroken("streamed bytes differ from the segment made"))
            return
        self._tail = whole[self.size :]
        self._changed()

    def fail(self, error: BaseException) -> None:
        if self.ended:
            return
        self._error = error
        self._changed()

    def _changed(self) -> None:
        change, self._change = self._change, asyncio.get_running_loop().create_future()
        change.set_result(None)
        if self._on_start is not None:
            on_start, self._on_start = self._on_start, None
            on_start()

    # ---- readers ----------------------------------------------------------------------

    async def read(self) -> AsyncIterator[bytes]:
        """The segment from its first byte, as it is made; `StreamBroken` when it never will be."""
        sent = 0
        while True:
            if self._error is not None:
                raise StreamBroken(str(self._error))
            if sent < len(self._chunks):
                self.read_from = True
                chunk = self._chunks[sent]
                sent += 1
                yield chunk
                continue
            if self._tail is not None:
                if self._tail:
                    yield self._tail
                return
            await asyncio.shield(self._change)

    async def whole(self) -> bytes:
        """The sealed segment once made (for a HEAD or a Range request); the making's error."""
        while not self.ended:
            await asyncio.shield(self._change)
        if self._error is not None:
            if isinstance(self._error, LivetxError):
                raise self._error
            raise TranscodeFailed(f"segment not made: {self._error}")
        assert self._tail is not None
        return b"".join(self._chunks) + self._tail


class LiveSegments:
    """The live segments of this process, by segment key, and requests waiting for them to start."""

    def __init__(self) -> None:
        self._live: dict[str, LiveSegment] = {}
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}

    def __len__(self) -> int:
        return len(self._live)

    def open(self, key: str) -> LiveSegment:
        live = LiveSegment(on_start=lambda: self._wake(key))
        self._live[key] = live
        return live

    def close(self, key: str, live: LiveSegment) -> None:
        """The segment is whole (in memory for later requests) or failed: no one joins it now."""
        if self._live.get(key) is live:
            del self._live[key]
        self._wake(key)

    async def started(self, key: str) -> LiveSegment:
        """The key's live segment once it has bytes to send (never one that broke)."""
        while True:
            live = self._live.get(key)
            if live is not None and live.started and not live.broken:
                return live
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, set()).add(waiter)
            try:
                await waiter
            finally:
                waiters = self._waiting.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiting[key]

    def _wake(self, key: str) -> None:
        for waiter in self._waiting.get(key, ()):
            if not waiter.done():
                waiter.set_result(None)
