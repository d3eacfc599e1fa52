"""Embedded text subtitle tracks, worker side (issue 16): a `SegmentJob` with `subtitle_stream`
makes one WebVTT segment from the source's track, reading no video.

Sources: 12 s of 64x64 noise video (2 s GOPs) and a tone, with SubRip, ASS and WebVTT tracks
in Matroska and a mov_text track in MP4, whose cues' text is their start time. Every expected
time below is exact, to the millisecond: both containers keep these tracks' times in whole
milliseconds (Matroska's 1 ms timestamps; the mov_text track's 1/1000 time base).
"""

from __future__ import annotations

import asyncio
import io
import random
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.subtitles.subtitle import SubtitleSet

from livetx.cache.seal import is_sealed, seal
from livetx.errors import TranscodeFailed
from livetx.media.messages import Preempted
from livetx.media.model import SegmentJob
from livetx.media.pool import TranscodePool
from livetx.media.remote import open_container
from livetx.media.sample import tone
from livetx.media.subtitle_reader import LOOKBACK, read_cues, subtitle_segment
from livetx.media.transcode import transcode_segment
from livetx.subtitles import vtt
from livetx.subtitles.ass import event_text
from livetx.subtitles.cues import Cue
from livetx.subtitles.webvtt import render_segment
from tests.multitrack import ASS_HEADER

SECONDS, FPS, GOP, SIZE, RATE = 12, 25, 50, 64, 48000


@dataclass(frozen=True)
class Written:
    """A cue as written into a track (ASS dialogue text), and the WebVTT cue expected of it."""

    start: int  # ms
    end: int
    dialogue: str
    text: str
    settings: str = ""


CUES = (
    Written(500, 1500, "t=0.500", "t=0.500"),
    Written(2000, 3000, r"{\i1}t=2.000{\i0}", "<i>t=2.000</i>"),
    Written(3500, 6500, "t=3.500", "t=3.500"),  # spans the boundary at 4 s
    Written(7000, 7500, r"{\an8}t=7.000", "t=7.000", "line:0"),
    Written(8000, 9000, r"t=8.000\Nline two", "t=8.000\nline two"),
    Written(10000, 11500, "t=10.000", "t=10.000"),
)
OVERLAPPING = Written(5000, 11000, "t=5.000", "t=5.000")  # under 7, 8 and 10; spans 8 s (mov_text cannot overlap)


@dataclass(frozen=True)
class Track:
    suffix: str
    stream: int  # in the source: 0 video, 1 audio, then the text tracks
    encoder: str
    keeps_position: bool  # the encoder writes `\an8` (FFmpeg's WebVTT and mov_text encoders drop it)

    @property
    def cues(self) -> tuple[Written, ...]:
        return CUES if self.suffix == ".mp4" else (*CUES, OVERLAPPING)

    def expected(self, start_ms: int, stop_ms: int, origin_ms: int = 0) -> list[Cue]:
        """The cues of title window [start, stop) ms: every one overlapping it, times unclipped
        (a start before title 0 held at 0), in (start, end) order."""
        cues = [
            Cue(max(0, c.start - origin_ms), c.end - origin_ms, c.text, c.settings if self.keeps_position else "")
            for c in self.cues
            if c.end - origin_ms > 0
        ]
        return sorted((c for c in cues if c.start < stop_ms and c.end > start_ms), key=lambda c: (c.start, c.end))


TRACKS = {
    "srt": Track(".mkv", 2, "subrip", True),
    "ass": Track(".mkv", 3, "ass", True),
    "webvtt": Track(".mkv", 4, "webvtt", False),
    "mov_text": Track(".mp4", 2, "mov_text", False),
}
WINDOWS = {"start": (0, 4000), "middle": (4000, 8000), "end": (8000, 12000)}  # title ms


def _text_packets(out: Any, track: Track) -> list[Any]:
    stream: Any = out.add_stream(track.encoder)
    stream.codec_context.subtitle_header = ASS_HEADER
    stream.time_base = Fraction(1, 1000)
    packets = []
    for cue in sorted(track.cues, key=lambda c: c.start):
        event = f"0,0,Default,,0,0,0,,{cue.dialogue}".encode()
        packet = stream.codec_context.encode_subtitle(SubtitleSet.create(event, 0, cue.end - cue.start, cue.start * 1000))
        packet.stream, packet.time_base = stream, stream.time_base
        packet.pts = packet.dts = cue.start
        packet.duration = cue.end - cue.start
        packets.append(packet)
    return packets


