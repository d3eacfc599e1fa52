"""SAMPLE-AES for fMP4 (CMAF): Common Encryption scheme 'cbcs' (ISO/IEC 23001-7, 3rd edition). Pure.

An init segment is protected once (`protect_init`), each media segment on its own
(`protect_fragment`, knowing the tracks `tracks_of` reads from the init segment). Every other
byte keeps its meaning: boxes grow, and the sizes and offsets pointing across them follow.

Init segment: each sample entry is renamed `encv`/`enca` and gets a `sinf` (`frma` naming the
original format, `schm` 'cbcs' version 1.0, `schi`/`tenc`). `tenc` is version 1 (the one with
the pattern fields; Safari refuses a version 0 'cbcs' `tenc`, even for audio), with no
per-sample IV and a 16-byte constant IV, as CMAF and FairPlay use 'cbcs'. `moov` gets a `pssh`
of the W3C Common PSSH system (version 1, listing the KID): the init data EME Clear Key reads
from the `encrypted` event. Video has the pattern 1:9 (one 16-byte block encrypted, nine
skipped); audio has none (0:0: "when default_crypt_byte_block and default_skip_byte_block [...]
are non-zero numbers, pattern encryption SHALL be applied", 9.6.1) and is whole-block
full-sample encrypted (9.7): every whole block of a sample, the partial last block clear.

Media segment: samples are encrypted in place. AES-128-CBC runs through the encrypted blocks of
one protected range as one chain, the constant IV starting each range afresh ("The 'cbcs'
scheme SHALL apply an IV to the first encrypted cipher block of each Subsample"): each
subsample for video, each sample for audio, as FFmpeg's `cbcs_scheme_decrypt` and Chromium's
`DecryptCbcsBuffer` undo it. Video is subsample-encrypted per NAL unit: the length prefix, the
NAL unit header and the slice header stay clear, and the protected range is the rest of a VCL
NAL unit, from its first byte of slice data, as CMAF requires of 'cbcs' (the slice header is
read: `livetx.crypto.nal`); other NAL units (parameter sets, SEI, AUD) stay clear, and so does
a slice with less than a block after its header. A protected range is not cut to a multiple
of 16 bytes: 'cbcs' leaves a partial last block clear by definition (the alignment rule of
10.2/10.3 is for 'cbc1' and 'cens'). Each video `traf` gets, after its `trun`s, a `saiz`, a
`saio` (offset of the first `senc` entry from the `moof`, the base its `tfhd` names) and a
`senc` (flag 2: subsample entries; no IV, the IV being constant). An audio `traf` gets none:
its auxiliary information would be empty, and "should be omitted" (23001-7; CMAF 8.2.2.1);
decryptors then take the constant IV and full-sample mode from `tenc`. Each `trun`
data_offset moves by what its `moof` grew.

Not supported, with a ValueError saying so: AV1 (its protected ranges follow OBU and tile
headers, av1-isobmff), audio other than AAC, fragments with a `sidx` or a base data offset,
and the stream features `livetx.crypto.nal` names.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from livetx.crypto.nal import SliceHeaders, slice_headers
from livetx.media.boxes import top_level

SCHEME = b"cbcs"
SCHEME_VERSION = 0x00010000  # schm scheme_version: major 1, minor 0
BLOCK = 16  # AES block
VIDEO_PATTERN = (1, 9)  # crypt_byte_block, skip_byte_block: what FairPlay and every packager use for video
FULL_SAMPLE = (0, 0)  # no pattern: whole-block full-sample encryption (9.6.1, 9.7)
COMMON_SYSTEM_ID = uuid.UUID("1077efec-c0b2-4d02-ace3-3c1e52e2fb4b").bytes  # W3C "Common PSSH box format"
VIDEO_ENTRIES = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "h265", b"hev1": "h265"}
AUDIO_ENTRIES = {b"mp4a": "aac"}
PROTECTED_ENTRIES = {b"encv": VIDEO_ENTRIES, b"enca": AUDIO_ENTRIES}
NOT_YET = {b"av01": "AV1"}  # protected per av1-isobmff (tile data only): not implemented
CONFIGS = {"h264": b"avcC", "h265": b"hvcC"}
VISUAL_FIELDS = 78  # VisualSampleEntry fields before its child boxes (ISO/IEC 14496-12 12.1.3)
AUDIO_FIELDS = {0: 28, 1: 44, 2: 64}  # AudioSampleEntry (12.2.3), by QuickTime sound version
STSD_FIELDS = 8  # version, flags, entry_count
TRAK_PATH = (b"mdia", b"minf", b"stbl", b"stsd")  # from a trak to its sample entries
MAX_CLEAR = 0xFFFF  # BytesOfClearData is 16 bits
MAX_SUBSAMPLES = (0xFF - 2) // 6  # a saiz entry (u8) holds subsample_count and 6 bytes per subsample
TFHD_BASE_DATA_OFFSET, TFHD_DEFAULT_SIZE, TFHD_DEFAULT_BASE_IS_MOOF = 0x1, 0x10, 0x020000
TFHD_FIELDS = ((0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4), (0x20, 4))  # (flag, bytes) of the optional fields, in order
TRUN_DATA_OFFSET, TRUN_FIRST_FLAGS = 0x1, 0x4
TRUN_SAMPLE_FIELDS = (0x100, 0x200, 0x400, 0x800)  # duration, size, flags, composition offset
SENC_SUBSAMPLES = 0x2


@dataclass(frozen=True)
class TrackCrypt:
    """What protecting a track's samples needs to know of it, from the init segment."""

    track_id: int
    codec: str  # "h264" | "h265" | "aac"
    nal_length_size: int = 0  # bytes of each NAL unit's length prefix (avcC/hvcC lengthSizeMinusOne + 1); 0 for audio
    parameter_sets: tuple[bytes, ...] = ()  # the SPS/PPS (and VPS) NAL units of avcC/hvcC: slice headers are read with them
    default_sample_size: int = 0  # trex default_sample_size, for fragments that give no size

    @property
    def is_video(self) -> bool:
        return self.codec in CONFIGS


