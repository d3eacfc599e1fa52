"""What a video's headers say about its colour, in the code points of ITU-T H.273 (ISO/IEC
23091-2), which the codec VUI, MP4's `colr` (nclx) box, Matroska's Colour element and FFmpeg all
share; and what that means for a rendition: SDR, HLG or PQ.

No av import: planning decides from these facts alone, before any frame is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# H.273 code points used here (FFmpeg's AVColorPrimaries / AVColorTransferCharacteristic /
# AVColorSpace share the numbers)
UNSPECIFIED = 2
BT709 = 1
BT470BG = 5  # primaries: PAL/SECAM (BT.601 625); matrix: BT.601
SMPTE170M = 6  # primaries: NTSC (BT.601 525); matrix: BT.601; transfer: the BT.709 curve
BT2020 = 9  # primaries; matrix 9 is BT.2020 non-constant luminance
BT2020_CL = 10  # matrix: BT.2020 constant luminance (not supported)
SMPTE432 = 12  # primaries: Display P3 (D65)
TRANSFER_BT2020_10 = 14
TRANSFER_BT2020_12 = 15
TRANSFER_PQ = 16  # SMPTE ST 2084
TRANSFER_HLG = 18  # ARIB STD-B67
TRANSFER_SRGB = 13  # IEC 61966-2-1
TRANSFER_LINEAR = 8

DynamicRange = Literal["sdr", "hlg", "pq"]

# Transfer characteristics whose signal a BT.1886 display shows as it is: the SDR family
SDR_TRANSFERS = frozenset({UNSPECIFIED, BT709, 4, 5, SMPTE170M, 7, TRANSFER_SRGB, TRANSFER_BT2020_10, TRANSFER_BT2020_12})
# Primaries taken as BT.709's: unspecified, and BT.601's two sets, which players and FFmpeg show
# without a gamut conversion (they differ from BT.709 by less than a just-noticeable step for
# most colours)
BT709_LIKE_PRIMARIES = frozenset({UNSPECIFIED, BT709, BT470BG, SMPTE170M})
# Primaries a rendition can convert from (to BT.709), by their xy chromaticities (R, G, B, white)
PRIMARIES_XY: dict[int, tuple[tuple[float, float], ...]] = {
    BT709: ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), (0.3127, 0.3290)),
    BT2020: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290)),
    SMPTE432: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290)),
}
# Names as FFmpeg prints them, for the title API
PRIMARIES_NAMES = {
    1: "bt709",
    2: "unknown",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
TRANSFER_NAMES = {
    1: "bt709",
    2: "unknown",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    11: "iec61966-2-4",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}
MATRIX_NAMES = {
    0: "gbr",
    1: "bt709",
    2: "unknown",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    14: "ictcp",
}

# What livetx writes on every SDR rendition: BT.709 primaries, transfer and matrix, limited range
SDR_OUTPUT = (BT709, BT709, BT709)


@dataclass(frozen=True)
class MasteringDisplay:
    """SMPTE ST 2086 mastering display colour volume, in the units HEVC's SEI and MP4's `mdcv`
    carry: chromaticities in 0.00002, luminance in 0.0001 cd/m²."""

    red: tuple[int, int]
    green: tuple[int, int]
    blue: tuple[int, int]
    white: tuple[int, int]
    max_luminance: int
    min_luminance: int

    @property
    def max_nits(self) -> float:
        return self.max_luminance / 10000

    def x265(self) -> str:
        """x265's `master-display` string: G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min), in these units."""
        g, b, r, w = self.green, self.blue, self.red, self.white
        return f"G({g[0]},{g[1]})B({b[0]},{b[1]})R({r[0]},{r[1]})WP({w[0]},{w[1]})L({self.max_luminance},{self.min_luminance})"


@dataclass(frozen=True)
class ContentLight:
    """CTA-861.3 content light level: MaxCLL and MaxFALL, cd/m²."""

    max_cll: int
    max_fall: int


