"""What a job makes: a composite's title, its segments through the normal segment path at
`Priority.JOB`, and the file they are joined into, written in one PUT.

- `title_for` turns a composite (1 to 11 clips; a single source is a composite of one) into a
  Title through `Catalog.composite_title`: the one seam between jobs and titles. Its segments
  are MPEG-TS whatever the file's container, under a hidden profile named by a hash of the
  clips and parameters (`<first clip's key>/.batch-<hash>/main-<spec>-<n>.ts`), so two jobs of
  the same clips and parameters share their segments, cached and sealed like any title's. Each
  segment reads one clip's source; the spec id holds every clip's version (a replaced clip
  gives new segments). The timestamps run on across the joins (title time plus TS_OFFSET), so
  the file is their packets joined (remux.py).
- A segmented output (HLS, OSS `/segment,f_hls`) is a playlist job (livetx/jobs.py, made with
  publishing.py's workflow at submission: its claims, record and `<prefix>.m3u8`, playable at
  once, its segments made just in time until the job has made them all): `playlist_job` builds
  it, and `make_all_segments` pre-transcodes the whole title at `Priority.JOB`. It is not whole
  or absent: the playlist is there from the start, and plays while the job runs. A DASH one
  (`Segment.Format: "dash"`, OSS `/segment,f_dash`; fMP4 segments) also has `<prefix>.mpd`,
  written with the playlist (Catalog.playlist_objects, dash/manifest.py stored_mpd_text).
- `make_file` asks the segment service for every segment (a few at a time), copies each to a
  scratch directory on local disk, has the worker process join them (livetx/batch/remux.py:
  packets copied; audio re-encoded once for an acodec other than AAC, whose segments carry AAC
  at INTERMEDIATE_AB; a vp9 job's segments fMP4, FMP4_CODECS),
  and writes the file to its output key with one `Storage.write_file`, which is atomic in both
  stores (a local temp file and rename; an S3 PUT, or a multipart upload whose object appears
  only when it completes) and never holds the file whole in memory: a job that fails or is
  cancelled before that write ends leaves nothing under the output name. `limits.max_job_bytes`
  bounds the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from livetx.batch.remux import AudioOut, RemuxJob, RemuxResult, remux
from livetx.batch.request import AUDIO_ONLY, CONTAINER_OF, JobRequest, Work, json_value
from livetx.batch.snapshots import output_keys, snapshot_times
from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.composite import ClipField, json_field, to_record
from livetx.concat import Composite, ConcatParams
from livetx.errors import LimitExceeded, LivetxError, ParameterUnsupported, PictureNotFound
from livetx.jobs import JOB_ID_CHARS, Job, check_limits
from livetx.layout import batch_profile_name, target_mpd_key, target_prefix
from livetx.media.model import INIT, SegmentPart
from livetx.media.params import RenditionParams, resolve_audio
from livetx.media.picture import PictureJob
from livetx.media.pool import Priority
from livetx.media.watermark import make_overlay
from livetx.pictures import fit, source_time
from livetx.settings import LimitsSettings
from livetx.titles import Rendition, Title

log = logging.getLogger(__name__)

RENDITION = "main"
SEGMENT_CONTAINER = "ts"  # MPEG-TS segments: no B-frames, one clock (see remux.py)
FMP4_CODECS = ("vp9",)  # video MPEG-TS cannot carry: its job's segments are fMP4 (an init segment, then fragments)
# The AAC of the segments of a job whose acodec is not AAC, re-encoded once into it by the remux
# worker: at this bitrate per two channels (AAC's most), so that the second generation's loss is
# the asked codec's, not the intermediate's.
INTERMEDIATE_AB = 320000


class Cancelled(Exception):
    """The job was cancelled while it ran: stop, write nothing."""


def rendition_params(params: ConcatParams, container: str = SEGMENT_CONTAINER) -> RenditionParams:
    """The rendition a composite's output is made of (ConcatParams' own fields are the
    output's: the container, the clip to align on, `vn`)."""
    own = {f.name for f in fields(RenditionParams)}
    values = {f.name: getattr(params, f.name) for f in fields(params) if f.name in own}
    return RenditionParams(**{**values, "container": container})


