"""Colour and HDR metadata read from headers: MP4/MOV sample entry boxes, HEVC SEI, and the probe."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from livetx.media.colour import BT2020, SMPTE170M, TRANSFER_HLG, TRANSFER_PQ, ContentLight, DolbyVision, MasteringDisplay
from livetx.media.hdr_headers import (
    HdrMetadata,
    access_unit_sei,
    entry_colour,
    extradata_sei,
    hvcc_sei,
    mp4_track_colour,
    parse_clli,
    parse_coll,
    parse_colr,
    parse_dovi,
    parse_mdcv,
    parse_smdm,
    sei_metadata,
    unescape,
)
from livetx.media.probe import probe

# The mastering display of HDR10 grading on a P3 monitor, as x265's master-display writes it
MASTERING = MasteringDisplay(
    red=(34000, 16000), green=(13250, 34500), blue=(7500, 3000), white=(15635, 16450), max_luminance=10000000, min_luminance=50
)
LIGHT = ContentLight(max_cll=1000, max_fall=400)


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mdcv_body(m: MasteringDisplay) -> bytes:
    return struct.pack(">8HII", *m.green, *m.blue, *m.red, *m.white, m.max_luminance, m.min_luminance)


def sei_nal(messages: list[tuple[int, bytes]], escape: bool = True) -> bytes:
    """A prefix SEI NAL unit (type 39) holding `messages`, with emulation prevention applied."""
    rbsp = b""
    for kind, payload in messages:
        rbsp += b"\xff" * (kind // 255) + bytes([kind % 255]) + b"\xff" * (len(payload) // 255) + bytes([len(payload) % 255]) + payload
    rbsp += b"\x80"
    if escape:
        out = bytearray()
        zeros = 0
        for byte in rbsp:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        rbsp = bytes(out)
    return bytes([39 << 1, 1]) + rbsp


HDR_SEI = sei_nal([(137, mdcv_body(MASTERING)), (144, struct.pack(">HH", LIGHT.max_cll, LIGHT.max_fall))])
VPS, SPS, PPS = bytes([32 << 1, 1, 0xC]), bytes([33 << 1, 1, 0x1]), bytes([34 << 1, 1, 0xC1])
SLICE = bytes([19 << 1, 1, 0xAF, 0, 0, 0])


def hvcc(arrays: list[tuple[int, list[bytes]]], length_size: int = 4) -> bytes:
    head = bytes([1]) + bytes(20) + bytes([0xFC | (length_size - 1), len(arrays)])
    body = b""
    for nal_type, nals in arrays:
        body += bytes([0x80 | nal_type]) + struct.pack(">H", len(nals))
        body += b"".join(struct.pack(">H", len(n)) + n for n in nals)
    return head + body


def moov(entry_kind: bytes, children: bytes, handler: bytes = b"vide") -> bytes:
    """A moov with one track whose first sample entry holds `children` after its 78 bytes of fields."""
    entry = box(entry_kind, bytes(78) + children)
    stsd = box(b"stsd", bytes(4) + struct.pack(">I", 1) + entry)
    hdlr = box(b"hdlr", bytes(8) + handler + bytes(12))
    mdia = box(b"mdia", hdlr + box(b"minf", box(b"stbl", stsd)))
    return box(b"moov", box(b"trak", box(b"tkhd", bytes(84)) + mdia))


def mp4_file(moov_box: bytes) -> io.BytesIO:
    return io.BytesIO(box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"mdat", bytes(32)) + moov_box)


# --- the boxes ---


def test_colr_nclx_and_nclc() -> None:
    assert parse_colr(b"nclx" + struct.pack(">HHH", 9, 16, 9) + b"\x80") == (9, 16, 9, True)
    assert parse_colr(b"nclx" + struct.pack(">HHH", 1, 1, 1) + b"\x00") == (1, 1, 1, False)
    assert parse_colr(b"nclc" + struct.pack(">HHH", 9, 18, 9)) == (9, 18, 9, None)
    assert parse_colr(b"prof" + bytes(40)) is None


def test_mdcv_is_green_blue_red_and_clli() -> None:
    assert parse_mdcv(mdcv_body(MASTERING)) == MASTERING
    assert parse_clli(struct.pack(">HH", 1000, 400)) == LIGHT


def test_smdm_is_red_green_blue_in_fixed_point() -> None:
    m = MASTERING
    chroma = [round(v * 65536 / 50000) for v in (*m.red, *m.green, *m.blue, *m.white)]
    body = bytes(4) + struct.pack(">8HII", *chroma, 1000 * 256, round(0.005 * 16384))
    got = parse_smdm(body)
    assert got is not None
    assert (got.red, got.green, got.blue, got.white) == (m.red, m.green, m.blue, m.white)
    assert got.max_luminance == 10000000 and got.min_luminance == 50
    assert parse_smdm(b"\x01" + body[1:]) is None  # a version this does not know
    assert parse_coll(bytes(4) + struct.pack(">HH", 1000, 400)) == LIGHT


@pytest.mark.parametrize(
    ("profile", "level", "compat", "flags", "expected"),
    [
        (8, 6, 1, 0b101, DolbyVision(profile=8, level=6, bl_compatibility=1, rpu=True, el=False, bl=True)),
        (5, 9, 0, 0b101, DolbyVision(profile=5, level=9, bl_compatibility=0)),
        (7, 6, 6, 0b111, DolbyVision(profile=7, level=6, bl_compatibility=6, el=True)),
        (8, 4, 4, 0b101, DolbyVision(profile=8, level=4, bl_compatibility=4)),
    ],
)
def test_dolby_vision_record(profile: int, level: int, compat: int, flags: int, expected: DolbyVision) -> None:
    record = bytes([1, 0]) + struct.pack(">H", profile << 9 | level << 3 | flags) + bytes([compat << 4]) + bytes(19)
    assert parse_dovi(record) == expected
    for kind in (b"dvcC", b"dvvC", b"dvwC"):
        found = entry_colour(moov(b"dvh1", box(kind, record))[8:])
        assert found is not None and found.dolby_vision == expected
    assert expected.name == (f"8.{compat}" if profile == 8 else str(profile))


def test_sample_entry_boxes_through_the_moov() -> None:
    colr = box(b"colr", b"nclx" + struct.pack(">HHH", 9, 16, 9) + b"\x00")
    children = (
        box(b"hvcC", hvcc([(32, [VPS]), (33, [SPS]), (34, [PPS])]))
        + colr
        + box(b"mdcv", mdcv_body(MASTERING))
        + box(b"clli", struct.pack(">HH", 1000, 400))
    )
    found = mp4_track_colour(mp4_file(moov(b"hvc1", children)))
    assert found is not None
    assert (found.fourcc, found.primaries, found.transfer, found.matrix, found.full_range) == (b"hvc1", 9, 16, 9, False)
    assert found.hdr == HdrMetadata(MASTERING, LIGHT)
    assert found.nal_length_size == 4 and found.dolby_vision is None


def test_boxes_win_over_the_hvcc_sei_whatever_their_order() -> None:
    other = MasteringDisplay(red=(1, 2), green=(3, 4), blue=(5, 6), white=(7, 8), max_luminance=9, min_luminance=10)
    sei = box(b"hvcC", hvcc([(39, [sei_nal([(137, mdcv_body(other)), (144, struct.pack(">HH", 1, 2))])])]))
    for children in (sei + box(b"mdcv", mdcv_body(MASTERING)), box(b"mdcv", mdcv_body(MASTERING)) + sei):
        found = entry_colour(moov(b"hev1", children)[8:])
        assert found is not None and found.hdr == HdrMetadata(MASTERING, ContentLight(1, 2))


def test_only_a_video_track_counts() -> None:
    assert mp4_track_colour(mp4_file(moov(b"mp4a", box(b"colr", b"nclx" + bytes(7)), handler=b"soun"))) is None


# --- HEVC SEI ---


def test_emulation_prevention_is_removed() -> None:
    assert unescape(b"\x00\x00\x03\x01\x00\x00\x03\x00\x03") == b"\x00\x00\x01\x00\x00\x00\x03"
    # the fixture has bytes that need escaping (the minimum luminance 50 is 00 00 00 32)
    assert b"\x00\x00\x03" in HDR_SEI
    assert sei_metadata(HDR_SEI) == HdrMetadata(MASTERING, LIGHT)


def test_sei_in_the_hvcc_arrays() -> None:
    record = hvcc([(32, [VPS]), (33, [SPS]), (34, [PPS]), (39, [sei_nal([(5, bytes(20))]), HDR_SEI])])
    assert hvcc_sei(record) == HdrMetadata(MASTERING, LIGHT)
    assert extradata_sei(record) == (HdrMetadata(MASTERING, LIGHT), 4)
    assert hvcc_sei(hvcc([(32, [VPS])])) == HdrMetadata()


@pytest.mark.parametrize("length_size", [1, 2, 4])
def test_sei_in_a_length_prefixed_access_unit(length_size: int) -> None:
    nals = [VPS, SPS, PPS, HDR_SEI, SLICE]
    data = b"".join(len(n).to_bytes(length_size, "big") + n for n in nals)
    assert access_unit_sei(data, length_size) == HdrMetadata(MASTERING, LIGHT)


def test_sei_in_an_annex_b_access_unit() -> None:
    aud = bytes([35 << 1, 1, 0x50])
    data = b"\x00\x00\x00\x01" + aud + b"\x00\x00\x00\x01" + VPS + b"\x00\x00\x01" + HDR_SEI + b"\x00\x00\x01" + SLICE
    assert access_unit_sei(data) == HdrMetadata(MASTERING, LIGHT)


def test_sei_after_the_first_slice_is_not_looked_for() -> None:
    data = b"\x00\x00\x01" + SLICE + b"\x00\x00\x01" + HDR_SEI
    assert access_unit_sei(data) == HdrMetadata()


def test_a_large_payload_type_and_size_use_ff_bytes() -> None:
    nal = sei_nal([(300, bytes(300)), (144, struct.pack(">HH", 1000, 400))])
    assert sei_metadata(nal) == HdrMetadata(content_light=LIGHT)


def noise(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("cut", range(0, 60, 3))
def test_truncated_input_never_raises(cut: int) -> None:
    record = hvcc([(33, [SPS]), (39, [HDR_SEI])])
    entry = moov(b"hvc1", box(b"hvcC", record) + box(b"mdcv", mdcv_body(MASTERING)) + box(b"dvcC", bytes(24)))
    for reader in (
        parse_colr,
        parse_mdcv,
        parse_smdm,
        parse_clli,
        parse_coll,
        parse_dovi,
        sei_metadata,
        hvcc_sei,
        access_unit_sei,
        extradata_sei,
    ):
        reader(HDR_SEI[:cut])  # type: ignore[operator]
        reader(record[:cut])  # type: ignore[operator]
    for n in (1, 2, 4, 3):
        access_unit_sei((len(HDR_SEI).to_bytes(4, "big") + HDR_SEI)[:cut], n)
    assert mp4_track_colour(mp4_file(entry[: len(entry) - cut])) is None or cut == 0
    assert hvcc_sei(record[: len(record) - cut - 1]) in (HdrMetadata(), HdrMetadata(MASTERING, LIGHT))


@pytest.mark.parametrize("seed", range(40))
def test_garbage_never_raises(seed: int) -> None:
    data = noise(seed, 1 + seed * 37)
    hvcc_sei(b"\x01" + data)
    extradata_sei(data)
    sei_metadata(bytes([39 << 1, 1]) + data)
    for n in (None, 1, 2, 4):
        access_unit_sei(data, n)
    mp4_track_colour(io.BytesIO(data))
    mp4_track_colour(mp4_file(moov(b"hvc1", data)))
    entry_colour(box(b"trak", data))


# --- real files through the probe ---

X265_HDR10 = "hdr10=1:master-display=" + MASTERING.x265() + ":max-cll=1000,400:repeat-headers=1:log-level=error"


def encode(path: Path, codec: str, pix_fmt: str, tags: tuple[int, int, int, int], options: dict[str, str] | None = None) -> None:
    """8 frames of 128x72 with the given (primaries, transfer, matrix, range) tags."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 72, pix_fmt
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = tags
        stream.options = options or {}
        ramp = np.tile(np.linspace(16, 235, 128, dtype=np.uint8), (72, 1))
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.dstack([ramp, ramp, ramp]), format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.mark.parametrize("suffix", [".mp4", ".ts", ".mkv"])
def test_pq_hevc_with_mastering_and_light_level(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"pq{suffix}"
    encode(path, "libx265", "yuv420p10le", (BT2020, TRANSFER_PQ, 9, 1), {"x265-params": X265_HDR10})
    info = probe(str(path))
    assert info.video is not None
    colour = info.video.colour
    assert (colour.primaries, colour.transfer, colour.matrix, colour.full_range) == (BT2020, TRANSFER_PQ, 9, False)
    assert colour.mastering == MASTERING and colour.content_light == LIGHT
    assert colour.dynamic_range == "pq" and colour.dolby_vision is None
    assert info.video.end is not None and info.video.end - (info.video.start or 0) == pytest.approx(8 / 25)


@pytest.mark.parametrize("suffix", [".mp4", ".ts", ".mkv"])
def test_hlg_hevc_without_mastering(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"hlg{suffix}"
    encode(path, "libx265", "yuv420p10le", (BT2020, TRANSFER_HLG, 9, 1), {"x265-params": "repeat-headers=1:log-level=error"})
    info = probe(str(path))
    assert info.video is not None
    colour = info.video.colour
    assert (colour.primaries, colour.transfer, colour.matrix, colour.full_range) == (BT2020, TRANSFER_HLG, 9, False)
    assert colour.mastering is None and colour.content_light is None and colour.dynamic_range == "hlg"
    assert info.video.end is not None and info.video.end - (info.video.start or 0) == pytest.approx(8 / 25)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg CLI")
def test_mov_from_the_ffmpeg_cli(tmp_path: Path) -> None:
    path = tmp_path / "pq.mov"
    command = [shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=128x72:r=25:d=0.32"]
    command += [
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p10le",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        "smpte2084",
        "-colorspace",
        "bt2020nc",
    ]
    command += ["-color_range", "tv", "-x265-params", X265_HDR10, "-tag:v", "hvc1", str(path)]
    subprocess.run(command, check=True, timeout=120)
    with path.open("rb") as f:
        boxes = mp4_track_colour(f)
    assert boxes is not None and (boxes.fourcc, boxes.primaries, boxes.transfer, boxes.matrix) == (b"hvc1", BT2020, TRANSFER_PQ, 9)
    info = probe(str(path))
    assert info.video is not None
    colour = info.video.colour
    assert (colour.primaries, colour.transfer, colour.matrix, colour.full_range) == (BT2020, TRANSFER_PQ, 9, False)
    assert colour.mastering == MASTERING and colour.content_light == LIGHT


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_sdr_h264_with_bt601_tags(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sd{suffix}"
    encode(path, "libx264", "yuv420p", (SMPTE170M, SMPTE170M, SMPTE170M, 1))
    info = probe(str(path))
    assert info.video is not None
    colour = info.video.colour
    assert (colour.primaries, colour.transfer, colour.matrix, colour.full_range) == (SMPTE170M, SMPTE170M, SMPTE170M, False)
    assert colour.mastering is None and colour.content_light is None and colour.dynamic_range == "sdr"


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p"])
def test_full_range_h264(tmp_path: Path, pix_fmt: str) -> None:
    path = tmp_path / f"{pix_fmt}.mp4"
    encode(path, "libx264", pix_fmt, (1, 1, 1, 2))
    info = probe(str(path))
    assert info.video is not None
    colour = info.video.colour
    assert (colour.primaries, colour.transfer, colour.matrix, colour.full_range) == (1, 1, 1, True)


def test_untagged_h264_says_unspecified(tmp_path: Path) -> None:
    path = tmp_path / "plain.mp4"
    encode(path, "libx264", "yuv420p", (2, 2, 2, 0))
    info = probe(str(path))
    assert info.video is not None
    assert info.video.colour.primaries == info.video.colour.transfer == info.video.colour.matrix == 2
    assert info.video.colour.full_range is None


def test_colour_survives_the_probe_record(tmp_path: Path) -> None:
    path = tmp_path / "pq.mkv"
    encode(path, "libx265", "yuv420p10le", (BT2020, TRANSFER_PQ, 9, 1), {"x265-params": X265_HDR10})
    info = probe(str(path))
    from livetx.media.model import MediaInfo

    assert MediaInfo.from_record(info.to_record()) == info


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg CLI")
def test_mp4_whose_sei_is_only_in_the_packets(tmp_path: Path) -> None:
    """MPEG-TS extradata holds no SEI, so an MP4 remuxed from it has none in its hvcC: the
    first packet's length-prefixed NAL units are where the mastering display is."""
    ts, mp4 = tmp_path / "pq.ts", tmp_path / "pq.mp4"
    encode(ts, "libx265", "yuv420p10le", (BT2020, TRANSFER_PQ, 9, 1), {"x265-params": X265_HDR10})
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(ts), "-c", "copy", str(mp4)], check=True, timeout=120)
    with mp4.open("rb") as f:
        boxes = mp4_track_colour(f)
    assert boxes is not None and boxes.hdr == HdrMetadata() and boxes.nal_length_size == 4
    info = probe(str(mp4))
    assert info.video is not None
    assert info.video.colour.mastering == MASTERING and info.video.colour.content_light == LIGHT
    assert info.video.end is not None and info.video.end - (info.video.start or 0) == pytest.approx(8 / 25)


def test_a_box_fills_what_the_codec_context_leaves_unspecified() -> None:
    from livetx.media.probe import _code_point

    assert _code_point(2, 9) == 9  # unspecified in the bitstream, BT.2020 in colr
    assert _code_point(1, 9) == 1  # the bitstream's own tag wins
    assert _code_point(2, None) == 2 and _code_point(None, None) == 2


def test_the_header_reader_is_pure() -> None:
    """Planning may read these facts where PyAV is not loaded: no av import."""
    import sys

    code = "import sys, livetx.media.hdr_headers; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "False"
