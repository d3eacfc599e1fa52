"""Segments made alone, in any order, join as one pass: checked by decoding, frame by frame and sample by sample."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from livetx.errors import TranscodeFailed
from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, read_index, write_sample
from livetx.media.transcode import _AudioWindow, _VideoWindow, _Window, _window, transcode_segment
from livetx.titles import codecs
from tests.checker import check_tone, decode_audio, decode_video, expected_index, open_joined, residual_peaks
from tests.conftest import Source
from tests.support import job_for, make_any_segments

SOURCE_NAMES = ["mp4-30", "mkv-25-44k", "ts-2997", "ts-10h"]


def make_segments(src: Source, out_fps: Fraction | None = None, seed: int = 1) -> tuple[list[bytes], list[Fraction], Fraction]:
    segments, durations, fps = make_any_segments(src, out_fps, seed)
    assert fps is not None
    return segments, durations, fps


@pytest.fixture(scope="module", params=SOURCE_NAMES)
def joined(request: pytest.FixtureRequest, sources: dict[str, Source]) -> tuple[Source, list[bytes], list[Fraction], Fraction]:
    src = sources[request.param]
    segments, durations, fps = make_segments(src)
    return src, segments, durations, fps


def test_every_frame_once_in_order(joined: tuple[Source, list[bytes], list[Fraction], Fraction]) -> None:
    src, segments, _, _ = joined
    video = decode_video(open_joined(segments))
    assert video.indexes == list(range(src.frames))


def test_video_timestamps_continuous_and_absolute(joined: tuple[Source, list[bytes], list[Fraction], Fraction]) -> None:
    _src, segments, _, fps = joined
    video = decode_video(open_joined(segments))
    expected = [int(Fraction(7, 5) * 90000 + k * 90000 / fps) for k in range(len(video.pts))]
    assert video.pts == expected


def test_decode_timestamps_rise_one_frame_at_a_time_with_the_shipped_preset(sources: dict[str, Source]) -> None:
    """With the default preset (veryfast, which would use B-frames), the video DTS of segments made
    alone rise by exactly one frame across every boundary and start where the PTS do: no step back
    where a segment's reorder delay differs from its neighbour's, and no hole before the first frame."""
    src = sources["ts-10h"]
    segments, _, fps = make_any_segments(src, preset="veryfast")
    with open_joined(segments) as container:
        packets = [(p.pts, p.dts) for p in container.demux(video=0) if p.size]
    step = 90000 / fps
    assert packets[0][0] == packets[0][1]
    assert [dts for _, dts in packets] == [packets[0][1] + round(k * step) for k in range(len(packets))]


def test_each_segment_opens_on_a_keyframe_and_lasts_its_extinf(joined: tuple[Source, list[bytes], list[Fraction], Fraction]) -> None:
    _, segments, durations, fps = joined
    for data, duration in zip(segments, durations, strict=True):
        video = decode_video(av.open(io.BytesIO(data), format="mpegts"))
        assert video.keyframes[0]
        assert Fraction(len(video.indexes)) / fps == duration


def test_audio_timestamps_continuous(joined: tuple[Source, list[bytes], list[Fraction], Fraction]) -> None:
    _, segments, _, _ = joined
    audio = decode_audio(open_joined(segments))
    step = 1024 * 90000 / audio.sample_rate
    jumps = [b - a - step for a, b in zip(audio.pts, audio.pts[1:], strict=False)]
    assert max(abs(j) for j in jumps) <= 90  # 1 ms


def test_audio_starts_with_video_in_every_segment(joined: tuple[Source, list[bytes], list[Fraction], Fraction]) -> None:
    _, segments, _, _ = joined
    for data in segments:
        video = decode_video(av.open(io.BytesIO(data), format="mpegts"))
        audio = decode_audio(av.open(io.BytesIO(data), format="mpegts"))
        frame_90k = 1024 * 90000 / audio.sample_rate
        assert 0 <= audio.first_pts - video.pts[0] < frame_90k


def test_tone_has_no_phase_jump_or_gap(joined: tuple[Source, list[bytes], list[Fraction], Fraction]) -> None:
    src, segments, _, _ = joined
    audio = decode_audio(open_joined(segments))
    report = check_tone(audio, src.spec.tone_hz, skip_tail=3)
    assert report.worst_phase < 0.05, report
    assert report.worst_amplitude < 0.05, report


def test_no_click_at_boundaries(joined: tuple[Source, list[bytes], list[Fraction], Fraction]) -> None:
    src, segments, _, _ = joined
    audio = decode_audio(open_joined(segments))
    residual = residual_peaks(audio, src.spec.tone_hz)
    body = residual[2048 : -3 * 2048]
    # AAC at 128 kbit/s codes a 0.5 tone with errors ~1e-2; a click is an order of magnitude more
    assert body.max() < 0.05


def test_resampled_frame_rate_picks_source_frames_by_rule(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    segments, _, fps = make_segments(src, out_fps=Fraction(24))
    video = decode_video(open_joined(segments))
    assert video.indexes == [expected_index(p, fps, src.spec.fps) for p in video.pts]
    assert len(video.indexes) == round(src.spec.seconds * 24)


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])
@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720), (1920, 1080)])
def test_codecs_string_matches_encoded_sps(sources: dict[str, Source], width: int, height: int, preset: str) -> None:
    src = sources["mp4-30"]
    spec = VideoSpec("h264", width, height, src.spec.fps, preset=preset)
    job = SegmentJob(str(src.path), Fraction(0), Fraction(0), Fraction(1, 3), spec, None, 0, None)
    with av.open(io.BytesIO(transcode_segment(job).data), format="mpegts") as container:
        raw = bytes(next(p for p in container.demux(video=0) if p.size))
    sps = raw.index(b"\x00\x00\x01\x67") + 4
    assert codecs(spec, None) == f"avc1.{raw[sps]:02x}{raw[sps + 1]:02x}{raw[sps + 2]:02x}"


def test_audio_only_source_joins_gaplessly_on_the_aac_grid(sources: dict[str, Source]) -> None:
    src = sources["audio-only"]
    segments, durations, fps = make_any_segments(src)
    assert fps is None
    for data, duration in zip(segments, durations, strict=True):
        with av.open(io.BytesIO(data), format="mpegts") as container:
            assert not container.streams.video
        assert (duration * src.spec.sample_rate) % 1024 == 0  # boundaries between AAC frames
    audio = decode_audio(open_joined(segments))
    assert len(audio.samples) == sum(durations) * src.spec.sample_rate
    report = check_tone(audio, src.spec.tone_hz, skip_tail=3)
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report


def test_video_only_source(sources: dict[str, Source]) -> None:
    src = sources["video-only"]
    segments, _, fps = make_any_segments(src)
    assert fps == 24
    with open_joined(segments) as container:
        assert not container.streams.audio
        video = decode_video(container)
    assert video.indexes == list(range(src.frames))


def test_fill_letterboxes_the_whole_picture(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]  # 320x180 into a 320x320 box: 70 rows of black above and below
    segments, _, _ = make_any_segments(src, s="320x320", scaletype="fill", sopt=0)
    with open_joined(segments) as container:
        indexes = []
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray")
            assert luma.shape == (320, 320)
            assert luma[:66].max() < 40 and luma[-66:].max() < 40  # bars
            indexes.append(read_index(luma[70:250]))
    assert indexes == list(range(src.frames))


def test_crop_fills_the_box(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    segments, _, _ = make_any_segments(src, s="180x180", scaletype="crop")
    with open_joined(segments) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(frames) == src.frames and all(f.shape == (180, 180) for f in frames)
    assert min(float(f[60:120].mean()) for f in frames) > 40  # picture, not bars


def test_non_square_pixels_are_made_square(tmp_path: Path) -> None:
    spec = SampleSpec(seconds=2.0, width=320, height=240, fps=Fraction(25), sar=Fraction(4, 3))
    path = tmp_path / "anamorphic.mp4"
    write_sample(path, spec)
    segments, _, _ = make_any_segments(Source(path, spec))
    with open_joined(segments) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (426, 240)
        assert decode_video(container).indexes == list(range(50))


def test_aq_sets_aac_quality(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    sizes = {}
    for aq in (5, 95):
        segments, _, _ = make_any_segments(src, aq=aq, ab=None)
        with open_joined(segments) as container:
            sizes[aq] = sum(p.size for p in container.demux(audio=0))
    assert sizes[5] * 2 < sizes[95]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_source_is_turned_upright(tmp_path: Path, rotation: int) -> None:
    """The display matrix is applied as FFmpeg applies it: turned counter-clockwise by its angle."""
    spec = SampleSpec(seconds=2.0, width=320, height=180, fps=Fraction(25), rotation=rotation)
    path = tmp_path / f"rotated-{rotation}.mp4"
    write_sample(path, spec)
    segments, _, _ = make_any_segments(Source(path, spec))
    turns = rotation // 90
    with open_joined(segments) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert frames[0].shape == ((320, 180) if turns % 2 else (180, 320))
    assert [read_index(np.rot90(f, -turns)) for f in frames] == list(range(50))


@pytest.mark.parametrize(("arotate", "size"), [(0, (640, 360)), (1, (360, 640))])
def test_arotate_turns_the_size_box_with_the_source(tmp_path: Path, arotate: int, size: tuple[int, int]) -> None:
    spec = SampleSpec(seconds=1.0, width=640, height=360, fps=Fraction(25), rotation=90)
    path = tmp_path / "portrait.mp4"
    write_sample(path, spec)
    segments, _, _ = make_any_segments(Source(path, spec), s="640x360", arotate=arotate, scaletype="fit")
    with open_joined(segments) as container:
        frame = next(container.decode(video=0))
    # fit: a 360x640 portrait picture in a 640x360 box is 202x360; turned with the source it fills the box
    assert (frame.width, frame.height) == (size if arotate else (202, 360))


def test_odd_source_size_is_encoded_even(tmp_path: Path) -> None:
    spec = SampleSpec(seconds=2.0, width=321, height=241, fps=Fraction(25), pix_fmt="yuv444p")  # 4:2:0 needs even sides
    path = tmp_path / "odd.mkv"
    write_sample(path, spec)
    info = probe(str(path))
    assert info.video is not None and (info.video.width, info.video.height) == (321, 241)
    segments, _, _ = make_any_segments(Source(path, spec))
    with open_joined(segments) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 240)
        assert decode_video(container).indexes == list(range(50))


def _profile_tier_level(raw: bytes, codec: str) -> str:
    """The profile bytes of the first SPS, as RFC 6381 spells them."""
    if codec == "h264":
        sps = raw.index(b"\x00\x00\x01\x67") + 4
        return f"avc1.{raw[sps : sps + 3].hex()}"
    at = raw.index(b"\x00\x00\x01\x42") + 6  # NAL header (2) and the sub-layer byte
    ptl = raw[at : at + 24].replace(b"\x00\x00\x03", b"\x00\x00")[:12]
    compat = int.from_bytes(ptl[1:5], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    constraints = ptl[5:11].rstrip(b"\x00")
    return f"hvc1.{ptl[0] & 0x1F}.{reversed_compat:X}.L{ptl[11]}." + ".".join(f"{b:02X}" for b in constraints)


@pytest.mark.parametrize("codec", ["h264", "h265"])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv422p", "yuv422p10le", "yuv444p", "yuv444p10le"])
def test_pixfmt_is_encoded_and_named_in_codecs(sources: dict[str, Source], codec: str, pix_fmt: str) -> None:
    src = sources["mp4-30"]
    spec = VideoSpec(codec, 320, 180, src.spec.fps, pix_fmt=pix_fmt)
    job = SegmentJob(str(src.path), Fraction(0), Fraction(0), Fraction(1, 3), spec, None, 0, None)
    with av.open(io.BytesIO(transcode_segment(job).data), format="mpegts") as container:
        frame = next(container.decode(video=0))
        container.seek(0)
        raw = bytes(next(p for p in container.demux(video=0) if p.size))
    assert frame.format.name == pix_fmt
    assert codecs(spec, None) == _profile_tier_level(raw, codec)


def _av1_codecs(init: bytes) -> str:
    """RFC-style `av01.P.LLT.DD` from an init segment's av1C (AV1-ISOBMFF 2.3.3)."""
    record = init[init.index(b"av1C") + 4 :]
    profile, level = record[1] >> 5, record[1] & 0x1F
    tier, high_bitdepth = "HM"[record[2] >> 7 ^ 1], record[2] >> 6 & 1
    return f"av01.{profile}.{level:02d}{tier}.{10 if high_bitdepth else 8:02d}"


