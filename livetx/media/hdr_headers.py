"""A video's colour and HDR metadata read from its headers, without decoding: the MP4/MOV sample
entry's boxes (`colr`, `mdcv`/`SmDm`, `clli`/`CoLL`, Dolby Vision `dvcC`/`dvvC`/`dvwC`) and
HEVC's prefix SEI messages (mastering display colour volume, content light level), in the
`hvcC` record or in the NAL units of one access unit.

FFmpeg gives the code points (primaries, transfer, matrix, range) through the codec context,
but PyAV exposes neither the stream's mastering display nor its content light level nor its
Dolby Vision record, which planning needs before any frame is decoded.

Pure: bytes in, `livetx.media.colour` dataclasses out; no av import. Every reader takes hostile
bytes: truncated or corrupt input gives None (or the fields it could read), never an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from livetx.media.colour import ContentLight, DolbyVision, MasteringDisplay
from livetx.media.orientation import Readable, _boxes, _handler, read_moov

# Sample entry types whose payload is a VisualSampleEntry (ISO/IEC 14496-12 12.1.3): its child
# boxes start after 78 bytes of fixed fields
VISUAL_ENTRY_FIELDS = 78
VISUAL_ENTRIES = frozenset(
    {b"avc1", b"avc2", b"avc3", b"avc4", b"hvc1", b"hev1", b"dvh1", b"dvhe", b"dva1", b"dvav", b"av01", b"vp08", b"vp09", b"encv"}
    | {b"apch", b"apcn", b"apcs", b"apco", b"ap4h", b"ap4x", b"mp4v", b"jpeg", b"mjpa", b"mjpb"}
)
DOLBY_VISION_BOXES = (b"dvcC", b"dvvC", b"dvwC")
HEVC_PREFIX_SEI = 39
HEVC_FIRST_NON_VCL = 32  # NAL unit types below it are slices: an access unit's SEI comes before them
SEI_MASTERING_DISPLAY = 137
SEI_CONTENT_LIGHT = 144
MAX_NAL_UNITS = 256  # NAL units of one access unit or hvcC record looked at before giving up
MAX_SEI_BYTES = 64 << 10  # a prefix SEI NAL unit longer than this is skipped
MAX_ACCESS_UNIT = 16 << 20  # bytes of an access unit looked at


@dataclass(frozen=True)
class HdrMetadata:
    """Mastering display and content light level, where they were found (None: absent)."""

    mastering: MasteringDisplay | None = None
    content_light: ContentLight | None = None

    def over(self, other: HdrMetadata) -> HdrMetadata:
        """These facts, with `other`'s where these have none."""
        return HdrMetadata(self.mastering or other.mastering, self.content_light or other.content_light)


@dataclass(frozen=True)
class TrackColour:
    """What the first video track's first sample entry says (None: not said)."""

    fourcc: bytes = b""
    primaries: int | None = None
    transfer: int | None = None
    matrix: int | None = None
    full_range: bool | None = None
    hdr: HdrMetadata = HdrMetadata()
    dolby_vision: DolbyVision | None = None
    nal_length_size: int | None = None  # from hvcC: how the samples' NAL units are framed


# --- MP4 / MOV boxes ---


def parse_colr(payload: bytes) -> tuple[int, int, int, bool | None] | None:
    """(primaries, transfer, matrix, full range) of a `colr` box: `nclx` (ISO) carries the range
    flag in the top bit of its seventh byte, QuickTime's `nclc` has no range (None); ICC
    profiles (`prof`, `rICC`) give None."""
    kind = payload[:4]
    if kind == b"nclx" and len(payload) >= 11:
        primaries, transfer, matrix = struct.unpack_from(">HHH", payload, 4)
        return primaries, transfer, matrix, bool(payload[10] & 0x80)
    if kind == b"nclc" and len(payload) >= 10:
        primaries, transfer, matrix = struct.unpack_from(">HHH", payload, 4)
        return primaries, transfer, matrix, None
    return None


def _mastering(values: tuple[int, ...], order: str) -> MasteringDisplay:
    """A MasteringDisplay from 3 primaries' x,y in `order` ("GBR" or "RGB"), white x,y, max, min."""
    primaries = {colour: (values[2 * i], values[2 * i + 1]) for i, colour in enumerate(order)}
    return MasteringDisplay(
        red=primaries["R"],
        green=primaries["G"],
        blue=primaries["B"],
        white=(values[6], values[7]),
        max_luminance=values[8],
        min_luminance=values[9],
    )


def parse_mdcv(payload: bytes) -> MasteringDisplay | None:
    """The ISO `mdcv` box (as HEVC's SEI 137: primaries G, B, R in 0.00002, luminance in 0.0001
    cd/m²); QuickTime's `mdcv` is the same box."""
    if len(payload) < 24:
        return None
    return _mastering(struct.unpack_from(">8HII", payload), "GBR")


