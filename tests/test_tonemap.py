"""The colour table's maths (livetx/media/tonemap.py) and its application by FFmpeg's lut3d
(livetx/media/colour_frames.py): properties of the curve, and the interpolated table against
the exact conversion."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from livetx.media import tonemap
from livetx.media.colour import BT2020, TRANSFER_HLG, TRANSFER_PQ, ColourInfo, ContentLight, MasteringDisplay
from livetx.media.colour_frames import FrameColour, _graph

NITS = np.linspace(0, 4000, 4001)


@pytest.mark.parametrize("peak", [400.0, 1000.0, 4000.0])
def test_the_eetf_rises_keeps_the_shadows_and_lands_the_peak_on_sdr_white(peak: float) -> None:
    out = tonemap.eetf(NITS[NITS <= peak], peak)
    assert np.all(np.diff(out) >= 0)
    assert out[-1] == pytest.approx(tonemap.SDR_WHITE, rel=1e-6)
    assert out[:40] == pytest.approx(NITS[:40], abs=1e-6)  # below the knee: untouched


def test_the_eetf_is_continuous_at_its_knee() -> None:
    fine = np.linspace(80, 110, 30001)  # the knee of a 1000 cd/m² source lies near 94 cd/m²
    steps = np.abs(np.diff(tonemap.eetf(fine, 1000.0)))
    assert steps.max() < 1e-3 * 2


def test_a_source_no_brighter_than_sdr_white_is_only_clipped() -> None:
    assert tonemap.eetf(np.array([50.0, 150.0, 300.0]), 150.0) == pytest.approx([50.0, 150.0, 203.0])


def test_pq_round_trips() -> None:
    nits = np.array([0.01, 1, 100, 203, 1000, 10000])
    assert tonemap.pq_eotf(tonemap.pq_inverse_eotf(nits)) == pytest.approx(nits, rel=1e-9)


@pytest.mark.parametrize(
    ("colour", "peak"),
    [
        pytest.param(ColourInfo(BT2020, TRANSFER_PQ, BT2020, False, content_light=ContentLight(600, 200)), 600.0, id="maxcll"),
        pytest.param(
            ColourInfo(BT2020, TRANSFER_PQ, BT2020, False, MasteringDisplay((1, 1), (1, 1), (1, 1), (1, 1), 40_000_000, 50)),
            4000.0,
            id="mastering",
        ),
        pytest.param(ColourInfo(BT2020, TRANSFER_PQ, BT2020, False), 1000.0, id="none"),
        pytest.param(ColourInfo(BT2020, TRANSFER_HLG, BT2020, False), 1000.0, id="hlg"),
    ],
)
def test_the_peak_comes_from_maxcll_then_the_mastering_display(colour: ColourInfo, peak: float) -> None:
    table = tonemap.tone_map_for(colour)
    assert table is not None and table.peak == peak


def test_bt709_like_sdr_needs_no_table_but_bt2020_does() -> None:
    assert tonemap.tone_map_for(ColourInfo(1, 1, 1)) is None
    assert tonemap.tone_map_for(ColourInfo(6, 6, 6)) is None
    assert tonemap.tone_map_for(ColourInfo()) is None
    assert tonemap.tone_map_for(ColourInfo(BT2020, 14, BT2020)) == tonemap.ToneMap(BT2020, "sdr", tonemap.HLG_DISPLAY_PEAK)


def test_greys_stay_grey_and_gamut_is_kept() -> None:
    grey = np.linspace(0, 1, 11)[:, None].repeat(3, axis=1)
    for table in (tonemap.ToneMap(BT2020, "pq"), tonemap.ToneMap(BT2020, "hlg"), tonemap.ToneMap(BT2020, "sdr")):
        out = tonemap.convert(grey, table)
        assert np.ptp(out, axis=1).max() < 1e-9
        assert np.all(np.diff(out[:, 0]) >= 0)
        saturated = tonemap.convert(np.eye(3), table)  # the BT.2020 primaries: outside BT.709
        assert saturated.min() >= 0 and saturated.max() <= 1


def _lab(codes: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of BT.709 R'G'B' shown by a BT.1886 display (for a CIE76 distance)."""
    xyz = np.clip(codes, 0, 1) ** tonemap.DISPLAY_GAMMA @ tonemap.rgb_to_xyz(1).T
    white = tonemap.rgb_to_xyz(1).sum(axis=1)
    t = xyz / white
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _through_lut3d(table: tonemap.ToneMap, rgb: np.ndarray) -> np.ndarray:
    """16-bit R'G'B' (n, n, 3) through the worker's lut3d graph for `table`: 0..1 floats."""
    side = rgb.shape[0]
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="gbrp16le")
    frame.pts, frame.time_base = 0, Fraction(1, 90000)
    graph = _graph(table, side, side)
    graph.push(frame)
    return graph.vpull().reformat(format="rgb48le").to_ndarray().astype(np.float64) / 65535


