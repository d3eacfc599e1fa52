"""Copy ("remux") renditions: whether a source's video can be copied, and segment windows cut at its keyframes.

A copy rendition passes the source's video packets through untouched, so it inherits
everything about them: the codec, profile, level, pixel format and bitrate must already be
what players decode, the picture must need no turning, and a segment can start only where the
source has a keyframe. Every rendition of a title that has a copy rendition is cut at the same
keyframes, so players switch between them seamlessly.

Pure: no av, aiohttp or storage imports. The keyframe times come from the probe
(`VideoInfo.keyframes`, read from the container's index by media/keyframes.py).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction

from livetx.media.model import VideoInfo

H264_PROFILES = frozenset({"Constrained Baseline", "Main", "High"})  # FFmpeg's names; every HLS player decodes them
H264_MAX_LEVEL = 51  # level_idc: 5.1
H264_PIX_FMTS = frozenset({"yuv420p"})  # 8-bit 4:2:0 (yuvj420p is full range: players show it wrong)
HEVC_PROFILES = frozenset({"Main", "Main 10"})
HEVC_PIX_FMTS = frozenset({"yuv420p", "yuv420p10le"})
GAP_LIMIT = 2  # keyframes may be at most this many segment targets apart


def copy_refusal(video: VideoInfo, st_ms: int, max_bitrate: int | None, container: str | None = None) -> str | None:
    """Why the source's video cannot be copied into segments of target `st_ms`, in words a
    title API can show; None when it can. `max_bitrate`: the rendition's limit (bit/s), checked
    when both it and the source's bitrate are known. `container`: the source's demuxer name,
    only to name it in the reason for a missing index."""
    for reason in _refusals(video, st_ms, max_bitrate, container):
        return reason
    return None


def _refusals(video: VideoInfo, st_ms: int, max_bitrate: int | None, container: str | None) -> Iterator[str]:
    """Every reason against copying, the cheapest to explain first."""
    if video.rotation:
        yield f"the source is displayed turned by {video.rotation} degrees, and a copy cannot turn its frames"
    codec = _codec_refusal(video)
    if codec is not None:
        yield codec
    if max_bitrate is not None and video.bit_rate is not None and video.bit_rate > max_bitrate:
        yield f"the source's video bitrate {video.bit_rate // 1000} kbit/s is over the rendition's {max_bitrate // 1000} kbit/s"
    if not video.keyframes:
        where = f"an {_container_name(container)} source" if container else "the source's container"
        yield f"no keyframe index in {where} (only MP4/MOV and Matroska/WebM with Cues have one that can be read without a scan)"
        return
    gap = _keyframe_gap(video)
    if video.start is not None and video.keyframes[0] > video.start + 1 / (2 * video.fps):
        yield f"the video does not start with a keyframe (the first is {float(video.keyframes[0] - video.start):.3f} s in)"
    limit = Fraction(st_ms, 1000) * GAP_LIMIT
    if gap > limit:
        yield f"keyframes {float(gap):.1f} s apart, more than 2 x st ({float(limit):.1f} s)"


def _codec_refusal(video: VideoInfo) -> str | None:
    """Why players cannot take the source's codec, profile, level and pixel format as they are."""
    if video.codec == "h264":
        if video.profile not in H264_PROFILES:
            return f"H.264 profile {video.profile or 'unknown'} (copies need Constrained Baseline, Main or High)"
        if video.level is None or video.level > H264_MAX_LEVEL:
            return f"H.264 level {_level(video.level)} (copies need 5.1 or lower)"
        if video.pix_fmt not in H264_PIX_FMTS:
            return f"H.264 pixel format {video.pix_fmt or 'unknown'} (copies need 8-bit yuv420p)"
        return None
    if video.codec == "hevc":
        if video.profile not in HEVC_PROFILES:
            return f"HEVC profile {video.profile or 'unknown'} (copies need Main or Main 10)"
        if video.pix_fmt not in HEVC_PIX_FMTS:
            return f"HEVC pixel format {video.pix_fmt or 'unknown'} (copies need yuv420p or yuv420p10le)"
        return None
    return f"codec {video.codec} (copies are made of H.264 or HEVC only)"


def _level(level: int | None) -> str:
    return "unknown" if level is None else f"{level / 10:g}"


def _container_name(container: str) -> str:
    """A person's name for FFmpeg's demuxer name."""
    names = {"mpegts": "MPEG-TS", "flv": "FLV", "avi": "AVI", "asf": "ASF", "mpeg": "MPEG-PS"}
    return names.get(container, container)