def parse_smdm(payload: bytes) -> MasteringDisplay | None:
    """The `SmDm` full box of the VP codec ISO binding: primaries R, G, B and the white point in
    0.16 fixed point, maximum luminance in 24.8, minimum in 18.14; given in mdcv's units."""
    if len(payload) < 28 or payload[0] != 0:
        return None
    raw = struct.unpack_from(">8HII", payload, 4)
    chroma = tuple(round(v * 50000 / 65536) for v in raw[:8])
    values = (*chroma, round(raw[8] * 10000 / 256), round(raw[9] * 10000 / 16384))
    return _mastering(values, "RGB")


def parse_clli(payload: bytes) -> ContentLight | None:
    """The `clli` box: MaxCLL, MaxFALL (u16 each, cd/m²), as HEVC's SEI 144."""
    if len(payload) < 4:
        return None
    return ContentLight(*struct.unpack_from(">HH", payload))


def parse_coll(payload: bytes) -> ContentLight | None:
    """The `CoLL` full box of the VP codec ISO binding: version and flags, then as `clli`."""
    if len(payload) < 8 or payload[0] != 0:
        return None
    return parse_clli(payload[4:])


def parse_dovi(payload: bytes) -> DolbyVision | None:
    """A Dolby Vision configuration record (`dvcC`, `dvvC`, `dvwC`): version major and minor,
    then 7 bits profile, 6 bits level, the rpu/el/bl present flags, 4 bits base layer
    compatibility."""
    if len(payload) < 5:
        return None
    (bits,) = struct.unpack_from(">H", payload, 2)
    return DolbyVision(
        profile=bits >> 9,
        level=(bits >> 3) & 0x3F,
        bl_compatibility=payload[4] >> 4,
        rpu=bool(bits & 4),
        el=bool(bits & 2),
        bl=bool(bits & 1),
    )


def _first_video_entry(moov: bytes) -> tuple[bytes, int, int] | None:
    """(type, payload start, payload end) of the first sample entry of the first video track."""
    for kind, lo, hi in _boxes(moov):
        if kind != b"trak":
            continue
        mdia = _child(moov, lo, hi, b"mdia")
        if mdia is None or _handler(moov, *mdia) != b"vide":
            continue
        stsd = _path(moov, mdia, (b"minf", b"stbl", b"stsd"))
        if stsd is None:
            return None
        return next(_boxes(moov, stsd[0] + 8, stsd[1]), None)  # after version, flags and entry count
    return None


def _child(data: bytes, lo: int, hi: int, kind: bytes) -> tuple[int, int] | None:
    return next(((c_lo, c_hi) for sub, c_lo, c_hi in _boxes(data, lo, hi) if sub == kind), None)


def _path(data: bytes, span: tuple[int, int], kinds: tuple[bytes, ...]) -> tuple[int, int] | None:
    found: tuple[int, int] | None = span
    for kind in kinds:
        if found is None:
            return None
        found = _child(data, *found, kind)
    return found


def entry_colour(moov: bytes) -> TrackColour | None:
    """What the first video track's first sample entry says in its child boxes (None: no video
    track, not a visual sample entry, or damaged)."""
    try:
        return _entry_colour(moov)
    except (struct.error, ValueError, IndexError):
        return None


def _entry_colour(moov: bytes) -> TrackColour | None:
    entry = _first_video_entry(moov)
    if entry is None or entry[0] not in VISUAL_ENTRIES:
        return None
    kind, lo, hi = entry
    colr: tuple[int, int, int, bool | None] | None = None
    dolby_vision = nal_length_size = None
    hdr = sei = HdrMetadata()
    for sub, c_lo, c_hi in _boxes(moov, lo + VISUAL_ENTRY_FIELDS, hi):
        body = moov[c_lo:c_hi]
        if sub == b"colr":
            colr = colr or parse_colr(body)
        elif sub in (b"mdcv", b"SmDm"):
            hdr = hdr.over(HdrMetadata(mastering=parse_mdcv(body) if sub == b"mdcv" else parse_smdm(body)))
        elif sub in (b"clli", b"CoLL"):
            hdr = hdr.over(HdrMetadata(content_light=parse_clli(body) if sub == b"clli" else parse_coll(body)))
        elif sub in DOLBY_VISION_BOXES:
            dolby_vision = dolby_vision or parse_dovi(body)
        elif sub == b"hvcC":
            nal_length_size = hvcc_nal_length_size(body)
            sei = hvcc_sei(body)
    primaries, transfer, matrix, full_range = colr or (None, None, None, None)
    return TrackColour(
        kind, primaries, transfer, matrix, full_range, hdr.over(sei), dolby_vision, nal_length_size
    )  # the boxes win over the SEI


def mp4_track_colour(f: Readable) -> TrackColour | None:
    """`entry_colour` of an MP4/MOV file's moov (None: no moov, no video track, or damaged)."""
    moov = read_moov(f)
    return entry_colour(moov) if moov is not None else None


# --- HEVC SEI ---


def unescape(data: bytes) -> bytes:
    """The RBSP of a NAL unit: each emulation prevention byte (the 03 of 00 00 03) removed."""
    if b"\x00\x00\x03" not in data:
        return data
    out = bytearray()
    zeros = 0
    for byte in data:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def sei_messages(rbsp: bytes) -> Iterator[tuple[int, bytes]]:
    """(payload type, payload) of each SEI message in an SEI RBSP (after the NAL header)."""
    at = 0
    while at < len(rbsp) and rbsp[at:] != b"\x80":
        kind, at = _ff_coded(rbsp, at)
        size, at = _ff_coded(rbsp, at)
        if kind < 0 or size < 0 or at + size > len(rbsp):
            return
        yield kind, rbsp[at : at + size]
        at += size


