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

A title's subtitle sidecars (`dir/film.en.srt` next to `dir/film.mkv`, grammar in
livetx/subtitles/names.py) are found with one listing of `dir/film.` in the source store, reused
for `stat_ttl` like a stat, then read and parsed once per sidecar version (key and ETag) in a
thread, never on the event loop. What a file's bytes decide (too large, unreadable) is kept as
`Sidecar.error`; a read that failed (storage down, file gone) is tried again next time. The
sidecars' keys, ETags and errors join the title's identity: a new, changed or removed sidecar
replans the title once the listing is renewed. An API-made title has the subtitle files its
request named (IMM `SourceSubtitles`) and no others; the request is refused (422) when one of
them is unreadable, and a read that failed is its storage's error (503), not the file's.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from livetx.composite import ClipField, ClipSource, build_composite_title, from_record, is_composite_profile, json_field, to_record
from livetx.concat import Composite
from livetx.dash.manifest import stored_mpd_text
from livetx.errors import (
    LivetxError,
    OutputClaimed,
    ParameterError,
    ProbeTimeout,
    ProfileNotFound,
    SourceNotFound,
    SourceUnreadable,
    StorageUnavailable,
    SubtitleTooLarge,
    SubtitleUnreadable,
    WatermarkNotFound,
    WatermarkUnreadable,
)
from livetx.jobs import JOB_PREFIX, Job
from livetx.layout import claim_key, composite_key, probe_key, record_key
from livetx.lru import Lru, Once
from livetx.media.model import MediaInfo
from livetx.media.pool import ProbePool
from livetx.media.probe import probe
from livetx.media.watermark import MAX_IMAGE_BYTES, WatermarkImage, decode_image
from livetx.playlists import playlist_objects
from livetx.storage.base import ObjectInfo, Storage, check_source_key
from livetx.subtitles.names import kind_of, listing_prefix, parse_sidecar_name, request_name
from livetx.subtitles.sidecar import Sidecar, SidecarName
from livetx.subtitles.sidecar import parse as parse_sidecar
from livetx.subtitles.text import check_size
from livetx.titles import Profile, Title, build_title, is_watermarked, watermark_keys
from livetx.urls import title_prefix

log = logging.getLogger(__name__)

