"""The test-side colour library (tests/colour_checks.py) checked against the standards' published numbers, and its
chart sources checked by decoding them back: if these fail, every colour test built on them means nothing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests import colour_checks as cc

# Sharma, Wu, Dalal (2005), Table 1: (L1, a1, b1, L2, a2, b2, ΔE00), a selection covering the hue wrap-around,
# the zero-chroma case, the blue-region rotation term and ordinary pairs.
SHARMA = (
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
)


def test_ciede2000_matches_the_published_pairs() -> None:
    table = np.array(SHARMA)
    got = cc.ciede2000(table[:, :3], table[:, 3:6])
    np.testing.assert_allclose(got, table[:, 6], atol=1e-4)
    np.testing.assert_allclose(cc.ciede2000(table[:, 3:6], table[:, :3]), got, atol=1e-9)  # symmetric


def test_lab_of_white_and_black() -> None:
    np.testing.assert_allclose(cc.codes_to_lab([[255, 255, 255], [0, 0, 0]]), [[100, 0, 0], [0, 0, 0]], atol=1e-9)
    assert cc.delta_e([[128, 128, 128]], [[128, 128, 128]])[0] == 0


@pytest.mark.parametrize("matrix", ["bt709", "bt601", "bt2020"])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("bits", [8, 10])
def test_ycbcr_round_trip(matrix: str, full: bool, bits: int) -> None:
    rgb = np.random.default_rng(1).random((500, 3))
    ycc = cc.rgb_to_ycbcr(rgb, matrix, full, bits)
    np.testing.assert_allclose(cc.ycbcr_to_rgb(ycc, matrix, full, bits), rgb, atol=1e-12)


def test_ycbcr_code_points() -> None:
    s = 4.0  # 10-bit scale
    np.testing.assert_allclose(cc.rgb_to_ycbcr([[1, 1, 1], [0, 0, 0]], "bt709", False, 8), [[235, 128, 128], [16, 128, 128]])
    np.testing.assert_allclose(cc.rgb_to_ycbcr([[1, 1, 1]], "bt2020", False, 10), [[235 * s, 128 * s, 128 * s]])
    np.testing.assert_allclose(cc.rgb_to_ycbcr([[1, 1, 1], [0, 0, 0]], "bt709", True, 8), [[255, 128, 128], [0, 128, 128]])
    # pure blue reaches Cb's top (240) and red Cr's, in every matrix
    for m in cc.MATRICES:
        assert cc.rgb_to_ycbcr([0, 0, 1], m)[1] == pytest.approx(240)
        assert cc.rgb_to_ycbcr([1, 0, 0], m)[2] == pytest.approx(240)
    # the matrices really differ: BT.601 decoding of BT.709 red is visibly wrong
    red = cc.rgb_to_ycbcr([1, 0, 0], "bt709")
    assert np.abs(cc.ycbcr_to_rgb(red, "bt601") - [1, 0, 0]).max() > 0.05


def test_primaries_from_chromaticities() -> None:
    np.testing.assert_allclose(cc.luminance_coefficients("bt709"), [0.2126, 0.7152, 0.0722], atol=1e-4)
    np.testing.assert_allclose(cc.luminance_coefficients("bt2020"), [0.2627, 0.6780, 0.0593], atol=1e-4)
    m = cc.primaries_matrix("bt709", "bt2020")
    bt2087 = [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]  # BT.2087 Table
    np.testing.assert_allclose(m, bt2087, atol=2e-4)
    np.testing.assert_allclose(m.sum(axis=1), 1, atol=1e-12)  # white stays white
    np.testing.assert_allclose(cc.primaries_matrix("bt2020", "bt709") @ m, np.eye(3), atol=1e-12)


def test_bt1886() -> None:
    v = np.linspace(0, 1, 101)
    np.testing.assert_allclose(cc.bt1886_inverse(cc.bt1886_eotf(v)), v, atol=1e-12)
    assert cc.bt1886_eotf(0.5) == pytest.approx(0.5**2.4)


def test_pq() -> None:
    e = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(cc.pq_inverse(cc.pq_eotf(e)), e, atol=1e-6)  # PQinv(0) is c1^m2 = 7e-7, not 0
    nits = np.geomspace(0.001, 10000, 200)
    np.testing.assert_allclose(cc.pq_eotf(cc.pq_inverse(nits)), nits, rtol=1e-9)
    assert cc.pq_eotf(1.0) == pytest.approx(10000)
    assert cc.pq_eotf(0.0) == 0
    assert cc.pq_inverse(100) == pytest.approx(0.5081, abs=1e-4)  # ST 2084: 100 cd/m² at code ~520 of 1023
    assert cc.pq_inverse(1000) == pytest.approx(0.7518, abs=1e-4)


def test_hlg() -> None:
    e = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(cc.hlg_inverse_oetf(cc.hlg_oetf(e)), e, atol=1e-12)
    assert cc.hlg_oetf(1 / 12) == pytest.approx(0.5)
    assert cc.hlg_oetf(1.0) == pytest.approx(1.0, abs=1e-6)
    scene = np.random.default_rng(2).random((300, 3))
    display = cc.hlg_ootf(scene)
    np.testing.assert_allclose(cc.hlg_inverse_ootf(display), scene, atol=1e-9)
    np.testing.assert_allclose(cc.hlg_ootf([1, 1, 1]), [1000, 1000, 1000])
    # BT.2408: 75% HLG signal is reference white, 203 cd/m², on a 1000 cd/m² display
    grey = cc.hlg_ootf(cc.hlg_inverse_oetf([0.75, 0.75, 0.75]))
    np.testing.assert_allclose(grey, 203, atol=0.5)
    # the OOTF is a luminance gain (hue kept): a colour's channel ratios survive it
    c = np.array([0.2, 0.05, 0.1])
    out = cc.hlg_ootf(c)
    np.testing.assert_allclose(out / out.sum(), c / c.sum(), atol=1e-12)


LSRC = (1000.0, 4000.0, 600.0)


@pytest.mark.parametrize("lsrc", LSRC)
def test_tone_curve_shape(lsrc: float) -> None:
    y = np.linspace(0, lsrc, 20001)
    out = cc.tone_curve(y, lsrc)
    assert np.all(np.diff(out) >= 0)  # monotonic
    assert out[-1] == pytest.approx(cc.REF_WHITE, rel=1e-9)  # Lsrc -> Lt
    assert out.max() <= cc.REF_WHITE * (1 + 1e-9)
    ps = float(cc.pq_inverse(lsrc))
    ks = 1.5 * float(cc.pq_inverse(cc.REF_WHITE)) / ps - 0.5
    knee = float(cc.pq_eotf(ks * ps))
    below = y[y < knee * 0.999]
    np.testing.assert_allclose(cc.tone_curve(below, lsrc), below, rtol=1e-9, atol=1e-9)  # identity below KS
    eps = 1e-7
    left, right = cc.tone_curve(np.array([knee * (1 - eps), knee * (1 + eps)]), lsrc)
    assert right - left == pytest.approx(2 * eps * knee, rel=1e-3)  # continuous, and slope 1 at the knee
    assert np.max(np.abs(np.diff(out))) < 2 * (y[1] - y[0])  # no jumps anywhere


def test_tone_curve_without_compression() -> None:
    y = np.array([0, 50, 150, 203, 300])
    np.testing.assert_allclose(cc.tone_curve(y, 150.0), [0, 50, 150, 203, 203])


def test_tone_map_colours() -> None:
    lsrc = 1000.0
    white = cc.tone_map([[lsrc, lsrc, lsrc]], "bt2020", lsrc)
    np.testing.assert_allclose(white, [[1, 1, 1]], atol=1e-9)
    assert np.all(cc.tone_map([[0, 0, 0]], "bt709", lsrc) == 0)
    dark = np.array([[20.0, 10.0, 5.0]])  # below the knee: only the /203 and the transfer
    np.testing.assert_allclose(cc.tone_map(dark, "bt709", lsrc), cc.bt1886_inverse(dark / 203), atol=1e-12)
    # BT.2020 primaries at the peak are out of BT.709's gamut: desaturated into range, luminance kept, hue order kept
    rng = np.random.default_rng(3)
    rgb = rng.random((2000, 3)) ** 3 * lsrc
    out = cc.tone_map(rgb, "bt2020", lsrc)
    assert out.min() >= 0 and out.max() <= 1
    sat = np.array([[0, lsrc, 0]])  # 2020 green at peak
    lin = cc.bt1886_eotf(cc.tone_map(sat, "bt2020", lsrc))
    y_expected = cc.tone_curve(sat @ cc.luminance_coefficients("bt2020"), lsrc) / 203
    assert float((lin @ cc.luminance_coefficients("bt709"))[0]) == pytest.approx(float(y_expected[0]), rel=1e-6)
    assert lin[0, 1] == lin.max()


def test_desaturate_into_range() -> None:
    inside = np.array([[0.2, 0.5, 0.9]])
    np.testing.assert_array_equal(cc.desaturate_into_range(inside), inside)
    out = cc.desaturate_into_range(np.array([[1.4, 0.2, -0.1]]))
    assert out.min() >= -1e-12 and out.max() <= 1 + 1e-12
    assert np.isclose(out.max(), 1) or np.isclose(out.min(), 0)  # the largest t: a channel sits on the edge


def test_chart() -> None:
    img, rects = cc.chart(320, 180)
    assert img.shape == (180, 320, 3) and img.dtype == np.uint8
    assert len(rects) == len(cc.PATCHES) == 32
    np.testing.assert_array_equal(cc.patch_codes(img, rects), cc.PATCHES)
    lay = cc.layout(320, 180)
    for (x0, y0, x1, y1), (cx0, cy0, cx1, cy1) in zip(rects, lay.cells, strict=True):
        assert cx1 - cx0 >= 24 and x1 - x0 >= 8 and y1 - y0 >= 8
        assert cx0 + 4 <= x0 and cy0 + 4 <= y0 and x1 + 4 <= cx1 and y1 + 4 <= cy1  # inset, edges excluded
    a, b = cc.moving_chart(0.0), cc.moving_chart(1 / 24)
    assert np.any(a != b)
    np.testing.assert_array_equal(cc.patch_codes(a, rects), cc.PATCHES)  # motion never touches a patch
    np.testing.assert_array_equal(cc.patch_codes(b, rects), cc.PATCHES)
    x0, y0, x1, y1 = lay.drift
    levels = [cc.moving_chart(t)[y0, x0, 0] for t in np.arange(0, 4, 1 / 24)]
    assert np.max(np.abs(np.diff(np.array(levels, dtype=int)))) <= 1  # slow drift
    assert levels[-1] != levels[0]


def test_hdr_encodings_invert_exactly() -> None:
    codes = np.array(cc.PATCHES, dtype=np.float64)
    for kind in ("sdr709", "sdr2020", "hlg", "pq"):
        np.testing.assert_allclose(cc.decode_signal(cc.encode_signal(codes, kind), kind), codes, atol=1e-3)  # L^(1/2.4) magnifies ~0


def test_hdr_references_are_the_tone_curve() -> None:
    ref = cc.reference_codes("hlg")
    chart = np.array(cc.PATCHES, dtype=np.float64)
    de = cc.delta_e(chart, ref)
    lum = cc.bt1886_eotf(chart / 255) @ cc.luminance_coefficients("bt709") * 203
    ks_nits = float(cc.pq_eotf((1.5 * float(cc.pq_inverse(203)) / float(cc.pq_inverse(1000)) - 0.5) * float(cc.pq_inverse(1000))))
    assert np.all(de[lum < ks_nits * 0.8] < 0.05)  # dark patches pass through
    assert np.all(ref[lum > ks_nits * 1.2].sum(axis=1) < chart[lum > ks_nits * 1.2].sum(axis=1))  # highlights compressed


# --- the sources, decoded back (ffmpeg CLI) ---------------------------------------------------------------------


def _measured(src: cc.ChartSource, index: int = 5) -> tuple[cc.PlayerFrame, np.ndarray]:
    frame = cc.decode_as_player(src.path, index, raw=True)
    codes = np.clip(cc.decode_signal(frame.signal, src.kind), 0, 255)
    return frame, cc.patch_codes(codes, src.rects)


SDR = {"bt709": (cc.make_bt709, "bt709", False), "bt601": (cc.make_bt601, "bt601", False), "full": (cc.make_full_range, "bt709", True)}


@pytest.mark.parametrize("name", SDR)
def test_sdr_sources_decode_to_the_chart(name: str, tmp_path: Path) -> None:
    cc.need_ffmpeg()
    make, matrix, full = SDR[name]
    src = make(tmp_path / f"{name}.mp4", duration=1.0)
    frame = cc.decode_as_player(src.path, 5)  # the plain player path: matrix and range from the tags, clipped
    assert (frame.matrix, frame.full, frame.bits) == (matrix, full, 8)
    de = cc.delta_e(src.ref_codes, cc.patch_codes(frame.codes, src.rects))
    print(name, "mean ΔE00", round(float(de.mean()), 3), "max", round(float(de.max()), 3))
    assert de.mean() < 1.5 and de.max() < 3
    # decoding with the wrong matrix or range would be caught
    wrong = cc.ycbcr_to_rgb(cc.rgb_to_ycbcr(frame.signal, matrix, full), "bt601" if matrix == "bt709" else "bt709", not full)
    assert cc.delta_e(src.ref_codes, cc.patch_codes(np.clip(wrong, 0, 1) * 255, src.rects)).mean() > 2


@pytest.mark.parametrize(("size", "matrix"), [((352, 288), "bt601"), ((1280, 720), "bt709")])
def test_untagged_sources_guess_the_matrix_by_height(size: tuple[int, int], matrix: str, tmp_path: Path) -> None:
    cc.need_ffmpeg()
    name = "untagged-sd" if matrix == "bt601" else "untagged-hd"
    src = cc.make_source(name, tmp_path / f"{name}.mp4", duration=0.25, size=size)
    frame = cc.decode_as_player(src.path, 2)
    assert frame.colorspace == 2 and frame.color_range in (0, 1)  # really unspecified (range: maybe defaulted to tv)
    assert (frame.matrix, frame.full) == (matrix, False)
    assert cc.delta_e(src.ref_codes, cc.patch_codes(frame.codes, src.rects)).mean() < 1.5


HDR = {
    "hlg.mp4": (cc.make_hlg, 18, "hlg"),
    "hlg.mov": (cc.make_hlg, 18, "hlg"),
    "pq.mp4": (cc.make_pq, 16, "pq"),
    "sdr2020.mp4": (cc.make_bt2020_sdr, 14, "sdr2020"),
}


@pytest.mark.parametrize("name", HDR)
def test_wide_sources_invert_to_the_chart(name: str, tmp_path: Path) -> None:
    cc.need_ffmpeg()
    make, trc, kind = HDR[name]
    src = make(tmp_path / name, duration=1.0)
    frame, patches = _measured(src)
    assert (frame.matrix, frame.bits, frame.full, frame.color_primaries, frame.color_trc) == ("bt2020", 10, False, 9, trc)
    assert src.kind == kind
    de = cc.delta_e(np.array(cc.PATCHES, dtype=np.float64), patches)
    print(name, "mean ΔE00", round(float(de.mean()), 3), "max", round(float(de.max()), 3))
    assert de.mean() < 1.5 and de.max() < 3


def test_pq_source_carries_hdr10_metadata(tmp_path: Path) -> None:
    cc.need_ffmpeg()
    import av

    src = cc.make_pq(tmp_path / "pq.mp4", duration=0.5)
    with av.open(str(src.path)) as container:
        frame = next(container.decode(video=0))
        kinds = {str(sd.type) for sd in frame.side_data}
    assert any("MASTERING" in k for k in kinds) and any("CONTENT_LIGHT" in k for k in kinds), kinds


def test_phone_source(tmp_path: Path) -> None:
    cc.need_ffmpeg()
    import av

    src = cc.make_phone(tmp_path / "phone.mov", duration=1.0)
    assert src.display_size == (180, 320) and src.rotation == 90
    frame, patches = _measured(src)
    assert frame.rotation == 90 and frame.color_trc == 18 and frame.matrix == "bt2020"
    assert cc.delta_e(np.array(cc.PATCHES, dtype=np.float64), patches).mean() < 1.5
    steps = set(np.diff(cc.frame_times(src.path)))
    assert steps == {Fraction(1, 30), Fraction(1, 20)}  # variable frame rate
    with av.open(str(src.path)) as container:
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"
    # the display rectangles are where the patches land once the picture is turned
    turned = np.rot90(frame.codes, k=-1)  # clockwise
    assert turned.shape[:2] == (320, 180)
    raw = cc.patch_codes(frame.codes, src.rects)
    np.testing.assert_allclose(cc.patch_codes(turned, src.display_rects), raw)