def _ff_coded(data: bytes, at: int) -> tuple[int, int]:
    """An SEI payload type or size: 0xFF bytes adding 255 each, then the last byte (-1: truncated)."""
    value = 0
    while at < len(data) and data[at] == 0xFF:
        value += 255
        at += 1
    if at >= len(data):
        return -1, at
    return value + data[at], at + 1


def sei_metadata(nal: bytes) -> HdrMetadata:
    """Mastering display (payload type 137) and content light level (144) of an HEVC prefix
    SEI NAL unit (with its two-byte header); anything else gives an empty HdrMetadata."""
    if len(nal) < 3 or (nal[0] >> 1) & 0x3F != HEVC_PREFIX_SEI or len(nal) > MAX_SEI_BYTES:
        return HdrMetadata()
    mastering = content_light = None
    for kind, payload in sei_messages(unescape(nal[2:])):
        if kind == SEI_MASTERING_DISPLAY and mastering is None:
            mastering = parse_mdcv(payload)
        elif kind == SEI_CONTENT_LIGHT and content_light is None:
            content_light = parse_clli(payload)
    return HdrMetadata(mastering, content_light)


def _gather(nals: Iterator[bytes]) -> HdrMetadata:
    """The first mastering display and content light level among NAL units, up to the first slice."""
    found = HdrMetadata()
    for count, nal in enumerate(nals):
        if count >= MAX_NAL_UNITS or (nal and (nal[0] >> 1) & 0x3F < HEVC_FIRST_NON_VCL):
            break
        found = found.over(sei_metadata(nal))
        if found.mastering and found.content_light:
            break
    return found


def hvcc_nal_length_size(record: bytes) -> int | None:
    """The NAL unit length field size (1, 2 or 4 bytes) an hvcC record declares."""
    if len(record) < 23 or record[0] != 1:
        return None
    return (record[21] & 3) + 1


def _hvcc_nals(record: bytes) -> Iterator[bytes]:
    """The NAL units of an hvcC record's arrays (ISO/IEC 14496-15 8.3.3.1)."""
    if len(record) < 23 or record[0] != 1:
        return
    at = 23
    for _ in range(record[22]):
        if at + 3 > len(record):
            return
        (count,) = struct.unpack_from(">H", record, at + 1)
        at += 3
        for _ in range(count):
            if at + 2 > len(record):
                return
            (size,) = struct.unpack_from(">H", record, at)
            if at + 2 + size > len(record):
                return
            yield record[at + 2 : at + 2 + size]
            at += 2 + size


def hvcc_sei(record: bytes) -> HdrMetadata:
    """Mastering display and content light level in the prefix SEI array of an hvcC record
    (no slices there: every NAL unit is looked at, up to MAX_NAL_UNITS)."""
    found = HdrMetadata()
    try:
        for count, nal in enumerate(_hvcc_nals(record)):
            if count >= MAX_NAL_UNITS:
                break
            found = found.over(sei_metadata(nal))
    except (struct.error, ValueError, IndexError):
        pass
    return found


def _length_prefixed(data: bytes, size: int) -> Iterator[bytes]:
    at = 0
    while at + size <= len(data):
        length = int.from_bytes(data[at : at + size], "big")
        at += size
        if length == 0 or at + length > len(data):
            return
        yield data[at : at + length]
        at += length


def _annex_b(data: bytes) -> Iterator[bytes]:
    """NAL units between Annex B start codes (00 00 01, or 00 00 00 01: the extra zero is
    trailing data of the unit before, dropped)."""
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        yield data[begin:end].rstrip(b"\x00") if nxt >= 0 else data[begin:end]
        start = nxt


def access_unit_sei(data: bytes, nal_length_size: int | None = None) -> HdrMetadata:
    """Mastering display and content light level in the prefix SEI NAL units of one HEVC access
    unit: length-prefixed NAL units (MP4, Matroska: `nal_length_size` bytes each) or, with
    None, Annex B start codes (MPEG-TS, raw .hevc)."""
    data = data[:MAX_ACCESS_UNIT]
    try:
        if nal_length_size is None:
            return _gather(_annex_b(data))
        if nal_length_size not in (1, 2, 4):
            return HdrMetadata()
        return _gather(_length_prefixed(data, nal_length_size))
    except (struct.error, ValueError, IndexError):
        return HdrMetadata()


def extradata_sei(extradata: bytes) -> tuple[HdrMetadata, int | None]:
    """The SEI metadata in an HEVC stream's codec extradata, and the length size its packets'
    NAL units are framed with: an hvcC record (MP4, Matroska) or Annex B parameter sets
    (MPEG-TS; None: start codes)."""
    if extradata[:1] == b"\x01":
        return hvcc_sei(extradata), hvcc_nal_length_size(extradata)
    return access_unit_sei(extradata), None