@pytest.mark.parametrize(
    ("width", "height", "fps", "pix_fmt"),
    [
        (320, 180, 30, "yuv420p"),
        (640, 360, 30, "yuv420p"),
        (854, 480, 30, "yuv420p"),
        (1280, 720, 30, "yuv420p10le"),
        (1280, 720, 60, "yuv420p"),
        (1920, 1080, 30, "yuv420p"),
        (1920, 1080, 60, "yuv420p"),
        (2560, 1440, 30, "yuv420p"),
    ],
)
def test_av1_codecs_string_matches_the_encoded_sequence_header(width: int, height: int, fps: int, pix_fmt: str) -> None:
    spec = VideoSpec("av1", width, height, Fraction(fps), pix_fmt=pix_fmt)
    job = SegmentJob("", Fraction(0), Fraction(0), Fraction(0), spec, None, container="fmp4", init=True)
    init = transcode_segment(job).data
    assert b"av01" in init
    assert codecs(spec, None) == _av1_codecs(init)


# ---- the window, fixed before the source is read -------------------------------------------


def _job(start: Fraction, stop: Fraction, origin: Fraction = Fraction(0)) -> SegmentJob:
    return SegmentJob("unused", origin, start, stop, VideoSpec("h264", 64, 64, Fraction(30)), AudioSpec(48000, 2))


