"""Titles on demand: stat the source, probe its headers (cached), plan it under a profile.

A playlist request goes no deeper than this: it reads metadata and never decodes a frame.
The probe cache is keyed by the source's identity (key and ETag), so a replaced source is
probed again; it is only a cache, the source stays the truth. With remote sources the HEAD
answer itself is reused for `stat_ttl` seconds, so a burst of playlist requests touches the
source once. Probes run in a `ProbePool` (killable worker processes with a time limit); one
probe per source version at a time, and a source version that failed to probe (not media,
refused, over the time limit) answers with the same error for `probe_failure_ttl` seconds
without being probed again. The first time this process plans a title, its playlists are written to output
storage next to its segments.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from livetx.errors import LivetxError, OutputClaimed, ProbeTimeout, ProfileNotFound, SourceNotFound, SourceUnreadable
from livetx.jobs import JOB_PREFIX, Job
from livetx.layout import claim_key, probe_key, record_key
from livetx.lru import Lru
from livetx.media.model import MediaInfo
from livetx.media.pool import ProbePool
from livetx.media.probe import probe
from livetx.playlists import playlist_objects
from livetx.storage.base import ObjectInfo, Storage, check_source_key
from livetx.titles import Profile, Title, build_title

log = logging.getLogger(__name__)

PROBE_CACHE_SIZE = 4096


class Catalog:
    def __init__(
        self,
        sources: Storage,
        profiles: Mapping[str, Profile],
        output: Storage,
        threads: int = 0,
        stat_ttl: float = 0.0,
        prober: ProbePool | None = None,
        probe_failure_ttl: float = 60.0,
    ) -> None:
        """`prober`: where probes run (the app's ProbePool); None probes in a thread, for tools
        and tests only (nothing can stop a probe there)."""
        self.sources = sources
        self.profiles = profiles
        self.threads = threads
        self.output = output
        self.stat_ttl = stat_ttl
        self.prober = prober
        self.probe_failure_ttl = probe_failure_ttl
        self._stats: Lru[str, tuple[float, ObjectInfo | None]] = Lru(PROBE_CACHE_SIZE)
        self._probes: Lru[tuple[str, str], MediaInfo] = Lru(PROBE_CACHE_SIZE)
        self._failed: Lru[tuple[str, str], tuple[float, LivetxError]] = Lru(PROBE_CACHE_SIZE)  # negative cache
        self._probing: dict[tuple[str, str], asyncio.Future[MediaInfo]] = {}
        self._titles: Lru[tuple[str, str, str], Title] = Lru(PROBE_CACHE_SIZE)
        self._seen: set[tuple[str, str, str]] = set()
        self._jobs: Lru[str, Profile] = Lru(PROBE_CACHE_SIZE)
        self._publishing: set[asyncio.Task[None]] = set()
        self.probe_count = 0
        self.stat_count = 0

    async def profile(self, name: str) -> Profile:
        """A configured profile, or one made through the playlist APIs (`j-<id>`, whose record
        lives in output storage, so every origin process knows it)."""
        if name in self.profiles:
            return self.profiles[name]
        job_profile = self._jobs.peek(name)
        if job_profile is not None:
            return job_profile
        if name.startswith(JOB_PREFIX):
            job = await self._load_job(name[len(JOB_PREFIX) :])
            if job is not None:
                try:
                    return self._remember(job)
                except (LivetxError, KeyError, TypeError, ValueError, AttributeError):
                    # a record that parses but builds no profile (written by another version, or
                    # damaged): not a profile, rather than a 400 or a 500 for the viewer
                    log.warning("job record builds no profile", extra={"event": "job_record_unusable", "job": name})
        raise ProfileNotFound(f"no profile named {name!r}")

    async def _load_job(self, job_id: str) -> Job | None:
        if not job_id.isalnum():
            return None
        try:
            if await self.output.stat(record_key(job_id)) is None:
                return None
            return Job.from_record(json.loads(await self.output.read(record_key(job_id))))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _remember(self, job: Job) -> Profile:
        profile = job.profile()
        self._jobs.put(job.profile_name, profile)
        return profile

    async def plan(self, job: Job) -> Title:
        """Plan an API-made job's title without keeping anything: a request that fails here
        (no such source, unreadable media, a window past the end) leaves no record behind."""
        source = await self.source(job.source_key)
        profile = job.profile()
        return build_title(source, await self.media_info(source), profile, threads=self.threads)

    async def register(self, job: Job, title: Title) -> Profile:
        """Keep an API-made job whose title planned: claim its output keys (refused if another
        job holds one, or if an object no job claimed is there already), then write its record,
        all before anyone is told of it. Repeating a request finds its own claims: idempotent.

        Claims are checked, then written: two different jobs racing for one key within that
        gap can both pass (object stores offer no portable create-if-absent)."""
        claims = job.claims(title)
        known = await self.output.stat(record_key(job.id)) is not None  # this job was kept before
        for key, field in claims.items():
            holder = await self._claim_holder(key)
            if holder is None and not known and await self.output.stat(key) is not None:
                raise OutputClaimed(f"{field} names an object that exists already and that this request did not make", parameter=field)
            if holder is not None and holder != job.id:
                raise OutputClaimed(f"{field} is taken by another playlist job", parameter=field)
        for key in claims:
            record = {"key": key, "job": job.id}
            await self.output.write(claim_key(key), json.dumps(record, sort_keys=True).encode())
        await self.output.write(record_key(job.id), json.dumps(job.to_record(), sort_keys=True).encode())
        profile = self._remember(job)
        self._titles.put((job.profile_name, title.source.key, title.source.etag), title)
        return profile

    async def _claim_holder(self, key: str) -> str | None:
        """The id of the job that claimed output key `key`, if any."""
        if await self.output.stat(claim_key(key)) is None:
            return None
        try:
            record = json.loads(await self.output.read(claim_key(key)))
            return str(record["job"]) if record.get("key") == key else "?"
        except (ValueError, KeyError, TypeError, AttributeError):
            return "?"  # unreadable: held by someone, not by this job

    async def publish(self, title: Title) -> None:
        """Write the title's playlists to output storage now (the APIs answer after this)."""
        for key, text in playlist_objects(title).items():
            await self.output.write(key, text.encode())

    async def source(self, key: str) -> ObjectInfo:
        check_source_key(key)
        cached = self._stats.peek(key)
        if cached is not None and time.monotonic() - cached[0] < self.stat_ttl:
            info = cached[1]
        else:
            info = await self.sources.stat(key)
            self.stat_count += 1
            if self.stat_ttl > 0:
                self._stats.put(key, (time.monotonic(), info))
        if info is None:
            raise SourceNotFound(f"no source {key!r}")
        return info

    def forget(self, key: str) -> None:
        """The source turned out to have changed: the next request stats it again."""
        self._stats.pop(key)

    def probe_key(self, source: ObjectInfo) -> str:
        """Where the probe of this source version is recorded in output storage."""
        return probe_key(source.key, source.etag)

    async def _recorded(self, source: ObjectInfo) -> MediaInfo | None:
        try:
            if await self.output.stat(self.probe_key(source)) is None:
                return None
            return MediaInfo.from_record(json.loads(await self.output.read(self.probe_key(source))))
        except (LivetxError, OSError, ValueError):  # unreadable or foreign: probe again
            return None

    async def _record(self, source: ObjectInfo, info: MediaInfo) -> None:
        try:
            await self.output.write(self.probe_key(source), json.dumps(info.to_record()).encode())
        except (LivetxError, OSError) as exc:
            log.warning("probe record write failed", extra={"event": "probe_record_failed", "error": type(exc).__name__})

    async def media_info(self, source: ObjectInfo) -> MediaInfo:
        """The header probe of this source version: from memory, else from its record in output
        storage (another origin, or this one before a restart, probed it), else probed now."""
        cache_key = (source.key, source.etag)
        info = self._probes.get(cache_key)
        if info is not None:
            return info
        self._check_failed(cache_key)
        running = self._probing.get(cache_key)
        if running is None:  # one probe per source version at a time; callers join it
            running = asyncio.ensure_future(self._find(source))
            self._probing[cache_key] = running
            running.add_done_callback(lambda done: self._probed(cache_key, done))
        return await asyncio.shield(running)

    def _check_failed(self, cache_key: tuple[str, str]) -> None:
        failed = self._failed.peek(cache_key)
        if failed is None:
            return
        when, error = failed
        if time.monotonic() - when >= self.probe_failure_ttl:
            self._failed.pop(cache_key)
            return
        raise type(error)(error.message, **error.details)

    def _probed(self, cache_key: tuple[str, str], done: asyncio.Future[MediaInfo]) -> None:
        """A probe ended: remember its result, or its failure when the source is to blame."""
        if self._probing.get(cache_key) is done:
            del self._probing[cache_key]
        if done.cancelled():
            return
        error = done.exception()  # retrieved here; every waiter still gets it raised
        if error is None:
            self._probes.put(cache_key, done.result())
        elif isinstance(error, SourceUnreadable | ProbeTimeout) and self.probe_failure_ttl > 0:
            self._failed.put(cache_key, (time.monotonic(), error))

    async def _find(self, source: ObjectInfo) -> MediaInfo:
        info = await self._recorded(source)
        if info is not None:
            return info
        url = await self.sources.media_url(source.key)
        self.probe_count += 1
        if self.prober is not None:
            info = await self.prober.probe(url)
        else:
            info = await asyncio.to_thread(probe, url)
        self._spawn(self._record(source, info))
        return info

    async def title(self, profile_name: str, key: str) -> Title:
        profile = await self.profile(profile_name)
        if profile.source_key is not None and profile.source_key != key:
            raise ProfileNotFound(f"profile {profile_name!r} belongs to another source")
        source = await self.source(key)
        # planning a long title (hundreds of windows, hashed into spec ids) is done once per
        # source version and profile, not on every segment request
        cache_key = (profile_name, source.key, source.etag)
        title = self._titles.get(cache_key)
        if title is None:
            title = build_title(source, await self.media_info(source), profile, threads=self.threads)
            self._titles.put(cache_key, title)
        return title

    def first_sight(self, title: Title, publish: bool = True) -> bool:
        """True the first time this process serves `title`'s playlists (and then writes them to
        output storage in the background, where CDNs, other origins and operators find them)."""
        seen = (title.profile.name, title.source.key, title.source.etag)
        if seen in self._seen:
            return False
        if len(self._seen) > PROBE_CACHE_SIZE:
            self._seen.clear()
        self._seen.add(seen)
        if publish:
            self._spawn(self._publish(title))
        return True

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, title: Title) -> None:
        for key, text in playlist_objects(title).items():
            try:
                await self.output.write(key, text.encode())
            except Exception as exc:  # noqa: BLE001 - a cache of facts; the next process writes it again
                log.warning("playlist write failed", extra={"event": "playlist_write_failed", "error": type(exc).__name__})
                return

    async def drain(self, timeout: float = 10.0) -> None:
        if self._publishing:
            await asyncio.wait(list(self._publishing), timeout=timeout)
