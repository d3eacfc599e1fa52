from __future__ import annotations

from fractions import Fraction

import pytest

from livetx.errors import ParameterError
from livetx.media.model import AudioInfo, MediaInfo, VideoInfo
from livetx.media.params import (
    output_size,
    parse_rendition_params,
    parse_title_params,
    resolve_audio,
    resolve_container,
    resolve_video,
)

INFO = MediaInfo(
    format="mp4",
    duration=Fraction(60),
    start=Fraction(0),
    video=VideoInfo(0, "h264", 1920, 1080, Fraction(25), "yuv420p", Fraction(0)),
    audio=AudioInfo(1, "aac", 44100, 6, Fraction(0)),
)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"st": 4000}, "st", id="st-too-short"),
        pytest.param({"st": "abc"}, "st", id="st-not-int"),
        pytest.param({"ta": 31}, "ta", id="ta-range"),
        pytest.param({"initial_segments": [500]}, "initial_segments", id="initial-too-short"),
    ],
)
def test_title_params_name_the_bad_one(params: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_title_params(params)
    assert info.value.name == name and info.value.status == 400


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"vcodec": "vp9"}, "vcodec", id="vcodec"),
        pytest.param({"s": "1281x720"}, "s", id="odd-width"),
        pytest.param({"s": "32x32"}, "s", id="too-small"),
        pytest.param({"crf": 60}, "crf", id="crf-range"),
        pytest.param({"crf": 20, "vb": 1000000}, "crf", id="crf-and-vb"),
        pytest.param({"ar": 12345}, "ar", id="sample-rate"),
        pytest.param({"ac": 9}, "ac", id="channels"),
        pytest.param({"fps": "0"}, "fps", id="fps-zero"),
        pytest.param({"bogus": 1}, "bogus", id="unknown"),
        pytest.param({"arotate": 2}, "arotate", id="arotate"),
        pytest.param({"pixfmt": "rgb24"}, "pixfmt", id="pixfmt"),
        pytest.param({"vcodec": "av1", "container": "ts"}, "container", id="av1-in-ts"),
        pytest.param({"vcodec": "av1", "pixfmt": "yuv444p"}, "pixfmt", id="av1-444"),
    ],
)
def test_rendition_params_name_the_bad_one(params: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_rendition_params(params)
    assert info.value.name == name


@pytest.mark.parametrize(
    ("s", "extra", "geometry"),
    [
        pytest.param(None, {}, (1920, 1080, 1920, 1080), id="source"),
        pytest.param("1280x", {}, (1280, 720, 1280, 720), id="width-keeps-aspect"),
        pytest.param("x720", {}, (1280, 720, 1280, 720), id="height-keeps-aspect"),
        pytest.param("640x640", {}, (640, 640, 640, 640), id="stretch"),
        pytest.param("1280x1280", {"scaletype": "fit"}, (1280, 720, 1280, 720), id="fit"),
        pytest.param("1280x1280", {"scaletype": "fill"}, (1280, 1280, 1280, 720), id="fill-pads"),
        pytest.param("1280x1280", {"scaletype": "crop"}, (1280, 1280, 2276, 1280), id="crop-covers"),
        pytest.param("3840x2160", {}, (1920, 1080, 1920, 1080), id="no-upscale"),
        pytest.param("3840x2160", {"sopt": 0}, (3840, 2160, 3840, 2160), id="upscale-allowed"),
    ],
)
def test_output_size(s: str | None, extra: dict[str, object], geometry: tuple[int, int, int, int]) -> None:
    assert output_size(parse_rendition_params({"s": s, **extra}), 1920, 1080) == geometry


def test_non_square_pixels_give_square_output() -> None:
    anamorphic = VideoInfo(0, "mpeg2video", 720, 576, Fraction(25), "yuv420p", Fraction(0), sar=Fraction(64, 45))
    info = MediaInfo("mpeg", Fraction(10), Fraction(0), anamorphic, None)
    spec = resolve_video(parse_rendition_params({}), info)
    assert spec is not None and (spec.width, spec.height) == (1024, 576)


@pytest.mark.parametrize(
    ("rotation", "params", "size"),
    [
        pytest.param(0, {"s": "x720"}, (1280, 720), id="upright"),
        pytest.param(90, {"s": "x720"}, (404, 720), id="portrait-keeps-aspect"),
        pytest.param(270, {"s": "1280x720"}, (1280, 720), id="box-kept"),
        pytest.param(270, {"s": "1280x720", "arotate": 1}, (720, 1280), id="box-turned"),
        pytest.param(180, {"s": "1280x720", "arotate": 1}, (1280, 720), id="half-turn-keeps-box"),
    ],
)
def test_rotation_plans_in_display_orientation(rotation: int, params: dict[str, object], size: tuple[int, int]) -> None:
    phone = VideoInfo(0, "h264", 1920, 1080, Fraction(30), "yuv420p", Fraction(0), rotation=rotation)
    spec = resolve_video(parse_rendition_params(params), MediaInfo("mov,mp4,m4a,3gp,3g2,mj2", Fraction(10), Fraction(0), phone, None))
    assert spec is not None and (spec.width, spec.height) == size and spec.rotation == rotation


def test_sopt_2_refuses_upscale() -> None:
    with pytest.raises(ParameterError, match="'s'"):
        output_size(parse_rendition_params({"s": "3840x", "sopt": 2}), 1920, 1080)


def test_fpsopt_rules() -> None:
    assert resolve_video(parse_rendition_params({"fps": 30}), INFO).fps == 25  # type: ignore[union-attr]
    assert resolve_video(parse_rendition_params({"fps": 30, "fpsopt": 0}), INFO).fps == 30  # type: ignore[union-attr]
    with pytest.raises(ParameterError, match="fps"):
        resolve_video(parse_rendition_params({"fps": 30, "fpsopt": 2}), INFO)


@pytest.mark.parametrize(
    ("params", "container"),
    [
        pytest.param({}, "ts", id="h264"),
        pytest.param({"vcodec": "h265"}, "fmp4", id="h265"),
        pytest.param({"vcodec": "h265", "container": "ts"}, "ts", id="h265-ts-asked"),
        pytest.param({"vcodec": "av1"}, "fmp4", id="av1"),
        pytest.param({"vcodec": "av1", "container": "fmp4", "pixfmt": "yuv420p10le"}, "fmp4", id="av1-10bit"),
    ],
)
def test_container_defaults_by_codec(params: dict[str, object], container: str) -> None:
    assert resolve_container(parse_rendition_params(params)) == container


def test_av1_in_ts_is_refused_with_what_is_allowed() -> None:
    with pytest.raises(ParameterError) as info:
        parse_rendition_params({"vcodec": "av1", "container": "ts"})
    assert info.value.status == 400 and "fmp4" in info.value.details["allowed"]


def test_default_crf_and_audio() -> None:
    params = parse_rendition_params({})
    assert params.crf == 23
    audio = resolve_audio(params, INFO)
    assert audio is not None and (audio.sample_rate, audio.channels) == (44100, 2)
    assert resolve_audio(parse_rendition_params({"an": 1}), INFO) is None


LOW_BITRATE = MediaInfo(
    format="mp4",
    duration=Fraction(60),
    start=Fraction(0),
    video=VideoInfo(0, "h264", 1280, 720, Fraction(25), "yuv420p", Fraction(0), bit_rate=1_000_000),
    audio=AudioInfo(1, "aac", 48000, 2, Fraction(0), bit_rate=96_000),
)


@pytest.mark.parametrize(
    ("opt", "expected"),
    [pytest.param(0, 2_000_000, id="0-target"), pytest.param(1, 1_000_000, id="1-source-when-lower")],
)
def test_vbopt(opt: int, expected: int) -> None:
    spec = resolve_video(parse_rendition_params({"vb": 2_000_000, "vbopt": opt}), LOW_BITRATE)
    assert spec is not None and spec.bitrate == expected and spec.crf is None


def test_vbopt_2_and_abopt_2_refuse() -> None:
    with pytest.raises(ParameterError, match="'vb'"):
        resolve_video(parse_rendition_params({"vb": 2_000_000, "vbopt": 2}), LOW_BITRATE)
    with pytest.raises(ParameterError, match="'ab'"):
        resolve_audio(parse_rendition_params({"ab": 128_000, "abopt": 2}), LOW_BITRATE)


def test_abopt_and_aq() -> None:
    audio = resolve_audio(parse_rendition_params({"ab": 128_000}), LOW_BITRATE)
    assert audio is not None and audio.bitrate == 96_000
    audio = resolve_audio(parse_rendition_params({"aq": 50}), LOW_BITRATE)
    assert audio is not None and audio.bitrate == 176_000
    with pytest.raises(ParameterError, match="'aq'"):
        parse_rendition_params({"aq": 50, "ab": 64000})
    with pytest.raises(ParameterError, match="'aq'"):
        parse_rendition_params({"aq": 101})


# ---- numbers are matched against a strict pattern before anything parses them --------------

HOSTILE_NUMBERS = ["1e6000000", "9" * 5000, "1_000", " 25", "25 ", "+25", "0x19", "nan", "inf", "-inf", "NaN", "1e3", "١٢", "25.", ".5"]


@pytest.mark.parametrize("value", [*HOSTILE_NUMBERS, float("nan"), float("inf"), 1e400, True, 10**40])
@pytest.mark.parametrize("name", ["fps", "crf", "vb", "maxrate", "g", "ac"])
def test_hostile_numbers_are_refused_by_name(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        parse_rendition_params({name: value})
    assert info.value.name == name


@pytest.mark.parametrize("value", [*HOSTILE_NUMBERS, float("nan"), 1e400, 10**40])
@pytest.mark.parametrize("name", ["st", "ss", "t", "initd", "ta"])
def test_hostile_title_numbers_are_refused_by_name(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        parse_title_params({name: value})
    assert info.value.name == name


@pytest.mark.parametrize("size", ["١٢٨x٧٢", "0000000000000000000128x72", " 128x72", "128x72 "])
def test_sizes_take_ascii_digits_only(size: str) -> None:
    with pytest.raises(ParameterError, match="'s'"):
        parse_rendition_params({"s": size})


@pytest.mark.parametrize(
    ("value", "fps"),
    [("25", 25), (25, 25), (29.97, Fraction(2997, 100)), ("29.97", Fraction(2997, 100)), ("30000/1001", Fraction(30000, 1001))],
)
def test_frame_rates_in_every_honest_spelling(value: object, fps: Fraction) -> None:
    assert parse_rendition_params({"fps": value}).fps == fps


def test_a_huge_exponent_is_refused_at_once() -> None:
    """`Fraction("1e6000000")` builds a six-million-digit integer: seconds of a blocked loop."""
    import time

    began = time.process_time()
    for _ in range(100):
        with pytest.raises(ParameterError):
            parse_rendition_params({"fps": "1e60000000"})
    assert time.process_time() - began < 0.5