@pytest.mark.parametrize(
    ("job", "backoff", "video", "audio", "seek_to"),
    [
        pytest.param(
            _job(Fraction(2), Fraction(4)),
            Fraction(1),
            _VideoWindow(60, 120),
            # AAC frames ceil(93.75) .. ceil(187.5); fed from 4 frames before, to 2 after
            _AudioWindow(94, 188, 90 * 1024, 190 * 1024),
            Fraction(90 * 1024, 48000) - 1,  # audio pre-roll is needed first
            id="audio-needs-first",
        ),
        pytest.param(
            _job(Fraction(2), Fraction(4), Fraction(10)),
            None,
            _VideoWindow(60, 120),
            _AudioWindow(94, 188, 90 * 1024, 190 * 1024),
            None,
            id="no-backoff",
        ),
        pytest.param(
            _job(Fraction(0), Fraction(2)), Fraction(1), _VideoWindow(0, 60), _AudioWindow(0, 94, 0, 96 * 1024), None, id="from-the-start"
        ),
    ],
)
def test_window(job: SegmentJob, backoff: Fraction | None, video: _VideoWindow, audio: _AudioWindow, seek_to: Fraction | None) -> None:
    assert _window(job, job.video, job.audio, backoff) == _Window(video, audio, seek_to)


