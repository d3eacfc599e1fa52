"""'cbcs' (SAMPLE-AES) protection of fMP4 segments (livetx.crypto.cbcs), proved by decoding.

The segments are livetx's own: an init segment and a 1 s media segment from
`transcode_segment` (fMP4, B-frames on, as renditions have them) of H.264, H.265, AAC, and
each video codec muxed with AAC. Protected, they are decoded by FFmpeg 8, whose mp4 demuxer
decrypts 'cbcs' given the key (`decryption_key`; it reads `saiz`/`saio` and the `tenc`
defaults, and ignores the `senc` they point into): every decoded frame and audio frame must
equal the clear segment's, and without the key the decode must fail or differ. A decryptor
written here from the spec undoes the protection byte for byte, so nothing but the samples'
protected ranges and the boxes saying how changed. That the slice headers stay clear is
checked against FFmpeg's own reading of them (the `trace_headers` bitstream filter), on the
segments and on encodes with the slice header features x264/x265 can be made to use.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.logging
import numpy as np
import pytest
from av.audio.frame import AudioFrame
from av.bitstream import BitStreamFilterContext
from av.video.frame import VideoFrame
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from livetx.crypto.cbcs import COMMON_SYSTEM_ID, TrackCrypt, protect_fragment, protect_init, tracks_of
from livetx.crypto.nal import slice_headers
from livetx.media.boxes import split_fragment, top_level
from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import transcode_segment
from tests.checker import in_own_process

KEY = bytes.fromhex("8f1a6b3c55e24d0a9c7b21e0f4d3a6b9")
KID = bytes.fromhex("2b0d6c1e9a7f4e3b8d5c0a1f6e2b7c94")
IV = bytes.fromhex("0a1b2c3d4e5f60718293a4b5c6d7e8f9")
WIDTH, HEIGHT, FPS = 160, 96, Fraction(30)
RENDITIONS = {  # name: (video codec, with AAC audio)
    "h264": ("h264", False),
    "h265": ("h265", False),
    "aac": (None, True),
    "h264+aac": ("h264", True),
    "h265+aac": ("h265", True),
}
VIDEO_NAMES = [name for name, (video, _) in RENDITIONS.items() if video]


def stream_types(name: str) -> set[str]:
    video, audio = RENDITIONS[name]
    return {kind for kind, present in (("video", video), ("audio", audio)) if present}


@dataclass(frozen=True)
class Made:
    init: bytes
    fragment: bytes
    protected_init: bytes
    protected_fragment: bytes


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cbcs") / "source.mp4"
    write_sample(path, SampleSpec(seconds=1.0, width=WIDTH, height=HEIGHT, fps=FPS, gop=30))
    return path


@pytest.fixture(scope="module")
def made(source: Path) -> dict[str, Made]:
    out = {}
    for name, (vcodec, audio) in RENDITIONS.items():
        video = VideoSpec(vcodec, WIDTH, HEIGHT, FPS) if vcodec else None
        job = SegmentJob(
            str(source), Fraction(0), Fraction(0), Fraction(1), video, AudioSpec(48000, 2) if audio else None,
            video_stream=0 if video else None, audio_stream=1 if audio else None, container="fmp4",
        )  # fmt: skip
        init, fragment = transcode_segment(replace(job, init=True)).data, transcode_segment(job).data
        out[name] = Made(init, fragment, protect_init(init, KID, IV), protect_fragment(fragment, KEY, IV, tracks_of(init)))
    return out


# ---- decoding --------------------------------------------------------------------------


def decode(init: bytes, fragment: bytes, key: bytes | None = None) -> dict[str, list[np.ndarray | None]]:
    """Every frame of each stream type, in order; None where the decoder refused a packet."""
    options = {"decryption_key": key.hex()} if key else {}
    with av.open(io.BytesIO(init + fragment), format="mp4", options=options) as container:
        out: dict[str, list[np.ndarray | None]] = {stream.type: [] for stream in container.streams}
        for packet in container.demux():
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                out[packet.stream.type].append(None)
                continue
            out[packet.stream.type] += [frame.to_ndarray() for frame in frames if isinstance(frame, VideoFrame | AudioFrame)]
    return out


@pytest.mark.parametrize("name", RENDITIONS)
def test_the_protected_segments_decode_with_the_key_to_the_clear_frames(made: dict[str, Made], name: str) -> None:
    clear = decode(made[name].init, made[name].fragment)
    protected = decode(made[name].protected_init, made[name].protected_fragment, KEY)
    assert set(clear) == set(protected) == stream_types(name)
    for kind, frames in clear.items():
        assert len(frames) >= (30 if kind == "video" else 46), kind  # 1 s: 30 frames; 47 AAC frames of 1024 samples
        assert all(frame is not None for frame in frames)
        assert len(protected[kind]) == len(frames), kind
        for index, (ours, theirs) in enumerate(zip(frames, protected[kind], strict=True)):
            assert theirs is not None and np.array_equal(ours, theirs), f"{kind} frame {index} differs"


@pytest.mark.parametrize("name", RENDITIONS)
def test_without_the_key_no_frame_decodes_as_the_clear_one(made: dict[str, Made], name: str) -> None:
    clear = decode(made[name].init, made[name].fragment)
    try:  # (a crash is as good as a refusal: see in_own_process)
        garbled = in_own_process(decode, made[name].protected_init, made[name].protected_fragment)
    except av.error.FFmpegError:
        return  # refused outright
    if garbled is None:
        return
    for kind, frames in clear.items():
        same = sum(1 for ours, theirs in zip(frames, garbled[kind], strict=False) if theirs is not None and np.array_equal(ours, theirs))
        assert same == 0, f"{same} {kind} frames decoded without the key"


@pytest.mark.parametrize("name", VIDEO_NAMES)
def test_the_video_has_b_frames(made: dict[str, Made], name: str) -> None:
    """fMP4 renditions reorder (B-frames): decode order is not presentation order."""
    with av.open(io.BytesIO(made[name].init + made[name].fragment), format="mp4") as container:
        pts = [packet.pts for packet in container.demux(video=0) if packet.size]
    assert pts != sorted(pts)


# ---- boxes, read back here -------------------------------------------------------------

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"sinf", b"schi"}
FIELDS = {b"stsd": 8, b"avc1": 78, b"hvc1": 78, b"encv": 78, b"mp4a": 28, b"enca": 28}  # own bytes before child boxes


@dataclass
class Box:
    kind: bytes
    head: bytes  # the box's own bytes before its child boxes (a leaf: all of its body)
    children: list[Box]

    def encode(self) -> bytes:
        body = self.head + b"".join(child.encode() for child in self.children)
        return struct.pack(">I4s", 8 + len(body), self.kind) + body

    def all(self, kind: bytes) -> Iterator[Box]:
        for child in self.children:
            if child.kind == kind:
                yield child
            yield from child.all(kind)

    def one(self, kind: bytes) -> Box:
        found = list(self.all(kind))
        assert len(found) == 1, (kind, len(found))
        return found[0]

    def has(self, kind: bytes) -> bool:
        return any(True for _ in self.all(kind))


def parse(data: bytes) -> list[Box]:
    out = []
    for kind, start, end in top_level(data):
        body = data[start + 8 : end]
        own = FIELDS.get(kind, 0 if kind in CONTAINERS else len(body))
        out.append(Box(kind, body[:own], parse(body[own:]) if own < len(body) else []))
    return out


def root(boxes: list[Box]) -> Box:
    return Box(b"root", b"", boxes)


@dataclass(frozen=True)
class Tenc:
    version: int
    pattern: tuple[int, int]
    protected: int
    iv_size: int
    kid: bytes
    constant_iv: bytes


def read_tenc(box: Box) -> Tenc:
    version, _, _, pattern, protected, iv_size = struct.unpack_from(">B3sBBBB", box.head)
    kid = box.head[8:24]
    return Tenc(version, (pattern >> 4, pattern & 15), protected, iv_size, kid, box.head[25 : 25 + box.head[24]])


def track_tenc(init: bytes) -> dict[int, Tenc]:
    out = {}
    for trak in root(parse(init)).all(b"trak"):
        (track_id,) = struct.unpack_from(">I", trak.one(b"tkhd").head, 12)
        out[track_id] = read_tenc(trak.one(b"tenc"))
    return out


def unprotect_init(init: bytes) -> bytes:
    """An init segment with every sinf and pssh taken out and the sample entries renamed back."""
    boxes = parse(init)
    for box in root(boxes).all(b"stsd"):
        for entry in box.children:
            entry.kind = entry.one(b"frma").head[:4]
            entry.children = [child for child in entry.children if child.kind != b"sinf"]
    moov = root(boxes).one(b"moov")
    moov.children = [child for child in moov.children if child.kind != b"pssh"]
    return b"".join(box.encode() for box in boxes)


def trun_samples(traf: Box, default_size: int) -> list[tuple[int, int]]:
    """(offset from the moof, size) of each sample of a traf's truns."""
    (tfhd_flags,) = struct.unpack_from(">I", traf.one(b"tfhd").head)
    if tfhd_flags & 0x10:
        (default_size,) = struct.unpack_from(">I", traf.one(b"tfhd").head, 8 + 4 * bool(tfhd_flags & 2) + 4 * bool(tfhd_flags & 8))
    out = []
    for trun in traf.all(b"trun"):
        flags, count, offset = struct.unpack_from(">IIi", trun.head)
        fields = [flag for flag in (0x100, 0x200, 0x400, 0x800) if flags & flag]
        pos = 12 + 4 * bool(flags & 4)
        for _ in range(count):
            size = struct.unpack_from(">I", trun.head, pos + 4 * fields.index(0x200))[0] if 0x200 in fields else default_size
            out.append((offset, size))
            offset += size
            pos += 4 * len(fields)
    return out


