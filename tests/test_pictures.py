"""Snapshots, the poster and storyboards through the real server (`livetx serve`), read back with real decoders.

One server for the module, over one frame-indexed source (640x360, 25 fps, a keyframe each
second or where x264 puts one): every picture is decoded (Pillow, and PyAV for the sealed bytes)
and the index drawn on its frame (livetx/media/sample.py) read back. Storyboard tiles are
160 px wide, a quarter of the drawn width: they are scaled back to 640 before reading, so the
index blocks (19 px at 640) are read where they were drawn.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode, urljoin
from urllib.request import Request, urlopen

import av
import numpy as np
import pytest
from PIL import Image

from livetx.cache.seal import picture_sealed
from livetx.media.sample import SampleSpec, read_index, write_sample
from livetx.pictures import storyboard, storyboard_vtt
from livetx.web.keys import PICTURES, SEGMENTS
from livetx.web.pictures import poster_times
from tests.conftest import MakeClient, Server, Source, launch_server
from tests.support import fetch, get_url, samples, wait_until

SPEC = SampleSpec(seconds=4.0, width=640, height=360, fps=Fraction(25), gop=25, acodec=None)
FPS = 25
# an MPEG-TS (no index: seeks may land late) at 29.97 fps, and an MP4 to be shown turned a quarter
TS = SampleSpec(seconds=3.0, width=320, height=240, fps=Fraction(30000, 1001), gop=45, acodec=None, container="mpegts")
TURNED = SampleSpec(seconds=2.0, width=320, height=180, fps=Fraction(25), gop=25, acodec=None, rotation=90)
FRAMES = 100
TITLE = "/hls/default/pics/a.mp4/"  # the sources sit in one folder: one prefix token covers them
ENV = {  # ten storyboard tiles (one per 400 ms), six to a sheet: two sheets
    "LIVETX_PICTURES_STORYBOARD_INTERVAL_MS": "400",
    "LIVETX_PICTURES_STORYBOARD_COLUMNS": "3",
    "LIVETX_PICTURES_STORYBOARD_ROWS": "2",
    "LIVETX_PICTURES_STORYBOARD_QUALITY": "90",
}


@dataclass
class Pics:
    server: Server
    query: str  # a title-scoped token
    keyframes: list[int]  # frame indexes of the source's keyframes

    def url(self, name: str, title: str = TITLE, **params: object) -> str:
        return f"{self.server.base_url}{title}{name}?{urlencode(params)}&{self.query}"

    def get(self, name: str, title: str = TITLE, **params: object) -> tuple[int, dict[str, str], bytes]:
        return get_url(self.url(name, title, **params))

    def made(self) -> float:
        _, _, body = get_url(f"{self.server.base_url}/metrics")
        return samples(body.decode()).get(("livetx_pictures_made_total", ()), 0.0)


@pytest.fixture(scope="module")
def pics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pics]:
    home = tmp_path_factory.mktemp("pics")
    media = home / "media"
    write_sample(media / "pics" / "a.mp4", SPEC)
    write_sample(media / "pics" / "b.ts", TS)
    write_sample(media / "pics" / "turned.mp4", TURNED)
    with av.open(str(media / "pics" / "a.mp4")) as src:
        stream = src.streams.video[0]
        keyframes = sorted(round(p.pts * stream.time_base * FPS) for p in src.demux(stream) if p.is_keyframe and p.pts is not None)
    with launch_server(home, media, **ENV) as server:
        url = server.cli("sign", TITLE + "master.m3u8", "--scope", "/hls/default/pics/", "--base-url", server.base_url)
        yield Pics(server, url.split("?", 1)[1], keyframes)


def _image(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def _index(image: Image.Image) -> int:
    """The frame index drawn on a picture (scaled back to the drawn size first)."""
    return read_index(np.asarray(image.convert("L").resize((SPEC.width, SPEC.height), Image.Resampling.BICUBIC)))


def _ok(result: tuple[int, dict[str, str], bytes]) -> bytes:
    status, _, body = result
    assert status == 200, body[:300]
    return body


# ---- the exact frame ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "fmt"),
    [
        pytest.param(0, "png", id="first"),
        pytest.param(39, "png", id="just-before-1"),
        pytest.param(40, "png", id="at-1"),
        pytest.param(1999, "jpg", id="just-before-50"),
        pytest.param(2000, "jpg", id="at-50"),
        pytest.param(2041, "webp", id="just-after-51"),
        pytest.param(3999, "png", id="last"),
    ],
)
def test_snapshot_is_the_frame_shown_at_t(pics: Pics, t: int, fmt: str) -> None:
    image = _image(_ok(pics.get(f"snapshot.{fmt}", t=t, q=95)))
    assert image.size == (640, 360)
    assert _index(image) == t * FPS // 1000


@pytest.mark.parametrize("t", [0, 1000, 1001, 2500, 2990])
def test_snapshot_of_an_mpeg_ts_source(pics: Pics, t: int) -> None:
    """Title time 0 is the first frame's time (1.4 s into the TS): frame floor(t * 30000/1001)."""
    image = _image(_ok(pics.get("snapshot.png", "/hls/default/pics/b.ts/", t=t)))
    assert image.size == (320, 240)
    assert read_index(np.asarray(image.convert("L"))) == int(Fraction(t, 1000) * TS.fps)


