"""The keyframe index of real files (media/keyframes.py): read from the container without a scan,
and equal to the keyframe presentation times found by demuxing every packet."""

from __future__ import annotations

import io
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from livetx.copyplan import copy_refusal
from livetx.media.keyframes import keyframe_times
from livetx.media.model import MediaInfo
from livetx.media.orientation import read_moov
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from tests.test_formats import BASE, CONTAINERS, FORMATS

# tiny sources: 320x180, a keyframe every 15 frames (0.6 s at 25 fps); x264 superfast makes B-frames
SPEC = SampleSpec(seconds=3.0, width=320, height=180, fps=Fraction(25), gop=15, acodec=None)
IRREGULAR = (("x264-params", "keyint=40:min-keyint=3:scenecut=100"),)  # GOPs of changing length


class Counting(io.FileIO):
    """A file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int = -1, /) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def scanned(path: Path) -> tuple[Fraction, ...]:
    """Every keyframe's presentation time, by demuxing every packet (what the index must equal)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return tuple(sorted(p.pts * stream.time_base for p in container.demux(stream) if p.is_keyframe and p.pts is not None))


def indexed(path: Path) -> tuple[tuple[Fraction, ...] | None, int]:
    """`keyframe_times` of the file as the probe calls it, and the bytes it read (the moov aside)."""
    with path.open("rb") as f:
        moov = read_moov(f)
    with Counting(path) as f, av.open(f) as container:
        stream = container.streams.video[0]
        before = f.read_bytes
        times = keyframe_times(container, stream, moov)
        return times, f.read_bytes - before


def make(path: Path, spec: SampleSpec = SPEC) -> Path:
    write_sample(path, spec)
    return path


def remux(source: Path, target: Path, *args: str, start: tuple[str, ...] = ()) -> Path:
    """`source`'s packets in another container (or layout) by the ffmpeg CLI, no re-encoding;
    `start`: input options (where to cut, how far to delay)."""
    subprocess.run(["/usr/bin/ffmpeg", "-v", "error", "-y", *start, "-i", str(source), "-c", "copy", *args, str(target)], check=True)
    return target


def has_reordered_frames(path: Path) -> bool:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return any(p.pts != p.dts for p in container.demux(stream) if p.dts is not None)


@pytest.mark.parametrize("name", ["a.mp4", "a.mkv", "a.webm", "a.mov"])
def test_the_index_equals_the_keyframes_found_by_a_scan(tmp_path: Path, name: str) -> None:
    spec = SPEC if name != "a.webm" else SampleSpec(**{**SPEC.__dict__, "vcodec": "libvpx-vp9", "video_options": (("cpu-used", "8"),)})
    path = make(tmp_path / name, spec)
    times, _ = indexed(path)
    assert times is not None and len(times) == 5
    assert times == scanned(path)


def test_a_b_frame_mp4_gives_presentation_not_decode_times(tmp_path: Path) -> None:
    path = make(tmp_path / "b.mp4")
    assert has_reordered_frames(path)  # else this test proves nothing
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decode_times = tuple(e.timestamp * stream.time_base for e in stream.index_entries if e.is_keyframe)
    times, _ = indexed(path)
    assert times == scanned(path) == tuple(Fraction(n * 15, 25) for n in range(5))
    assert times != decode_times  # FFmpeg's index holds decode times: they had to be turned


def test_negative_composition_offsets(tmp_path: Path) -> None:
    """ctts version 1 (negative offsets, as CMAF writers make): FFmpeg shifts every decode time."""
    path = remux(make(tmp_path / "b.mp4"), tmp_path / "neg.mp4", "-movflags", "negative_cts_offsets")
    times, _ = indexed(path)
    assert times == scanned(path)


def test_irregular_gops(tmp_path: Path) -> None:
    path = make(tmp_path / "irregular.mp4", SampleSpec(**{**SPEC.__dict__, "seconds": 6.0, "video_options": IRREGULAR}))
    times, _ = indexed(path)
    assert times == scanned(path)


def test_mp4_without_b_frames(tmp_path: Path) -> None:
    path = make(tmp_path / "p.mp4", SampleSpec(**{**SPEC.__dict__, "video_options": (("bf", "0"),)}))
    assert not has_reordered_frames(path)
    times, _ = indexed(path)
    assert times == scanned(path)


def test_the_mp4_index_reads_nothing_more(tmp_path: Path) -> None:
    times, read = indexed(make(tmp_path / "a.mp4"))
    assert times is not None and read == 0  # FFmpeg built the index from the moov at open


def test_the_matroska_cues_cost_one_small_read(tmp_path: Path) -> None:
    path = make(tmp_path / "long.mkv", SampleSpec(**{**SPEC.__dict__, "seconds": 20.0, "preset": "ultrafast"}))
    times, read = indexed(path)
    assert times == scanned(path)
    assert read < path.stat().st_size / 4  # the Cues and one buffer at the start, not the file


def test_mpegts_has_no_index(tmp_path: Path) -> None:
    times, read = indexed(make(tmp_path / "a.ts"))
    assert times is None and read == 0