PROBE_CACHE_SIZE = 4096
ANSWERS_PER_SOURCE = 64  # profiles whose title of one source `title` keeps answering from memory
SIDECARS_LISTED = 100  # objects listed next to a source when looking for its sidecars
SIDECAR_CACHE_BYTES = 64 * 1024**2  # parsed sidecars kept in memory, weighed by their files' sizes
SidecarIdentity = tuple[tuple[str, str, str | None], ...]  # (key, ETag, error) of each of a title's sidecars
WATERMARK_CACHE_BYTES = 256 * 1024**2  # decoded watermark images kept in memory, weighed by their RGBA bytes
Watermarks = dict[str, WatermarkImage]  # the decoded watermark images of a profile, by key


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
        sidecar_timeout: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        master_kid: str | None = None,
        public_url: str = "",
    ) -> None:
        """`prober`: where probes run (the app's ProbePool); None probes in a thread, for tools
        and tests only (nothing can stop a probe there). `sidecar_timeout`: seconds a title's
        sidecar lookup may add to its plan (the app gives it the probe's limit). `clock`: what
        the TTLs are measured by (a test moves its own). `master_kid`: the encryption master key
        that encrypts titles (None: none configured). `public_url`: this server's public URL
        (`server.public_url`), where the stored playlists of encrypted titles say their keys are
        (empty: a path on the host that serves the playlist)."""
        self.sources = sources
        self.profiles = profiles
        self.threads = threads
        self.output = output
        self.stat_ttl = stat_ttl
        self.prober = prober
        self.probe_failure_ttl = probe_failure_ttl
        self.sidecar_timeout = sidecar_timeout
        self.clock = clock
        self.master_kid = master_kid
        self.public_url = public_url.rstrip("/")
        self._stats: Lru[str, tuple[float, ObjectInfo | None]] = Lru(PROBE_CACHE_SIZE)
        self._probes: Lru[tuple[str, str], MediaInfo] = Lru(PROBE_CACHE_SIZE)
        self._failed: Lru[tuple[str, str], tuple[float, LivetxError]] = Lru(PROBE_CACHE_SIZE)  # negative cache
        self._probing: dict[tuple[str, str], asyncio.Future[MediaInfo]] = {}
        # (profile, source key, its ETag, sidecars, watermark images' (key, ETag)) -> the title
        self._titles: Lru[tuple[str, str, str, SidecarIdentity, tuple[tuple[str, str], ...]], Title] = Lru(PROBE_CACHE_SIZE)
        # decoded watermark images by (key, ETag): each read and decoded once
        self._watermarks: Once[tuple[str, str], WatermarkImage] = Once(Lru(WATERMARK_CACHE_BYTES, weigh=lambda image: len(image.rgba) + 1))
        # source key -> profile -> (monotonic deadline, title): what `title` answers, without a
        # look at the caches it is made from, until the first of them is due again
        self._answers: Lru[str, dict[str, tuple[float, Title]]] = Lru(PROBE_CACHE_SIZE)
        self._seen: set[tuple[str, str, str]] = set()
        self._jobs: Lru[str, tuple[Profile, tuple[str, ...]]] = Lru(PROBE_CACHE_SIZE)  # with the job's subtitle keys
        self._composites: Lru[str, Composite] = Lru(PROBE_CACHE_SIZE)  # c-<id> -> its record
        self._listings: Lru[str, tuple[float, tuple[ObjectInfo, ...]]] = Lru(PROBE_CACHE_SIZE)
        self._listing_now: dict[str, asyncio.Future[tuple[ObjectInfo, ...]]] = {}
        self._stating: dict[str, asyncio.Future[ObjectInfo | None]] = {}
        self._sidecars: Lru[tuple[str, str, str], tuple[int, Sidecar]] = Lru(SIDECAR_CACHE_BYTES, weigh=lambda entry: entry[0])
        self._reading: dict[tuple[str, str, str], asyncio.Future[tuple[int, Sidecar]]] = {}
        self._publishing: set[asyncio.Task[None]] = set()
        self.probe_count = 0
        self.stat_count = 0
        self.listing_count = 0  # sidecar listings asked of the source store
        self.sidecar_reads = 0  # sidecar files read (and parsed)

    async def profile(self, name: str) -> Profile:
        """A configured profile, or one made through the playlist APIs (`j-<id>`, whose record
        lives in output storage, so every origin process knows it)."""
        return (await self._resolve(name))[0]

    async def _resolve(self, name: str) -> tuple[Profile, tuple[str, ...] | None]:
        """The profile, and the subtitle files an API-made one's request named (None for a
        configured profile: its titles' sidecars are found next to the source)."""
        if name in self.profiles:
            return self.profiles[name], None
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

    def _remember(self, job: Job) -> tuple[Profile, tuple[str, ...]]:
        known = (job.profile(), job.subtitles)
        self._jobs.put(job.profile_name, known)
        return known

    async def plan(self, job: Job) -> Title:
        """Plan an API-made job's title without keeping anything: a request that fails here
        (no such source, no such subtitle file or an unreadable one, unreadable media, a window
        past the end) leaves no record behind. The caller named each subtitle file, so one
        that gives no usable cue (or is too large) is a 422 naming its field, not a title
        quietly without it (as a sidecar found next to a source would be)."""
        source = await self.source(job.source_key)
        profile = job.profile()
        fields = job.subtitle_fields()
        for key, field in fields.items():
            if await self._stat(key) is None:
                raise ParameterError(field, "the URI of an object that exists in the source store")
        sidecars = await self.named_sidecars(source, job.subtitles, strict=True)
        for sidecar in sidecars:
            if sidecar.error is not None:
                field = fields[sidecar.key]
                raise SubtitleUnreadable(f"{field}: {sidecar.error}", track=sidecar.key, parameter=field)
        return await self._build(source, profile, sidecars, await self.watermarks(profile))

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
        profile, subtitles = self._remember(job)
        identity = sidecar_identity(await self.named_sidecars(title.source, subtitles))
        marks = watermark_identity(await self.watermarks(profile))
        self._titles.put((job.profile_name, title.source.key, title.source.etag, identity, marks), title)
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

    def playlist_objects(self, title: Title) -> dict[str, str]:
        """The title's playlists as written to output storage (livetx/playlists.py), and a
        segmented job's MPD next to them (its profile's `mpd_key`, dash/manifest.py): written
        and rewritten together, so the MPD names the segments the playlist names."""
        objects = playlist_objects(title, self.public_url + quote(title_prefix(title.profile.name, title.source.key), safe="/"))
        if title.profile.mpd_key is not None:
            objects[title.profile.mpd_key] = stored_mpd_text(title)
        return objects

    async def publish(self, title: Title) -> None:
        """Write the title's playlists to output storage now (the APIs answer after this)."""
        for key, text in self.playlist_objects(title).items():
            await self.output.write(key, text.encode())

    async def source(self, key: str) -> ObjectInfo:
        check_source_key(key)
        info = await self._stat(key)
        if info is None:
            raise SourceNotFound(f"no source {key!r}")
        return info

    async def _stat(self, key: str) -> ObjectInfo | None:
        """The stat of an object in the source store, reused for `stat_ttl`. Concurrent callers
        join one stat: every request of a busy title finds it due at the same moment, and
        would otherwise each send one (hundreds of thread hops or HEADs at once)."""
        cached = self._stats.peek(key)
        if cached is not None and self.clock() - cached[0] < self.stat_ttl:
            return cached[1]
        running = self._stating.get(key)
        if running is None:
            running = asyncio.ensure_future(self._stat_now(key))
            self._stating[key] = running
            running.add_done_callback(lambda _: self._stating.pop(key, None))
        return await asyncio.shield(running)

    async def _stat_now(self, key: str) -> ObjectInfo | None:
        info = await self.sources.stat(key)
        self.stat_count += 1
        if self.stat_ttl > 0:
            self._stats.put(key, (self.clock(), info))
        return info

    def forget(self, key: str) -> None:
        """The source turned out to have changed: the next request stats it again."""
        self._stats.pop(key)
        self._answers.pop(key)

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
        if self.clock() - when >= self.probe_failure_ttl:
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
            self._failed.put(cache_key, (self.clock(), error))

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

    # ---- composite titles (livetx/composite.py) ---------------------------------------------

    async def composite_title(self, composite: Composite, name: str, field: ClipField = json_field) -> Title:
        """The title of `composite` as profile `name`: one stat (reused for `stat_ttl`) and one
        header probe (cached as any source's) per clip, then the pure plan. Keeps nothing but
        those caches, so the batch engine can plan a multi-clip file job with it too. Refusals
        name the clip's field through `field` (JSON form: `Clips[1].URI`): a clip that is not in
        the source store is a 400 naming it; an unreadable one is its probe's error."""
        stats = []
        for i, clip in enumerate(composite.clips):
            check_source_key(clip.key)
            info = await self._stat(clip.key)
            if info is None:
                raise ParameterError(field(i, "URI"), "the URI of an object that exists in the source store")
            stats.append(info)
        versions = tuple((s.key, s.etag) for s in stats)
        marks = await self._images(watermark_keys_of(composite.params.wm_image))
        cache_key = (name, stats[0].key, repr(versions), (), watermark_identity(marks))
        title = self._titles.get(cache_key)
        if title is None:
            infos = await asyncio.gather(*(self._clip_info(s, field(i, "URI")) for i, s in enumerate(stats)))
            sources = [ClipSource(s, i) for s, i in zip(stats, infos, strict=True)]
            plan = functools.partial(build_composite_title, composite, name, sources, threads=self.threads, field=field, watermarks=marks)
            title = await asyncio.to_thread(plan) if composite.params.wm_image or composite.params.wm_text else plan()
            self._titles.put(cache_key, title)
        return title

    async def _clip_info(self, source: ObjectInfo, field: str) -> MediaInfo:
        """A clip's probe; a clip that is not media names its field (the error and status are its probe's)."""
        try:
            return await self.media_info(source)
        except (SourceUnreadable, ProbeTimeout) as exc:
            raise type(exc)(f"{field}: {exc.message}", **{**exc.details, "parameter": field}) from None

    async def register_composite(self, composite: Composite, name: str) -> None:
        """Keep a composite (its record in output storage, where every origin finds it); the
        same request writes the same record again (idempotent)."""
        await self.output.write(composite_key(name), json.dumps(to_record(composite), sort_keys=True).encode())
        self._composites.put(name, composite)

    async def composite(self, name: str) -> Composite:
        """The composite of profile `c-<id>`, from memory or its record."""
        known = self._composites.peek(name)
        if known is not None:
            return known
        if is_composite_profile(name):
            try:
                if await self.output.stat(composite_key(name)) is not None:
                    composite = from_record(json.loads(await self.output.read(composite_key(name))))
                    self._composites.put(name, composite)
                    return composite
            except (OSError, ValueError) as exc:
                log.warning("composite record unusable", extra={"event": "composite_record_unusable", "error": type(exc).__name__})
        raise ProfileNotFound(f"no profile named {name!r}")

    async def _composite_title(self, name: str, key: str) -> Title:
        composite = await self.composite(name)
        if composite.clips[0].key != key:
            raise ProfileNotFound(f"profile {name!r} belongs to another source")
        return await self.composite_title(composite, name)

    def known_title(self, profile_name: str, key: str) -> Title | None:
        """`title`'s answer when it is at hand (no I/O, no coroutine): a title asked for again
        within `stat_ttl` of the looks it was made from (the source's stat, its sidecar
        listing) is the same answer, kept until then (`_answers`). None: ask `title`."""
        answers = self._answers.peek(key)
        answer = answers.get(profile_name) if answers is not None else None
        if answer is not None and self.clock() < answer[0]:
            return answer[1]
        return None

    async def title(self, profile_name: str, key: str) -> Title:
        """The title of source `key` under a profile (every request of a title being played
        finds it at hand: `known_title`). A composite's (`c-<id>`) is at its first clip's key."""
        if profile_name not in self.profiles and is_composite_profile(profile_name):
            return await self._composite_title(profile_name, key)
        known = self.known_title(profile_name, key)
        if known is not None:
            return known
        profile, subtitles = await self._resolve(profile_name)
        if profile.source_key is not None and profile.source_key != key:
            raise ProfileNotFound(f"profile {profile_name!r} belongs to another source")
        source = await self.source(key)
        sidecars = self._known_sidecars(source) if subtitles is None else () if not subtitles else None
        if sidecars is None:
            # the sidecars are looked up while the source is probed (a cold plan waits for the
            # slower of the two, not their sum); a failed probe is raised, the lookup still cached
            lookup = self.sidecars(source) if subtitles is None else self.named_sidecars(source, subtitles)
            found, _ = await asyncio.gather(lookup, self.media_info(source))
            sidecars = found
        # planning a long title (hundreds of windows, hashed into spec ids) is done once per
        # source version, sidecar versions and profile, not on every segment request
        marks = await self.watermarks(profile)
        cache_key = (profile_name, source.key, source.etag, sidecar_identity(sidecars), watermark_identity(marks))
        title = self._titles.get(cache_key)
        if title is None:
            title = await self._build(source, profile, sidecars, marks)
            self._titles.put(cache_key, title)
        self._keep_answer(profile_name, source, subtitles, title)
        return title

    def _keep_answer(self, profile_name: str, source: ObjectInfo, subtitles: tuple[str, ...] | None, title: Title) -> None:
        """Keep `title` as the answer for (profile, source key) until the stat it was made from
        is due again, and, for a title whose sidecars are found next to its source, its sidecar
        listing too, as long as that listing and each of its sidecars are at hand (else the next
        request looks them up). An API-made title naming subtitle files (each stat on its own
        clock) is not kept."""
        stat = self._stats.peek(source.key)
        if self.stat_ttl <= 0 or stat is None or stat[1] != source or subtitles:
            return
        looked = stat[0]
        if subtitles is None:
            listing = self._listings.peek(listing_prefix(source.key))
            if listing is None or self._known_sidecars(source) is None:
                return
            looked = min(looked, listing[0])
        answers = self._answers.peek(source.key)
        if answers is None or len(answers) >= ANSWERS_PER_SOURCE:  # (API-made profiles of one source)
            self._answers.put(source.key, answers := {})
        answers[profile_name] = (looked + self.stat_ttl, title)

    async def _build(self, source: ObjectInfo, profile: Profile, sidecars: Sequence[Sidecar], marks: Watermarks) -> Title:
        """The one place a title is planned (for `title` and `plan`), with `sidecars`: this
        source's subtitle sidecars, or an API request's SourceSubtitles, and `marks`: the
        watermark images its renditions draw. A watermarked title is planned in a thread (its
        overlays are scaled and rendered there)."""
        info = await self.media_info(source)
        plan = functools.partial(
            build_title, source, info, profile, threads=self.threads, sidecars=sidecars, master_kid=self.master_kid, watermarks=marks
        )
        return await asyncio.to_thread(plan) if is_watermarked(profile) else plan()

    # ---- watermark images ------------------------------------------------------------------

    async def watermarks(self, profile: Profile) -> Watermarks:
        """The decoded watermark images the profile's renditions draw, by key."""
        return await self._images(watermark_keys(profile))

    async def _images(self, keys: Sequence[str]) -> Watermarks:
        """Each watermark image at its current version (its stat reused for `stat_ttl`, as a
        source's), decoded once per version (concurrent callers join one read) in a thread. Not
        in the source store: WatermarkNotFound (422); not a usable image: WatermarkUnreadable."""
        found: Watermarks = {}
        for key in keys:
            check_source_key(key)
            info = await self._stat(key)
            if info is None:
                raise WatermarkNotFound(f"watermark image {key!r} is not in the source store", key=key, parameter="wm_image")
            found[key] = await self._image(info)
        return found

    async def _image(self, info: ObjectInfo) -> WatermarkImage:
        return await self._watermarks.get((info.key, info.etag), lambda: self._decode(info))

    async def _decode(self, info: ObjectInfo) -> WatermarkImage:
        if info.size > MAX_IMAGE_BYTES:  # refused before a byte is read
            raise WatermarkUnreadable.of(info.key, f"larger than {MAX_IMAGE_BYTES} bytes")
        data = await self.sources.read(info.key)
        return await asyncio.to_thread(decode_image, info.key, info.etag, data)

    # ---- subtitle sidecars ---------------------------------------------------------------

    async def sidecars(self, source: ObjectInfo) -> tuple[Sidecar, ...]:
        """The subtitle sidecars next to `source` (`dir/film.en.srt` for `dir/film.mkv`), by
        key, each with its cues or the error that leaves it out (`Sidecar.error`). Never
        raises for a sidecar: a listing that fails gives none, for `stat_ttl`, and a lookup
        that takes longer than `sidecar_timeout` gives none this time (reads started go on,
        shielded, and are kept for the next plan)."""
        try:
            return await asyncio.wait_for(self._sidecars_next_to(source), self.sidecar_timeout)
        except TimeoutError:
            log.warning("sidecar lookup timed out", extra={"event": "sidecar_lookup_timeout"})
            return ()

    async def _sidecars_next_to(self, source: ObjectInfo) -> tuple[Sidecar, ...]:
        listed = await self._listing(listing_prefix(source.key))
        return tuple([await self._sidecar(source.key, info, name) for info, name in _candidates(source, listed)])

    def _known_sidecars(self, source: ObjectInfo) -> tuple[Sidecar, ...] | None:
        """The sidecars next to `source` when its listing and each of them are at hand, as
        for every request of a title being played (no task, no I/O); None when a lookup is due."""
        cached = self._listings.peek(listing_prefix(source.key))
        if cached is None or self.clock() - cached[0] >= self.stat_ttl:
            return None
        found = []
        for info, _ in _candidates(source, cached[1]):
            entry = self._sidecars.get((source.key, info.key, info.etag))
            if entry is None:
                return None
            found.append(entry[1])
        return tuple(found)

    async def named_sidecars(self, source: ObjectInfo, keys: Sequence[str], strict: bool = False) -> tuple[Sidecar, ...]:
        """The subtitle files an API request named for `source` (IMM `SourceSubtitles`), in its
        order; one that is gone or unreadable has its error (`Catalog.plan` refuses a request
        naming one). `strict`: a read that failed (storage down) raises, rather than leaving
        the file out until the next time."""
        found: list[Sidecar] = []
        for key in keys:
            name = request_name(source.key, key)
            info = await self._stat(key)
            if info is None:
                found.append(Sidecar(key, "", name, error=SubtitleUnreadable.of(key, "no such object").message))
            else:
                found.append(await self._sidecar(source.key, info, name, strict))
        return tuple(found)

    async def _listing(self, prefix: str) -> tuple[ObjectInfo, ...]:
        """The objects listed under `prefix`, reused for `stat_ttl`. Concurrent callers join one
        listing, which runs on (shielded) when a caller's lookup times out, so that its outcome,
        a failure included, is kept for the next plan."""
        cached = self._listings.peek(prefix)
        if cached is not None and self.clock() - cached[0] < self.stat_ttl:
            return cached[1]
        running = self._listing_now.get(prefix)
        if running is None:
            running = asyncio.ensure_future(self._list(prefix))
            self._listing_now[prefix] = running
            running.add_done_callback(lambda _: self._listing_now.pop(prefix, None))
        return await asyncio.shield(running)

    async def _list(self, prefix: str) -> tuple[ObjectInfo, ...]:
        self.listing_count += 1
        try:
            listed = tuple(await asyncio.wait_for(self.sources.list_prefix(prefix, SIDECARS_LISTED), self.sidecar_timeout))
        except (LivetxError, OSError, TimeoutError) as exc:  # the title plays without its sidecars
            log.warning("sidecar listing failed", extra={"event": "sidecar_listing_failed", "error": type(exc).__name__})
            listed = ()
        if self.stat_ttl > 0:
            self._listings.put(prefix, (self.clock(), listed))
        return listed

    async def _sidecar(self, source_key: str, info: ObjectInfo, name: SidecarName, strict: bool = False) -> Sidecar:
        """One sidecar version, read and parsed once (concurrent callers join the read). A read
        that failed is an error of the Sidecar (tried again next time), or raised when `strict`."""
        cache_key = (source_key, info.key, info.etag)
        cached = self._sidecars.get(cache_key)
        if cached is not None:
            return cached[1]
        running = self._reading.get(cache_key)
        if running is None:
            running = asyncio.ensure_future(self._read_sidecar(info, name))
            self._reading[cache_key] = running
            running.add_done_callback(lambda done: self._sidecar_read(cache_key, done))
        try:
            return (await asyncio.shield(running))[1]
        except (StorageUnavailable, OSError) as exc:  # not the file's fault: read again next time
            reason = exc.message if isinstance(exc, LivetxError) else f"read failed ({type(exc).__name__})"
            if strict:
                raise StorageUnavailable(reason) from None
            return Sidecar(info.key, info.etag, name, error=reason)

    async def _read_sidecar(self, info: ObjectInfo, name: SidecarName) -> tuple[int, Sidecar]:
        """(bytes read, the parsed sidecar); what the bytes decide is an error in the Sidecar."""
        try:
            check_size(info.size, info.key)  # refused before a byte is read
            data = await self.sources.read(info.key)
            self.sidecar_reads += 1
        except SubtitleTooLarge as exc:
            return 1, Sidecar(info.key, info.etag, name, error=exc.message)
        except LivetxError as exc:  # another refusal of the store (a path it will not read): try again later
            raise StorageUnavailable(exc.message) from None
        try:
            cues = await asyncio.to_thread(parse_sidecar, data, info.key, name.kind)
        except SubtitleUnreadable as exc:
            return len(data) + 1, Sidecar(info.key, info.etag, name, error=exc.message)
        except Exception as exc:  # noqa: BLE001 - a parser's bug must not take the video down with the track
            log.error("sidecar parser failed", extra={"event": "sidecar_parser_bug", "key": info.key, "error": type(exc).__name__})
            reason = SubtitleUnreadable.of(info.key, f"livetx could not parse it ({type(exc).__name__})").message
            return len(data) + 1, Sidecar(info.key, info.etag, name, error=reason)
        return len(data) + 1, Sidecar(info.key, info.etag, name, cues)

    def _sidecar_read(self, cache_key: tuple[str, str, str], done: asyncio.Future[tuple[int, Sidecar]]) -> None:
        if self._reading.get(cache_key) is done:
            del self._reading[cache_key]
        if not done.cancelled() and done.exception() is None:  # retrieved here; waiters still get it
            self._sidecars.put(cache_key, done.result())

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
        for key, text in self.playlist_objects(title).items():
            try:
                await self.output.write(key, text.encode())
            except Exception as exc:  # noqa: BLE001 - a cache of facts; the next process writes it again
                log.warning("playlist write failed", extra={"event": "playlist_write_failed", "error": type(exc).__name__})
                return

    async def drain(self, timeout: float = 10.0) -> None:
        if self._publishing:
            await asyncio.wait(list(self._publishing), timeout=timeout)


def watermark_identity(marks: Watermarks) -> tuple[tuple[str, str], ...]:
    """What of a title's watermark images makes it another title: which images, which versions."""
    return tuple((key, image.etag) for key, image in marks.items())


def watermark_keys_of(key: str | None) -> tuple[str, ...]:
    return (key,) if key is not None else ()


def sidecar_identity(sidecars: Sequence[Sidecar]) -> SidecarIdentity:
    """What of a title's sidecars makes it another title: which files, which versions, and
    whether each could be read."""
    return tuple((s.key, s.etag, s.error) for s in sidecars)


def _candidates(source: ObjectInfo, listed: Sequence[ObjectInfo]) -> list[tuple[ObjectInfo, SidecarName]]:
    """The listed objects that are sidecars of `source`, with what their names say. Another
    media file of the same stem (`dir/film.mp4`) owns `dir/film.mp4.en.srt`."""
    others = [o.key for o in listed if o.key != source.key and kind_of(o.key) is None]
    out = []
    for info in listed:
        name = parse_sidecar_name(source.key, info.key)
        if name is not None and not any(info.key.startswith(other + ".") for other in others):
            out.append((info, name))
    return out
