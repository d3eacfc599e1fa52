"""Streamed segments, worker side: `transcode_segment(..., emit=)` hands out a segment's bytes
while it is made (livetx/media/transcode.py `_Sink`), and they are the segment it returns.

Sources: 6 s at 320x180, 30 fps, a keyframe every second, AAC (MP4, for transcoded and copy
renditions); 8 s at 160x90, 25 fps, a keyframe every 6 s, MPEG-TS, whose seeks land late so a
segment takes more than one attempt. Progress is measured in source packets read (the polls of
`should_stop`, made once a packet), not in wall time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import pytest

from livetx.media.boxes import top_level
from livetx.media.model import AudioSpec, SampleEncryption, SegmentJob, SegmentResult, VideoSpec
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import AAC_FRAME, FRAGMENT_SECONDS, STREAM_CHUNK, TS_PACKET, _Sink, transcode_segment
from tests.checker import decode_video, open_fmp4

FPS = Fraction(30)
CLOCK = 90000
RATE = 48000
KEY = SampleEncryption(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("streamed")
    specs = {
        "a.mp4": SampleSpec(seconds=6, width=320, height=180, fps=FPS, gop=30),
        "long-gop.ts": SampleSpec(seconds=8, width=160, height=90, fps=Fraction(25), gop=150),
    }
    for name, spec in specs.items():
        write_sample(root / name, spec)
    return {name: root / name for name in specs}


def _job(source: Path, start: int, stop: int, container: str = "ts", codec: str = "h264", **extra: object) -> SegmentJob:
    video = VideoSpec(codec, 320, 180, FPS, preset="ultrafast")
    window = (Fraction(0), Fraction(start), Fraction(stop))
    job = SegmentJob(str(source), *window, video, AudioSpec(RATE, 2), video_stream=0, audio_stream=1, container=container)
    return replace(job, **extra) if extra else job  # type: ignore[arg-type]


@dataclass
class Recorded:
    """What a streamed transcode handed out: each chunk with the source packets read before it."""

    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    polls: int = 0

    def poll(self) -> bool:
        self.polls += 1
        return False

    def emit(self, chunk: bytes) -> None:
        self.chunks.append((self.polls, chunk))

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


def _streamed(job: SegmentJob) -> tuple[SegmentResult, Recorded]:
    recorded = Recorded()
    result = transcode_segment(job, recorded.poll, emit=recorded.emit)
    return result, recorded


def _assert_progressive(recorded: Recorded, result: SegmentResult) -> None:
    """Several chunks; the first a part of the segment, handed out with source packets still to read."""
    assert len(recorded.chunks) >= 2
    first_at, first = recorded.chunks[0]
    assert 0 < len(first) < len(result.data)
    assert first_at < recorded.polls


def test_a_ts_segment_streams_whole_packets_that_are_the_segment(media: dict[str, Path]) -> None:
    job = _job(media["a.mp4"], 0, 4)
    result, recorded = _streamed(job)
    assert recorded.data == result.data
    assert result.data == transcode_segment(job).data  # the same segment as made without streaming
    for _, chunk in recorded.chunks:
        assert len(chunk) % TS_PACKET == 0
        assert all(chunk[i] == 0x47 for i in range(0, len(chunk), TS_PACKET))
    assert all(len(chunk) >= STREAM_CHUNK for _, chunk in recorded.chunks[:-1])  # coalesced
    _assert_progressive(recorded, result)


@dataclass(frozen=True)
class Traf:
    track: int
    tfdt: int
    durations: list[int]


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    return [(kind, start + a, start + b) for kind, a, b in top_level(data[start:end])]


def _trafs(moof: bytes) -> list[Traf]:
    """Each traf of one moof: track id, tfdt and the trun's sample durations (ISO/IEC 14496-12 8.8)."""
    out = []
    for kind, start, end in _children(moof, 8, len(moof)):
        if kind != b"traf":
            continue
        boxes = {k: (s, e) for k, s, e in _children(moof, start + 8, end)}
        s, _ = boxes[b"tfhd"]
        flags = int.from_bytes(moof[s + 9 : s + 12], "big")
        (track,) = struct.unpack_from(">I", moof, s + 12)
        at = s + 16 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
        default = struct.unpack_from(">I", moof, at)[0] if flags & 0x8 else None
        s, _ = boxes[b"tfdt"]
        (tfdt,) = struct.unpack_from(">Q" if moof[s + 8] == 1 else ">I", moof, s + 12)
        s, _ = boxes[b"trun"]
        flags = int.from_bytes(moof[s + 9 : s + 12], "big")
        (count,) = struct.unpack_from(">I", moof, s + 12)
        at = s + 16 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
        durations = []
        for _ in range(count):
            if flags & 0x100:
                durations.append(struct.unpack_from(">I", moof, at)[0])
            else:
                assert default is not None
                durations.append(default)
            at += 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
        out.append(Traf(track, tfdt, durations))
    return out