def senc_entries(traf: Box) -> list[list[tuple[int, int]]]:
    """The subsamples of each sample in a traf's senc (constant IV: no IV in it)."""
    senc = traf.one(b"senc")
    flags, count = struct.unpack_from(">II", senc.head)
    assert flags & 0xFFFFFF == 2  # subsample encryption
    out, pos = [], 8
    for _ in range(count):
        (n,) = struct.unpack_from(">H", senc.head, pos)
        out.append([struct.unpack_from(">HI", senc.head, pos + 2 + 6 * i) for i in range(n)])
        pos += 2 + 6 * n
    assert pos == len(senc.head)
    return out


def decrypt_range(data: bytearray, start: int, length: int, pattern: tuple[int, int], iv: bytes) -> None:
    """Undo 'cbcs' over one protected range, straight from 23001-7 9.6/10.4: blocks of 16 bytes,
    `crypt` decrypted then `skip` left, the CBC chain running through the decrypted ones from
    the IV; 0:0 means every block."""
    crypt, skip = pattern
    blocks = length // 16
    if pattern == (0, 0):
        crypt, skip = blocks, 0
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(iv)).decryptor()
    for first in range(0, blocks, crypt + skip):
        for block in range(first, min(first + crypt, blocks)):
            at = start + 16 * block
            data[at : at + 16] = decryptor.update(bytes(data[at : at + 16]))


