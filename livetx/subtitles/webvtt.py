"""Cues -> WebVTT segments on the video's windows, and the subtitle media playlist.

One rule: segment i holds every cue with `start < window.stop and end > window.start`, times
unchanged, so a cue spanning a boundary is written whole in both segments (players drop the
repeat, RFC 8216 3.5). Cue times are title time; the header's X-TIMESTAMP-MAP says where
title time 0 sits on the media timeline: `MPEGTS:TS_OFFSET x 90 kHz` (126000) for MPEG-TS
segments, whose timestamps carry TS_OFFSET, and `MPEGTS:0` for fMP4, whose `tfdt` is title
time. The playlist has the video's EXTINFs, so segment i of every rendition covers the same
time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from fractions import Fraction

from livetx.hls.model import MediaPlaylist, MediaSegment
from livetx.hls.plan import SegmentWindow, target_duration
from livetx.hls.render import render_media
from livetx.media.timeline import MPEG_TS_CLOCK, TS_OFFSET
from livetx.subtitles.cues import Cue, timestamp


def mpegts_offset(container: str) -> int:
    """The MPEGTS value of X-TIMESTAMP-MAP: title time 0 in 90 kHz ticks of the media."""
    offset = TS_OFFSET if container == "ts" else Fraction(0)
    ticks = offset * MPEG_TS_CLOCK
    assert ticks.denominator == 1, "TS_OFFSET is a whole number of 90 kHz ticks"
    return int(ticks)


def _bounds(window: SegmentWindow) -> tuple[Fraction, Fraction]:
    """The window in milliseconds, exact (a frame-grid boundary need not be a whole ms)."""
    return window.start * 1000, window.stop * 1000


def overlaps(cue: Cue, window: SegmentWindow) -> bool:
    start, stop = _bounds(window)
    return cue.start < stop and cue.end > start


def assign(cues: Sequence[Cue], windows: Sequence[SegmentWindow]) -> list[list[Cue]]:
    """The cues of every window, in cue order: each cue in every window it overlaps.
    `windows` are the planner's (contiguous, in order); a cue past the last window is in none."""
    segments: list[list[Cue]] = [[] for _ in windows]
    bounds = [_bounds(window) for window in windows]
    # whole ms below which a cue start lies before a window's stop: start < stop <=> start < ceil(stop)
    stops = [math.ceil(stop) for _, stop in bounds]
    for cue in cues:
        at = bisect.bisect_right(stops, cue.start)  # the first window ending after the start
        while at < len(windows) and cue.end > bounds[at][0]:
            segments[at].append(cue)
            at += 1
    return segments


def segment_cues(cues: Sequence[Cue], window: SegmentWindow) -> list[Cue]:
    """The cues of one window (what one segment request needs), in cue order."""
    return span_cues(cues, window.start, window.stop)


def span_cues(cues: Sequence[Cue], start: Fraction, stop: Fraction) -> list[Cue]:
    """The cues overlapping title time [start, stop) seconds, in cue order (a worker's segment
    job carries its window as these two times)."""
    # whole-ms bounds: end > start <=> end > floor(start); start < stop <=> start < ceil(stop)
    low, high = math.floor(start * 1000), math.ceil(stop * 1000)
    return [cue for cue in cues if cue.start < high and cue.end > low]


def render_segment(cues: Sequence[Cue], container: str) -> str:
    """One WebVTT segment: header, timestamp map, then each cue (an empty segment is valid)."""
    lines = ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{mpegts_offset(container)},LOCAL:{timestamp(0)}", ""]
    for cue in cues:
        settings = f" {cue.settings}" if cue.settings else ""
        lines += [f"{timestamp(cue.start)} --> {timestamp(cue.end)}{settings}", cue.text, ""]
    return "\n".join(lines) + "\n"


def playlist_text(windows: Sequence[SegmentWindow], segment_uri: Callable[[SegmentWindow], str]) -> str:
    """The subtitle media playlist: one `.vtt` segment per video window, with its EXTINF and
    the video's EXT-X-TARGETDURATION. `segment_uri` names segment i (keys live in layout.py)."""
    segments = tuple(MediaSegment(uri=segment_uri(window), duration=window.duration) for window in windows)
    return render_media(MediaPlaylist(segments=segments, target_duration=target_duration(windows)))
