"""Composite titles: clips of several sources played as one title, planned just in time. Pure:
no aiohttp, no av, no storage I/O.

A composite (livetx/concat.py `Composite`: clips in play order and the output's parameters)
becomes a `Title` whose segments each read ONE clip's source:

- The output. Its frame rate, size, sample rate and channels are the ConcatParams' where set,
  else the `align` clip's (through `resolve_video`/`resolve_audio`, as a plain title's). The
  encoder parameters are the same for every clip, so an fMP4 rendition has one init segment.
  Each clip keeps its own rotation, and its picture is fitted into the output frame (letterboxed
  or pillarboxed on black; `scaletype=crop` cuts it to cover instead), never stretched.
- The timeline. Clips play in order. A clip lasts its window (`t`, else to its source's end)
  in whole output frames (whole AAC frames without video). Every clip boundary is a segment
  boundary: each clip is cut by the ordinary planner (the first clip with the initial
  segments), a clip's tail shorter than half a regular segment joins the segment before it,
  and windows are numbered across the title.
- A clip's `origin` is the source time of title time 0 for it: its start in the source plus
  `ss`, minus its start in the title (so negative for every clip but the first, usually).
- Audio stays on one AAC grid from title time 0. Each clip's audio plays inside its own title
  span (SegmentJob.audio_span): silence outside it, a 5 ms fade at each join, and the AAC frame
  where a join falls is silent, one frame (21 ms at 48 kHz) per join (see media/transcode.py
  `_AudioWindow`: what lets segments encoded apart decode across a join without aliasing).
- Identity. The spec id hashes every clip's key, version (ETag) and plan, so a replaced clip
  gives new spec ids (old segment URLs answer 404 "reload the playlist"). The title's `source`
  is the first clip's key with an ETag made of every clip's: its URLs are
  `/hls/c-<id>/<first clip's key>/...`.

A composite's record (`to_record`/`from_record`) is what is kept in output storage; its id is
a hash of that record, so the same request is the same composite.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from livetx.concat import Clip, Composite, ConcatParams, _changed, _oss_value, concat_params, make_composite
from livetx.errors import LimitExceeded, ParameterError
from livetx.hls.plan import Grid, SegmentWindow, audio_grid, plan_segments, video_grid
from livetx.media.model import AudioSpec, MediaInfo, VideoSpec
from livetx.media.params import PRESETS, TitleParams, output_size, resolve_audio, resolve_container, resolve_video
from livetx.media.watermark import WatermarkImage, make_overlay
from livetx.settings import LimitsSettings
from livetx.storage.base import ObjectInfo
from livetx.titles import PLAN_VERSION, ClipPlan, Profile, Rendition, RenditionTemplate, Title, codecs, estimate_bandwidth

COMPOSITE_PREFIX = "c-"  # a composite title's profile name: c-<id>
COMPOSITE_ID_CHARS = 16  # hex digits of a composite id
RECORD_VERSION = 1
RENDITION = "main"  # a composite's one rendition

ClipField = Callable[[int, str], str]  # (clip index in play order, JSON field name) -> the field as the request wrote it


def json_field(index: int, name: str) -> str:
    """A clip's field in the JSON form: `Clips[2].StartTime`."""
    return f"Clips[{index}].{name}"


@dataclass(frozen=True)
class ClipSource:
    """What the catalog found of one clip: its object (stat) and its header probe."""

    source: ObjectInfo
    info: MediaInfo


# ---- identity and record ---------------------------------------------------------------


def to_record(composite: Composite) -> dict[str, Any]:
    """The stored form: clips as [key, ss ms, t ms], the parameters that differ from their
    defaults as OSS text (read back by concat_params)."""
    params = {name: _oss_value(value) for name, value in _changed(composite.params).items()}
    return {"version": RECORD_VERSION, "clips": [[c.key, c.ss_ms, c.t_ms] for c in composite.clips], "params": params}


def from_record(record: Any) -> Composite:
    """Inverse of `to_record`; ValueError for anything else."""
    try:
        if record["version"] != RECORD_VERSION:
            raise ValueError("composite record version")
        clips = [Clip(str(key), int(ss), int(t)) for key, ss, t in record["clips"]]
        return make_composite(clips, concat_params(dict(record["params"])))
    except (KeyError, TypeError, ParameterError) as exc:
        raise ValueError(f"not a composite record: {exc}") from None


def composite_id(composite: Composite) -> str:
    """The id of a composite: a hash of its normal form (the same request, the same id)."""
    text = json.dumps(to_record(composite), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:COMPOSITE_ID_CHARS]