def protected_ranges(moof: Box, moof_start: int, tenc: dict[int, Tenc]) -> Iterator[tuple[int, int, int, Tenc]]:
    """(track id, start, length, tenc) of each protected range of a moof's samples."""
    for traf in moof.all(b"traf"):
        track_id = struct.unpack_from(">I", traf.one(b"tfhd").head, 4)[0]
        samples = trun_samples(traf, 0)
        entries = senc_entries(traf) if traf.has(b"senc") else [[(0, size)] for _, size in samples]
        for (offset, _), subsamples in zip(samples, entries, strict=True):
            at = moof_start + offset
            for clear, protected in subsamples:
                yield track_id, at + clear, protected, tenc[track_id]
                at += clear + protected


def decrypt_fragment(fragment: bytes, init: bytes) -> bytes:
    """A protected media segment decrypted, its sample auxiliary information taken out and its
    data offsets moved back: the clear segment, if nothing else changed."""
    tenc, data, pos, out = track_tenc(init), bytearray(fragment), 0, []
    boxes = parse(fragment)
    for box in boxes:
        size = len(box.encode())
        if box.kind == b"moof":
            for _, start, length, track in protected_ranges(box, pos, tenc):
                decrypt_range(data, start, length, track.pattern, track.constant_iv)
            for traf in box.all(b"traf"):
                traf.children = [child for child in traf.children if child.kind not in (b"saiz", b"saio", b"senc")]
            shrunk = size - len(box.encode())
            for trun in box.all(b"trun"):
                (offset,) = struct.unpack_from(">i", trun.head, 8)
                trun.head = trun.head[:8] + struct.pack(">i", offset - shrunk) + trun.head[12:]
            out.append(box.encode())
        else:
            out.append(bytes(data[pos : pos + size]))
        pos += size
    return b"".join(out)


