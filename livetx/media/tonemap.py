"""The colour conversion of an SDR rendition, as a 3D lookup table: source R'G'B' in, BT.709
R'G'B' out (BT.1886 display gamma), made once per title from its header facts and applied to
every frame by FFmpeg's `lut3d` filter (livetx/media/colour_frames.py).

Pure numpy, no av import. A table is a function of the source's primaries, transfer and peak
alone, so every segment of a title maps the same code value to the same output, whichever
order the segments are made in: no brightness step at a join.

The operator, for an HDR source (HLG or PQ, BT.2020):

1. Display light in cd/m² per channel: PQ by its EOTF (SMPTE ST 2084); HLG by its inverse OETF,
   then the BT.2100 OOTF for a 1000 cd/m² display (system gamma 1.2).
2. The luminance Y is tone mapped by the BT.2390 EETF (a Hermite knee in the PQ domain) from
   the source's peak (MaxCLL, else the mastering display's peak, else 1000 cd/m²) to 203 cd/m²
   (BT.2408's HDR reference white, which becomes SDR white); below the knee it is untouched.
   The channels are scaled by Y'/Y, which keeps hue and saturation.
3. Relative light (÷ 203) is converted from BT.2020 to BT.709 primaries; a colour outside
   BT.709 is desaturated toward its own luminance, a saturated highlight brighter than white
   dimmed, never clipped per channel (which would shift its hue).
4. Encoded with the inverse of BT.1886 (gamma 2.4), which is how a player's display shows it.

An SDR source with other primaries (BT.2020, Display P3) takes steps 3 and 4 from BT.1886
display light; its brightness is untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from livetx.media.colour import BT709_LIKE_PRIMARIES, PRIMARIES_XY, ColourInfo

FloatArray = npt.NDArray[np.float64]
TABLE_VERSION = 2  # bump when the operator changes: a table's file is named by what it is made of, this included
# points per axis. Measured through lut3d against the exact curve, for a colour checker at
# 203 cd/m² in PQ: within 2 8-bit codes (mean ΔE76 0.5); saturated 75 % primaries, on the BT.709
# gamut's edge where the curve bends, within 36 codes (ΔE76 3.6). 65 points: 29 codes, ΔE76
# 2.9, for a table file 8 times larger.
LUT_SIZE = 33
SDR_WHITE = 203.0  # cd/m²: HDR reference white (BT.2408), shown as SDR white
DISPLAY_GAMMA = 2.4  # BT.1886 with a zero black level
HLG_DISPLAY_PEAK = 1000.0  # cd/m²: the nominal HLG display (BT.2100 Note 5d)
HLG_SYSTEM_GAMMA = 1.2
DEFAULT_PEAK = 1000.0  # cd/m²: a PQ source that declares no peak

# SMPTE ST 2084 constants
_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
# ARIB STD-B67 constants
_HLG_A = 0.17883277
_HLG_B = 1 - 4 * _HLG_A
_HLG_C = 0.5 - _HLG_A * np.log(4 * _HLG_A)


@dataclass(frozen=True)
class ToneMap:
    """What a title's colour table is made from: the source's primaries (H.273), whether its
    signal is HLG, PQ or SDR, and the peak the EETF maps from (cd/m²; HDR only)."""

    primaries: int
    signal: str  # "sdr" | "hlg" | "pq"
    peak: float = DEFAULT_PEAK

    @property
    def key(self) -> str:
        """A name for the table's file: the same facts, the same name."""
        facts = f"{TABLE_VERSION}:{LUT_SIZE}:{self.primaries}:{self.signal}:{self.peak:g}"
        return hashlib.sha256(facts.encode()).hexdigest()[:16]


def tone_map_for(colour: ColourInfo) -> ToneMap | None:
    """The table an SDR rendition of a source with `colour` needs; None when BT.709-like
    primaries and an SDR transfer need only swscale's matrix and range conversion."""
    signal = colour.dynamic_range
    primaries = colour.primaries if colour.primaries in PRIMARIES_XY else 9 if signal != "sdr" else colour.primaries
    if signal == "sdr" and (primaries in BT709_LIKE_PRIMARIES or primaries not in PRIMARIES_XY):
        return None
    return ToneMap(primaries, signal, source_peak(colour) if signal == "pq" else HLG_DISPLAY_PEAK)


def source_peak(colour: ColourInfo) -> float:
    """The brightest a PQ source claims to be: MaxCLL, else its mastering display's peak, else 1000."""
    if colour.content_light is not None and colour.content_light.max_cll > 0:
        return float(colour.content_light.max_cll)
    if colour.mastering is not None and colour.mastering.max_luminance > 0:
        return colour.mastering.max_nits
    return DEFAULT_PEAK


def pq_eotf(signal: FloatArray) -> FloatArray:
    """PQ signal (0..1) to cd/m²."""
    p = np.power(np.clip(signal, 0, 1), 1 / _M2)
    return 10000 * np.power(np.maximum(p - _C1, 0) / (_C2 - _C3 * p), 1 / _M1)