def playlist_job(request: JobRequest, limits: LimitsSettings) -> Job:
    """A segmented output as a playlist job of one target: `<prefix>.m3u8` and its segments, and
    for DASH `<prefix>.mpd` over the same stored segments (Job.mpd_key: claimed, and written with
    the playlist when the job is published, so both play from the start)."""
    params = request.composite.params
    if params.vn:
        raise ParameterUnsupported(request.field("vn"), "0 with a segmented output (HLS renditions carry video)")
    clip = request.composite.clips[0]
    rendition = rendition_params(params, "ts" if request.format == "ts" else "fmp4")
    defaults = RenditionParams()
    changed = {
        f.name: json_value(getattr(rendition, f.name)) for f in fields(rendition) if getattr(rendition, f.name) != getattr(defaults, f.name)
    }
    table: dict[str, Any] = {"st": request.segment_ms, "initd": 0, "renditions": {"t0": changed}}
    table |= {name: ms for name, ms in (("ss", clip.ss_ms), ("t", clip.t_ms)) if ms}
    prefixes = {"t0": target_prefix(request.output_key)}
    mpd_key = target_mpd_key(prefixes["t0"]) if request.dash else None
    meaning = json.dumps(["batch-segmented", clip.key, table, prefixes, *([mpd_key] if mpd_key else [])], sort_keys=True)
    job = Job(
        hashlib.sha256(meaning.encode()).hexdigest()[:JOB_ID_CHARS],
        clip.key,
        None,
        table,
        prefixes,
        {"t0": request.output_uri},
        oss=True,
        mpd_key=mpd_key,
    )
    check_limits(job, limits)
    return job


async def make_all_segments(segments: SegmentService, title: Title, progress: Progress, cancelled: IsCancelled, at_once: int) -> None:
    """Every segment of every rendition of the title (fMP4: its init segment first), at Priority.JOB."""
    parts: list[tuple[Rendition, SegmentPart]] = []
    for rendition in title.renditions:
        if rendition.subtitle is not None:
            continue
        if rendition.container == "fmp4":
            parts.append((rendition, INIT))
        parts += [(rendition, n) for n in range(len(rendition.windows))]
    for start in range(0, len(parts), at_once):
        if await cancelled():
            raise Cancelled()
        batch = parts[start : start + at_once]
        await asyncio.gather(*(segments.get(title, r, n, Priority.JOB) for r, n in batch))
        await progress(start + len(batch), len(parts))