# ---- the boxes -------------------------------------------------------------------------


def test_the_box_reader_here_reads_livetx_segments_back_byte_for_byte(made: dict[str, Made]) -> None:
    for one in made.values():
        for data in (one.init, one.fragment, one.protected_init, one.protected_fragment):
            assert b"".join(box.encode() for box in parse(data)) == data


@pytest.mark.parametrize("name", RENDITIONS)
def test_protection_changes_nothing_but_the_protected_ranges_and_the_boxes_saying_how(made: dict[str, Made], name: str) -> None:
    one = made[name]
    assert unprotect_init(one.protected_init) == one.init
    assert decrypt_fragment(one.protected_fragment, one.protected_init) == one.fragment


@pytest.mark.parametrize("name", RENDITIONS)
def test_the_init_segment_declares_cbcs(made: dict[str, Made], name: str) -> None:
    video = RENDITIONS[name][0] or ""
    originals = {b"encv": {"h264": b"avc1", "h265": b"hvc1"}.get(video), b"enca": b"mp4a"}  # what the muxer writes
    moov = root(parse(made[name].protected_init)).one(b"moov")
    entries = {entry.kind: entry for stsd in moov.all(b"stsd") for entry in stsd.children}
    assert {entry.decode() for entry in entries} == {{"video": "encv", "audio": "enca"}[kind] for kind in stream_types(name)}
    for kind, entry in entries.items():
        assert entry.children[-1].kind == b"sinf"  # appended after the codec configuration
        assert entry.one(b"frma").head == originals[kind]
        assert entry.one(b"schm").head == b"\x00\x00\x00\x00cbcs\x00\x01\x00\x00"
        tenc = read_tenc(entry.one(b"tenc"))
        assert tenc == Tenc(1, (1, 9) if kind == b"encv" else (0, 0), 1, 0, KID, IV)
    pssh = moov.one(b"pssh").head
    assert pssh == b"\x01\x00\x00\x00" + COMMON_SYSTEM_ID + struct.pack(">I", 1) + KID + struct.pack(">I", 0)


@pytest.mark.parametrize("name", RENDITIONS)
def test_each_video_traf_has_senc_saiz_saio_for_its_samples(made: dict[str, Made], name: str) -> None:
    fragment = made[name].protected_fragment
    moof_start = next(start for kind, start, _ in top_level(fragment) if kind == b"moof")
    moof = root(parse(fragment)).one(b"moof")
    kinds = {track_id: track.is_video for track_id, track in tracks_of(made[name].init).items()}
    for traf in moof.all(b"traf"):
        track_id = struct.unpack_from(">I", traf.one(b"tfhd").head, 4)[0]
        samples = trun_samples(traf, 0)
        if not kinds[track_id]:  # audio: full-sample, constant IV: no auxiliary information
            assert not any(traf.has(kind) for kind in (b"senc", b"saiz", b"saio"))
            continue
        entries = senc_entries(traf)
        assert len(entries) == len(samples)
        for (_, size), subsamples in zip(samples, entries, strict=True):
            assert sum(clear + protected for clear, protected in subsamples) == size
            assert any(protected for _, protected in subsamples)
        default_size, count = struct.unpack_from(">BI", traf.one(b"saiz").head, 4)
        sizes = [default_size] * count if default_size else list(traf.one(b"saiz").head[9:])
        assert sizes == [2 + 6 * len(subsamples) for subsamples in entries]
        entry_count, offset = struct.unpack_from(">II", traf.one(b"saio").head, 4)
        senc_at = fragment.index(traf.one(b"senc").encode(), moof_start)
        assert (entry_count, moof_start + offset) == (1, senc_at + 16)  # the first entry, after the senc's count


def entropy(data: bytes) -> float:
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