# the 24 patches of a classic colour checker, as 8-bit sRGB values (approximate published ones)
CHECKER = [
    (115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
    (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
    (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
    (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52),
]  # fmt: skip


@pytest.mark.parametrize("signal", ["hlg", "pq"])
def test_lut3d_gives_the_colours_of_a_chart_within_two_codes_of_the_exact_curve(signal: str) -> None:
    """A colour checker at SDR white's 203 cd/m², in an HLG or PQ BT.2020 signal: the worker's
    path (16-bit RGB through FFmpeg's tetrahedral lut3d) lands within 2 8-bit codes of the exact
    conversion of the same values for all but the two patches nearest the BT.709 gamut's edge
    (the checker's cyan and yellow, where the curve bends: the grid's cost, see LUT_SIZE), and
    within a ΔE76 of 3 for all."""
    light = (np.array(CHECKER) / 255) ** tonemap.DISPLAY_GAMMA * tonemap.SDR_WHITE
    to_2020 = np.linalg.solve(tonemap.rgb_to_xyz(BT2020), tonemap.rgb_to_xyz(1))
    light_2020 = light @ to_2020.T
    if signal == "pq":
        values = tonemap.pq_inverse_eotf(light_2020)
    else:  # BT.2100: the inverse OOTF of a 1000 cd/m² display, then the OETF
        y = light_2020 @ tonemap.rgb_to_xyz(BT2020)[1]
        scene = light_2020 / 1000 * (y[:, None] / 1000) ** ((1 - 1.2) / 1.2)
        a, b = 0.17883277, 1 - 4 * 0.17883277
        c = 0.5 - a * np.log(4 * a)
        values = np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-9)) + c)
    rgb = np.round(np.repeat(values[:, None, :], len(CHECKER), axis=1) * 65535).astype(np.uint16)
    table = tonemap.ToneMap(BT2020, signal)
    mapped, exact = _through_lut3d(table, rgb)[:, 0], tonemap.convert(rgb[:, 0] / 65535, table)
    codes = np.abs(mapped - exact).max(axis=1) * 255
    assert np.median(codes) < 0.5 and np.sort(codes)[-3] < 2, codes
    delta_e = np.linalg.norm(_lab(mapped) - _lab(exact), axis=1)
    assert delta_e.max() < 3, delta_e


@pytest.mark.parametrize("signal", ["hlg", "pq"])
def test_lut3d_follows_the_exact_curve_over_the_whole_signal_cube(signal: str) -> None:
    """Any R'G'B' value, even far outside BT.709 at full brightness: nine in ten within 2 codes;
    the rest are saturated highlights, where the gamut step bends sharply (within 20 codes)."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 65536, size=(64, 64, 3)).astype(np.uint16)
    table = tonemap.ToneMap(BT2020, signal)
    colour = FrameColour(ColourInfo(BT2020, TRANSFER_HLG if signal == "hlg" else TRANSFER_PQ, BT2020, False), "sdr", 64, 64)
    assert colour.table == table
    error = np.abs(_through_lut3d(table, rgb) - tonemap.convert(rgb / 65535, table)).max(axis=-1) * 255
    assert np.percentile(error, 90) < 2 and np.percentile(error, 99) < 20, (np.percentile(error, 90), np.percentile(error, 99))


def test_the_cube_file_lists_red_fastest() -> None:
    text = tonemap.cube_text(tonemap.lut(tonemap.ToneMap(BT2020, "sdr"), size=2))
    rows = [list(map(float, line.split())) for line in text.splitlines()[3:]]
    assert len(rows) == 8
    assert rows[1][0] > rows[1][1] and rows[1][0] > rows[1][2]  # (r=1, g=0, b=0): red
    assert rows[2][1] > rows[2][0]  # (r=0, g=1, b=0): green