def test_snapshot_of_a_turned_source_is_upright(pics: Pics) -> None:
    image = _image(_ok(pics.get("snapshot.png", "/hls/default/pics/turned.mp4/", t=1000)))
    assert image.size == (180, 320)  # the display size: turned a quarter
    coded = image.transpose(Image.Transpose.ROTATE_270)  # turned back (the display matrix turns counter-clockwise)
    assert read_index(np.asarray(coded.convert("L"))) == 25


@pytest.mark.parametrize("t", [500, 1500, 2960, 3999])
def test_key_mode_is_the_keyframe_at_or_before_t(pics: Pics, t: int) -> None:
    shown = t * FPS // 1000
    expected = max(k for k in pics.keyframes if k <= shown)
    assert expected != shown or t == 0  # (the test means something: t is not on a keyframe)
    assert _index(_image(_ok(pics.get("snapshot.png", t=t, mode="key")))) == expected


# ---- sizes and formats --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "size"),
    [
        pytest.param({}, (640, 360), id="source-size"),
        pytest.param({"w": 320}, (320, 180), id="w-only"),
        pytest.param({"h": 90}, (160, 90), id="h-only"),
        pytest.param({"w": 320, "h": 320}, (320, 180), id="fit"),
        pytest.param({"w": 320, "h": 320, "scaletype": "fill"}, (320, 320), id="fill"),
        pytest.param({"w": 320, "h": 320, "scaletype": "crop"}, (320, 320), id="crop"),
        pytest.param({"w": 320, "h": 320, "scaletype": "stretch"}, (320, 320), id="stretch"),
    ],
)
def test_sizes(pics: Pics, params: dict[str, object], size: tuple[int, int]) -> None:
    image = _image(_ok(pics.get("snapshot.jpg", t=1000, **params)))
    assert image.size == size
    luma = np.asarray(image.convert("L"), dtype=np.float32)
    if params.get("scaletype") == "fill":  # 320x180 centred: black bands of 70 rows above and below
        assert luma[:60].mean() < 24 and luma[-60:].mean() < 24
        assert luma[100:220].mean() > 40
    if params.get("scaletype") in ("crop", "stretch"):  # no band: the picture reaches every edge
        assert luma[:20].mean() > 24 or luma[-20:].mean() > 24


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_lower_quality_is_fewer_bytes(pics: Pics, fmt: str) -> None:
    low = _ok(pics.get(f"snapshot.{fmt}", t=1200, q=20))
    high = _ok(pics.get(f"snapshot.{fmt}", t=1200, q=95))
    assert len(low) < len(high)
    assert _image(low).format == _image(high).format == {"jpg": "JPEG", "webp": "WEBP"}[fmt]


# ---- served like segments -----------------------------------------------------------------


