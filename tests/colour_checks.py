"""Test-side colour library: the standards' math in plain numpy, a colour chart, sources made from it, and a decoder
that turns a frame into R'G'B' codes the way a player would.

Written from the standards (BT.709, BT.601, BT.2020, BT.2100, BT.1886, SMPTE ST 2084, BT.2390, CIEDE2000) and kept
apart from the product's colour code on purpose: a test that checks the product with the product's own math proves
nothing. Conventions throughout:
  - "codes" are R'G'B' values on the 8-bit scale 0..255 (floats where averaged); "signal" is the same scaled 0..1.
  - SDR signal becomes display light with BT.1886 at Lb = 0 (L = V^2.4), relative to white = 1.
  - HDR light is in cd/m²; SDR reference white is 203 cd/m² (BT.2408).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

FFMPEG = "/usr/bin/ffmpeg"
REF_WHITE = 203.0  # cd/m²: SDR reference white in HDR (BT.2408), and the tone curve's target peak
Array = NDArray[np.float64]
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends), pixel coordinates

# ---------------------------------------------------------------------------------------------------------------
# A.1 YCbCr <-> R'G'B'

MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114), "bt2020": (0.2627, 0.0593)}  # (Kr, Kb)


def _kr_kb(matrix: str) -> tuple[float, float]:
    return MATRICES[matrix]


def _scales(full: bool, bits: int) -> tuple[float, float, float]:
    """(Y offset, Y span, C span) in code values; C's zero is always 2^(bits-1)."""
    if full:
        top = float(2**bits - 1)
        return 0.0, top, top
    s = float(2 ** (bits - 8))
    return 16.0 * s, 219.0 * s, 224.0 * s


def rgb_to_ycbcr(rgb: ArrayLike, matrix: str = "bt709", full: bool = False, bits: int = 8) -> Array:
    """R'G'B' signal (..., 3) in 0..1 -> Y, Cb, Cr code values (..., 3), unrounded (the caller quantises)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    kr, kb = _kr_kb(matrix)
    y = kr * rgb[..., 0] + (1 - kr - kb) * rgb[..., 1] + kb * rgb[..., 2]
    cb = (rgb[..., 2] - y) / (2 * (1 - kb))
    cr = (rgb[..., 0] - y) / (2 * (1 - kr))
    off, ys, cs = _scales(full, bits)
    mid = float(2 ** (bits - 1))
    return np.stack([off + ys * y, mid + cs * cb, mid + cs * cr], axis=-1)


def ycbcr_to_rgb(ycc: ArrayLike, matrix: str = "bt709", full: bool = False, bits: int = 8) -> Array:
    """Y, Cb, Cr code values (..., 3) -> R'G'B' signal (..., 3), not clipped (out-of-range stays visible)."""
    ycc = np.asarray(ycc, dtype=np.float64)
    off, ys, cs = _scales(full, bits)
    mid = float(2 ** (bits - 1))
    y = (ycc[..., 0] - off) / ys
    cb = (ycc[..., 1] - mid) / cs
    cr = (ycc[..., 2] - mid) / cs
    kr, kb = _kr_kb(matrix)
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([r, g, b], axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# A.2 BT.1886 (Lb = 0)


def bt1886_eotf(v: ArrayLike) -> Array:
    """SDR signal 0..1 -> relative display light (white = 1); negatives clip to black as a display does."""
    return np.power(np.clip(np.asarray(v, dtype=np.float64), 0, None), 2.4)


def bt1886_inverse(lum: ArrayLike) -> Array:
    return np.power(np.clip(np.asarray(lum, dtype=np.float64), 0, None), 1 / 2.4)


# ---------------------------------------------------------------------------------------------------------------
# A.3 primaries

D65 = (0.3127, 0.3290)
PRIMARIES = {
    "bt709": ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), D65),
    "bt2020": ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), D65),
}


def _xyz_of(x: float, y: float) -> Array:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries: str) -> Array:
    """Linear RGB -> XYZ (Y of white = 1), derived from the xy chromaticities: columns are the primaries scaled so
    that RGB (1,1,1) lands on the white point."""
    r, g, b, w = PRIMARIES[primaries]
    m = np.stack([_xyz_of(*r), _xyz_of(*g), _xyz_of(*b)], axis=1)
    s = np.linalg.solve(m, _xyz_of(*w))
    return m * s


