"""The segment planner: which segments a title is cut into, and which of them to make early.

Pure functions of the title's length and the segmenting parameters. No keyframe scan: every
boundary sits on the output grid (whole output frames, or whole AAC frames for audio-only
output), so a segment's EXTINF is an exact rational number of seconds and every segment can
be made alone, in any order, and still join its neighbours.

One function per policy, in the spirit of nginx-vod-module's segmenter: the grid, the
initial (short) segments, the regular segments with a shorter last one, the pre-transcode
set and the lookahead set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Grid:
    """The output time grid: `unit` seconds per step, `steps` steps in the title."""

    unit: Fraction
    steps: int

    @property
    def duration(self) -> Fraction:
        return self.unit * self.steps

    def steps_for_ms(self, ms: int) -> int:
        """Whole grid steps nearest to `ms` milliseconds (at least one)."""
        return max(1, round(Fraction(ms, 1000) / self.unit))


@dataclass(frozen=True)
class SegmentWindow:
    """Segment `index` covers grid steps [first, end) of the title."""

    index: int
    first: int
    end: int
    unit: Fraction

    @property
    def start(self) -> Fraction:
        return self.first * self.unit

    @property
    def stop(self) -> Fraction:
        return self.end * self.unit

    @property
    def duration(self) -> Fraction:
        return (self.end - self.first) * self.unit


FRAME_TOLERANCE = Fraction(1, 10)


def video_grid(duration: Fraction, fps: Fraction) -> Grid:
    """Grid of output frames: the whole frames that fit the title.

    A container duration a little short of a whole frame (rounded timestamps) still counts
    that frame; audio running on for part of a frame past the video adds none.
    """
    return Grid(unit=1 / fps, steps=max(1, math.floor(duration * fps + FRAME_TOLERANCE)))


AAC_FRAME = 1024


def audio_grid(duration: Fraction, sample_rate: int) -> Grid:
    """Grid of AAC frames, for audio-only output: boundaries fall between AAC packets."""
    unit = Fraction(AAC_FRAME, sample_rate)
    return Grid(unit=unit, steps=max(1, math.ceil(duration / unit)))


def initial_lengths(grid: Grid, initial_ms: Sequence[int]) -> list[int]:
    """Lengths in grid steps of the short opening segments (e.g. 2-2-2 s for a fast start)."""
    return [grid.steps_for_ms(ms) for ms in initial_ms]


def regular_lengths(remaining: int, regular: int) -> list[int]:
    """Regular segments fill what is left; the last one is shorter when it does not divide."""
    full, rest = divmod(remaining, regular)
    return [regular] * full + ([rest] if rest else [])


def plan_segments(grid: Grid, segment_ms: int, initial_ms: Sequence[int] = ()) -> tuple[SegmentWindow, ...]:
    """Cut the title into segments: initial ones first, then regular ones, covering every step once."""
    lengths: list[int] = []
    used = 0
    for length in initial_lengths(grid, initial_ms):
        if used >= grid.steps:
            break
        length = min(length, grid.steps - used)
        lengths.append(length)
        used += length
    lengths += regular_lengths(grid.steps - used, grid.steps_for_ms(segment_ms))
    windows = []
    first = 0
    for index, length in enumerate(lengths):
        windows.append(SegmentWindow(index=index, first=first, end=first + length, unit=grid.unit))
        first += length
    return tuple(windows)


def target_duration(windows: Sequence[SegmentWindow]) -> int:
    """EXT-X-TARGETDURATION: no smaller than any EXTINF rounded to the nearest integer (RFC 8216 4.3.3.1)."""
    return max(1, max(math.floor(w.duration + Fraction(1, 2)) for w in windows))


def pretranscode_indexes(windows: Sequence[SegmentWindow], initd_ms: int) -> list[int]:
    """Segments to make when the playlist is created.

    0 means none; a negative value, or one past the title's end, means all; a value that ends
    inside a segment takes the whole of that segment.
    """
    if initd_ms == 0:
        return []
    if initd_ms < 0:
        return [w.index for w in windows]
    limit = Fraction(initd_ms, 1000)
    return [w.index for w in windows if w.start < limit]


def lookahead_indexes(windows: Sequence[SegmentWindow], current: int, ahead: int) -> list[int]:
    """The `ahead` segments after `current`, clipped to the title."""
    return [w.index for w in windows[current + 1 : current + 1 + ahead]]
