from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livetx.hls.plan import (
    audio_grid,
    lookahead_indexes,
    plan_segments,
    pretranscode_indexes,
    target_duration,
    video_grid,
)

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("duration", "fps", "steps"),
    [
        pytest.param(Fraction(60), Fraction(30), 1800, id="exact"),
        pytest.param(Fraction(6023, 1000), Fraction(25), 150, id="audio-runs-on-part-of-a-frame"),
        pytest.param(Fraction(59999, 1000), Fraction(30), 1800, id="duration-rounded-down"),
        pytest.param(Fraction(1, 100), Fraction(30), 1, id="at-least-one"),
    ],
)
def test_video_grid_counts_whole_frames(duration: Fraction, fps: Fraction, steps: int) -> None:
    assert video_grid(duration, fps).steps == steps


def test_ntsc_segments_claim_their_real_duration() -> None:
    windows = plan_segments(video_grid(Fraction(60), NTSC), 10000, [2000, 2000, 2000])
    assert [w.duration for w in windows[:4]] == [Fraction(2002, 1000)] * 3 + [Fraction(1001, 100)]
    assert windows[0].end - windows[0].first == 60


def test_initial_then_regular_then_shorter_last() -> None:
    windows = plan_segments(video_grid(Fraction(37), Fraction(25)), 10000, [2000, 2000, 2000])
    assert [float(w.duration) for w in windows] == [2, 2, 2, 10, 10, 10, 1]


def test_initial_segments_longer_than_title() -> None:
    windows = plan_segments(video_grid(Fraction(3), Fraction(25)), 10000, [2000, 2000, 2000])
    assert [float(w.duration) for w in windows] == [2, 1]


def test_audio_grid_boundaries_fall_between_aac_frames() -> None:
    grid = audio_grid(Fraction(10), 48000)
    windows = plan_segments(grid, 5000, [])
    for w in windows:
        assert (w.start * 48000) % 1024 == 0


def test_target_duration_is_rounded_max() -> None:
    windows = plan_segments(video_grid(Fraction(60), NTSC), 10000, [])
    assert target_duration(windows) == 10
    windows = plan_segments(video_grid(Fraction(60), Fraction(25)), 15000, [])
    assert target_duration(windows) == 15


@pytest.mark.parametrize(
    ("initd", "expected"),
    [
        pytest.param(0, [], id="none"),
        pytest.param(-1, list(range(7)), id="negative-all"),
        pytest.param(10**9, list(range(7)), id="past-end-all"),
        pytest.param(6000, [0, 1, 2], id="whole-initial-segments"),
        pytest.param(6001, [0, 1, 2, 3], id="mid-segment-takes-it"),
    ],
)
def test_pretranscode_set(initd: int, expected: list[int]) -> None:
    windows = plan_segments(video_grid(Fraction(37), Fraction(25)), 10000, [2000, 2000, 2000])
    assert pretranscode_indexes(windows, initd) == expected


def test_lookahead_clipped_to_title() -> None:
    windows = plan_segments(video_grid(Fraction(37), Fraction(25)), 10000, [2000, 2000, 2000])
    assert lookahead_indexes(windows, 4, 12) == [5, 6]
    assert lookahead_indexes(windows, 0, 2) == [1, 2]


@settings(deadline=None, max_examples=100)
@given(
    ms=st.integers(min_value=1, max_value=3600 * 1000),
    fps=st.sampled_from([Fraction(24000, 1001), Fraction(24), Fraction(25), NTSC, Fraction(30), Fraction(50), Fraction(60000, 1001)]),
    st_ms=st.integers(min_value=5000, max_value=15000),
    initial=st.lists(st.integers(min_value=1000, max_value=15000), max_size=5),
)
def test_windows_cover_the_title_once(ms: int, fps: Fraction, st_ms: int, initial: list[int]) -> None:
    grid = video_grid(Fraction(ms, 1000), fps)
    windows = plan_segments(grid, st_ms, initial)
    assert windows[0].first == 0 and windows[-1].end == grid.steps
    for a, b in itertools.pairwise(windows):
        assert a.end == b.first and a.first < a.end
    assert sum(w.end - w.first for w in windows) == grid.steps
    longest = max(w.end - w.first for w in windows)
    assert round(longest * grid.unit) <= target_duration(windows)


def test_a_rendition_may_set_its_own_segmenting() -> None:
    from livetx.media.model import MediaInfo, VideoInfo
    from livetx.storage.base import ObjectInfo
    from livetx.titles import build_title, parse_profile

    profile = parse_profile(
        "p", {"st": 10000, "initial_segments": [2000], "renditions": {"a": {}, "b": {"st": 6000, "initial_segments": [], "initd": 0}}}
    )
    video = VideoInfo(0, "h264", 640, 360, Fraction(25), "yuv420p", Fraction(0), end=Fraction(30))
    title = build_title(ObjectInfo("k", 1, "e"), MediaInfo("mp4", Fraction(30), Fraction(0), video, None), profile)
    a, b = title.variants
    assert [w.duration for w in a.windows] == [2, 10, 10, 8] and a.initd == profile.title.initd
    assert [w.duration for w in b.windows] == [6] * 5 and b.initd == 0