def _fragments(data: bytes) -> list[list[Traf]]:
    """The trafs of each moof; the segment is moof+mdat pairs and nothing else."""
    boxes = top_level(data)
    kinds = [kind for kind, _, _ in boxes]
    assert kinds == [b"moof", b"mdat"] * (len(kinds) // 2)
    return [_trafs(data[start:end]) for kind, start, end in boxes if kind == b"moof"]


def _assert_continuous(fragments: list[list[Traf]], first_tfdt: dict[int, int]) -> None:
    """Each track's first tfdt is absolute title time; each next one follows on from the durations before it."""
    expected = dict(first_tfdt)
    for trafs in fragments:
        for traf in trafs:
            assert traf.tfdt == expected[traf.track], (traf.track, traf.tfdt, expected)
            expected[traf.track] = traf.tfdt + sum(traf.durations)


def _assert_whole_fragments(recorded: Recorded) -> None:
    for _, chunk in recorded.chunks:
        kinds = [kind for kind, _, _ in top_level(chunk)]
        assert kinds and kinds == [b"moof", b"mdat"] * (len(kinds) // 2)


@pytest.mark.parametrize("start", [0, 2])
def test_an_fmp4_segment_streams_fragments_of_about_a_second_from_its_start(media: dict[str, Path], start: int) -> None:
    job = _job(media["a.mp4"], start, start + 4, "fmp4")
    result, recorded = _streamed(job)
    assert recorded.data == result.data
    assert result.data == transcode_segment(job).data
    _assert_whole_fragments(recorded)
    _assert_progressive(recorded, result)
    fragments = _fragments(result.data)
    assert len(fragments) >= 4 / FRAGMENT_SECONDS
    # track 1 video on the 90 kHz clock from the window's start; track 2 the AAC frames from the
    # first one starting in the window (the global 1024-sample grid)
    _assert_continuous(fragments, {1: start * CLOCK, 2: -(-start * RATE // AAC_FRAME) * AAC_FRAME})
    video = [traf for trafs in fragments for traf in trafs if traf.track == 1]
    assert sum(len(traf.durations) for traf in video) == 4 * FPS
    assert all(len(traf.durations) <= FRAGMENT_SECONDS * FPS for traf in video)


def test_a_copy_segment_streams_fragments_that_decode(media: dict[str, Path]) -> None:
    job = _job(media["a.mp4"], 2, 5, "fmp4", "copy")
    result, recorded = _streamed(job)
    assert recorded.data == result.data
    _assert_whole_fragments(recorded)
    assert len(recorded.chunks) >= 2
    fragments = _fragments(result.data)
    assert len(fragments) >= 3
    _assert_continuous(fragments, {1: 2 * CLOCK, 2: -(-2 * RATE // AAC_FRAME) * AAC_FRAME})
    init = transcode_segment(_job(media["a.mp4"], 0, 0, "fmp4", "copy", init=True)).data
    with open_fmp4(init, [result.data]) as container:
        assert decode_video(container).indexes == list(range(60, 150))


def test_a_sample_aes_segment_is_not_streamed_and_decodes_with_the_key(media: dict[str, Path]) -> None:
    job = _job(media["a.mp4"], 0, 3, "fmp4", samples=KEY)
    result, recorded = _streamed(job)
    assert recorded.chunks == []
    assert len(_fragments(result.data)) >= 3  # protected fragment by fragment
    init = transcode_segment(_job(media["a.mp4"], 0, 0, "fmp4", init=True, samples=KEY)).data
    with open_fmp4(init, [result.data], key=KEY.key) as container:
        assert decode_video(container).indexes == list(range(90))


def test_init_segments_are_not_streamed(media: dict[str, Path]) -> None:
    result, recorded = _streamed(_job(media["a.mp4"], 0, 0, "fmp4", init=True))
    assert recorded.chunks == [] and result.data


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_a_segment_whose_first_seeks_land_late_streams_only_the_attempt_that_made_it(media: dict[str, Path], container: str) -> None:
    job = replace(_job(media["long-gop.ts"], 4, 6, container), video=VideoSpec("h264", 160, 90, Fraction(25), preset="ultrafast"))
    result, recorded = _streamed(job)
    assert result.source_seeks > 1  # (the source's keyframes are 6 s apart: a 1 s back-off lands late)
    assert recorded.data == result.data == transcode_segment(job).data


def test_the_sink_sends_nothing_until_armed_then_whole_packets() -> None:
    sent: list[bytes] = []
    sink = _Sink(fmp4=False, emit=sent.append)
    packet = b"\x47" + bytes(TS_PACKET - 1)
    sink.write(packet * 200 + packet[:100])  # the muxer's buffer need not end on a packet
    sink.pump()
    assert sent == []
    sink.armed = True
    sink.pump()
    assert sent == [packet * 200]
    sink.write(packet[100:])
    assert sink.finish() == packet * 201
    assert sent == [packet * 200, packet]
