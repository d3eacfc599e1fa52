"""Display rotation read from MP4/MOV track headers, without decoding."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import pytest

from livetx.media.orientation import display_rotation
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_rotation_is_read_from_the_track_header(tmp_path: Path, rotation: int, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    write_sample(path, SampleSpec(seconds=0.5, width=160, height=96, fps=Fraction(10), rotation=rotation))
    with path.open("rb") as f:
        assert display_rotation(f) == rotation
    info = probe(str(path))
    assert info.video is not None and info.video.rotation == rotation
    assert info.video.display_size == ((96, 160) if rotation % 180 else (160, 96))


def test_moov_after_the_media_is_found(tmp_path: Path) -> None:
    path = tmp_path / "late.mp4"
    write_sample(path, SampleSpec(seconds=0.5, width=160, height=96, fps=Fraction(10), rotation=270))
    data = path.read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")  # PyAV writes moov last, as phones do
    assert display_rotation(io.BytesIO(data)) == 270


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x00\x00\x10moov\x00\x00", id="truncated-moov"),
        pytest.param(b"\x00\x00\x00\x01mdat", id="truncated-largesize"),
        pytest.param(b"\x00\x00\x00\x04junk" * 3, id="box-smaller-than-header"),
        pytest.param(bytes(range(256)) * 8, id="noise"),
    ],
)
def test_damaged_headers_give_no_rotation(data: bytes) -> None:
    assert display_rotation(io.BytesIO(data)) == 0


def test_other_containers_have_no_rotation(tmp_path: Path) -> None:
    path = tmp_path / "plain.mkv"
    write_sample(path, SampleSpec(seconds=0.5, width=160, height=96, fps=Fraction(10)))
    info = probe(str(path))
    assert info.video is not None and info.video.rotation == 0