def primaries_matrix(src: str, dst: str) -> Array:
    """Linear RGB in src primaries -> linear RGB in dst primaries (same white)."""
    return np.linalg.inv(rgb_to_xyz_matrix(dst)) @ rgb_to_xyz_matrix(src)


def convert_primaries(rgb: ArrayLike, src: str, dst: str) -> Array:
    return np.asarray(rgb, dtype=np.float64) @ primaries_matrix(src, dst).T


def luminance_coefficients(primaries: str) -> Array:
    """The Y row of RGB->XYZ: (0.2126, 0.7152, 0.0722) for BT.709, (0.2627, 0.6780, 0.0593) for BT.2020."""
    return rgb_to_xyz_matrix(primaries)[1]


# ---------------------------------------------------------------------------------------------------------------
# A.4 PQ and HLG

_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32


def pq_eotf(e: ArrayLike) -> Array:
    """PQ signal 0..1 -> cd/m² (ST 2084)."""
    p = np.power(np.clip(np.asarray(e, dtype=np.float64), 0, 1), 1 / _M2)
    return 10000.0 * np.power(np.maximum(p - _C1, 0) / (_C2 - _C3 * p), 1 / _M1)


def pq_inverse(lum: ArrayLike) -> Array:
    """cd/m² -> PQ signal 0..1."""
    y = np.power(np.clip(np.asarray(lum, dtype=np.float64) / 10000.0, 0, 1), _M1)
    return np.power((_C1 + _C2 * y) / (1 + _C3 * y), _M2)


_HA = 0.17883277
_HB = 1 - 4 * _HA
_HC = 0.5 - _HA * np.log(4 * _HA)


def hlg_oetf(e: ArrayLike) -> Array:
    """Scene light 0..1 -> HLG signal 0..1 (BT.2100)."""
    e = np.clip(np.asarray(e, dtype=np.float64), 0, 1)
    low = np.sqrt(3 * e)
    high = _HA * np.log(np.maximum(12 * e - _HB, 1e-12)) + _HC
    return np.where(e <= 1 / 12, low, high)


def hlg_inverse_oetf(v: ArrayLike) -> Array:
    v = np.clip(np.asarray(v, dtype=np.float64), 0, 1)
    return np.where(v <= 0.5, v * v / 3, (np.exp((v - _HC) / _HA) + _HB) / 12)


HLG_LW, HLG_GAMMA = 1000.0, 1.2
_Y2020 = (0.2627, 0.6780, 0.0593)  # BT.2100's Ys weights


def hlg_ootf(scene: ArrayLike, lw: float = HLG_LW, gamma: float = HLG_GAMMA) -> Array:
    """Scene RGB 0..1 (BT.2020) -> display cd/m²: F_D = Lw * Ys^(gamma-1) * E, Lb = 0."""
    scene = np.asarray(scene, dtype=np.float64)
    ys = scene @ np.array(_Y2020)
    gain = lw * np.power(np.maximum(ys, 1e-12), gamma - 1)
    return scene * np.where(ys > 0, gain, 0.0)[..., None]


def hlg_inverse_ootf(display: ArrayLike, lw: float = HLG_LW, gamma: float = HLG_GAMMA) -> Array:
    """Display cd/m² (BT.2020) -> scene RGB 0..1: Ys = (Yd/Lw)^(1/gamma), E = F_D / (Lw * Ys^(gamma-1))."""
    display = np.asarray(display, dtype=np.float64)
    yd = display @ np.array(_Y2020)
    ys = np.power(np.maximum(yd, 0) / lw, 1 / gamma)
    div = lw * np.power(np.maximum(ys, 1e-12), gamma - 1)
    return np.where(ys[..., None] > 0, display / div[..., None], 0.0)


# ---------------------------------------------------------------------------------------------------------------
# A.5 CIELAB and CIEDE2000

WHITE_XYZ = rgb_to_xyz_matrix("bt709").sum(axis=1)  # the display's white: linear (1,1,1) of BT.709