def profile_name(composite: Composite) -> str:
    return COMPOSITE_PREFIX + composite_id(composite)


def is_composite_profile(name: str) -> bool:
    rest = name.removeprefix(COMPOSITE_PREFIX)
    return rest != name and len(rest) == COMPOSITE_ID_CHARS and all(c in "0123456789abcdef" for c in rest)


# ---- planning -------------------------------------------------------------------------


def _clip_video(base: VideoSpec, params: ConcatParams, info: MediaInfo) -> VideoSpec:
    """The output's encoder with this clip's rotation, its picture fitted into the output frame
    (black bars; `scaletype=crop`: cut to cover)."""
    assert info.video is not None
    display_w, display_h = info.video.display_size
    fitting = "crop" if params.scaletype == "crop" else "fill"
    box = replace(params, s=f"{base.width}x{base.height}", sopt=0, scaletype=fitting)
    _, _, pic_w, pic_h = output_size(box, float(display_w), float(display_h))
    picture = (pic_w, pic_h) if (pic_w, pic_h) != (base.width, base.height) else None
    return replace(base, picture=picture, rotation=info.video.rotation)


def _output(
    composite: Composite, sources: Sequence[ClipSource], field: ClipField, threads: int
) -> tuple[VideoSpec | None, AudioSpec | None]:
    """The output's video and audio specs: the parameters', defaulting to the align clip's."""
    params = composite.params
    align = sources[composite.align].info
    video = audio = None
    if not params.vn:
        for i, clip in enumerate(sources):
            if clip.info.video is None:
                raise ParameterError(field(i, "URI"), "a source with a video stream (or no video in the output: vn=1)")
        video = resolve_video(params, align, threads=threads)
        assert video is not None
        video = replace(video, picture=None, rotation=0)  # the encoder's spec; each clip has its own picture
    if not params.an:
        for i, clip in enumerate(sources):
            if clip.info.audio is None:
                raise ParameterError(field(i, "URI"), "a source with an audio stream (or no audio in the output: an=1)")
        audio = resolve_audio(params, align)
    if video is None and audio is None:
        raise ParameterError("an", "an output with video or audio")
    return video, audio


def _clip_grid(
    clip: Clip, info: MediaInfo, index: int, video: VideoSpec | None, audio: AudioSpec | None, field: ClipField
) -> tuple[Fraction, Grid]:
    """(source time where the clip's title time starts, its grid of output frames)."""
    base = info.video.start if info.video is not None and info.video.start is not None else info.start
    available = info.end - base
    skip = Fraction(clip.ss_ms, 1000)
    if skip >= available:
        raise ParameterError(field(index, "StartTime"), f"less than the clip source's duration ({float(available):.3f} s)")
    duration = available - skip
    if clip.t_ms:
        duration = min(duration, Fraction(clip.t_ms, 1000))
    if video is not None:
        return base + skip, video_grid(duration, video.fps)
    assert audio is not None
    return base + skip, audio_grid(duration, audio.sample_rate)


def clip_windows(grid: Grid, st: int, initial: Sequence[int]) -> list[tuple[int, int]]:
    """A clip's segments as grid steps [first, end): the ordinary plan, with a tail shorter
    than half a regular segment joined to the segment before it."""
    windows = [(w.first, w.end) for w in plan_segments(grid, st, initial)]
    regular = grid.steps_for_ms(st)
    regular_tail = len(windows) > len(initial)  # the last is a regular segment, not an initial one
    if regular_tail and len(windows) > 1 and (windows[-1][1] - windows[-1][0]) * 2 < regular:
        _, end = windows.pop()
        windows[-1] = (windows[-1][0], end)
    return windows