def _keyframe_gap(video: VideoInfo) -> Fraction:
    """The widest stretch without a keyframe: between two of them, or from the last to the end
    of the video (when the tail probe measured it)."""
    times = video.keyframes or ()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if video.end is not None and times:
        gaps.append(video.end - times[-1])
    return max(gaps, default=Fraction(0))


def keyframe_frames(keyframes: Sequence[Fraction], origin: Fraction, fps: Fraction, total_frames: int) -> list[int]:
    """The title frame indexes of source keyframes: title frame n shows at source time
    `origin + n / fps`; a keyframe counts for the frame it falls nearest to, when that frame
    is in the title. Ascending, without repeats."""
    frames = {math.floor((t - origin) * fps + Fraction(1, 2)) for t in keyframes}
    return sorted(f for f in frames if 0 <= f < total_frames)


def keyframe_windows(keyframes: Sequence[int], total_frames: int, st_frames: int, initial: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Segment windows [first, end) in title frames, every one starting at a keyframe.

    Greedy, one window at a time: its target length is the next of `initial` (a fast start),
    then `st_frames`; it ends at the keyframe nearest to start + target among those at least
    half a target (and at least one frame) on, or at the end of the title when that is nearer;
    the earlier one on a tie (with no keyframe that far, it runs to the end). The windows tile
    [0, total_frames). ValueError when frame 0 is not a keyframe (nothing before the first
    keyframe can be copied) or a length is not positive."""
    if total_frames < 1 or st_frames < 1 or any(n < 1 for n in initial):
        raise ValueError("frame counts must be positive")
    marks = sorted({k for k in keyframes if 0 <= k < total_frames})
    if not marks or marks[0] != 0:
        raise ValueError("frame 0 is not a keyframe")
    windows: list[tuple[int, int]] = []
    targets = _targets(initial, st_frames)
    start = 0
    while start < total_frames:
        end = _next_end(marks, start, next(targets), total_frames)
        windows.append((start, end))
        start = end
    return windows


def _targets(initial: Sequence[int], st_frames: int) -> Iterator[int]:
    yield from initial
    while True:
        yield st_frames


def _next_end(marks: Sequence[int], start: int, target: int, total_frames: int) -> int:
    """Where the window from `start` with `target` frames ends (see `keyframe_windows`): the
    nearest of the keyframes either side of the ideal end, and the title's end."""
    shortest = start + max(1, math.ceil(target / 2))
    ideal = start + target
    at = bisect.bisect_left(marks, ideal)
    candidates = [k for k in marks[max(0, at - 1) : at + 1] if k >= shortest] + [total_frames]
    return min(candidates, key=lambda k: (abs(k - ideal), k))


# RFC 6381 profile bytes (profile_idc, constraint flags) of the H.264 profiles a copy takes
_AVC_PROFILE_BYTES = {"Constrained Baseline": "42e0", "Main": "4d40", "High": "6400"}
# HEVC: general_profile_idc and the compatibility flags (bit-reversed hex; Main decoders are Main 10 compatible)
_HEVC_PROFILE_FIELDS = {"Main": "1.6", "Main 10": "2.4"}


def copy_codecs(video: VideoInfo) -> str:
    """The CODECS string (RFC 6381) of a copy of `video`, from its profile and level: what the
    source's own parameter sets declare, which is what players check against."""
    if video.codec == "h264":
        return f"avc1.{_AVC_PROFILE_BYTES[video.profile or 'High']}{video.level or 0:02x}"
    # main tier; constraint byte 90: progressive source, frame only (as the transcoded HEVC renditions say)
    return f"hvc1.{_HEVC_PROFILE_FIELDS[video.profile or 'Main']}.L{video.level or 0}.90"


def cuts_at_keyframes(
    video: VideoInfo, origin: Fraction, fps: Fraction, total_frames: int, st_ms: int, initial_ms: Sequence[int]
) -> tuple[Fraction, ...]:
    """The title times where segments of a title with a copy rendition start and end: at the
    source's keyframes, about `st_ms` apart (the `initial_ms` lengths first), from 0 to the end."""
    keyframes = keyframe_frames(video.keyframes or (), origin, fps, total_frames)
    st_frames = max(1, round(Fraction(st_ms, 1000) * fps))
    initial = [max(1, round(Fraction(ms, 1000) * fps)) for ms in initial_ms]
    windows = keyframe_windows(keyframes, total_frames, st_frames, initial)
    return (*(Fraction(first) / fps for first, _ in windows), Fraction(total_frames) / fps)