def intermediate(params: ConcatParams) -> ConcatParams:
    """The parameters a job's segments are made with: as asked, but for an acodec other than
    AAC, AAC at INTERMEDIATE_AB per two channels, whatever the source's bitrate (the asked
    bitrate is the re-encode's, `audio_out`)."""
    if params.acodec == "aac":
        return params
    return replace(params, ab=INTERMEDIATE_AB * max(params.ac or 2, 2) // 2, aq=None, abopt=0)


def audio_out(params: ConcatParams, title: Title) -> AudioOut | None:
    """The codec, bitrate and depth the remux worker re-encodes the AAC to (None: AAC, copied).
    The bitrate is the asked one as the rendition would have had it (abopt against the source)."""
    audio = title.renditions[0].audio
    if params.acodec == "aac" or audio is None:
        return None
    asked = resolve_audio(rendition_params(params), title.info, title.muxed_track)
    bitrate = asked.bitrate if asked is not None else audio.bitrate
    return AudioOut(params.acodec, bitrate, params.adepth)


def segment_composite(composite: Composite) -> Composite:
    """The composite whose segments a job joins: MPEG-TS segments whatever the file's container
    (`f` is the file's, not the segments'), so jobs of the same clips and parameters to MP4 and
    to MKV share their segments; fMP4 ones for a video codec MPEG-TS cannot carry (FMP4_CODECS);
    their audio AAC, at the intermediate bitrate when the file's codec is another (`intermediate`)."""
    params = composite.params
    container = "fmp4" if params.vcodec in FMP4_CODECS and not params.vn else SEGMENT_CONTAINER
    return replace(composite, params=intermediate(replace(params, f=None, container=container)))


def job_profile_name(composite: Composite) -> str:
    """The hidden profile (`.batch-<hash>`, layout.batch_profile_name) of a job's title: a hash of
    its clips (keys and windows) and output parameters. Its segments are at the first clip's key
    (`<key>/.batch-<hash>/main-<spec>-<n>.ts`); the spec id holds every clip's version."""
    return batch_profile_name(json.dumps(["batch", to_record(segment_composite(composite))], sort_keys=True))


async def title_for(catalog: Catalog, composite: Composite, field: ClipField = json_field) -> Title:
    """A job's composite (1 to 11 clips; one clip is a composite of one) as a Title, through
    `Catalog.composite_title`: one stat and one cached probe per clip, each segment made of one
    clip's source, the audio joined on one AAC grid. Refusals name the clip's field through
    `field` (`Clips[2].URI`; OSS: `sur[1].o`, concat.oss_clip_field)."""
    composite = await _streams_present(catalog, composite)
    return await catalog.composite_title(segment_composite(composite), job_profile_name(composite), field)


async def _streams_present(catalog: Catalog, composite: Composite) -> Composite:
    """The composite without the video (`vn`) or audio (`an`) that none of its clips has: a
    video-only source makes a file without audio, as a single source's title always did. A
    stream that some clips have and others lack stays asked for: the composite title refuses
    it, naming the first clip without it."""
    params = composite.params
    try:
        infos = [await catalog.media_info(await catalog.source(clip.key)) for clip in composite.clips]
    except LivetxError:  # a clip missing or unreadable: composite_title names its field
        return composite
    vn = params.vn or int(all(info.video is None for info in infos))
    an = params.an or int(all(info.audio is None for info in infos))
    if (vn, an) == (params.vn, params.an):
        return composite
    return replace(composite, params=replace(params, vn=vn, an=an))


def check_planned(title: Title, limits: LimitsSettings, oss: bool) -> None:
    """The title as planned for its source, against `[limits]`: its length and frame size."""
    if title.duration > limits.max_job_seconds:
        field = "t" if oss else "Clips"
        raise LimitExceeded(
            field, f"at most {limits.max_job_seconds} s of output (limits.max_job_seconds); this makes {float(title.duration):.1f} s"
        )
    video = title.renditions[0].video
    if video is not None and (video.width * video.height > limits.max_pixels or max(video.width, video.height) > limits.max_side):
        field = "s" if oss else "Video.TranscodeVideo.Resolution"
        raise LimitExceeded(
            field, f"at most {limits.max_pixels} pixels and {limits.max_side} per side; this makes {video.width}x{video.height}"
        )


@dataclass(frozen=True)
class Made:
    key: str
    size: int
    duration: float


Progress = Callable[[int, int], Awaitable[None]]  # (segments made, segments in all)
IsCancelled = Callable[[], Awaitable[bool]]


async def _segment_to(segments: SegmentService, title: Title, index: SegmentPart, path: Path) -> None:
    rendition = title.renditions[0]
    body = await segments.get(title, rendition, index, Priority.JOB)
    if body.data is not None:
        await asyncio.to_thread(path.write_bytes, body.data)
    elif body.path is not None:
        await asyncio.to_thread(shutil.copyfile, body.path, path)
    else:  # pragma: no cover - a SegmentBody has one or the other
        raise LivetxError("segment body without bytes")


async def make_segments(
    segments: SegmentService, title: Title, scratch: Path, at_once: int, progress: Progress, cancelled: IsCancelled
) -> list[Path]:
    """Every segment of the title's rendition, in order, as files in `scratch` (fMP4: its init
    segment first, then its fragments: together, one fragmented MP4 stream)."""
    rendition = title.renditions[0]
    count = len(rendition.windows)
    parts: list[SegmentPart] = [INIT] if rendition.container == "fmp4" else []
    parts += range(count)
    suffix = ".m4s" if rendition.container == "fmp4" else ".ts"
    paths = [scratch / f"{part if part == INIT else f'{part:06d}'}{suffix}" for part in parts]
    done = 0
    for start in range(0, len(parts), at_once):
        if await cancelled():
            raise Cancelled()
        batch = range(start, min(len(parts), start + at_once))
        await asyncio.gather(*(_segment_to(segments, title, parts[i], paths[i]) for i in batch))
        done += len(batch)
        await progress(done, len(parts))
    return paths


async def make_file(
    work: Work,
    title: Title,
    segments: SegmentService,
    remuxer: ProcessPoolExecutor,
    limits: LimitsSettings,
    at_once: int,
    progress: Progress,
    cancelled: IsCancelled,
    scratch_root: Path | None = None,
) -> Made:
    """The job's file, written whole to its output key (see the module docstring)."""
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="livetx-job-", dir=scratch_root))
    try:
        paths = await make_segments(segments, title, scratch, at_once, progress, cancelled)
        output = scratch / "output"
        audio_only = work.format in AUDIO_ONLY or bool(work.composite.params.vn)
        job = RemuxJob(
            tuple(str(p) for p in paths),
            str(output),
            CONTAINER_OF[work.format],
            audio_only,
            audio_out(work.composite.params, title),
            segments="mp4" if title.renditions[0].container == "fmp4" else "mpegts",
        )
        loop = asyncio.get_running_loop()
        result: RemuxResult = await loop.run_in_executor(remuxer, remux, job)
        if result.size > limits.max_job_bytes:
            raise LimitExceeded(
                "Output", f"a file of at most {limits.max_job_bytes} bytes (limits.max_job_bytes); this makes {result.size}"
            )
        if await cancelled():
            raise Cancelled()
        await segments.output.write_file(work.output_key, output)
        return Made(work.output_key, result.size, result.duration)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