def build_composite_title(
    composite: Composite,
    name: str,
    sources: Sequence[ClipSource],
    title_params: TitleParams | None = None,
    threads: int = 0,
    field: ClipField = json_field,
    watermarks: Mapping[str, WatermarkImage] | None = None,
) -> Title:
    """The title of `composite` (profile `name`, `c-<id>`) from what the catalog found of each
    clip (`sources`, in play order). Refusals name the clip's field through `field`.
    `watermarks`: the decoded image its `wm_image` names (the catalog read it)."""
    tparams = title_params or TitleParams()
    if len(sources) != len(composite.clips):
        raise ValueError("one ClipSource per clip")
    params = composite.params
    video, audio = _output(composite, sources, field, threads)
    unit: Fraction | None = None
    windows: list[SegmentWindow] = []
    plans: list[ClipPlan] = []
    offset = 0  # grid steps before this clip
    for i, (clip, found) in enumerate(zip(composite.clips, sources, strict=True)):
        source_start, grid = _clip_grid(clip, found.info, i, video, audio, field)
        unit = grid.unit
        first_window = len(windows)
        for first, end in clip_windows(grid, tparams.st, tparams.initial_segments if i == 0 else ()):
            windows.append(SegmentWindow(len(windows), offset + first, offset + end, grid.unit))
        start = offset * grid.unit
        offset += grid.steps
        clip_video = _clip_video(video, params, found.info) if video is not None else None
        plans.append(
            ClipPlan(found.source, found.info, source_start - start, start, offset * grid.unit, first_window, len(windows), clip_video)
        )
    assert unit is not None
    plans[-1] = replace(plans[-1], last=True)
    container = resolve_container(params)
    made_of = tuple((p.source.key, p.source.etag, p.origin, p.video) for p in plans)
    overlay = make_overlay(params, video.width, video.height, watermarks or {}) if video is not None else None
    facts: tuple[object, ...] = (PLAN_VERSION, "composite", video, audio, container, tuple(windows), made_of)
    if overlay is not None:  # (composites without a watermark keep their ids)
        facts += ("watermark", overlay.identity)
    spec_id = hashlib.sha256(repr(facts).encode()).hexdigest()[:12]
    peak, average = estimate_bandwidth(video, audio)
    rendition = Rendition(
        RENDITION,
        spec_id,
        video,
        audio,
        tuple(windows),
        peak,
        average,
        codecs(video, audio),
        initd=tparams.initd,
        ta=tparams.ta,
        container=container,
        clear_spec_id=spec_id,
        overlay=overlay,
    )
    profile = Profile(name=name, title=tparams, renditions=(RenditionTemplate(RENDITION, params, tparams),))
    versions = repr(tuple((p.source.key, p.source.etag) for p in plans))
    source = ObjectInfo(plans[0].source.key, sum(p.source.size for p in plans), hashlib.sha256(versions.encode()).hexdigest()[:32])
    align = sources[composite.align].info
    return Title(
        source=source,
        info=replace(align, subtitle_tracks=()),
        profile=profile,
        origin=plans[0].origin,
        duration=offset * unit,
        renditions=(rendition,),
        clips=tuple(plans),
    )


# ---- limits ---------------------------------------------------------------------------


def check_limits(composite: Composite, limits: LimitsSettings, name_of: Callable[[str], str] = str) -> None:
    """What the request asks for, against `[limits]` (fps, preset, size); `name_of` names a
    parameter as the request wrote it (concat.json_name for the JSON form)."""
    params = composite.params
    if params.fps is not None and params.fps > limits.max_fps:
        raise LimitExceeded(name_of("fps"), f"at most {limits.max_fps} fps (limits.max_fps)")
    slowest = PRESETS.index(limits.slowest_preset)
    if PRESETS.index(params.preset) > slowest:
        raise LimitExceeded(name_of("preset"), f"one of {', '.join(PRESETS[: slowest + 1])} (limits.slowest_preset)")
    if params.s is not None:
        width, _, height = params.s.partition("x")
        w, h = int(width or 0), int(height or 0)
        if max(w, h) > limits.max_side or w * h > limits.max_pixels:
            raise LimitExceeded(name_of("s"), _size_allowed(limits))


def _size_allowed(limits: LimitsSettings) -> str:
    return f"an output of at most {limits.max_pixels} pixels and {limits.max_side} per side (limits.max_pixels, limits.max_side)"


def check_planned(title: Title, limits: LimitsSettings, name_of: Callable[[str], str] = str) -> None:
    """The output as planned (the align clip's size and frame rate, the clips' total length)."""
    video = title.renditions[0].video
    if video is not None:
        if max(video.width, video.height) > limits.max_side or video.width * video.height > limits.max_pixels:
            raise LimitExceeded(name_of("s"), f"{_size_allowed(limits)}; these clips make {video.width}x{video.height}")
        if video.fps > limits.max_fps:
            raise LimitExceeded(name_of("fps"), f"at most {limits.max_fps} fps (limits.max_fps); these clips make {float(video.fps):g}")
    if title.duration > limits.max_duration:
        raise LimitExceeded(
            name_of("clips"),
            f"clips lasting at most {limits.max_duration} s in all (limits.max_duration); these last {float(title.duration):.3f} s",
        )