# ---- boxes -----------------------------------------------------------------------------


def _box(kind: bytes, *body: bytes) -> bytes:
    payload = b"".join(body)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, flags: int, *body: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *body)


def _header_size(data: bytes, start: int) -> int:
    return 16 if struct.unpack_from(">I", data, start)[0] == 1 else 8


def _children(data: bytes, start: int, end: int, fields: int = 0) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of the boxes inside the box at [start, end), after `fields` bytes of its own."""
    body = start + _header_size(data, start) + fields
    return [(kind, body + s, body + e) for kind, s, e in top_level(data[body:end])]


def _child(data: bytes, start: int, end: int, kind: bytes, fields: int = 0) -> tuple[int, int]:
    found = [(s, e) for k, s, e in _children(data, start, end, fields) if k == kind]
    if len(found) != 1:
        raise ValueError(f"expected one {kind.decode()} box, found {len(found)}")
    return found[0]


def _rewrite(data: bytes, start: int, end: int, path: tuple[bytes, ...], change: Callable[[bytes], bytes]) -> bytes:
    """The box at [start, end) with `change` applied to every sample entry under it along `path`
    (child types down to an stsd), every enclosing size made to fit."""
    kind = data[start + 4 : start + 8]
    fields = STSD_FIELDS if kind == b"stsd" else 0
    body = start + _header_size(data, start)
    own = data[body : body + fields]
    parts = []
    for child, s, e in _children(data, start, end, fields):
        if not path:
            parts.append(change(data[s:e]))
        elif child == path[0]:
            parts.append(_rewrite(data, s, e, path[1:], change))
        else:
            parts.append(data[s:e])
    return _box(kind, own, *parts)


def _check(**values: bytes) -> None:
    for name, value in values.items():
        if len(value) != BLOCK:
            raise ValueError(f"{name} must be {BLOCK} bytes, not {len(value)}")


# ---- init segment ----------------------------------------------------------------------


def protect_init(init: bytes, kid: bytes, iv: bytes) -> bytes:
    """The init segment (`ftyp`+`moov`) of clear tracks, as protected 'cbcs' tracks of key id
    `kid` whose samples `protect_fragment` encrypts with constant IV `iv` (16 bytes each)."""
    _check(kid=kid, iv=iv)
    out, moovs = [], 0
    for kind, start, end in top_level(init):
        if kind == b"moov":
            moovs += 1
            out.append(_protect_moov(init, start, end, kid, iv))
        else:
            out.append(init[start:end])
    if moovs != 1:
        raise ValueError(f"an init segment holds one moov, not {moovs}")
    return b"".join(out)


def _protect_moov(init: bytes, start: int, end: int, kid: bytes, iv: bytes) -> bytes:
    parts = []
    for kind, s, e in _children(init, start, end):
        if kind == b"trak":
            parts.append(_rewrite(init, s, e, TRAK_PATH, lambda entry: _protect_entry(entry, kid, iv)))
        else:
            parts.append(init[s:e])
    return _box(b"moov", *parts, _pssh(kid))


def _protect_entry(entry: bytes, kid: bytes, iv: bytes) -> bytes:
    """A sample entry renamed encv/enca, with its sinf appended."""
    kind = entry[4:8]
    if kind in VIDEO_ENTRIES:
        renamed, pattern = b"encv", VIDEO_PATTERN
    elif kind in AUDIO_ENTRIES:
        renamed, pattern = b"enca", FULL_SAMPLE
    else:
        raise ValueError(_unsupported(kind))
    return _box(renamed, entry[_header_size(entry, 0) :], _sinf(kind, kid, iv, pattern))


def _unsupported(kind: bytes) -> str:
    if kind in PROTECTED_ENTRIES:
        return f"the track is protected already ({kind.decode()})"
    name = NOT_YET.get(kind, kind.decode(errors="replace"))
    return f"'cbcs' protection of {name} samples is not supported"


def _sinf(original: bytes, kid: bytes, iv: bytes, pattern: tuple[int, int]) -> bytes:
    """ProtectionSchemeInfoBox (14496-12 8.12, 23001-7 4)."""
    crypt, skip = pattern
    tenc = _full_box(
        b"tenc", 1, 0, bytes([0, crypt << 4 | skip, 1, 0]), kid, bytes([len(iv)]), iv
    )  # reserved, pattern, default_isProtected, default_Per_Sample_IV_Size 0; KID; constant IV
    return _box(b"sinf", _box(b"frma", original), _full_box(b"schm", 0, 0, SCHEME, struct.pack(">I", SCHEME_VERSION)), _box(b"schi", tenc))


def _pssh(kid: bytes) -> bytes:
    """A version 1 `pssh` of the Common system listing the KID, with no data (23001-7 8.1)."""
    return _full_box(b"pssh", 1, 0, COMMON_SYSTEM_ID, struct.pack(">I", 1), kid, struct.pack(">I", 0))


def tracks_of(init: bytes) -> dict[int, TrackCrypt]:
    """The tracks of an init segment, clear or protected, by track id."""
    moov = [(s, e) for kind, s, e in top_level(init) if kind == b"moov"]
    if len(moov) != 1:
        raise ValueError(f"an init segment holds one moov, not {len(moov)}")
    start, end = moov[0]
    sizes = _trex_sizes(init, start, end)
    out = {}
    for kind, s, e in _children(init, start, end):
        if kind == b"trak":
            track = _track(init, s, e, sizes)
            out[track.track_id] = track
    return out


def _trex_sizes(init: bytes, start: int, end: int) -> dict[int, int]:
    """default_sample_size by track id, from the TrackExtendsBoxes of mvex."""
    out = {}
    for kind, s, e in _children(init, start, end):
        for child, cs, _ in _children(init, s, e) if kind == b"mvex" else ():
            if child == b"trex":
                track_id, _, _, size, _ = struct.unpack_from(">5I", init, cs + 12)
                out[track_id] = size
    return out


def _track(init: bytes, start: int, end: int, sizes: Mapping[int, int]) -> TrackCrypt:
    s, _ = _child(init, start, end, b"tkhd")
    version = init[s + 8]
    (track_id,) = struct.unpack_from(">I", init, s + 12 + (16 if version == 1 else 8))
    box = (start, end)
    for kind in TRAK_PATH:
        box = _child(init, *box, kind)
    entries = _children(init, *box, STSD_FIELDS)
    if len(entries) != 1:
        raise ValueError(f"track {track_id} has {len(entries)} sample entries; one is supported")
    kind, s, e = entries[0]
    original = kind
    if kind in PROTECTED_ENTRIES:
        frma, _ = _child(init, *_child(init, s, e, b"sinf", _entry_fields(init, s, kind)), b"frma")
        original = init[frma + 8 : frma + 12]
    codec = VIDEO_ENTRIES.get(original) or AUDIO_ENTRIES.get(original)
    if codec is None:
        raise ValueError(_unsupported(original))
    if kind in PROTECTED_ENTRIES and codec not in PROTECTED_ENTRIES[kind].values():
        raise ValueError(f"a {kind.decode()} sample entry of {original.decode()} samples")
    default_size = sizes.get(track_id, 0)
    if codec not in CONFIGS:
        return TrackCrypt(track_id, codec, default_sample_size=default_size)
    cs, ce = _child(init, s, e, CONFIGS[codec], VISUAL_FIELDS)
    length_size, parameter_sets = _decoder_config(codec, init[cs + 8 : ce])
    return TrackCrypt(track_id, codec, length_size, parameter_sets, default_size)


def _entry_fields(init: bytes, start: int, kind: bytes) -> int:
    """Bytes of a sample entry's own fields before its child boxes."""
    if kind in (b"encv", *VIDEO_ENTRIES):
        return VISUAL_FIELDS
    (version,) = struct.unpack_from(">H", init, start + 16)
    if version not in AUDIO_FIELDS:
        raise ValueError(f"an audio sample entry of version {version}")
    return AUDIO_FIELDS[version]