def test_window_of_video_only_seeks_for_video() -> None:
    job = _job(Fraction(2), Fraction(4), Fraction(5))
    assert _window(job, job.video, None, Fraction(1)) == _Window(_VideoWindow(60, 120), None, Fraction(6))


def test_a_stream_of_the_wrong_kind_is_refused(sources: dict[str, Source]) -> None:
    job = replace(job_for(sources["mp4-30"]), video_stream=1, audio_stream=0)  # swapped
    with pytest.raises(TranscodeFailed, match="not the VideoStream"):
        transcode_segment(job)


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler") or os.geteuid() != 0, reason="SVT-AV1 goes real-time only as root")
def test_an_av1_encode_leaves_no_thread_real_time(tmp_path: Path) -> None:
    """SVT-AV1 switches the threads of a process that opens it to SCHED_FIFO 99 as root; the
    sample writer (and the transcoder, by the same call) puts them back at once."""
    from livetx.media.sample import SampleSpec, write_sample

    write_sample(tmp_path / "av1.mp4", SampleSpec(seconds=0.2, width=64, height=64, vcodec="libsvtav1", preset="12"))
    realtime = [tid for tid in os.listdir("/proc/self/task") if os.sched_getscheduler(int(tid)) in (os.SCHED_FIFO, os.SCHED_RR)]
    assert realtime == []
