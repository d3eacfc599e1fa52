"""Copy ("remux") video renditions, worker side: segments made alone, in any order, from the
source's own packets (livetx/media/transcode.py `_CopyCursor`), join as the source itself.

Sources: H.264 with B-frames in MP4 and HEVC (closed GOP, B-frames) in Matroska, 6 s at 30 fps,
a keyframe every second, AAC. Windows [0, 2), [2, 4), [4, 6) start and stop on keyframes, as
the planner makes them for a copy rendition.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from livetx.errors import TranscodeFailed
from livetx.media.model import AudioSpec, SampleEncryption, SegmentJob, VideoSpec
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import transcode_segment
from tests.checker import check_tone, decode_audio, decode_switching, decode_video, open_fmp4, residual_peaks

FPS = Fraction(30)
SECONDS = 6
FRAMES = int(SECONDS * FPS)
CLOCK = 90000
WINDOWS = [(Fraction(a), Fraction(a + 2)) for a in (0, 2, 4)]
HEVC_CLOSED = "log-level=error:keyint=30:min-keyint=30:scenecut=0:open-gop=0"
SPECS = {
    "h264.mp4": SampleSpec(seconds=SECONDS, width=320, height=180, fps=FPS, gop=30),
    "hevc.mkv": SampleSpec(
        seconds=SECONDS,
        width=320,
        height=180,
        fps=FPS,
        gop=30,
        vcodec="libx265",
        container="matroska",
        video_options=(("x265-params", HEVC_CLOSED),),
    ),
}
TRANSCODED_CODEC = {"h264.mp4": "h264", "hevc.mkv": "h265"}  # the same codec: one decoder joins both


@dataclass(frozen=True)
class Copied:
    path: Path
    init: bytes
    segments: list[bytes]  # by window


def _job(path: Path, start: Fraction, stop: Fraction, codec: str = "copy", init: bool = False) -> SegmentJob:
    video = VideoSpec(codec, 320, 180, FPS, preset="ultrafast")
    return SegmentJob(
        str(path), Fraction(0), start, stop, video, AudioSpec(48000, 2), video_stream=0, audio_stream=1, container="fmp4", init=init
    )


def _init(path: Path) -> bytes:
    return transcode_segment(_job(path, Fraction(0), Fraction(0), init=True)).data


@pytest.fixture(scope="module", params=list(SPECS))
def copied(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Copied:
    name = request.param
    path = tmp_path_factory.mktemp("copy") / name
    write_sample(path, SPECS[name])
    order = list(range(len(WINDOWS)))
    random.Random(7).shuffle(order)
    made = {i: transcode_segment(_job(path, *WINDOWS[i])).data for i in order}
    return Copied(path, _init(path), [made[i] for i in range(len(WINDOWS))])


def _source_packets(path: Path) -> list[tuple[Fraction, bytes]]:
    """The source's video packets in decode order: (PTS in seconds, payload)."""
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        assert stream.time_base is not None
        return [(p.pts * stream.time_base, bytes(p)) for p in src.demux(stream) if p.size and p.pts is not None]


def _payloads(init: bytes, segments: list[bytes]) -> list[bytes]:
    with open_fmp4(init, segments) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def test_payloads_are_the_source_packets_bit_exact(copied: Copied) -> None:
    source = _source_packets(copied.path)
    assert len(source) == FRAMES
    for (start, stop), segment in zip(WINDOWS, copied.segments, strict=True):
        # each segment: exactly the packets the source shows in its window, in decode order
        assert _payloads(copied.init, [segment]) == [data for t, data in source if start <= t < stop]
    assert _payloads(copied.init, copied.segments) == [data for _, data in source]  # each once, in order


def test_init_is_the_same_whichever_segment_comes_first(copied: Copied) -> None:
    with av.open(str(copied.path)) as src:
        codec = src.streams.video[0].codec_context.name
    assert _init(copied.path) == copied.init
    assert transcode_segment(_job(copied.path, *WINDOWS[2], init=True)).data == copied.init  # the window plays no part
    assert (b"hvc1" in copied.init) == (codec == "hevc") and b"hev1" not in copied.init