async def make_snapshots(
    work: Work, title: Title, catalog: Catalog, segments: SegmentService, progress: Progress, cancelled: IsCancelled
) -> list[tuple[str, int]]:
    """A snapshot job's pictures (livetx/batch/snapshots.py), each made by the pool at
    `Priority.JOB` and written whole to its numbered key, in order; (URI, bytes) of each. A
    job that fails or is cancelled deletes the pictures it wrote: all of them or none."""
    plan = work.snapshot
    assert plan is not None and plan.times is not None, "resolved at submission"
    clip = title.clips[0]
    video = clip.info.video
    if video is None:
        raise PictureNotFound("the clip has no video: it has no pictures")
    duration_ms = int(title.duration * 1000)
    snapshot_times(plan, duration_ms)  # the clip may have been replaced since the submission
    shape = fit(video.display_size, plan.picture.w, plan.picture.h, plan.picture.scaletype)
    params = work.composite.params
    overlay = None
    if params.wm_image is not None or params.wm_text is not None:
        images = await catalog.watermarks(title.profile)
        overlay = await asyncio.to_thread(make_overlay, params, *shape.canvas, images)
    source = await segments.sources.media_url(clip.source.key)
    keys, uris = output_keys(work.output_key, plan), output_keys(work.output_uri, plan)
    written: list[tuple[str, int]] = []
    try:
        for n, (t, key) in enumerate(zip(plan.times, keys, strict=True)):
            if await cancelled():
                raise Cancelled()
            job = PictureJob(
                source=source,
                video_stream=video.index,
                times=(source_time(clip.origin, t),),
                fit=shape,
                format=work.format,
                quality=plan.picture.q,
                mode=plan.picture.mode,
                rotation=video.rotation,
                source_pin=clip.source.pin,
                overlay=overlay,
                colour=video.colour,
            )
            result = await segments.pool.picture(job, Priority.JOB)
            await segments.output.write(key, result.data)
            written.append((key, len(result.data)))
            await progress(n + 1, len(keys))
    except BaseException:
        await asyncio.shield(_delete_all(segments, [key for key, _ in written]))
        raise
    return [(uri, size) for uri, (_, size) in zip(uris, written, strict=True)]


async def _delete_all(segments: SegmentService, keys: list[str]) -> None:
    for key in keys:
        try:
            await segments.output.delete(key)
        except LivetxError as exc:  # left for the operator: the job's record says it failed
            log.warning("snapshot %s of a failed job not deleted (%s)", key, exc.code)