def pq_inverse_eotf(nits: FloatArray) -> FloatArray:
    """cd/m² to PQ signal (0..1)."""
    y = np.power(np.clip(nits / 10000, 0, 1), _M1)
    return np.power((_C1 + _C2 * y) / (1 + _C3 * y), _M2)


def hlg_inverse_oetf(signal: FloatArray) -> FloatArray:
    """HLG signal (0..1) to relative scene light (0..1)."""
    e = np.clip(signal, 0, 1)
    return np.where(e <= 0.5, e * e / 3, (np.exp((e - _HLG_C) / _HLG_A) + _HLG_B) / 12)


def rgb_to_xyz(primaries: int) -> FloatArray:
    """The 3x3 matrix from linear RGB in `primaries` to CIE XYZ (white Y = 1)."""
    (rx, ry), (gx, gy), (bx, by), (wx, wy) = PRIMARIES_XY[primaries]
    columns = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in ((rx, ry), (gx, gy), (bx, by))]).T
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return columns * np.linalg.solve(columns, white)


def eetf(nits: FloatArray, peak: float, target: float = SDR_WHITE) -> FloatArray:
    """BT.2390's EETF on luminance in cd/m², from [0, peak] to [0, target] (black at 0)."""
    if peak <= target:
        return np.minimum(nits, target)
    source_max = pq_inverse_eotf(np.array(peak, dtype=np.float64))
    e1 = np.clip(pq_inverse_eotf(nits) / source_max, 0, 1)
    max_lum = pq_inverse_eotf(np.array(target, dtype=np.float64)) / source_max
    knee = 1.5 * max_lum - 0.5
    t = np.clip((e1 - knee) / (1 - knee), 0, 1)
    spline = (2 * t**3 - 3 * t**2 + 1) * knee + (t**3 - 2 * t**2 + t) * (1 - knee) + (-2 * t**3 + 3 * t**2) * max_lum
    e2 = np.where(e1 < knee, e1, spline)
    return pq_eotf(e2 * source_max)


def _display_light(rgb: FloatArray, tone: ToneMap, luma: FloatArray) -> FloatArray:
    """Source R'G'B' (..., 3) to linear light relative to SDR white, tone mapped."""
    if tone.signal == "sdr":
        return np.power(np.clip(rgb, 0, 1), DISPLAY_GAMMA)
    if tone.signal == "pq":
        light = pq_eotf(rgb)
    else:
        scene = hlg_inverse_oetf(rgb)
        scene_y = np.maximum(scene @ luma, 1e-12)[..., None]
        light = HLG_DISPLAY_PEAK * np.power(scene_y, HLG_SYSTEM_GAMMA - 1) * scene
    y = light @ luma
    mapped = eetf(y, tone.peak)
    ratio = np.where(y > 0, mapped / np.maximum(y, 1e-12), 0.0)
    return light * ratio[..., None] / SDR_WHITE


def _into_gamut(rgb: FloatArray, luma: FloatArray) -> FloatArray:
    """Fit linear BT.709 colours into [0, 1]: a negative channel (a colour outside BT.709) is
    lifted by desaturating toward the colour's own luminance, which keeps it; a channel above 1
    (a saturated highlight) by dimming the whole colour, which keeps hue and saturation. Both
    steps are continuous, so the 3D table interpolates them well."""
    y = np.maximum(rgb @ luma, 0)[..., None]
    d = rgb - y
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d < 0, -y / d, np.inf)
    t = np.clip(room.min(axis=-1, keepdims=True), 0, 1)
    lifted = np.maximum(y + t * d, 0)
    fitted: FloatArray = np.minimum(lifted / np.maximum(lifted.max(axis=-1, keepdims=True), 1), 1)
    return fitted


def convert(rgb: FloatArray, tone: ToneMap) -> FloatArray:
    """Source R'G'B' values (..., 3), 0..1, to BT.709 R'G'B' (BT.1886), 0..1."""
    source_luma = rgb_to_xyz(tone.primaries)[1]
    light = _display_light(np.asarray(rgb, dtype=np.float64), tone, source_luma)
    to_709 = np.linalg.solve(rgb_to_xyz(1), rgb_to_xyz(tone.primaries))
    linear = _into_gamut(light @ to_709.T, rgb_to_xyz(1)[1])
    return np.power(linear, 1 / DISPLAY_GAMMA)


def lut(tone: ToneMap, size: int | None = None) -> FloatArray:
    """The table: (size, size, size, 3) outputs indexed [b][g][r] (the .cube order, red fastest)."""
    axis = np.linspace(0, 1, size or LUT_SIZE)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return convert(np.stack([r, g, b], axis=-1), tone)


def cube_text(table: FloatArray) -> str:
    """The table in the Adobe/Resolve .cube format that FFmpeg's lut3d reads."""
    size = table.shape[0]
    rows = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in table.reshape(-1, 3).tolist())
    return f"LUT_3D_SIZE {size}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n{rows}\n"