def test_joined_segments_decode_every_frame_once_on_the_grid(copied: Copied) -> None:
    with open_fmp4(copied.init, copied.segments) as container:
        video = decode_video(container)
    assert video.indexes == list(range(FRAMES))
    steps = {b - a for a, b in zip(video.pts, video.pts[1:], strict=False)}
    assert steps == {int(CLOCK / FPS)}  # continuous timestamps across the joins
    assert video.keyframes.count(True) == SECONDS  # the source's own keyframes, each once


def test_decode_times_are_title_times_from_each_window_start(copied: Copied) -> None:
    """As a transcoded fMP4 segment: `tfdt` is the window's start (title time), DTS one frame apart
    across the joins, the first sample a keyframe (the muxer's negative composition offsets take
    the source's reorder delay)."""
    frame = int(CLOCK / FPS)
    for (start, _), segment in zip(WINDOWS, copied.segments, strict=True):
        with open_fmp4(copied.init, [segment]) as container:
            first = next(p for p in container.demux(video=0) if p.size)
            assert first.dts == start * CLOCK and first.is_keyframe
    with open_fmp4(copied.init, copied.segments) as container:
        assert [p.dts for p in container.demux(video=0) if p.size] == [k * frame for k in range(FRAMES)]


def test_sample_aes_copy_segments_decode_with_the_key(copied: Copied) -> None:
    samples = SampleEncryption(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
    init = transcode_segment(replace(_job(copied.path, Fraction(0), Fraction(0), init=True), samples=samples)).data
    segments = [transcode_segment(replace(_job(copied.path, *w), samples=samples)).data for w in WINDOWS]
    assert all(protected != clear for protected, clear in zip(segments, copied.segments, strict=True))
    with open_fmp4(init, segments, key=samples.key) as container:
        assert decode_video(container).indexes == list(range(FRAMES))


def test_copy_and_transcoded_segments_alternate_in_one_decoder(copied: Copied) -> None:
    codec = TRANSCODED_CODEC[copied.path.name]
    transcoded_init = transcode_segment(_job(copied.path, Fraction(0), Fraction(0), codec, init=True)).data
    transcoded = transcode_segment(_job(copied.path, *WINDOWS[1], codec)).data
    # as hls.js switching renditions each segment: a new init, then that rendition's segment
    pieces = [(copied.init, copied.segments[0]), (transcoded_init, transcoded), (copied.init, copied.segments[2])]
    video = decode_switching(pieces)
    assert video.indexes == list(range(FRAMES))
    # each mp4 demuxer shows the video its reorder delay late (see tests/test_fmp4.py); within a
    # run the steps are one frame
    for run in (video.pts[:60], video.pts[60:120], video.pts[120:]):
        assert {b - a for a, b in itertools.pairwise(run)} == {int(CLOCK / FPS)}


def test_audio_joins_pass_the_checker(copied: Copied) -> None:
    with open_fmp4(copied.init, copied.segments) as container:
        audio = decode_audio(container)
    assert abs(len(audio.samples) - SECONDS * 48000) <= 1024
    report = check_tone(audio, 440.0, skip_tail=3, offset=Fraction(0))
    assert report.worst_phase < 0.05, report
    assert residual_peaks(audio, 440.0, offset=Fraction(0))[2048:-4096].max() < 0.05


def test_copy_refuses_what_it_cannot_cut(copied: Copied, tmp_path: Path) -> None:
    with pytest.raises(TranscodeFailed, match="start at a source keyframe"):
        transcode_segment(_job(copied.path, Fraction(1, 2), Fraction(2)))
    with pytest.raises(TranscodeFailed, match="end at a source keyframe"):
        transcode_segment(_job(copied.path, Fraction(0), Fraction(3, 2)))
    with pytest.raises(TranscodeFailed, match="fMP4 only"):
        transcode_segment(replace(_job(copied.path, *WINDOWS[0]), container="ts"))
    with pytest.raises(TranscodeFailed, match="I-frame"):
        transcode_segment(replace(_job(copied.path, *WINDOWS[0]), intra_only=True))


def test_copy_refuses_annex_b_and_open_gop_sources(tmp_path: Path) -> None:
    ts = tmp_path / "annexb.ts"
    write_sample(ts, replace(SPECS["h264.mp4"], seconds=2, container="mpegts"))
    with pytest.raises(TranscodeFailed, match="in band"):
        transcode_segment(_job(ts, Fraction(0), Fraction(1)))
    open_gop = tmp_path / "open.mkv"
    params = (("x265-params", "log-level=error:keyint=30:min-keyint=30:scenecut=0:open-gop=1"),)
    write_sample(open_gop, replace(SPECS["hevc.mkv"], seconds=3, video_options=params))
    with pytest.raises(TranscodeFailed, match="open-GOP"):
        transcode_segment(_job(open_gop, Fraction(0), Fraction(1)))


def test_copy_cost_against_a_transcode(copied: Copied) -> None:
    """Benchmark, not a gate: CPU and wall time of a copy segment over a transcoded one, same
    window, with the AAC audio (which both transcode: most of a copy segment's cost) and without."""

    def cost(codec: str, audio: bool) -> tuple[float, float, int]:
        job = _job(copied.path, *WINDOWS[1], codec)
        job = job if audio else replace(job, audio=None, audio_stream=None)
        wall, cpu = time.perf_counter(), time.process_time()
        data = transcode_segment(job).data
        return time.perf_counter() - wall, time.process_time() - cpu, len(data)

    source_bytes = sum(len(d) for t, d in _source_packets(copied.path) if WINDOWS[1][0] <= t < WINDOWS[1][1])
    for audio in (True, False):
        cost("copy", audio)  # warm
        copy_wall, copy_cpu, copy_bytes = cost("copy", audio)
        tx_wall, tx_cpu, tx_bytes = cost(TRANSCODED_CODEC[copied.path.name], audio)
        print(
            f"\n{copied.path.name} 2 s window {'with' if audio else 'without'} audio: copy {copy_wall * 1000:.1f} ms wall, "
            f"{copy_cpu * 1000:.1f} ms CPU; transcode {tx_wall * 1000:.1f} ms wall, {tx_cpu * 1000:.1f} ms CPU; "
            f"ratio wall {copy_wall / tx_wall:.3f}, CPU {copy_cpu / tx_cpu:.3f}; "
            f"bytes copy {copy_bytes} transcode {tx_bytes} source video {source_bytes}"
        )
        assert copy_bytes > source_bytes  # the copy holds the window's video (plus its audio)


def test_millisecond_timestamps_off_the_grid_cut_on_grid_windows(tmp_path: Path) -> None:
    """23.976 fps in Matroska: keyframe k*25 is at 1.04270833 s, stored as 1043 ms. Windows given
    as grid times (whole frames) cut at those keyframes, and the copies land on the grid."""
    fps = Fraction(24000, 1001)
    path = tmp_path / "ntsc.mkv"
    write_sample(path, SampleSpec(seconds=float(150 / fps), width=320, height=180, fps=fps, gop=25, container="matroska"))
    edges = [Fraction(k * 50) / fps for k in range(4)]  # every other keyframe
    job = replace(_job(path, Fraction(0), Fraction(0)), video=VideoSpec("copy", 320, 180, fps))
    init = transcode_segment(replace(job, init=True)).data
    segments = [transcode_segment(replace(job, start=a, stop=b)).data for a, b in itertools.pairwise(edges)]
    assert _payloads(init, segments) == [data for _, data in _source_packets(path)]
    with open_fmp4(init, segments) as container:
        video = decode_video(container)
    assert video.indexes == list(range(150))
    assert video.pts == [video.pts[0] + int(k * CLOCK / fps) for k in range(150)]  # on the grid, shown D late