def test_cached_immutable_etag_range_and_sealed(pics: Pics) -> None:
    before = pics.made()
    status, headers, body = pics.get("snapshot.jpg", t=2720, w=200)
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert "immutable" in headers["Cache-Control"]
    etag = headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert pics.made() == before + 1
    assert picture_sealed(body)  # the bytes as stored, seal included, decode with PyAV too
    with av.open(io.BytesIO(body)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (200, 112)
    again = pics.get("snapshot.jpg", t=2720, w=200)
    assert again[0] == 200 and again[2] == body and again[1]["ETag"] == etag
    assert pics.made() == before + 1  # from the cache: no second picture made
    with urlopen(Request(pics.url("snapshot.jpg", t=2720, w=200), headers={"Range": "bytes=0-99"}), timeout=60) as response:
        assert response.status == 206 and len(response.read()) == 100
        assert response.headers["Content-Range"] == f"bytes 0-99/{len(body)}"
    with pytest.raises(HTTPError) as not_modified:  # (urllib raises on a 304)
        urlopen(Request(pics.url("snapshot.jpg", t=2720, w=200), headers={"If-None-Match": etag}), timeout=60)
    not_modified.value.close()
    assert not_modified.value.code == 304
    assert pics.made() == before + 1


def test_a_corrupt_cached_copy_is_made_again(pics: Pics) -> None:
    body = _ok(pics.get("snapshot.png", t=3120))
    folder = pics.server.media / ".livetx" / "pics" / "a.mp4" / "default"
    stored = wait_until(lambda: [p for p in folder.glob("snap-*.png") if p.read_bytes() == body], 30, "the write-back")[0]
    stored.write_bytes(body[: len(body) // 2])  # cut short
    before = pics.made()
    again = _ok(pics.get("snapshot.png", t=3120))
    assert again == body and pics.made() == before + 1


def test_a_token_is_required(pics: Pics) -> None:
    status, _, body = get_url(f"{pics.server.base_url}{TITLE}snapshot.jpg?t=1000")
    assert status == 401, body
    status, _, body = get_url(f"{pics.server.base_url}{TITLE}storyboard.vtt")
    assert status == 401, body
    # a path token (`livetx sign`, the sign API) for one picture opens that picture and no other
    signed = pics.server.cli("sign", TITLE + "poster.jpg", "--base-url", pics.server.base_url)
    assert _image(_ok(get_url(signed))).format == "JPEG"
    status, _, body = get_url(signed.replace("poster.jpg", "snapshot.jpg"))
    assert status == 403, body


# ---- the poster ---------------------------------------------------------------------------


def test_poster_is_the_first_bright_frame_from_ten_percent(pics: Pics) -> None:
    image = _image(_ok(pics.get("poster.jpg", q=95)))
    assert image.size == (640, 360)
    assert _index(image) == FRAMES // 10  # the frame at 10 % (0.4 s): the test pattern is bright
    assert _image(_ok(pics.get("poster.jpg", w=320))).size == (320, 180)


# ---- storyboards --------------------------------------------------------------------------


def _cues(vtt: str) -> list[tuple[Fraction, Fraction, str]]:
    def seconds(text: str) -> Fraction:
        h, m, s = text.split(":")
        return int(h) * 3600 + int(m) * 60 + Fraction(s)

    found = re.findall(r"(\d+:\d\d:\d\d\.\d{3}) --> (\d+:\d\d:\d\d\.\d{3})\n(\S+)", vtt)
    return [(seconds(a), seconds(b), target) for a, b, target in found]


def test_storyboard_cues_tile_the_title_and_each_tile_shows_its_frame(pics: Pics) -> None:
    status, headers, body = pics.get("storyboard.vtt")
    assert status == 200 and headers["Content-Type"].startswith("text/vtt")
    vtt = body.decode()
    assert vtt.startswith("WEBVTT")
    cues = _cues(vtt)
    assert len(cues) == 10
    assert cues[0][0] == 0 and cues[-1][1] == Fraction(SPEC.seconds)
    for (_, end, _), (start, _, _) in itertools.pairwise(cues):
        assert end == start  # no gap, no overlap
    sheets: dict[str, Image.Image] = {}
    for start, _, target in cues:
        address, xywh = target.split("#xywh=")
        assert address.endswith("?" + pics.query)  # the title-scoped token rides along, as in playlists
        if address not in sheets:
            sheets[address] = _image(_ok(get_url(urljoin(pics.url("storyboard.vtt"), address))))
        x, y, w, h = map(int, xywh.split(","))
        assert (w, h) == (160, 90)
        tile = sheets[address].crop((x, y, x + w, y + h))
        assert _index(tile) == start * FPS, (start, target)
    assert len(sheets) == 2
    assert sorted(s.size for s in sheets.values()) == [(480, 180), (480, 180)]  # six tiles, then four (3 + 1 in two rows)


def test_storyboard_sheet_of_another_spec_is_404(pics: Pics) -> None:
    status, _, body = pics.get("storyboard-000000000000-0.jpg")
    assert status == 404 and json.loads(body)["error"]["code"] == "picture_not_found"


@pytest.mark.parametrize(
    ("poster_ms", "times"),
    [
        pytest.param(-1, (Fraction(2, 5), Fraction(4, 5), Fraction(6, 5), Fraction(2), Fraction(0)), id="auto"),
        pytest.param(1500, (Fraction(3, 2),), id="configured"),
        pytest.param(60000, (Fraction(396, 100),), id="past-the-end"),
    ],
)
def test_poster_times(poster_ms: int, times: tuple[Fraction, ...]) -> None:
    assert poster_times(Fraction(4), poster_ms) == times


def test_storyboard_grid_is_pure() -> None:
    board = storyboard(Fraction(7200), (Fraction(1280), Fraction(720)), 160, 10, 10, 5000, 300)
    assert board.interval == 24 and board.tiles == 300 and board.sheets == 3 and board.tile == (160, 90)
    cues = board.cues()
    assert cues[0].start == 0 and cues[-1].end == 7200
    assert all(a.end == b.start for a, b in itertools.pairwise(cues))
    assert storyboard_vtt(board, "0123456789ab").count("-->") == 300


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        pytest.param({"t": 4000}, 416, "time_out_of_range", None, id="t-at-the-end"),
        pytest.param({"t": 99999999}, 416, "time_out_of_range", None, id="t-past-the-end"),
        pytest.param({"t": 1000, "w": 100000}, 400, "invalid_parameter", "w", id="w-huge"),
        pytest.param({"t": 1000, "h": 8}, 400, "invalid_parameter", "h", id="h-tiny"),
        pytest.param({"t": 1000, "scaletype": "zoom"}, 400, "invalid_parameter", "scaletype", id="scaletype"),
        pytest.param({"t": 1000, "q": 0}, 400, "invalid_parameter", "q", id="q"),
        pytest.param({"t": 1000, "mode": "nearest"}, 400, "invalid_parameter", "mode", id="mode"),
        pytest.param({"t": -5}, 400, "invalid_parameter", "t", id="t-negative"),
    ],
)
def test_bad_input(pics: Pics, params: dict[str, object], status: int, code: str, field: str | None) -> None:
    got, headers, body = pics.get("snapshot.jpg", **params)
    assert got == status and headers["Content-Type"].startswith("application/json"), body
    error = json.loads(body)["error"]
    assert error["code"] == code
    if field is not None:
        assert error["parameter"] == field and repr(field) in error["message"]


def test_output_folder_holds_only_whole_pictures(pics: Pics) -> None:
    folder: Path = pics.server.media / ".livetx" / "pics" / "a.mp4" / "default"
    for path in wait_until(lambda: list(folder.glob("*.jpg")), 30, "stored pictures"):
        assert picture_sealed(path.read_bytes()), path.name


def test_title_api_lists_the_picture_paths(pics: Pics) -> None:
    request = Request(
        f"{pics.server.base_url}/api/v1/titles/default/pics/a.mp4", headers={"Authorization": f"Bearer {pics.server.api_key}"}
    )
    with urlopen(request, timeout=60) as response:
        pictures = json.loads(response.read())["pictures"]
    assert pictures == {"poster": TITLE + "poster.jpg", "storyboard": TITLE + "storyboard.vtt", "snapshot": TITLE + "snapshot.jpg"}
    assert _ok(get_url(f"{pics.server.base_url}{pictures['storyboard']}?{pics.query}")).startswith(b"WEBVTT")


def test_concurrent_requests_make_one_picture(pics: Pics) -> None:
    before = pics.made()
    with ThreadPoolExecutor(4) as threads:
        bodies = list(threads.map(lambda _: _ok(pics.get("snapshot.webp", t=3330, w=100)), range(4)))
    assert all(body == bodies[0] for body in bodies)
    assert pics.made() == before + 1  # one flight: the others joined it


def test_storyboard_with_a_path_token_hands_on_a_title_token(pics: Pics) -> None:
    """A token for the track alone: its cue URLs carry a token for the title's prefix (as the
    DASH manifest does), which opens the sheets."""
    url = pics.server.cli("sign", TITLE + "storyboard.vtt", "--base-url", pics.server.base_url)
    vtt = _ok(get_url(url)).decode()
    address = _cues(vtt)[0][2].split("#")[0]
    assert "?" in address and address.split("?", 1)[1] != url.split("?", 1)[1]
    assert _image(_ok(get_url(urljoin(url, address)))).size == (480, 180)


# ---- remote output storage (SeaweedFS S3) and the local tier ------------------------------


async def test_s3_a_damaged_tier_copy_is_read_again_from_storage(
    s3_app: MakeClient, s3_sources: str, sources: dict[str, Source], tmp_path: Path
) -> None:
    src = sources["mp4-30"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, LIVETX_CACHE_LOOKAHEAD="false", LIVETX_JOBS_RUN="false")
    path = f"/hls/default/{src.path.name}/snapshot.png?t=2500"
    body = await fetch(client, path)
    assert read_index(np.asarray(_image(body).convert("L"))) == 75 and picture_sealed(body)
    await client.server.app[SEGMENTS].wait_idle()  # the write-back to S3 is done
    (tier_file,) = (tmp_path / "tier").rglob("snap-*.png")
    tier_file.write_bytes(body[: len(body) // 2])
    stats = client.server.app[PICTURES].stats
    made, corrupt = stats.made, stats.corrupt
    assert await fetch(client, path) == body
    assert stats.corrupt == corrupt + 1 and stats.made == made  # the S3 copy was whole: read, not made
    assert tier_file.read_bytes() == body  # and the tier holds it whole again