def test_matroska_without_cues_has_no_index(tmp_path: Path) -> None:
    """A Matroska written to a pipe has no Cues: FFmpeg's index then holds only the keyframes it
    has read, which stop long before the end."""
    source = make(tmp_path / "long.mkv", SampleSpec(**{**SPEC.__dict__, "seconds": 20.0, "preset": "ultrafast"}))
    path = tmp_path / "nocues.mkv"
    with path.open("wb") as out:
        subprocess.run(["/usr/bin/ffmpeg", "-v", "error", "-i", str(source), "-c", "copy", "-f", "matroska", "-"], stdout=out, check=True)
    times, read = indexed(path)
    assert times is None
    assert read < path.stat().st_size / 4  # the seek read on to the next keyframe, not to the end


def test_fragmented_mp4_has_no_index(tmp_path: Path) -> None:
    """Its composition offsets are in each fragment, not in the moov."""
    path = remux(make(tmp_path / "b.mp4"), tmp_path / "frag.mp4", "-movflags", "frag_keyframe+empty_moov")
    times, _ = indexed(path)
    assert times is None


def test_the_probe_keeps_the_index_and_the_codec_facts(tmp_path: Path) -> None:
    path = make(tmp_path / "b.mp4")
    info = probe(str(path))
    assert info.video is not None
    assert info.video.keyframes == scanned(path)
    assert (info.video.profile, info.video.pix_fmt) == ("High", "yuv420p")
    assert info.video.level is not None and 10 <= info.video.level <= 51  # x264 picks the lowest that fits 320x180
    assert MediaInfo.from_record(json.loads(json.dumps(info.to_record()))) == info
    assert copy_refusal(info.video, 2000, None) is None


def test_the_probe_of_mpegts_says_why_there_is_no_copy(tmp_path: Path) -> None:
    info = probe(str(make(tmp_path / "a.ts")))
    assert info.video is not None and info.video.keyframes is None
    reason = copy_refusal(info.video, 6000, None, container=info.format)
    assert reason is not None and "no keyframe index in an MPEG-TS source" in reason


def test_hevc_profile_is_read(tmp_path: Path) -> None:
    quiet = (("x265-params", "log-level=none"),)
    spec: Any = SampleSpec(**{**SPEC.__dict__, "vcodec": "libx265", "pix_fmt": "yuv420p10le", "video_options": quiet})
    info = probe(str(make(tmp_path / "h.mp4", spec)))
    assert info.video is not None
    assert (info.video.codec, info.video.profile, info.video.pix_fmt) == ("hevc", "Main 10", "yuv420p10le")
    assert info.video.keyframes == scanned(tmp_path / "h.mp4")


def test_an_mp4_cut_between_keyframes_leaves_the_hidden_one_out(tmp_path: Path) -> None:
    """An edit list starting mid-GOP: FFmpeg keeps the keyframe before it only to decode from
    (discarded, shown never). The index starts at the next keyframe, so no copy: the video does
    not start with a keyframe."""
    path = remux(make(tmp_path / "b.mp4"), tmp_path / "cut.mp4", start=("-ss", "1.3"))
    times, _ = indexed(path)
    shown = tuple(t for t in scanned(path) if t >= 0)
    assert times == shown and len(scanned(path)) == len(shown) + 1
    info = probe(str(path))
    assert info.video is not None
    reason = copy_refusal(info.video, 2000, None)
    assert reason is not None and "does not start with a keyframe" in reason


def test_an_mp4_starting_late_keeps_its_times(tmp_path: Path) -> None:
    """An empty edit first (the video starts 2 s into the file's timeline)."""
    path = remux(make(tmp_path / "b.mp4"), tmp_path / "late.mp4", start=("-itsoffset", "2"))
    times, _ = indexed(path)
    assert times == scanned(path) and times is not None and times[0] == 2


# the inputs of the format matrix (tests/test_formats.py): which give an index, and what it says
INDEXED = {"webm-vp9-opus", "mkv-hevc-flac", "mkv-av1-ac3", "mkv-h264-vfr", "mov-h264-pcm", "mp4-h264-10bit"}
COPYABLE = {"mkv-hevc-flac", "mkv-h264-vfr", "mov-h264-pcm"}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_format_matrix(tmp_path: Path, name: str) -> None:
    suffix, extra = FORMATS[name]
    spec = SampleSpec(**{**BASE, **extra, "container": CONTAINERS[suffix]})
    path = make(tmp_path / f"{name}.{suffix}", spec)
    times, _ = indexed(path)
    assert (times is not None) == (name in INDEXED)
    if times is not None:
        assert times == scanned(path)
    info = probe(str(path))
    assert info.video is not None and info.video.keyframes == times
    reason = copy_refusal(info.video, 6000, None, container=info.format)
    assert (reason is None) == (name in COPYABLE), reason


def test_more_keyframes_than_the_limit_give_none(tmp_path: Path) -> None:
    """An intra-only source has a keyframe per frame: past the limit the index is not kept."""
    path = make(tmp_path / "intra.mkv", SampleSpec(**{**SPEC.__dict__, "gop": 1}))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert keyframe_times(container, stream, limit=75) is not None
        assert keyframe_times(container, stream, limit=74) is None
