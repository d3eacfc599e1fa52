"""Rendered playlists kept by title version and rendition (`PlaylistCache`, at app[PLAYLISTS]),
and the bound on path-token playlists signing at once. The handlers that use them are in
web/playlists.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from livetx.lru import Lru, Once
from livetx.playlists import Rendered

RENDERED_MAX_BYTES = 64 * 1024**2  # rendered playlists kept (a 2-hour title's media playlist: ~75 kB)
SIGNING_AT_ONCE = 2  # path-token playlists (of more than web/playlists.py's CHUNK URIs) signing at a time; others wait


class PlaylistCache:
    """Rendered playlists by title version and rendition, least recently used dropped beyond
    `max_bytes`. A playlist is rendered once, in a thread, however many requests wait for it."""

    def __init__(self, max_bytes: int = RENDERED_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._rendered: Once[Hashable, Rendered] = Once(
            Lru(max_bytes, weigh=lambda rendered: rendered.size), keep=lambda rendered: rendered.size <= max_bytes
        )
        self.signing = asyncio.Semaphore(SIGNING_AT_ONCE)

    @property
    def renders(self) -> int:
        return self._rendered.made

    def held(self, key: Hashable) -> Rendered | None:
        """The rendered playlist if it is held (no coroutine: every warm request), else None."""
        return self._rendered.held(key)

    async def get(self, key: Hashable, render: Callable[[], Rendered]) -> Rendered:
        """Rendered once, in a thread; a client that leaves doesn't cancel the rendering others wait for."""
        return await self._rendered.get(key, lambda: asyncio.to_thread(render))

    @property
    def bytes(self) -> int:
        return self._rendered.kept.weight