def xyz_to_lab(xyz: ArrayLike, white: ArrayLike = WHITE_XYZ) -> Array:
    t = np.asarray(xyz, dtype=np.float64) / np.asarray(white, dtype=np.float64)
    d = 6 / 29
    f = np.where(t > d**3, np.cbrt(t), t / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1: ArrayLike, lab2: ArrayLike) -> Array:
    """ΔE00 between Lab colours (..., 3), kL = kC = kH = 1 (Sharma, Wu, Dalal 2005)."""
    lab1, lab2 = np.asarray(lab1, dtype=np.float64), np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cbar**7 / (cbar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, np.degrees(np.arctan2(b1, a1p)) % 360)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, np.degrees(np.arctan2(b2, a2p)) % 360)
    dl = l2 - l1
    dc = c2p - c1p
    zero = c1p * c2p == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(zero, 0.0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lbar = (l1 + l2) / 2
    cbarp = (c1p + c2p) / 2
    hsum = h1p + h2p
    hbar = np.where(np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    hbar = np.where(zero, hsum, hbar)
    t = (
        1
        - 0.17 * np.cos(np.radians(hbar - 30))
        + 0.24 * np.cos(np.radians(2 * hbar))
        + 0.32 * np.cos(np.radians(3 * hbar + 6))
        - 0.20 * np.cos(np.radians(4 * hbar - 63))
    )
    dtheta = 30 * np.exp(-(((hbar - 275) / 25) ** 2))
    rc = 2 * np.sqrt(cbarp**7 / (cbarp**7 + 25.0**7))
    sl = 1 + 0.015 * (lbar - 50) ** 2 / np.sqrt(20 + (lbar - 50) ** 2)
    sc = 1 + 0.045 * cbarp
    sh = 1 + 0.015 * cbarp * t
    rt = -np.sin(np.radians(2 * dtheta)) * rc
    return np.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))


def codes_to_lab(codes: ArrayLike) -> Array:
    """BT.709 R'G'B' codes 0..255 -> Lab, through BT.1886 display light."""
    lin = bt1886_eotf(np.asarray(codes, dtype=np.float64) / 255.0)
    return xyz_to_lab(lin @ rgb_to_xyz_matrix("bt709").T)


def delta_e(ref_codes: ArrayLike, out_codes: ArrayLike) -> Array:
    """Per-patch ΔE00 between two sets of BT.709 R'G'B' codes (N, 3) on the 0..255 scale."""
    return ciede2000(codes_to_lab(ref_codes), codes_to_lab(out_codes))


# ---------------------------------------------------------------------------------------------------------------
# A.6 the reference tone curve (BT.2390 EETF on luminance, in PQ space)


def source_peak(max_cll: float = 0.0, mastering_max: float = 0.0) -> float:
    """Lsrc for PQ: MaxCLL if known, else the mastering display's max luminance, else 1000 (also HLG's)."""
    if max_cll > 0:
        return float(max_cll)
    if mastering_max > 0:
        return float(mastering_max)
    return 1000.0


def tone_curve(y: ArrayLike, lsrc: float, lt: float = REF_WHITE) -> Array:
    """Luminance cd/m² -> compressed luminance cd/m² (the BT.2390 knee, Hermite spline above KS)."""
    y = np.asarray(y, dtype=np.float64)
    if lsrc <= lt:
        return np.minimum(y, lt)
    ps = float(pq_inverse(lsrc))
    e1 = np.clip(pq_inverse(y) / ps, 0, 1)
    max_lum = float(pq_inverse(lt)) / ps
    ks = 1.5 * max_lum - 0.5
    t = (e1 - ks) / (1 - ks)
    spline = (2 * t**3 - 3 * t**2 + 1) * ks + (t**3 - 2 * t**2 + t) * (1 - ks) + (-2 * t**3 + 3 * t**2) * max_lum
    e2 = np.where(e1 < ks, e1, spline)
    return pq_eotf(e2 * ps)