@pytest.mark.parametrize("name", RENDITIONS)
def test_the_encrypted_blocks_changed_and_look_random_the_rest_did_not_change(made: dict[str, Made], name: str) -> None:
    one = made[name]
    fragment = one.protected_fragment
    grown = len(fragment) - len(one.fragment)  # the moof grew; every byte after it moved as much
    moof_start = next(start for kind, start, _ in top_level(fragment) if kind == b"moof")
    moof = root(parse(fragment)).one(b"moof")
    encrypted: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}
    changed = bytearray(fragment)
    for _, start, length, tenc in protected_ranges(moof, moof_start, track_tenc(one.protected_init)):
        crypt, skip = tenc.pattern if tenc.pattern != (0, 0) else (length // 16, 0)
        for block in range(0, length // 16, crypt + skip):
            at = start + 16 * block
            ours, theirs = fragment[at : at + 16 * crypt], one.fragment[at - grown : at - grown + 16 * crypt]
            assert all(ours[i : i + 16] != theirs[i : i + 16] for i in range(0, len(ours), 16))
            encrypted[tenc.pattern == (1, 9)] += ours
            changed[at : at + 16 * crypt] = theirs
    mdat = next(start for kind, start, _ in top_level(fragment) if kind == b"mdat")
    assert changed[mdat:] == one.fragment[mdat - grown :]  # outside the encrypted blocks, the same bytes
    for video, data in encrypted.items():
        if data:
            assert entropy(bytes(data)) > (7.8 if len(data) > 8000 else 7.6), ("video" if video else "audio", len(data))


# ---- slice headers ---------------------------------------------------------------------


def traced_headers(init: bytes, fragment: bytes) -> list[list[int]]:
    """FFmpeg's reading of the slice headers: per video packet, per VCL NAL unit, the bytes of
    its RBSP up to the end of its slice header (NAL unit header included, rounded up)."""
    with av.open(io.BytesIO(init + fragment), format="mp4") as container:
        stream = container.streams.video[0]
        trace = BitStreamFilterContext("trace_headers", stream)
        av.logging.set_level(av.logging.TRACE)
        try:
            with av.logging.Capture() as logs:
                for packet in container.demux(stream):
                    trace.filter(packet)
                trace.filter(None)
        finally:
            av.logging.set_level(None)
    packets: list[list[int]] = []
    end: int | None = None
    for _, name, line in logs:
        if name != "trace_headers":
            continue
        field = re.match(r"(\d+) +\S+ +([01]+) = ", line)
        if field and end is not None:
            end = int(field[1]) + len(field[2])
            continue
        if end is not None:
            packets[-1].append((end + 7) // 8)
        end = 0 if line.startswith(("Slice Header", "Slice Segment Header")) else None
        if line.startswith("Packet:"):
            packets.append([])
    if end is not None:
        packets[-1].append((end + 7) // 8)
    return packets


def stored(nal: bytes, rbsp_bytes: int) -> int:
    """Bytes of a NAL unit as stored holding its first `rbsp_bytes` RBSP bytes (emulation
    prevention bytes, 00 00 03, counted in)."""
    zeros = kept = pos = 0
    while kept < rbsp_bytes:
        if zeros >= 2 and nal[pos] == 3:
            zeros = 0
        else:
            zeros = zeros + 1 if nal[pos] == 0 else 0
            kept += 1
        pos += 1
    return pos


def nal_units(sample: bytes, length_size: int) -> Iterator[bytes]:
    pos = 0
    while pos < len(sample):
        size = int.from_bytes(sample[pos : pos + length_size], "big")
        yield sample[pos + length_size : pos + length_size + size]
        pos += length_size + size


def is_slice(codec: str, nal: bytes) -> bool:
    """A VCL NAL unit: H.264 types 1 and 5 (livetx's streams have no other), H.265 types 0-31."""
    return nal[0] & 0x1F in (1, 5) if codec == "h264" else nal[0] >> 1 & 0x3F < 32


def video_samples(init: bytes, fragment: bytes) -> list[bytes]:
    with av.open(io.BytesIO(init + fragment), format="mp4") as container:
        return [bytes(packet) for packet in container.demux(video=0) if packet.size]


@pytest.mark.parametrize("name", VIDEO_NAMES)
def test_each_protected_range_starts_where_ffmpeg_reads_the_slice_header_end(made: dict[str, Made], name: str) -> None:
    one = made[name]
    track = next(track for track in tracks_of(one.init).values() if track.is_video)
    samples = video_samples(one.init, one.fragment)
    traced = traced_headers(one.init, one.fragment)
    moof = root(parse(one.protected_fragment)).one(b"moof")
    traf = next(traf for traf in moof.all(b"traf") if struct.unpack_from(">I", traf.one(b"tfhd").head, 4)[0] == track.track_id)
    layouts = senc_entries(traf)
    assert len(samples) == len(traced) == len(layouts)
    for sample, headers, layout in zip(samples, traced, layouts, strict=True):
        expected, clear, slices = [], 0, iter(headers)
        for nal in nal_units(sample, track.nal_length_size):
            header = stored(nal, next(slices)) if is_slice(track.codec, nal) else len(nal)
            if len(nal) - header >= 16:
                expected.append((clear + track.nal_length_size + header, len(nal) - header))
                clear = 0
            else:
                clear += track.nal_length_size + len(nal)
        assert next(slices, None) is None
        assert layout == expected + [(clear, 0)] * bool(clear)


FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
ENCODES = {  # slice header features of x264/x265 beyond livetx's settings
    "x264 CAVLC baseline": ("libx264", "yuv420p", {"profile": "baseline", "preset": "fast"}),
    "x264 interlaced, 3 slices": ("libx264", "yuv420p", {"x264-params": "tff=1:slices=3"}),
    "x264 weighted P/B, b-pyramid, 5 refs": (
        "libx264",
        "yuv420p",
        {"preset": "slow", "x264-params": "weightp=2:weightb=1:ref=5:b-pyramid=normal"},
    ),
    "x264 4:4:4 10-bit, no deblocking": ("libx264", "yuv444p10le", {"x264-params": "no-deblock=1:cqm=jvt"}),
    "x265 weighted P/B, 3 slices, 4 refs": ("libx265", "yuv420p", {"x265-params": "log-level=error:weightb=1:slices=3:ref=4:bframes=4"}),
    "x265 4:2:2 10-bit, no WPP, transform skip": ("libx265", "yuv422p10le", {"x265-params": "log-level=error:wpp=0:tskip=1:signhide=1"}),
}


@pytest.mark.parametrize("name", ENCODES)
def test_the_slice_header_reader_agrees_with_ffmpeg(source: Path, name: str) -> None:
    codec, pix_fmt, options = ENCODES[name]
    out = io.BytesIO()
    with (
        av.open(str(source)) as src,
        av.open(out, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as dst,
    ):
        stream = dst.add_stream(codec, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        for index, frame in enumerate(src.decode(video=0)):
            frame.pts, frame.time_base = index, Fraction(1, 30)
            dst.mux(stream.encode(frame.reformat(format=pix_fmt)))
        dst.mux(stream.encode())
    init, fragment = split_fragment(out.getvalue())
    track = next(iter(tracks_of(init).values()))
    reader = slice_headers(track.codec, track.parameter_sets)
    for sample, headers in zip(video_samples(init, fragment), traced_headers(init, fragment), strict=True):
        slices = iter(headers)
        nals = list(nal_units(sample, track.nal_length_size))
        theirs = [stored(nal, next(slices)) if is_slice(track.codec, nal) else None for nal in nals]
        assert [reader.clear_size(nal) for nal in nals] == theirs


# ---- what is refused -------------------------------------------------------------------


def test_the_tracks_read_the_same_from_the_clear_and_the_protected_init(made: dict[str, Made]) -> None:
    for name, one in made.items():
        assert tracks_of(one.protected_init) == tracks_of(one.init), name
    track = tracks_of(made["h264+aac"].init)
    assert [(t.codec, t.nal_length_size, len(t.parameter_sets) >= 2) for t in track.values()] == [("h264", 4, True), ("aac", 0, False)]


def test_what_cannot_be_protected_is_refused_by_name(made: dict[str, Made]) -> None:
    init, fragment = made["h264"].init, made["h264"].fragment
    with pytest.raises(ValueError, match="AV1"):
        protect_init(init.replace(b"avc1", b"av01"), KID, IV)
    with pytest.raises(ValueError, match=r"protected already \(encv\)"):
        protect_init(made["h264"].protected_init, KID, IV)
    with pytest.raises(ValueError, match="key must be 16 bytes"):
        protect_fragment(fragment, KEY[:15], IV, tracks_of(init))
    with pytest.raises(ValueError, match="track 1, which the init segment does not have"):
        protect_fragment(fragment, KEY, IV, {2: TrackCrypt(2, "aac")})
    with pytest.raises(ValueError, match="sample auxiliary information already"):
        protect_fragment(made["h264"].protected_fragment, KEY, IV, tracks_of(init))
