"""Copy renditions, planned: which sources qualify, and segment windows cut at their keyframes (pure)."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livetx.copyplan import copy_refusal, keyframe_frames, keyframe_windows
from livetx.media.model import VideoInfo

FPS = Fraction(30)
SECOND = 30  # frames


def video(**changes: object) -> VideoInfo:
    """A 60 s 1080p30 H.264 High 4.1 source with a keyframe every 2 s: one a copy can be made of."""
    base = VideoInfo(
        index=0,
        codec="h264",
        width=1920,
        height=1080,
        fps=FPS,
        pix_fmt="yuv420p",
        start=Fraction(0),
        end=Fraction(60),
        bit_rate=5_000_000,
        profile="High",
        level=41,
        keyframes=tuple(Fraction(2 * n) for n in range(30)),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_plain_h264_source_can_be_copied() -> None:
    assert copy_refusal(video(), 6000, 8_000_000) is None


def test_hevc_main10_can_be_copied() -> None:
    assert copy_refusal(video(codec="hevc", profile="Main 10", level=153, pix_fmt="yuv420p10le"), 6000, None) is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        pytest.param({"codec": "vp9", "profile": "Profile 0"}, "codec vp9", id="vp9"),
        pytest.param({"profile": "High 10", "pix_fmt": "yuv420p10le"}, "H.264 profile High 10", id="h264-10bit"),
        pytest.param({"profile": "High 4:2:2"}, "H.264 profile High 4:2:2", id="h264-422"),
        pytest.param({"level": 52}, "H.264 level 5.2", id="h264-level"),
        pytest.param({"level": None}, "H.264 level unknown", id="h264-level-unknown"),
        pytest.param({"pix_fmt": "yuvj420p"}, "pixel format yuvj420p", id="h264-full-range"),
        pytest.param({"codec": "hevc", "profile": "Rext"}, "HEVC profile Rext", id="hevc-rext"),
        pytest.param({"codec": "hevc", "profile": "Main", "pix_fmt": "yuv422p10le"}, "HEVC pixel format yuv422p10le", id="hevc-422"),
        pytest.param({"rotation": 90}, "turned by 90 degrees", id="rotated"),
        pytest.param({"bit_rate": 9_000_000}, "9000 kbit/s is over the rendition's 8000 kbit/s", id="bitrate"),
        pytest.param({"keyframes": None}, "no keyframe index", id="no-index"),
        pytest.param({"keyframes": (Fraction(0), Fraction(2), Fraction(14), Fraction(16))}, "keyframes 44.0 s apart", id="tail-gap"),
        pytest.param(
            {"keyframes": (Fraction(0), Fraction(13), *map(Fraction, range(14, 60, 2)))},
            "keyframes 13.0 s apart, more than 2 x st (12.0 s)",
            id="gap",
        ),
        pytest.param({"keyframes": tuple(Fraction(1 + 2 * n) for n in range(30))}, "does not start with a keyframe", id="late-first"),
    ],
)
def test_refusals_say_why(changes: dict[str, object], words: str) -> None:
    reason = copy_refusal(video(**changes), 6000, 8_000_000)
    assert reason is not None and words in reason


def test_a_gap_of_exactly_two_targets_is_allowed() -> None:
    keyframes = (Fraction(0), *(Fraction(12 * n) for n in range(1, 5)))
    assert copy_refusal(video(keyframes=keyframes), 6000, None) is None
    assert copy_refusal(video(keyframes=keyframes), 5999, None) is not None


def test_the_missing_index_names_the_container() -> None:
    reason = copy_refusal(video(keyframes=None), 6000, None, container="mpegts")
    assert reason is not None and "no keyframe index in an MPEG-TS source" in reason


def test_unknown_bitrates_are_not_held_against_the_source() -> None:
    assert copy_refusal(video(bit_rate=None), 6000, 1000) is None
    assert copy_refusal(video(bit_rate=50_000_000), 6000, None) is None


def test_keyframe_frames_map_source_seconds_onto_the_title() -> None:
    # a title starting 1 s into the source: the keyframe at 0 s is before it, the one at 61 s past it
    times = [Fraction(0), Fraction(1), Fraction(3), Fraction(3001, 1000), Fraction(61)]
    assert keyframe_frames(times, Fraction(1), FPS, 60 * SECOND) == [0, 60]


def test_two_second_gops_make_six_second_windows() -> None:
    keyframes = range(0, 60 * SECOND, 2 * SECOND)
    windows = keyframe_windows(keyframes, 60 * SECOND, 6 * SECOND)
    assert windows == [(n, n + 6 * SECOND) for n in range(0, 60 * SECOND, 6 * SECOND)]


def test_initial_segments_come_first() -> None:
    keyframes = range(0, 60 * SECOND, 2 * SECOND)
    windows = keyframe_windows(keyframes, 60 * SECOND, 6 * SECOND, [2 * SECOND, 2 * SECOND])
    lengths = [(end - first) // SECOND for first, end in windows]
    assert lengths[:3] == [2, 2, 6]
    assert sum(lengths) == 60


def test_irregular_gops_end_at_the_keyframe_nearest_the_target() -> None:
    # scene cuts: keyframes at 0, 2.5, 5.5, 7, 13, 14, 20 s in a 24 s title, target 6 s
    keyframes = [int(s * SECOND) for s in (0, 2.5, 5.5, 7, 13, 14, 20)]
    windows = keyframe_windows(keyframes, 24 * SECOND, 6 * SECOND)
    assert [(a / SECOND, b / SECOND) for a, b in windows] == [(0, 5.5), (5.5, 13), (13, 20), (20, 24)]


def test_a_keyframe_too_soon_is_passed_over() -> None:
    # keyframes 1 s and 10 s in, target 6 s: 1 s is under half a target, 10 s is the nearest after it
    windows = keyframe_windows([0, SECOND, 10 * SECOND], 20 * SECOND, 6 * SECOND)
    assert windows == [(0, 10 * SECOND), (10 * SECOND, 20 * SECOND)]


def test_the_end_of_the_title_wins_when_nearer() -> None:
    windows = keyframe_windows([0, 6 * SECOND, 10 * SECOND], 11 * SECOND, 6 * SECOND)
    assert windows == [(0, 6 * SECOND), (6 * SECOND, 11 * SECOND)]


def test_frame_zero_must_be_a_keyframe() -> None:
    with pytest.raises(ValueError, match="frame 0"):
        keyframe_windows([15, 45], 60, 30)


def test_many_keyframes_are_planned_quickly() -> None:
    # an all-intra two-hour source: every frame is a keyframe (the planner must not go quadratic)
    total = 2 * 3600 * SECOND
    windows = keyframe_windows(range(total), total, 6 * SECOND)
    assert len(windows) == 1200 and all(end - first == 6 * SECOND for first, end in windows)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[int], int, int, list[int]]:
    total = draw(st.integers(1, 3000))
    rest = draw(st.lists(st.integers(1, total - 1), max_size=200)) if total > 1 else []
    st_frames = draw(st.integers(1, 400))
    initial = draw(st.lists(st.integers(1, 200), max_size=4))
    return [0, *rest], total, st_frames, initial


@settings(max_examples=400, deadline=None)
@given(layouts())
def test_windows_tile_the_title_from_keyframes(layout: tuple[list[int], int, int, list[int]]) -> None:
    keyframes, total, st_frames, initial = layout
    windows = keyframe_windows(keyframes, total, st_frames, initial)
    assert windows[0][0] == 0 and windows[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))  # no gap, no overlap
    assert all(first < end for first, end in windows)
    assert {first for first, _ in windows} <= set(keyframes)
    targets = [*initial, *[st_frames] * len(windows)]
    for (first, end), target in zip(windows[:-1], targets, strict=False):
        assert end - first >= math.ceil(target / 2)  # never shorter than half its target, but the last


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 8), st.integers(1, 40))
def test_regular_gops_dividing_the_target_give_whole_targets(gop: int, per_segment: int, segments: int) -> None:
    st_frames = gop * per_segment
    total = st_frames * segments
    windows = keyframe_windows(range(0, total, gop), total, st_frames)
    assert windows == [(n * st_frames, (n + 1) * st_frames) for n in range(segments)]


def test_copyplan_is_pure() -> None:
    """Planning imports no media, web or storage code (a fresh interpreter, so nothing else loaded them)."""
    loaded = "sorted(m for m in sys.modules if m.split('.')[0] in ('av', 'aiohttp') or m.startswith('livetx.storage'))"
    code = f"import sys, livetx.copyplan; print({loaded})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