def desaturate_into_range(lin: ArrayLike, coeffs: ArrayLike = (0.2126, 0.7152, 0.0722)) -> Array:
    """Pull each pixel toward its (clipped) luminance with the largest t in [0,1] that lands all channels in [0,1]."""
    lin = np.asarray(lin, dtype=np.float64)
    ysdr = np.clip(lin @ np.asarray(coeffs, dtype=np.float64), 0, 1)[..., None]
    d = lin - ysdr
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = np.where(lin > 1, (1 - ysdr) / d, 1.0)
        t_lo = np.where(lin < 0, (0 - ysdr) / d, 1.0)
    t = np.clip(np.minimum(t_hi, t_lo).min(axis=-1, keepdims=True), 0, 1)
    return ysdr + t * d


def tone_map(rgb_nits: ArrayLike, primaries: str, lsrc: float, lt: float = REF_WHITE) -> Array:
    """Display-light RGB in cd/m² -> SDR BT.709 signal 0..1 (multiply by 255 for codes): the reference tone curve."""
    rgb = np.asarray(rgb_nits, dtype=np.float64)
    y = rgb @ luminance_coefficients(primaries)
    y2 = tone_curve(y, lsrc, lt)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(y > 0, y2 / y, 0.0)
    lin = rgb * gain[..., None] / REF_WHITE
    if primaries != "bt709":
        lin = convert_primaries(lin, primaries, "bt709")
    return bt1886_inverse(desaturate_into_range(lin, luminance_coefficients("bt709")))


# ---------------------------------------------------------------------------------------------------------------
# B. the chart

