"""Titles on demand: stat the source, probe its headers (cached), plan it under a profile.

A playlist request goes no deeper than this: it reads metadata and never decodes a frame.
The probe cache is keyed by the source's identity (key and ETag), so a replaced source is
probed again; it is only a cache, the source stays the truth.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping

from livetx.errors import ProfileNotFound, SourceNotFound
from livetx.media.model import MediaInfo
from livetx.media.probe import probe
from livetx.storage.base import ObjectInfo, Storage, check_source_key
from livetx.titles import Profile, Title, build_title

PROBE_CACHE_SIZE = 4096


class Catalog:
    def __init__(self, sources: Storage, profiles: Mapping[str, Profile], threads: int = 0) -> None:
        self.sources = sources
        self.profiles = profiles
        self.threads = threads
        self._probes: OrderedDict[tuple[str, str], MediaInfo] = OrderedDict()
        self._titles: OrderedDict[tuple[str, str, str], Title] = OrderedDict()
        self.probe_count = 0

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ProfileNotFound(f"no profile named {name!r}") from None

    async def source(self, key: str) -> ObjectInfo:
        check_source_key(key)
        info = await self.sources.stat(key)
        if info is None:
            raise SourceNotFound(f"no source {key!r}")
        return info

    async def media_info(self, source: ObjectInfo) -> MediaInfo:
        cache_key = (source.key, source.etag)
        info = self._probes.get(cache_key)
        if info is None:
            info = await asyncio.to_thread(probe, self.sources.media_url(source.key))
            self.probe_count += 1
            self._probes[cache_key] = info
            if len(self._probes) > PROBE_CACHE_SIZE:
                self._probes.popitem(last=False)
        else:
            self._probes.move_to_end(cache_key)
        return info

    async def title(self, profile_name: str, key: str) -> Title:
        profile = self.profile(profile_name)
        source = await self.source(key)
        # planning a long title (hundreds of windows, hashed into spec ids) is done once per
        # source version and profile, not on every segment request
        cache_key = (profile_name, source.key, source.etag)
        title = self._titles.get(cache_key)
        if title is None:
            title = build_title(source, await self.media_info(source), profile, threads=self.threads)
            self._titles[cache_key] = title
            if len(self._titles) > PROBE_CACHE_SIZE:
                self._titles.popitem(last=False)
        else:
            self._titles.move_to_end(cache_key)
        return title
