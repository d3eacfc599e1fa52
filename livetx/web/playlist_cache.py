"""Rendered playlists kept by title version and rendition (`PlaylistCache`, at app[PLAYLISTS]),
and the bound on path-token playlists signing at once. The handlers that use them are in
web/playlists.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from livetx.lru import Lru
from livetx.playlists import Rendered

RENDERED_MAX_BYTES = 64 * 1024**2  # rendered playlists kept (a 2-hour title's media playlist: ~75 kB)
SIGNING_AT_ONCE = 2  # path-token playlists (of more than web/playlists.py's CHUNK URIs) signing at a time; others wait


class PlaylistCache:
    """Rendered playlists by title version and rendition, least recently used dropped beyond
    `max_bytes`. A playlist is rendered once, in a thread, however many requests wait for it."""

    def __init__(self, max_bytes: int = RENDERED_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.renders = 0
        self._rendered: Lru[Hashable, Rendered] = Lru(max_bytes, weigh=lambda rendered: rendered.size)
        self._rendering: dict[Hashable, asyncio.Task[Rendered]] = {}
        self.signing = asyncio.Semaphore(SIGNING_AT_ONCE)

    def held(self, key: Hashable) -> Rendered | None:
        """The rendered playlist if it is held (no coroutine: every warm request), else None."""
        return self._rendered.get(key)

    async def get(self, key: Hashable, render: Callable[[], Rendered]) -> Rendered:
        found = self._rendered.get(key)
        if found is not None:
            return found
        task = self._rendering.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(render))
            self._rendering[key] = task
            task.add_done_callback(lambda done: self._keep(key, done))
        # a client that leaves doesn't cancel the rendering others wait for
        return await asyncio.shield(task)

    def _keep(self, key: Hashable, task: asyncio.Task[Rendered]) -> None:
        self._rendering.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # each waiter got the error; nothing is kept
        rendered = task.result()
        self.renders += 1
        if rendered.size > self.max_bytes:
            return
        self._rendered.put(key, rendered)

    @property
    def bytes(self) -> int:
        return self._rendered.weight
