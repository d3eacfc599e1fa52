"""Watermarks (`wm_*` rendition parameters): where the overlay goes, how it blends, what it
changes (the spec id) and what it refuses; checked by decoding segments the app made."""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import m3u8
import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from livetx.app import create_app
from livetx.composite import ClipSource, build_composite_title, profile_name
from livetx.concat import Clip, concat_params, make_composite, parse_composite, parse_oss_concat, to_json, to_oss
from livetx.errors import ConfigError, ParameterError, WatermarkUnreadable
from livetx.factories import make_signer
from livetx.jobs import parse_imm, parse_oss
from livetx.media.model import MediaInfo, SegmentJob, VideoInfo, VideoSpec
from livetx.media.overlay import overlay_frame, overlay_rgb
from livetx.media.params import parse_rendition_params
from livetx.media.probe import probe
from livetx.media.sample import read_index
from livetx.media.transcode import transcode_segment
from livetx.media.watermark import MAX_IMAGE_SIDE, WatermarkImage, decode_image, image_overlay, place, text_overlay
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile
from livetx.urls import signed_url
from livetx.web.keys import CATALOG, SETTINGS
from tests.conftest import ROOT, Source, app_settings
from tests.support import IMM_SAMPLE

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
LOGO_RGB = (200, 60, 30)
LOGO = dict(wm_image="logo.png", wm_pos="br", wm_dx=10, wm_dy=10, wm_width=0.2, wm_alpha=0.5)