# Approximate sRGB 8-bit values of the classic 24-patch chart (row by row), then 75% primaries/secondaries, then greys.
CHECKER = (
    (115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
    (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
    (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
    (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52),
)  # fmt: skip
SATURATED = ((191, 0, 0), (0, 191, 0), (0, 0, 191), (0, 191, 191), (191, 0, 191), (191, 191, 0))
GREYS = ((235, 235, 235), (24, 24, 24))
PATCHES: tuple[tuple[int, int, int], ...] = CHECKER + SATURATED + GREYS  # 32: 8 columns x 4 rows
BACKGROUND = (118, 118, 118)
COLS, ROWS = 8, 4


@dataclass(frozen=True)
class ChartLayout:
    """Where things are in a chart of a given size: patch cells, their measured (inset) rectangles, and the free
    band below the grid where the moving bar and the drifting region live."""

    width: int
    height: int
    cells: tuple[Rect, ...]
    rects: tuple[Rect, ...]
    bar_band: Rect
    drift: Rect


def _even(v: float) -> int:
    return int(v) // 2 * 2


def layout(width: int = 320, height: int = 180) -> ChartLayout:
    band_h = max(16, _even(height * 0.14))
    margin = max(4, _even(min(width, height) * 0.025))
    cw = _even((width - 2 * margin) / COLS)
    ch = _even((height - band_h - 2 * margin) / ROWS)
    if cw < 24 or ch < 16:
        raise ValueError(f"chart {width}x{height} too small for {COLS}x{ROWS} patches (4:2:0 wants >= 24 px)")
    gutter, inset = 2, max(4, _even(min(cw, ch) * 0.22))
    cells, rects = [], []
    for i in range(len(PATCHES)):
        x0, y0 = margin + (i % COLS) * cw, margin + (i // COLS) * ch
        cells.append((x0 + gutter, y0 + gutter, x0 + cw - gutter, y0 + ch - gutter))
        rects.append((x0 + inset, y0 + inset, x0 + cw - inset, y0 + ch - inset))
    top = margin + ROWS * ch + 2
    bar_band = (margin, top, _even(width * 0.6), height - 2)
    drift = (_even(width * 0.6) + 4, top, width - margin, height - 2)
    return ChartLayout(width, height, tuple(cells), tuple(rects), bar_band, drift)


def _paint(img: NDArray[np.uint8], rect: Rect, colour: Sequence[int]) -> None:
    x0, y0, x1, y1 = rect
    img[y0:y1, x0:x1] = colour


def chart(width: int = 320, height: int = 180) -> tuple[NDArray[np.uint8], list[Rect]]:
    """A still chart: uint8 R'G'B' (BT.709 codes) HxWx3, and the measured rectangle of each of PATCHES."""
    lay = layout(width, height)
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for cell, colour in zip(lay.cells, PATCHES, strict=True):
        _paint(img, cell, colour)
    return img, list(lay.rects)


def moving_chart(t: float, width: int = 320, height: int = 180) -> NDArray[np.uint8]:
    """The chart at time t seconds: a white bar sweeping the band under the grid (1 band width per 2 s) and a grey
    region drifting slowly in luminance (about 10 codes per second, a triangle wave), so frames differ a little
    without touching the patches."""
    img, _ = chart(width, height)
    lay = layout(width, height)
    bx0, by0, bx1, by1 = lay.bar_band
    bar_w = 8
    span = bx1 - bx0 - bar_w
    x = bx0 + round((t * 0.5 % 1.0) * span)
    _paint(img, (x, by0, x + bar_w, by1), (235, 235, 235))
    phase = (t / 8.0) % 1.0
    level = 90 + round(40 * (1 - abs(2 * phase - 1)))
    _paint(img, lay.drift, (level, level, level))
    return img


def patch_codes(frame_codes: ArrayLike, rects: Sequence[Rect]) -> Array:
    """Mean R'G'B' per patch: (N, 3)."""
    f = np.asarray(frame_codes, dtype=np.float64)
    return np.array([f[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0) for x0, y0, x1, y1 in rects])


# ---------------------------------------------------------------------------------------------------------------
# encodings of the chart (numpy), and their exact inverses


def chart_nits(codes: ArrayLike, primaries: str = "bt2020") -> Array:
    """Chart codes -> display light in cd/m² (reference white at 203), in the given primaries."""
    lin = bt1886_eotf(np.asarray(codes, dtype=np.float64) / 255.0) * REF_WHITE
    return convert_primaries(lin, "bt709", primaries) if primaries != "bt709" else lin


def encode_signal(codes: ArrayLike, kind: str) -> Array:
    """Chart codes -> the R'G'B' signal 0..1 of the target format: 'sdr709', 'sdr2020', 'hlg', 'pq'."""
    codes = np.asarray(codes, dtype=np.float64)
    if kind == "sdr709":
        return codes / 255.0
    if kind == "sdr2020":
        return bt1886_inverse(np.clip(convert_primaries(bt1886_eotf(codes / 255.0), "bt709", "bt2020"), 0, 1))
    if kind == "hlg":
        return hlg_oetf(hlg_inverse_ootf(chart_nits(codes)))
    if kind == "pq":
        return pq_inverse(chart_nits(codes))
    raise ValueError(kind)


def decode_signal(signal: ArrayLike, kind: str) -> Array:
    """The exact inverse of encode_signal: R'G'B' signal 0..1 -> BT.709 codes 0..255 (unclipped)."""
    signal = np.asarray(signal, dtype=np.float64)
    if kind == "sdr709":
        return signal * 255.0
    if kind == "sdr2020":
        lin = convert_primaries(bt1886_eotf(signal), "bt2020", "bt709")
    elif kind == "hlg":
        lin = convert_primaries(hlg_ootf(hlg_inverse_oetf(signal)), "bt2020", "bt709") / REF_WHITE
    elif kind == "pq":
        lin = convert_primaries(pq_eotf(signal), "bt2020", "bt709") / REF_WHITE
    else:
        raise ValueError(kind)
    return bt1886_inverse(lin) * 255.0


def reference_codes(kind: str, lsrc: float = 1000.0) -> Array:
    """What a correct SDR rendition's patches show: the chart for SDR sources, the chart through the tone curve for
    HDR ones (its display light, in BT.2020, as the source carries it)."""
    codes = np.array(PATCHES, dtype=np.float64)
    if kind in ("hlg", "pq"):
        return tone_map(chart_nits(codes, "bt2020"), "bt2020", lsrc) * 255.0
    return codes


def to_yuv420(signal: Array, matrix: str, full: bool, bits: int) -> bytes:
    """R'G'B' signal HxWx3 -> planar 4:2:0 raw frame bytes (8-bit or 10-bit little endian)."""
    ycc = rgb_to_ycbcr(signal, matrix, full, bits)
    h, w = ycc.shape[:2]
    chroma = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    top = 2**bits - 1
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    planes = [ycc[..., 0], chroma[..., 0], chroma[..., 1]]
    return b"".join(np.clip(np.rint(p), 0, top).astype(dtype).tobytes() for p in planes)


# ---------------------------------------------------------------------------------------------------------------
# C. sources


def need_ffmpeg() -> None:
    """Skip the calling test when there is no ffmpeg CLI."""
    import pytest

    if shutil.which("ffmpeg") is None or not Path(FFMPEG).exists():
        pytest.skip("no ffmpeg CLI")


@dataclass(frozen=True)
class ChartSource:
    """A made source: where it is, what its patches should look like in a correct SDR rendition (BT.709 codes),
    where the patches are (in coded-frame coordinates; display_rects after rotation), and its displayed size."""

    path: Path
    kind: str  # 'sdr709', 'sdr2020', 'hlg', 'pq' (how the chart was encoded; decode_signal inverts it)
    ref_codes: Array
    rects: tuple[Rect, ...]
    display_size: tuple[int, int]  # (width, height) as displayed
    rotation: int = 0  # degrees clockwise the player turns the picture
    display_rects: tuple[Rect, ...] = ()


HEVC_HLG = "colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc:range=limited"
HEVC_PQ = (
    "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:range=limited:hdr10=1:"
    "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400"
)
HEVC_2020 = "colorprim=bt2020:transfer=bt2020-10:colormatrix=bt2020nc:range=limited"


@dataclass(frozen=True)
class _Recipe:
    kind: str
    matrix: str
    full: bool
    bits: int
    tags: tuple[str, ...]  # -color_primaries ... -colorspace ... (output options)
    codec: tuple[str, ...]


def _h264(profile: str = "high") -> tuple[str, ...]:
    return ("-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-profile:v", profile)


def _hevc(params: str) -> tuple[str, ...]:
    return ("-c:v", "libx265", "-preset", "fast", "-crf", "10", "-tag:v", "hvc1", "-x265-params", f"{params}:log-level=error")


def _tags(prim: str, trc: str, space: str, rng: str) -> tuple[str, ...]:
    return ("-color_primaries", prim, "-color_trc", trc, "-colorspace", space, "-color_range", rng)


RECIPES = {
    "hlg": _Recipe("hlg", "bt2020", False, 10, _tags("bt2020", "arib-std-b67", "bt2020nc", "tv"), _hevc(HEVC_HLG)),
    "pq": _Recipe("pq", "bt2020", False, 10, _tags("bt2020", "smpte2084", "bt2020nc", "tv"), _hevc(HEVC_PQ)),
    "bt601": _Recipe("sdr709", "bt601", False, 8, _tags("smpte170m", "bt709", "smpte170m", "tv"), _h264()),
    "full": _Recipe("sdr709", "bt709", True, 8, _tags("bt709", "bt709", "bt709", "pc"), _h264()),
    "bt709": _Recipe("sdr709", "bt709", False, 8, _tags("bt709", "bt709", "bt709", "tv"), _h264()),
    # no colour description at all: players guess the matrix from the height (BT.601 below 720 lines, else BT.709)
    "untagged-sd": _Recipe("sdr709", "bt601", False, 8, (), _h264()),
    "untagged-hd": _Recipe("sdr709", "bt709", False, 8, (), _h264()),
    "bt2020sdr": _Recipe("sdr2020", "bt2020", False, 10, _tags("bt2020", "bt2020-10", "bt2020nc", "tv"), _hevc(HEVC_2020)),
}


def _frames(recipe: _Recipe, width: int, height: int, n: int, fps: float) -> Callable[[], bytes]:
    """Raw frames of the moving chart in the recipe's format, one after another."""
    it = iter(range(n))

    def nxt() -> bytes:
        i = next(it)
        sig = encode_signal(moving_chart(i / fps, width, height), recipe.kind)
        return to_yuv420(sig, recipe.matrix, recipe.full, recipe.bits)

    return nxt


def _run_ffmpeg(args: Sequence[str], recipe: _Recipe, width: int, height: int, n: int, fps: float) -> None:
    pix = "yuv420p10le" if recipe.bits == 10 else "yuv420p"
    rng = "pc" if recipe.full else "tv"
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix, "-color_range", rng]
    cmd += ["-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    nxt = _frames(recipe, width, height, n, fps)
    for _ in range(n):
        proc.stdin.write(nxt())
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}\n{err.decode(errors='replace')}")


def _audio_in(duration: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]


def make_source(
    name: str, path: str | Path, duration: float = 2.5, fps: float = 24.0, size: tuple[int, int] = (320, 180), audio: bool = False
) -> ChartSource:
    """Write the moving chart as source `name` (a key of RECIPES) to path (container from its suffix)."""
    recipe = RECIPES[name]
    w, h = size
    n = max(1, round(duration * fps))
    pix = "yuv420p10le" if recipe.bits == 10 else "yuv420p"
    args: list[str] = [*_audio_in(duration), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "64k"] if audio else []
    args += [*recipe.codec, "-pix_fmt", pix, *recipe.tags, "-g", str(int(fps)), str(path)]
    _run_ffmpeg(args, recipe, w, h, n, fps)
    _, rects = chart(w, h)
    return ChartSource(Path(path), recipe.kind, reference_codes(recipe.kind), tuple(rects), (w, h), 0, tuple(rects))


def make_hlg(path: str | Path, duration: float = 2.5, fps: float = 24.0, audio: bool = True) -> ChartSource:
    """HLG BT.2020 10-bit HEVC; MP4 or MOV from the suffix."""
    return make_source("hlg", path, duration, fps, audio=audio)


def make_pq(path: str | Path, duration: float = 2.5, fps: float = 24.0, audio: bool = True) -> ChartSource:
    """PQ BT.2020 10-bit HEVC with HDR10 mastering display and content light metadata (MaxCLL 1000)."""
    return make_source("pq", path, duration, fps, audio=audio)


def make_bt601(path: str | Path, duration: float = 2.5, fps: float = 24.0) -> ChartSource:
    """SD 352x288 H.264, BT.601 matrix (smpte170m tags; BT.709 transfer)."""
    return make_source("bt601", path, duration, fps, size=(352, 288))


def make_full_range(path: str | Path, duration: float = 2.5, fps: float = 24.0) -> ChartSource:
    """BT.709 matrix, full range (0-255) H.264, tagged pc."""
    return make_source("full", path, duration, fps)


def make_bt709(path: str | Path, duration: float = 2.5, fps: float = 24.0) -> ChartSource:
    """Plain BT.709 limited-range H.264, tagged."""
    return make_source("bt709", path, duration, fps)


def make_bt2020_sdr(path: str | Path, duration: float = 2.5, fps: float = 24.0) -> ChartSource:
    """BT.2020 SDR 10-bit HEVC (transfer bt2020-10): the chart's light moved to BT.2020 primaries."""
    return make_source("bt2020sdr", path, duration, fps)


def rotate_rect(rect: Rect, width: int, height: int, rotation: int) -> Rect:
    """A rectangle of a WxH coded frame, in the picture as displayed after turning it `rotation` degrees clockwise."""
    x0, y0, x1, y1 = rect
    if rotation % 360 == 90:
        return (height - y1, x0, height - y0, x1)
    if rotation % 360 == 270:
        return (y0, width - x1, y1, width - x0)
    if rotation % 360 == 180:
        return (width - x1, height - y1, width - x0, height - y0)
    return rect


def _remux_rotated(src: Path, dst: Path, clockwise: int) -> None:
    """Copy src's packets into dst with a display matrix turning the picture `clockwise` degrees, as phones write it
    (ffmpeg 5.1's CLI has no -display_rotation and its rotate tag does not reach the MOV muxer; PyAV can set it)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {}
        for s in inp.streams:
            if s.type in ("video", "audio"):
                streams[s.index] = out.add_stream_from_template(s)
        out.streams.video[0].set_display_rotation(-clockwise)
        for packet in inp.demux():
            if packet.dts is None or packet.stream.index not in streams:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


PHONE_PTS = "20*N+10*floor(N/5)"  # in 1/600 s: 30 fps with every 5th frame held 1.5x as long (irregular durations)


def make_phone(path: str | Path, duration: float = 2.0, audio: bool = True) -> ChartSource:
    """The phone combination: HLG 10-bit HEVC in MOV, turned 90 degrees clockwise by a display matrix, variable frame
    rate (frame times from PHONE_PTS kept by -fps_mode passthrough in a 1/600 track clock), AAC audio."""
    recipe = RECIPES["hlg"]
    w, h, fps = 320, 180, 30.0
    n = max(1, round(duration * fps))
    args: list[str] = [*_audio_in(duration + 0.5), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "64k", "-shortest"] if audio else []
    args += ["-vf", f"settb=1/600,setpts={PHONE_PTS}", "-fps_mode", "passthrough", "-enc_time_base", "1/600"]
    args += ["-video_track_timescale", "600"]
    plain = Path(path).with_name(Path(path).stem + ".unrotated.mov")
    args += [*recipe.codec, "-pix_fmt", "yuv420p10le", *recipe.tags, "-g", "30", str(plain)]
    _run_ffmpeg(args, recipe, w, h, n, fps)
    _remux_rotated(plain, Path(path), 90)
    plain.unlink()
    _, rects = chart(w, h)
    drects = tuple(rotate_rect(r, w, h, 90) for r in rects)
    return ChartSource(Path(path), recipe.kind, reference_codes(recipe.kind), tuple(rects), (h, w), 90, drects)


# ---------------------------------------------------------------------------------------------------------------
# decoding like a player

_SPACES = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}  # H.273 MatrixCoefficients


@dataclass(frozen=True)
class PlayerFrame:
    """A decoded frame as R'G'B' codes 0..255 (floats, clipped like a display would), and what was used to get them."""

    codes: Array  # HxWx3, coded orientation
    matrix: str
    full: bool
    bits: int
    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int
    rotation: int

    @property
    def signal(self) -> Array:
        return self.codes / 255.0


def _planes(frame: object, bits: int) -> tuple[Array, Array, Array]:
    """Y, Cb, Cr planes of a 4:2:0 frame from its native to_ndarray() (planes stacked, chroma rows packed)."""
    w, h = frame.width, frame.height  # type: ignore[attr-defined]
    flat = np.asarray(frame.to_ndarray(), dtype=np.float64).reshape(-1)  # type: ignore[attr-defined]
    cw, ch = (w + 1) // 2, (h + 1) // 2
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h + cw * ch].reshape(ch, cw)
    v = flat[w * h + cw * ch : w * h + 2 * cw * ch].reshape(ch, cw)
    return y, u, v


def decode_as_player(source: str | Path | bytes, index: int = 0, raw: bool = False) -> PlayerFrame:
    """Decode video frame `index` as raw YUV and turn it into R'G'B' with our matrix math, per the frame's tags
    (unspecified matrix: BT.709 from 720 lines up, BT.601 below; unspecified range: limited). With raw=True the
    codes are not clipped (for inverting HDR encodings exactly)."""
    import io

    import av

    src = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(src) as container:
        stream = container.streams.video[0]
        frame = next(itertools.islice(container.decode(stream), index, None), None)
        if frame is None:
            raise IndexError(f"no frame {index}")
        fmt = frame.format.name
        if not fmt.startswith(("yuv420p", "yuvj420p")):
            raise ValueError(f"unsupported pix_fmt {fmt}")
        bits = 10 if "10" in fmt else 8
        space = int(frame.colorspace or stream.codec_context.colorspace or 2)
        rng = int(frame.color_range or stream.codec_context.color_range or 0)
        full = rng == 2 or fmt.startswith("yuvj")
        matrix = _SPACES.get(space, "bt709" if frame.height >= 720 else "bt601")
        y, u, v = _planes(frame, bits)
        up = np.stack(
            [
                y,
                np.repeat(np.repeat(u, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]],
                np.repeat(np.repeat(v, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]],
            ],
            -1,
        )
        sig = ycbcr_to_rgb(up, matrix, full, bits)
        codes = sig * 255.0 if raw else np.clip(sig, 0, 1) * 255.0
        rotation = int(-(frame.rotation or 0)) % 360
        prim = int(frame.color_primaries or stream.codec_context.color_primaries or 2)
        trc = int(frame.color_trc or stream.codec_context.color_trc or 2)
        return PlayerFrame(codes, matrix, full, bits, space, rng, prim, trc, rotation)


def frame_times(path: str | Path) -> list[Fraction]:
    """Presentation times (seconds) of the video packets, in decode order sorted: to see a VFR source's rhythm."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        assert tb is not None
        return sorted(Fraction(p.pts) * tb for p in container.demux(stream) if p.pts is not None)
