"""Inputs: whatever FFmpeg decodes. Each container/codec pair is made by PyAV, then cut into
segments alone and in shuffled order; the joined output must hold every source frame once
and the unbroken tone."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile
from tests.checker import check_tone, decode_audio, decode_video, open_joined, reference_indexes
from tests.conftest import Source
from tests.support import make_any_segments

BASE = {"seconds": 4.0, "width": 320, "height": 180, "fps": Fraction(25), "gop": 25}
FORMATS = {
    "webm-vp9-opus": (
        "webm",
        {
            "vcodec": "libvpx-vp9",
            "acodec": "libopus",
            "video_options": (("deadline", "realtime"), ("cpu-used", "8"), ("crf", "20"), ("b", "0")),
        },
    ),
    "mkv-hevc-flac": ("mkv", {"vcodec": "libx265", "acodec": "flac", "preset": "ultrafast"}),
    "mkv-av1-ac3": ("mkv", {"vcodec": "libsvtav1", "acodec": "ac3", "video_options": (("preset", "12"),)}),
    "avi-mpeg4-mp3": ("avi", {"vcodec": "mpeg4", "acodec": "libmp3lame", "video_bitrate": 3_000_000, "sample_rate": 44100}),
    "mpg-mpeg2-mp2": ("mpg", {"vcodec": "mpeg2video", "acodec": "mp2", "video_bitrate": 4_000_000}),
    "flv-h264-aac": ("flv", {"vcodec": "libx264", "acodec": "aac", "sample_rate": 44100}),
    "wmv-wmv2-wmav2": ("wmv", {"vcodec": "wmv2", "acodec": "wmav2", "video_bitrate": 3_000_000, "sample_rate": 44100}),
    "mov-h264-pcm": ("mov", {"vcodec": "libx264", "acodec": "pcm_s16le"}),
    "mp4-h264-10bit": ("mp4", {"vcodec": "libx264", "acodec": "aac", "pix_fmt": "yuv420p10le"}),
    "mkv-h264-vfr": ("mkv", {"vcodec": "libx264", "acodec": "aac", "vfr": True}),
}
CONTAINERS = {"mkv": "matroska", "mpg": "mpeg", "wmv": "asf", "webm": "webm", "avi": "avi", "flv": "flv", "mov": "mov", "mp4": "mp4"}


@pytest.fixture(scope="module", params=sorted(FORMATS))
def made(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Source, list[bytes]]:
    suffix, extra = FORMATS[request.param]
    spec = SampleSpec(**{**BASE, **extra, "container": CONTAINERS[suffix]})  # type: ignore[arg-type]
    path = Path(tmp_path_factory.mktemp("formats")) / f"{request.param}.{suffix}"
    write_sample(path, spec)
    src = Source(path, spec)
    segments, _, _ = make_any_segments(src, seed=7)
    return src, segments


def test_frames_follow_the_source_timestamps(made: tuple[Source, list[bytes]]) -> None:
    src, segments = made
    with open_joined(segments) as container:
        shown = decode_video(container).indexes
    title = build_title(ObjectInfo(src.key, 1, "t"), probe(str(src.path)), parse_profile("t", {}))
    fps = title.renditions[0].video.fps  # type: ignore[union-attr]
    assert shown == reference_indexes(str(src.path), title.origin, fps, len(shown))
    assert sorted(set(shown)) == list(range(src.frames))  # nothing lost
    if not src.path.name.startswith(("avi", "mkv-h264-vfr")):  # AVI's mpeg4 skips a tick after frame 0
        assert shown == list(range(src.frames))  # nothing repeated, not even at the end


def test_tone_unbroken(made: tuple[Source, list[bytes]]) -> None:
    src, segments = made
    with open_joined(segments) as container:
        audio = decode_audio(container)
    report = check_tone(audio, src.spec.tone_hz, skip_head=3, skip_tail=4, relative=True)
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report