SAVEAS = "sys/saveas,o_b3V0,b_YnVja2V0"
CONCAT_SAVEAS = "sys/saveas,b_YnVja2V0,o_b3V0Lm1wNA"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def png(size: tuple[int, int], rgba: tuple[int, int, int, int] = (*LOGO_RGB, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, rgba).save(buf, "PNG")
    return buf.getvalue()


def luma_of(rgb: tuple[int, int, int]) -> float:
    r, g, b = rgb
    return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255


def toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def profile_table(name: str, **params: Any) -> str:
    lines = [f"[profiles.{name}]", "st = 5000", "initial_segments = [1000]", "initd = 0", f"[profiles.{name}.renditions.main]"]
    lines += ["crf = 6", 'preset = "ultrafast"', "an = 1", *(f"{k} = {toml(v)}" for k, v in params.items())]
    return "\n".join(lines) + "\n"


# ---- placement: a pure function ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pos", "dx", "dy", "size", "expected"),
    [
        pytest.param("tl", 10, 20, (64, 32), (10, 20), id="top-left"),
        pytest.param("tr", 10, 20, (64, 32), (246, 20), id="top-right"),
        pytest.param("bl", 10, 20, (64, 32), (10, 128), id="bottom-left"),
        pytest.param("br", 10, 10, (64, 32), (246, 138), id="bottom-right"),
        pytest.param("c", 10, 10, (64, 32), (128, 74), id="centre-ignores-margins"),
        pytest.param("br", 11, 11, (63, 31), (246, 138), id="odd-is-made-even"),
        pytest.param("br", 4000, 4000, (64, 32), (0, 0), id="kept-inside"),
        pytest.param("tl", 0, 0, (400, 400), (0, 0), id="larger-than-the-frame"),
    ],
)
def test_place(pos: str, dx: int, dy: int, size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert place(pos, dx, dy, 320, 180, *size) == expected


# ---- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"wm_pos": "middle"}, "wm_pos", id="pos"),
        pytest.param({"wm_dx": 5000}, "wm_dx", id="margin"),
        pytest.param({"wm_width": 0}, "wm_width", id="width-zero"),
        pytest.param({"wm_width": 1.5}, "wm_width", id="width-above-1"),
        pytest.param({"wm_alpha": 1.1}, "wm_alpha", id="alpha"),
        pytest.param({"wm_size": 4}, "wm_size", id="font-size"),
        pytest.param({"wm_color": "red"}, "wm_color", id="colour"),
        pytest.param({"wm_image": "../logo.png"}, "wm_image", id="image-key"),
        pytest.param({"wm_text": "two\nlines"}, "wm_text", id="text-line"),
        pytest.param({"wm_text": "x" * 101}, "wm_text", id="text-length"),
        pytest.param({"wm_text": "x", "wm_image": "logo.png"}, "wm_text", id="one-watermark"),
    ],
)
def test_bad_parameters_name_the_field(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_rendition_params(params)
    assert raised.value.name == name and raised.value.status == 400


def test_an_oss_request_takes_watermark_parameters() -> None:
    """As OSS's own watermark, the image key and the text are base64url (a key has '/', a text ',')."""
    text, image = b64("© livetx, 2026"), b64("logos/a.png")
    job = parse_oss("a.mp4", f"hls/m3u8,wm_text_{text},wm_pos_bl,wm_alpha_0.5|{SAVEAS}", lambda uri, _: uri[6:])
    assert (job.table["renditions"]["t0"]["wm_text"], job.table["renditions"]["t0"]["wm_pos"]) == ("© livetx, 2026", "bl")
    job = parse_oss("a.mp4", f"hls/m3u8,wm_image_{image},wm_width_0.2|{SAVEAS}", lambda uri, _: uri[6:])
    assert job.table["renditions"]["t0"]["wm_image"] == "logos/a.png"
    for process, name in ((f"hls/m3u8,wm_text_{text},wm_pos_up", "wm_pos"), ("hls/m3u8,wm_image_logo.png", "wm_image")):
        with pytest.raises(ParameterError) as raised:
            parse_oss("a.mp4", f"{process}|{SAVEAS}", lambda uri, _: uri[6:])
        assert raised.value.name == name


def test_a_composite_round_trips_its_watermark_through_the_oss_and_json_forms() -> None:
    request = parse_oss_concat("a.mp4", f"video/concat,f_mp4,wm_image_{b64('logos/a.png')},wm_pos_bl|{CONCAT_SAVEAS}")
    assert request.composite.params.wm_image == "logos/a.png"
    assert parse_oss_concat("a.mp4", to_oss(request)) == request
    body = to_json(request.composite, lambda key: f"oss://local/{key}")
    assert body["Watermark"] == {"URI": "oss://local/logos/a.png", "ReferPos": "bl"}
    assert parse_composite(body, lambda uri, _: uri.split("/", 3)[3]) == request.composite


def imm_keys(uri: str, field: str) -> str:
    return uri.split("/", 3)[3]


def imm_watermark(**watermark: Any) -> dict[str, Any]:
    return {**IMM_SAMPLE, "Targets": [{"URI": "oss://bucket/out/a", "Watermark": watermark}]}


def test_an_imm_target_takes_a_watermark_in_mps_names() -> None:
    job = parse_imm(imm_watermark(URI="oss://bucket/logos/a.png", ReferPos="BottomLeft", Dx=8, Width=0.25, Alpha=0.5), imm_keys, imm_keys)
    params = job.table["renditions"]["t0"]
    assert (params["wm_image"], params["wm_pos"], params["wm_dx"], params["wm_width"], params["wm_alpha"]) == (
        "logos/a.png",
        "bl",
        8,
        0.25,
        0.5,
    )


@pytest.mark.parametrize(
    ("watermark", "field"),
    [
        pytest.param({"Content": "x", "ReferPos": "Left"}, "Targets[0].Watermark.ReferPos", id="refer-pos"),
        pytest.param({"Content": "x", "FontColor": "blue"}, "Targets[0].Watermark.FontColor", id="font-colour"),
        pytest.param({"Content": "x", "URI": "oss://bucket/a.png"}, "Targets[0].Watermark.Content", id="text-and-image"),
    ],
)
def test_a_bad_imm_watermark_names_its_field(watermark: dict[str, Any], field: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_imm(imm_watermark(**watermark), imm_keys, imm_keys)
    assert raised.value.name == field


def test_a_profile_with_a_bad_watermark_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="wm_alpha"):
        parse_profile("p", {"renditions": {"main": {"wm_text": "x", "wm_alpha": 2}}})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"GIF89a" + b"\0" * 64, "not an image", id="not-png-jpeg-webp"),
        pytest.param(png((MAX_IMAGE_SIDE + 1, 1)), "pixels per side", id="too-wide"),
        pytest.param(b"\0" * (1024 * 1024 + 1), "larger than", id="too-many-bytes"),
    ],
)
def test_unusable_images_are_refused_before_decoding(data: bytes, reason: str) -> None:
    with pytest.raises(WatermarkUnreadable, match=reason) as raised:
        decode_image("logo.png", "e", data)
    assert raised.value.status == 422 and raised.value.details["key"] == "logo.png"