def _decoder_config(codec: str, config: bytes) -> tuple[int, tuple[bytes, ...]]:
    """NAL length size and parameter sets of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
    5.3.3.1) or HEVCDecoderConfigurationRecord (8.3.3.1)."""
    try:
        if codec == "h264":
            length_size = (config[4] & 3) + 1
            sets, pos = _nal_list(config, 6, config[5] & 0x1F)
            sets += _nal_list(config, pos + 1, config[pos])[0]
        else:
            length_size, sets, pos = (config[21] & 3) + 1, [], 23
            for _ in range(config[22]):
                found, pos = _nal_list(config, pos + 3, struct.unpack_from(">H", config, pos + 1)[0])
                sets += found
    except (IndexError, struct.error):
        raise ValueError(f"a damaged {CONFIGS[codec].decode()} box") from None
    if length_size == 3:
        raise ValueError("a NAL unit length size of 3 bytes")
    return length_size, tuple(sets)


def _nal_list(config: bytes, pos: int, count: int) -> tuple[list[bytes], int]:
    """`count` NAL units each after a 16-bit length, from `pos`; and the position after them."""
    out = []
    for _ in range(count):
        (size,) = struct.unpack_from(">H", config, pos)
        if pos + 2 + size > len(config):
            raise IndexError
        out.append(config[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return out, pos


# ---- media segment ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Traf:
    """A traf's bytes as written, and where in them the offsets to patch lie."""

    data: bytes
    data_offsets: list[int]  # positions of the trun data_offset fields
    aux_offset: int | None = None  # position of the saio offset field
    aux_data: int = 0  # position of the first senc entry, which that field points at


def protect_fragment(fragment: bytes, key: bytes, iv: bytes, tracks: Mapping[int, TrackCrypt]) -> bytes:
    """A media segment (`styp`? `moof` `mdat`, ...) of the tracks of an init segment (`tracks_of`)
    with every sample 'cbcs'-encrypted with `key` and constant IV `iv` (the one given to
    `protect_init`), and the boxes saying how."""
    _check(key=key, iv=iv)
    boxes = top_level(fragment)
    if any(kind == b"sidx" for kind, _, _ in boxes):
        raise ValueError("a media segment with a sidx (its sizes would change) is not supported")
    mdats = [(start + _header_size(fragment, start), end) for kind, start, end in boxes if kind == b"mdat"]
    buf = bytearray(fragment)
    crypt = _Crypt(np.frombuffer(buf, dtype=np.uint8), algorithms.AES(key), iv, mdats)
    out = []
    for kind, start, end in boxes:
        out.append(_protect_moof(fragment, start, end, tracks, crypt) if kind == b"moof" else None)
    if all(part is None for part in out):
        raise ValueError("a media segment without a moof")
    return b"".join(part if part is not None else bytes(buf[start:end]) for part, (_, start, end) in zip(out, boxes, strict=True))


class _Crypt:
    """AES-128-CBC over the samples of a media segment (its fragments, one or several), in place in
    `data` (a view of its bytes)."""

    def __init__(self, data: np.ndarray, aes: algorithms.AES, iv: bytes, mdats: list[tuple[int, int]]) -> None:
        self.data, self.aes, self.iv, self.mdats = data, aes, iv, mdats

    def sample(self, start: int, size: int) -> np.ndarray:
        """The bytes of the sample at [start, start + size), checked to lie in an mdat."""
        if not any(s <= start and start + size <= e for s, e in self.mdats):
            raise ValueError(f"a sample at bytes {start}-{start + size} lies outside the mdat")
        view: np.ndarray = self.data[start : start + size]
        return view

    def chain(self, blocks: np.ndarray) -> None:
        """Encrypt whole blocks in place as one CBC chain from the IV."""
        if blocks.size:
            encryptor = Cipher(self.aes, modes.CBC(self.iv)).encryptor()
            blocks[...] = np.frombuffer(encryptor.update(blocks.tobytes()), dtype=np.uint8).reshape(blocks.shape)

    def full(self, sample: np.ndarray) -> None:
        """Whole-block full-sample encryption (23001-7 9.7): the last partial block stays clear."""
        self.chain(sample[: len(sample) // BLOCK * BLOCK])

    def pattern(self, data: np.ndarray) -> None:
        """Pattern encryption of one protected range (9.6): crypt blocks, skip blocks, repeated,
        one CBC chain through the encrypted blocks; of a last partial pattern, the whole blocks
        of its crypt part are encrypted."""
        crypt, skip = VIDEO_PATTERN
        period = (crypt + skip) * BLOCK
        whole = len(data) // period
        body = data[: whole * period].reshape(whole, period)[:, : crypt * BLOCK]
        tail = data[whole * period :][: min(crypt, (len(data) - whole * period) // BLOCK) * BLOCK]
        blocks = np.concatenate((body.reshape(-1), tail))
        self.chain(blocks)
        body[...] = blocks[: body.size].reshape(body.shape)
        tail[...] = blocks[body.size :]


def _protect_moof(fragment: bytes, start: int, end: int, tracks: Mapping[int, TrackCrypt], crypt: _Crypt) -> bytes:
    """The moof at [start, end) with each traf's samples encrypted and its boxes added, sizes and
    offsets fixed."""
    out = bytearray(8)
    trafs: list[tuple[int, _Traf]] = []
    for kind, s, e in _children(fragment, start, end):
        if kind == b"traf":
            traf = _protect_traf(fragment, start, s, e, tracks, crypt)
            trafs.append((len(out), traf))
            out += traf.data
        else:
            out += fragment[s:e]
    grown = len(out) - (end - start)
    struct.pack_into(">I4s", out, 0, len(out), b"moof")
    for at, traf in trafs:
        for pos in traf.data_offsets:
            (offset,) = struct.unpack_from(">i", out, at + pos)
            struct.pack_into(">i", out, at + pos, offset + grown)
        if traf.aux_offset is not None:
            struct.pack_into(">I", out, at + traf.aux_offset, at + traf.aux_data)
    return bytes(out)


def _protect_traf(fragment: bytes, moof: int, start: int, end: int, tracks: Mapping[int, TrackCrypt], crypt: _Crypt) -> _Traf:
    children = _children(fragment, start, end)
    if any(kind in (b"senc", b"saiz", b"saio") for kind, _, _ in children):
        raise ValueError("a track fragment that has sample auxiliary information already")
    header = [(s, e) for kind, s, e in children if kind == b"tfhd"]
    if len(header) != 1:
        raise ValueError("a traf without its tfhd")
    track_id, default_size = _tfhd(fragment, header[0][0])
    if track_id not in tracks:
        raise ValueError(f"a traf of track {track_id}, which the init segment does not have")
    track = tracks[track_id]
    data = bytearray(8)
    data_offsets: list[int] = []
    samples: list[tuple[int, int]] = []
    for kind, s, e in children:
        if kind == b"trun":
            data_offsets.append(len(data) + 16)
            samples += _trun_samples(fragment, s, moof, default_size or track.default_sample_size)
        data += fragment[s:e]
    if not track.is_video or not samples:
        for sample in samples:
            crypt.full(crypt.sample(*sample))
        struct.pack_into(">I4s", data, 0, len(data), b"traf")
        return _Traf(bytes(data), data_offsets)
    headers = slice_headers(track.codec, track.parameter_sets)
    entries = [_protect_video_sample(crypt, crypt.sample(*sample), track.nal_length_size, headers) for sample in samples]
    saiz, saio, senc = _aux_boxes(entries)
    aux_offset = len(data) + len(saiz) + 16  # saio's offset field, after its header, version, flags and entry_count
    aux_data = aux_offset + 4 + 16  # senc's first entry, after its header, version, flags and sample_count
    data += saiz + saio + senc
    struct.pack_into(">I4s", data, 0, len(data), b"traf")
    return _Traf(bytes(data), data_offsets, aux_offset, aux_data)


def _tfhd(fragment: bytes, start: int) -> tuple[int, int]:
    """(track id, default sample size or 0) of a TrackFragmentHeaderBox (14496-12 8.8.7)."""
    flags, track_id = struct.unpack_from(">II", fragment, start + 8)
    flags &= 0xFFFFFF
    if flags & TFHD_BASE_DATA_OFFSET or not flags & TFHD_DEFAULT_BASE_IS_MOOF:
        raise ValueError("a traf whose data is not addressed from its moof (default-base-is-moof)")
    pos, size = start + 16, 0
    for flag, length in TFHD_FIELDS:
        if flags & flag and flag == TFHD_DEFAULT_SIZE:
            (size,) = struct.unpack_from(">I", fragment, pos)
        pos += length if flags & flag else 0
    return track_id, size


def _trun_samples(fragment: bytes, start: int, moof: int, default_size: int) -> Iterator[tuple[int, int]]:
    """(position in the fragment, size) of each sample of a TrackRunBox (14496-12 8.8.8)."""
    flags, count = struct.unpack_from(">II", fragment, start + 8)
    flags &= 0xFFFFFF
    if not flags & TRUN_DATA_OFFSET:
        raise ValueError("a trun without a data offset")
    (offset,) = struct.unpack_from(">i", fragment, start + 16)
    pos = start + 20 + (4 if flags & TRUN_FIRST_FLAGS else 0)
    fields = [flag for flag in TRUN_SAMPLE_FIELDS if flags & flag]
    has_size = 0x200 in fields
    if not has_size and not default_size:
        raise ValueError("a trun whose sample sizes are given nowhere")
    at = moof + offset
    for _ in range(count):
        size = struct.unpack_from(">I", fragment, pos + 4 * fields.index(0x200))[0] if has_size else default_size
        yield at, size
        at += size
        pos += 4 * len(fields)


def _protect_video_sample(crypt: _Crypt, sample: np.ndarray, length_size: int, headers: SliceHeaders) -> list[tuple[int, int]]:
    """Encrypt a video sample's VCL NAL units past their slice headers; its subsamples
    (BytesOfClearData, BytesOfProtectedData) (23001-7 9.5)."""
    raw = sample.tobytes()
    entries: list[tuple[int, int]] = []
    clear = pos = 0
    while pos < len(raw):
        size = int.from_bytes(raw[pos : pos + length_size], "big")
        body = pos + length_size
        if body + size > len(raw):
            raise ValueError("a NAL unit running past the end of its sample")
        header = headers.clear_size(raw[body : body + size])
        pos = body + size
        if header is None or size - header < BLOCK:  # nothing to encrypt: a non-VCL NAL unit, or a slice of no whole block
            clear += length_size + size
            continue
        crypt.pattern(sample[body + header : pos])
        entries += _subsamples(clear + length_size + header, size - header)
        clear = 0
    if clear or not entries:
        entries += _subsamples(clear, 0)
    if len(entries) > MAX_SUBSAMPLES:
        raise ValueError(f"a sample of {len(entries)} subsamples; saiz can describe {MAX_SUBSAMPLES}")
    return entries


def _subsamples(clear: int, protected: int) -> list[tuple[int, int]]:
    """Subsample entries for `clear` bytes then `protected` bytes: clear runs over 16 bits split off."""
    out = []
    while clear > MAX_CLEAR:
        out.append((MAX_CLEAR, 0))
        clear -= MAX_CLEAR
    return [*out, (clear, protected)]


def _aux_boxes(entries: list[list[tuple[int, int]]]) -> tuple[bytes, bytes, bytes]:
    """saiz, saio (offset to patch) and senc of a video traf's samples (23001-7 7.1, 7.2)."""
    senc = b"".join(struct.pack(">H", len(sample)) + b"".join(struct.pack(">HI", *entry) for entry in sample) for sample in entries)
    sizes = [2 + 6 * len(sample) for sample in entries]
    uniform = len(set(sizes)) == 1
    saiz = _full_box(b"saiz", 0, 0, struct.pack(">BI", sizes[0] if uniform else 0, len(sizes)), b"" if uniform else bytes(sizes))
    saio = _full_box(b"saio", 0, 0, struct.pack(">II", 1, 0))
    return saiz, saio, _full_box(b"senc", 0, SENC_SUBSAMPLES, struct.pack(">I", len(entries)), senc)
