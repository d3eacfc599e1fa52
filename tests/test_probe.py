from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest

from livetx.errors import SourceUnreadable
from livetx.media.probe import probe
from tests.conftest import Source


def test_header_facts(sources: dict[str, Source]) -> None:
    info = probe(str(sources["mkv-25-44k"].path))
    assert info.video is not None and info.audio is not None
    assert (info.video.width, info.video.height, info.video.fps) == (320, 240, 25)
    assert (info.audio.sample_rate, info.audio.channels) == (44100, 2)


def test_tail_probe_finds_where_streams_really_end(sources: dict[str, Source]) -> None:
    info = probe(str(sources["mkv-25-44k"].path))
    assert info.video is not None and info.audio is not None
    assert info.video.end == Fraction(6)  # 150 frames of 40 ms
    assert Fraction(6) < info.audio.end < Fraction(6) + Fraction(2048, 44100)  # AAC runs on part of a frame


def test_start_offset_is_kept(sources: dict[str, Source]) -> None:
    info = probe(str(sources["ts-10h"].path))
    assert info.video is not None and info.video.start is not None and info.video.end is not None
    assert 36000 <= info.video.start < 36001 and info.video.end - info.video.start == 4


@pytest.mark.parametrize("content", [b"", os.urandom(2048), b"\x00\x00\x00\x18ftypmp42" + os.urandom(64)])
def test_unreadable_sources_are_named(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(SourceUnreadable):
        probe(str(path))