# ---- compositing -------------------------------------------------------------------------


def flat_frame(pix_fmt: str, y: int, width: int = 320, height: int = 180) -> av.VideoFrame:
    scale = 4 if pix_fmt.endswith("10le") else 1
    frame = av.VideoFrame.from_ndarray(np.zeros((height * 3 // 2, width), dtype=np.uint8), format="yuv420p").reformat(format=pix_fmt)
    array = frame.to_ndarray()
    array[:height] = y * scale
    array[height:] = 128 * scale
    return av.VideoFrame.from_ndarray(array, format=pix_fmt)


def planes(array: np.ndarray, height: int = 180) -> list[np.ndarray]:
    """Views of the Y, U and V planes of a 4:2:0 frame's ndarray."""
    return [array[:height], *array[height:].reshape(2, height // 2, array.shape[1] // 2)]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_an_image_blends_at_its_opacity_inside_its_rectangle_only(pix_fmt: str) -> None:
    mark = decode_image("logo.png", "e", png((64, 32)))
    overlay = image_overlay(mark, parse_rendition_params(LOGO), 320, 180)
    frame = flat_frame(pix_fmt, 100)
    before = frame.to_ndarray()
    after = overlay_frame(frame, overlay).to_ndarray()
    scale = 4 if pix_fmt.endswith("10le") else 1
    rect = (slice(overlay.y, overlay.y + overlay.height), slice(overlay.x, overlay.x + overlay.width))
    assert (overlay.x, overlay.y, overlay.width, overlay.height) == (246, 138, 64, 32)
    assert np.abs(after[rect].astype(float) - scale * (0.5 * 100 + 0.5 * luma_of(LOGO_RGB))).max() <= scale
    for plane_after, plane_before, div in zip(planes(after), planes(before), (1, 2, 2), strict=True):
        x, y, w, h = (v // div for v in (overlay.x, overlay.y, overlay.width, overlay.height))
        plane_after[y : y + h, x : x + w] = plane_before[y : y + h, x : x + w]  # the rest is untouched, bit for bit
    assert np.array_equal(after, before)


def test_text_leaves_marks_in_its_rectangle_and_none_outside() -> None:
    overlay = text_overlay(parse_rendition_params({"wm_text": "livetx", "wm_pos": "bl", "wm_dx": 8, "wm_dy": 8, "wm_size": 24}), 320, 180)
    frame = flat_frame("yuv420p", 40)
    luma = overlay_frame(frame, overlay).to_ndarray()[:180]
    inside = luma[overlay.y : overlay.y + overlay.height, overlay.x : overlay.x + overlay.width]
    assert overlay.x == 8 and overlay.y + overlay.height <= 180 - 8 and overlay.height >= 12
    assert (inside > 200).sum() > 50  # white glyphs
    luma[overlay.y : overlay.y + overlay.height, overlay.x : overlay.x + overlay.width] = 40
    assert (luma == 40).all()


def test_overlay_rgb_blends_a_picture_as_the_frames() -> None:
    mark = decode_image("logo.png", "e", png((64, 32)))
    overlay = image_overlay(mark, parse_rendition_params(LOGO), 320, 180)
    out = np.asarray(overlay_rgb(Image.new("RGB", (320, 180), (0, 0, 0)), overlay))
    assert np.abs(out[150, 270].astype(int) - [c // 2 for c in LOGO_RGB]).max() <= 1
    assert not out[:138].any() and not out[:, :246].any()


# ---- segments: the worker, with real decoding -------------------------------------------


def decoded(job: SegmentJob) -> list[np.ndarray]:
    with av.open(io.BytesIO(transcode_segment(job).data), format="mpegts") as container:
        return [f.to_ndarray() for f in container.decode(video=0)]


def test_a_watermarked_segment_keeps_its_frame_indexes_and_blends_the_logo(sources: dict[str, Source]) -> None:
    """The overlay in a bottom corner, at opacity 0.5: inside it each decoded pixel is the
    un-watermarked segment's half-way to the logo's colour (x264 at crf 4: a few codes), and the
    frame indexes along the top edge read back as without it."""
    src = sources["mp4-30"]  # 320x180
    mark = decode_image("logo.png", "e", png((64, 32)))
    overlay = image_overlay(mark, parse_rendition_params(LOGO), 320, 180)
    video = VideoSpec("h264", 320, 180, src.spec.fps, crf=4, preset="ultrafast")
    plain = SegmentJob(str(src.path), Fraction(0), Fraction(0), Fraction(1), video, None, video_stream=0)
    without, marked = decoded(plain), decoded(replace(plain, overlay=overlay))
    assert [read_index(f[:180]) for f in marked] == [read_index(f[:180]) for f in without] == list(range(30))
    inner = (slice(overlay.y + 2, overlay.y + overlay.height - 2), slice(overlay.x + 2, overlay.x + overlay.width - 2))
    for a, b in zip(without, marked, strict=True):
        expected = 0.5 * a[:180][inner].astype(float) + 0.5 * luma_of(LOGO_RGB)
        assert np.abs(b[:180][inner] - expected).max() <= 4
        assert np.abs(b[:180][:, : overlay.x - 8].astype(int) - a[:180][:, : overlay.x - 8]).max() <= 4


# ---- the spec id ---------------------------------------------------------------------------


def spec_id(src: Source, marks: dict[str, WatermarkImage] | None = None, **params: Any) -> str:
    profile = parse_profile("p", {"renditions": {"main": {"an": 1, **params}}})
    source = ObjectInfo(src.key, 1, "etag")
    return build_title(source, probe(str(src.path)), profile, watermarks=marks).renditions[0].spec_id


def test_the_spec_id_follows_the_watermark(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    logo = decode_image("logo.png", "v1", png((64, 32)))
    other = decode_image("logo.png", "v2", png((64, 32), (10, 200, 10, 255)))
    ids = [
        spec_id(src),
        spec_id(src, {"logo.png": logo}, **LOGO),
        spec_id(src, {"logo.png": other}, **LOGO),  # another version of the image
        spec_id(src, {"logo.png": logo}, **{**LOGO, "wm_pos": "tl"}),
        spec_id(src, {"logo.png": logo}, **{**LOGO, "wm_alpha": 0.6}),
        spec_id(src, wm_text="one"),
        spec_id(src, wm_text="two"),
    ]
    assert len(set(ids)) == len(ids)
    assert spec_id(src, {"logo.png": logo}, **LOGO) == ids[1]  # and is stable


# ---- the app: images read from the source store ------------------------------------------


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Path, sources: dict[str, Source]) -> TestClient[Any, Any]:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    (media / "logo.png").write_bytes(png((64, 32)))
    config = tmp_path / "livetx.toml"
    tables = profile_table("wm", **LOGO) + profile_table("plain") + profile_table("missing", **{**LOGO, "wm_image": "gone/logo.png"})
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + "\n" + tables)
    settings = app_settings(config, LIVETX_STORAGE_URI=str(media), LIVETX_CACHE_STAT_TTL="0", LIVETX_CACHE_LOOKAHEAD="false")
    return await aiohttp_client(create_app(settings))


def frames_of(segment: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(segment), format="mpegts") as container:
        return [f.to_ndarray() for f in container.decode(video=0)]


def sign(client: TestClient[Any, Any], path: str) -> str:
    url, _ = signed_url(make_signer(client.server.app[SETTINGS]), "", path, 60)
    return url


async def first_segment(client: TestClient[Any, Any], profile: str) -> bytes:
    base = f"/hls/{profile}/a.mp4/"
    master = m3u8.loads(await (await client.get(sign(client, base + "master.m3u8"))).text())
    media = m3u8.loads(await (await client.get(base + master.playlists[0].uri)).text())  # (URIs carry their token)
    response = await client.get(base + media.segments[0].uri)
    assert response.status == 200, await response.text()
    return await response.read()


async def test_the_app_draws_the_stored_image_and_a_new_version_makes_new_segments(client: TestClient[Any, Any]) -> None:
    catalog = client.server.app[CATALOG]
    frames, plain = [frames_of(await first_segment(client, profile)) for profile in ("wm", "plain")]
    assert [read_index(f[:180]) for f in frames] == [read_index(f[:180]) for f in plain] == list(range(len(frames)))
    inner = (slice(140, 168), slice(248, 308))  # inside the overlay at (246, 138), 64x32
    for marked, without in zip(frames, plain, strict=True):
        expected = 0.5 * without[:180][inner].astype(float) + 0.5 * luma_of(LOGO_RGB)
        assert np.abs(marked[:180][inner] - expected).max() <= 4
    before = (await catalog.title("wm", "a.mp4")).renditions[0].spec_id
    media = Path(client.server.app[SETTINGS].storage.uri)
    (media / "logo.png").write_bytes(png((64, 48), (10, 200, 10, 255)))
    after = (await catalog.title("wm", "a.mp4")).renditions[0].spec_id
    assert before != after


async def test_a_snapshot_carries_its_profiles_watermark_and_names_it_in_its_id(client: TestClient[Any, Any]) -> None:
    """Pictures are drawn over as the segments are: the logo blended at its place and opacity
    (made for the picture's size), every other pixel the plain profile's; and the picture's id
    (its ETag, its object) is another."""
    pictures = {}
    for profile in ("wm", "plain"):
        response = await client.get(sign(client, f"/hls/{profile}/a.mp4/snapshot.png") + "&t=500&w=320")
        assert response.status == 200, await response.text()
        with Image.open(io.BytesIO(await response.read())) as image:
            pictures[profile] = (np.asarray(image.convert("RGB")).astype(float), response.headers["ETag"])
    (marked, marked_etag), (plain, plain_etag) = pictures["wm"], pictures["plain"]
    assert marked.shape == plain.shape == (180, 320, 3)
    x, y = place("br", 10, 10, 320, 180, 64, 32)  # wm_width 0.2 of 320: the 64x32 logo as it is
    inside = (slice(y, y + 32), slice(x, x + 64))
    assert np.abs(marked[inside] - (0.5 * plain[inside] + 0.5 * np.array(LOGO_RGB))).max() <= 2
    outside = np.ones(marked.shape[:2], dtype=bool)
    outside[inside] = False
    assert np.array_equal(marked[outside], plain[outside])
    assert marked_etag != plain_etag


async def test_a_missing_image_is_a_422_naming_its_key(client: TestClient[Any, Any]) -> None:
    response = await client.get(sign(client, "/hls/missing/a.mp4/master.m3u8"))
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "watermark_not_found" and "gone/logo.png" in body["error"]["message"]


# ---- composites (and so file jobs): every clip's segments carry the watermark ------------


def test_a_composite_draws_its_watermark_over_every_clip_and_names_it_in_its_spec_id() -> None:
    def info(width: int, height: int) -> MediaInfo:
        video = VideoInfo(0, "h264", width, height, Fraction(30), "yuv420p", Fraction(0), Fraction(4))
        return MediaInfo("mov,mp4", Fraction(4), Fraction(0), video, None)

    sources = [ClipSource(ObjectInfo("a.mp4", 1, "v1"), info(320, 180)), ClipSource(ObjectInfo("b.mp4", 1, "v1"), info(320, 240))]
    logo = {"logo.png": decode_image("logo.png", "v1", png((64, 32)))}

    def title(**params: Any) -> Any:
        value = make_composite([Clip("a.mp4"), Clip("b.mp4")], concat_params({"f": "mp4", "an": 1, **params}))
        return build_composite_title(value, profile_name(value), sources, watermarks=logo)

    plain, marked = title(), title(**LOGO)
    rendition = marked.renditions[0]
    assert rendition.overlay is not None and (rendition.overlay.x, rendition.overlay.y) == (246, 138)
    assert [marked.job(rendition, i, "").overlay for i in range(len(rendition.windows))] == [rendition.overlay] * len(rendition.windows)
    assert plain.renditions[0].overlay is None and plain.renditions[0].spec_id != rendition.spec_id
    assert title(**{**LOGO, "wm_pos": "tl"}).renditions[0].spec_id != rendition.spec_id