@dataclass(frozen=True)
class DolbyVision:
    """The Dolby Vision decoder configuration record (`dvcC`/`dvvC`): the profile, level, and
    which base layer the stream is compatible with (`bl_compatibility`: 0 none, 1 HDR10, 2 SDR,
    4 HLG; profile 8.4 is 8 with 4)."""

    profile: int
    level: int
    bl_compatibility: int = 0
    rpu: bool = True
    el: bool = False
    bl: bool = True

    @property
    def name(self) -> str:
        return f"{self.profile}.{self.bl_compatibility}" if self.profile == 8 else str(self.profile)


@dataclass(frozen=True)
class ColourInfo:
    """A video stream's colour description, from its headers: H.273 code points (2 where
    unspecified) and the range (None: unspecified, taken as limited), with HDR metadata."""

    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED
    matrix: int = UNSPECIFIED
    full_range: bool | None = None
    mastering: MasteringDisplay | None = None
    content_light: ContentLight | None = None
    dolby_vision: DolbyVision | None = None

    @property
    def dynamic_range(self) -> DynamicRange:
        """HLG or PQ by the transfer (Dolby Vision 8.4 and 8.1 are so tagged; profile 5's base
        layer is IPTPQc2, PQ-based); SDR otherwise."""
        if self.transfer == TRANSFER_HLG:
            return "hlg"
        if self.transfer == TRANSFER_PQ or (self.dolby_vision is not None and self.dolby_vision.profile == 5):
            return "pq"
        return "sdr"

    def to_json(self) -> dict[str, object]:
        """The names FFmpeg prints, for the title API."""
        return {
            "Primaries": PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
            "Transfer": TRANSFER_NAMES.get(self.transfer, str(self.transfer)),
            "Matrix": MATRIX_NAMES.get(self.matrix, str(self.matrix)),
            "Range": "unknown" if self.full_range is None else "full" if self.full_range else "limited",
            "DynamicRange": self.dynamic_range.upper() if self.dynamic_range != "sdr" else "SDR",
            "DolbyVision": self.dolby_vision.name if self.dolby_vision else None,
        }


# swscale's YCbCr matrices (SWS_CS_*, PyAV's Colorspace) by the H.273 matrix they decode
SWSCALE_MATRICES = {BT709: 1, 4: 4, BT470BG: 5, SMPTE170M: 5, 7: 7, BT2020: 9, BT2020_CL: 9}
HD_LINES = 720  # a source with no matrix tag is taken as BT.709 from this height (or 1280 wide), else BT.601


def source_matrix(colour: ColourInfo, width: int, height: int) -> int:
    """The matrix a source's YCbCr is decoded with: its tag, else what players assume for its
    size (BT.709 for HD, BT.601 for SD), as FFmpeg's players and browsers do."""
    if colour.matrix in SWSCALE_MATRICES:
        return colour.matrix
    return BT709 if height >= HD_LINES or width >= 1280 else SMPTE170M


def unsupported(colour: ColourInfo) -> str | None:
    """Why a video's colour cannot be converted right, or None. Refused rather than shown wrong:
    Dolby Vision profile 5 codes its base layer in IPTPQc2, which only its RPU maps to RGB (as
    BT.2020 PQ it shows green and purple); BT.2020 constant luminance and ICtCp matrices have no
    swscale conversion."""
    if colour.dolby_vision is not None and colour.dolby_vision.profile == 5:
        return "Dolby Vision profile 5 (its IPTPQc2 base layer needs the RPU to be shown)"
    if colour.matrix in (BT2020_CL, 14):
        return f"the {MATRIX_NAMES[colour.matrix]} matrix"
    return None


def output_tags(dynamic_range: DynamicRange) -> tuple[int, int, int]:
    """(primaries, transfer, matrix) written on a rendition of this dynamic range."""
    if dynamic_range == "hlg":
        return BT2020, TRANSFER_HLG, BT2020
    if dynamic_range == "pq":
        return BT2020, TRANSFER_PQ, BT2020
    return SDR_OUTPUT