def write_source(path: Path) -> None:
    """Noise video (costly to read, so skipped bytes show), a tone, then the suffix's text tracks;
    packets muxed in decoding-time order, so the file is interleaved."""
    with av.open(str(path), "w", format={".mkv": "matroska", ".mp4": "mp4"}[path.suffix]) as out:
        video: Any = out.add_stream("libx264", rate=FPS)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
        audio: Any = out.add_stream("aac", rate=RATE)
        audio.layout = "stereo"
        packets: list[Any] = []
        for track in TRACKS.values():
            if track.suffix == path.suffix:
                packets += _text_packets(out, track)
        noise = np.random.default_rng(16)
        for index in range(SECONDS * FPS):
            frame = av.VideoFrame.from_ndarray(noise.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            packets += video.encode(frame)
        packets += video.encode(None)
        for at in range(0, SECONDS * RATE, 1024):
            chunk = av.AudioFrame.from_ndarray(tone(at, 1024, RATE, 440.0, 2), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts, chunk.time_base = RATE, at, Fraction(1, RATE)
            packets += audio.encode(chunk)
        packets += audio.encode(None)
        packets.sort(key=lambda p: (p.dts * p.time_base, p.stream.index))
        for packet in packets:
            if packet.size:
                out.mux(packet)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("subtitles")
    paths = {suffix: folder / f"subs{suffix}" for suffix in (".mkv", ".mp4")}
    for path in paths.values():
        write_source(path)
    return paths


def job(sources: dict[str, Path], track: Track, window: tuple[int, int], container: str = "ts", origin_ms: int = 0) -> SegmentJob:
    start, stop = (Fraction(ms, 1000) for ms in window)
    path = str(sources[track.suffix])
    return SegmentJob(path, Fraction(origin_ms, 1000), start, stop, None, None, container=container, subtitle_stream=track.stream)


# ---- the segment -----------------------------------------------------------------------


@pytest.mark.parametrize("window", list(WINDOWS), ids=list(WINDOWS))
@pytest.mark.parametrize("name", list(TRACKS), ids=list(TRACKS))
def test_a_segment_holds_every_cue_overlapping_its_window(sources: dict[str, Path], name: str, window: str) -> None:
    track = TRACKS[name]
    result = transcode_segment(job(sources, track, WINDOWS[window]))
    assert result.data == render_segment(track.expected(*WINDOWS[window]), "ts").encode()
    assert (result.video_frames, result.audio_packets) == (0, 0)


@pytest.mark.parametrize("name", list(TRACKS), ids=list(TRACKS))
def test_a_cue_spanning_a_boundary_is_written_whole_in_both_segments(sources: dict[str, Path], name: str) -> None:
    track = TRACKS[name]
    spanning = Cue(3500, 6500, "t=3.500")
    before, after = (vtt.parse(transcode_segment(job(sources, track, WINDOWS[w])).data.decode()) for w in ("start", "middle"))
    assert spanning in before and spanning in after


def test_styling_and_position_survive(sources: dict[str, Path]) -> None:
    """ASS `{\\i1}` becomes `<i>`, `\\an8` the top line, `\\N` a line break."""
    text = transcode_segment(job(sources, TRACKS["ass"], (0, 12000))).data.decode()
    assert "\n<i>t=2.000</i>\n" in text
    assert "\n00:00:07.000 --> 00:00:07.500 line:0\nt=7.000\n" in text
    assert "\nt=8.000\nline two\n" in text


@pytest.mark.parametrize("name", list(TRACKS), ids=list(TRACKS))
def test_segments_made_in_any_order_are_the_same_bytes(sources: dict[str, Path], name: str) -> None:
    track = TRACKS[name]
    windows = list(WINDOWS.values())
    forward = [transcode_segment(job(sources, track, w)).data for w in windows]
    shuffled = windows[:]
    random.Random(16).shuffle(shuffled)
    made = {w: transcode_segment(job(sources, track, w)).data for w in [*reversed(windows), *shuffled]}
    assert [made[w] for w in windows] == forward


@pytest.mark.parametrize(("container", "mpegts"), [("ts", 126000), ("fmp4", 0)], ids=["ts", "fmp4"])
def test_the_timestamp_map_follows_the_video_container(sources: dict[str, Path], container: str, mpegts: int) -> None:
    data = transcode_segment(job(sources, TRACKS["srt"], WINDOWS["middle"], container)).data
    assert data.decode().split("\n")[:3] == ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000", ""]


@pytest.mark.parametrize("name", ["srt", "mov_text"])
def test_cue_times_are_title_time_and_a_cue_before_title_zero_starts_at_zero(sources: dict[str, Path], name: str) -> None:
    """With title 0 at source 1 s, the 0.5-1.5 s cue shows over title 0-0.5 s."""
    track = TRACKS[name]
    data = transcode_segment(job(sources, track, (0, 4000), origin_ms=1000)).data
    cues = vtt.parse(data.decode())
    assert cues == track.expected(0, 4000, origin_ms=1000)
    assert cues[0] == Cue(0, 500, "t=0.500") and cues[1].start == 1000


def test_an_empty_window_gives_the_header_alone(sources: dict[str, Path]) -> None:
    data = transcode_segment(job(sources, TRACKS["mov_text"], (11500, 12000))).data
    assert data == render_segment([], "ts").encode() == b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"


# ---- reading: the seek, the bytes read -------------------------------------------------


class Counting(io.RawIOBase):
    """A local file that counts the bytes read from it."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("rb")
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def readinto(self, buffer: Any) -> int:
        n = self.file.readinto(buffer)
        self.read_bytes += n or 0
        return n or 0

    def close(self) -> None:
        self.file.close()
        super().close()


def read(sources: dict[str, Path], track: Track, window: tuple[int, int], lookback: Fraction | None = None) -> tuple[list[Cue], int]:
    """The window's cues read with `lookback` (None: the reader's default for the container), and
    the bytes read for them (headers included)."""
    with Counting(sources[track.suffix]) as file, open_container(file) as src:
        cues = read_cues(src, job(sources, track, window), lookback=lookback)
        return cues, file.read_bytes


SEEKS = {  # window, lookback (s)
    "middle-1s": ("middle", 1),  # from 3 s (the keyframe at 2 s): the 3.5-6.5 s cue began after it
    "end-3s": ("end", 3),  # from 5 s (the keyframe at 4 s): the 5-11 s cue began after it
}


@pytest.mark.parametrize("seek", list(SEEKS), ids=list(SEEKS))
@pytest.mark.parametrize("name", list(TRACKS), ids=list(TRACKS))
def test_a_seek_before_the_window_gives_the_cues_of_a_read_from_the_start(sources: dict[str, Path], name: str, seek: str) -> None:
    """These sources are shorter than LOOKBACK, so Matroska segments are read from the start; a
    shorter lookback makes the reader seek (and read less), with the same cues."""
    track = TRACKS[name]
    window, lookback = SEEKS[seek]
    cues, read_bytes = read(sources, track, WINDOWS[window], Fraction(lookback))
    whole, read_whole = read(sources, track, WINDOWS[window], LOOKBACK)
    assert cues == whole == track.expected(*WINDOWS[window])
    assert read_bytes < read_whole


@pytest.mark.parametrize("window", ["middle", "end"])
def test_an_mp4_track_needs_no_lookback(sources: dict[str, Path], window: str) -> None:
    """Its samples tile the timeline: the seek to 4 s lands on the 3.5-6.5 s cue's sample (and the
    one to 8 s on the 8-9 s cue's). No lookback is the MP4 default."""
    track = TRACKS["mov_text"]
    cues, read_bytes = read(sources, track, WINDOWS[window], Fraction(0))
    assert cues == read(sources, track, WINDOWS[window])[0] == track.expected(*WINDOWS[window])
    assert read_bytes < read(sources, track, WINDOWS[window], LOOKBACK)[1]


def test_a_matroska_seek_does_not_go_back_to_the_cues_before_it(sources: dict[str, Path]) -> None:
    """Why LOOKBACK: from 7 s (the keyframe at 6 s) the 5-11 s cue, shown all through the end
    window, is not read. FFmpeg's Matroska demuxer once went back to the last indexed cue by
    itself; the one under PyAV 18 does not."""
    cues, _ = read(sources, TRACKS["srt"], WINDOWS["end"], Fraction(1))
    assert Cue(5000, 11000, "t=5.000") in TRACKS["srt"].expected(*WINDOWS["end"])
    assert Cue(5000, 11000, "t=5.000") not in cues


def test_an_mp4_segment_reads_a_small_part_of_the_source(sources: dict[str, Path]) -> None:
    """discard=all on the other streams: the MP4 demuxer reads the header and the subtitle
    samples it needs only (a Matroska file is interleaved: read whole over the span)."""
    _, read_bytes = read(sources, TRACKS["mov_text"], WINDOWS["middle"])
    size = sources[".mp4"].stat().st_size
    assert read_bytes < size // 5, (read_bytes, size)


def test_a_stop_request_preempts_the_read(sources: dict[str, Path]) -> None:
    with pytest.raises(Preempted):
        subtitle_segment(job(sources, TRACKS["srt"], WINDOWS["start"]), should_stop=lambda: True)


# ---- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [0, 1, 9], ids=["video", "audio", "absent"])
def test_a_stream_that_is_not_a_text_track_is_refused(sources: dict[str, Path], stream: int) -> None:
    with pytest.raises(TranscodeFailed, match=f"source stream {stream} is not the subtitle track"):
        transcode_segment(replace(job(sources, TRACKS["srt"], WINDOWS["start"]), subtitle_stream=stream))


def test_a_bitmap_track_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dvd.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        stream: Any = out.add_stream("dvdsub")
        stream.time_base = Fraction(1, 1000)
        packet = av.Packet(b"\x00\x08\x00\x04\x00\x00\xff\x00")
        packet.stream, packet.time_base, packet.pts, packet.dts, packet.duration = stream, stream.time_base, 0, 0, 1000
        out.mux(packet)
    bitmap = SegmentJob(str(path), Fraction(0), Fraction(0), Fraction(4), None, None, subtitle_stream=0)
    with pytest.raises(TranscodeFailed, match=r"bitmap subtitles \(dvdsub\)"):
        transcode_segment(bitmap)


# ---- through the pool, and sealed ------------------------------------------------------


def test_the_pool_makes_subtitle_segments(sources: dict[str, Path]) -> None:
    async def run(jobs: list[SegmentJob]) -> list[bytes]:
        pool = TranscodePool(size=1, timeout=60)
        await pool.start()
        try:
            return [(await pool.run(j)).data for j in jobs]
        finally:
            await pool.close()

    jobs = [job(sources, TRACKS[name], WINDOWS["middle"]) for name in ("ass", "mov_text")]
    assert asyncio.run(run(jobs)) == [transcode_segment(j).data for j in jobs]


def test_a_sealed_segment_parses_to_the_same_cues(sources: dict[str, Path]) -> None:
    """The seal is a NOTE block: the WebVTT parsers (livetx's, FFmpeg's) skip it."""
    data = transcode_segment(job(sources, TRACKS["ass"], WINDOWS["middle"])).data
    sealed = seal(data)
    assert is_sealed(sealed) and sealed.startswith(data) and sealed.endswith(b"\n")
    assert vtt.parse(sealed.decode()) == vtt.parse(data.decode()) != []
    with av.open(io.BytesIO(sealed), format="webvtt") as a, av.open(io.BytesIO(data), format="webvtt") as b:
        assert [bytes(p) for p in a.demux() if p.size] == [bytes(p) for p in b.demux() if p.size]


# ---- decoded events --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param("0,0,Default,,0,0,0,,{\\i1}a, b{\\i0}", ("<i>a, b</i>", ""), id="text-keeps-commas"),
        pytest.param("3,0,Default,Bob,0,0,0,,{\\an7}top left", ("top left", "line:0 align:left"), id="position"),
        pytest.param("0,0,Default,,0,0,0,", ("", ""), id="no-text-field"),
    ],
)
def test_a_decoded_event_becomes_cue_text(event: str, expected: tuple[str, str]) -> None:
    assert event_text(event) == expected
