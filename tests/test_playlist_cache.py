"""Playlists rendered once per title version and filled per request give, byte for byte, what
livetx served when it rendered and signed every playlist afresh (the code as of f19b444: the
m3u8 package per segment, `sign_like` per URI), for every kind of request."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.factories import make_signer
from livetx.hls.plan import target_duration
from livetx.hls.render import extinf
from livetx.layout import segment_name
from livetx.playlists import master_text
from livetx.signing import Signer, Token
from livetx.titles import Rendition, Title
from livetx.urls import title_prefix, with_token
from livetx.web.keys import CATALOG, PLAYLISTS, SEGMENTS, SETTINGS
from livetx.web.playlists import CHUNK, STREAM_URIS
from tests.conftest import app_settings
from tests.support import sparse_title

CDN = "c" * 40
LADDER = {"LIVETX_PROFILES_LADDER_RENDITIONS_P720_S": "x180", "LIVETX_PROFILES_LADDER_RENDITIONS_P480_S": "x144"}
LADDER |= {"LIVETX_PROFILES_LADDER_RENDITIONS_P360_S": "x90", "LIVETX_PROFILES_LADDER_RENDITIONS_P1080_S": "x1080"}
# the old rendering knew MPEG-TS only: the shipped ladder (fMP4) is compared as TS
LADDER |= {f"LIVETX_PROFILES_LADDER_RENDITIONS_{r}_CONTAINER": "ts" for r in ("P720", "P1080", "P480", "P360")}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    sparse_title(folder / "hour.mkv", 3600)  # 2-2-2 s, then 360 of 10 s: signed in chunks
    sparse_title(folder / "six.mkv", 6 * 3600)  # 2163 segments: sent in pieces
    return folder


@pytest.fixture
async def client(aiohttp_client: Any, media: Path) -> TestClient[Any, Any]:
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_CDN_ORIGIN_SECRET=CDN,
        LIVETX_CACHE_LOOKAHEAD="false",
        LIVETX_PROFILES_DEFAULT_INITD="0",
        LIVETX_PROFILES_LADDER_INITD="0",
        LIVETX_CACHE_STAT_TTL="0",  # a replaced source is seen at once (tests replace them)
        **LADDER,
    )
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


# ---- the rendering path as it was ----------------------------------------------------------


def old_render_media(rendition: Rendition, uri_for: Callable[[str], str]) -> str:
    doc = m3u8.M3U8()
    doc.version = 4 if rendition.iframes_only else 3  # (EXT-X-I-FRAMES-ONLY needs 4)
    doc.is_i_frames_only = rendition.iframes_only
    doc.target_duration = target_duration(rendition.windows)
    doc.media_sequence = 0
    doc.playlist_type = "vod"
    doc.is_independent_segments = True
    doc.is_endlist = True
    for w in rendition.windows:
        doc.segments.append(m3u8.Segment(uri=uri_for(segment_name(rendition, w.index)), duration=extinf(w.duration)))
    return str(doc.dumps())


def old_uri_for(signer: Signer, token: Token | None, prefix: str) -> Callable[[str], str]:
    def uri_for(name: str) -> str:
        if token is None:
            return quote(name)
        return with_token(quote(name), signer.sign_like(token, prefix + name))

    return uri_for


# ---- requests of every kind ------------------------------------------------------------------


def tokens(signer: Signer, path: str, prefix: str) -> dict[str, Token | None]:
    exp = int(time.time()) + 600
    return {
        "title token": signer.sign_prefix(prefix, exp),
        "path token": signer.sign_path(path, exp),
        "path token, ip and nbf": signer.sign_path(path, exp, nbf=exp - 900, ip="127.0.0.1"),
        "origin pull": None,
    }


async def fetch(client: TestClient[Any, Any], path: str, token: Token | None) -> bytes:
    url = path if token is None else f"{path}?{token.query_string()}"
    response = await client.get(url, headers={"X-Livetx-Origin-Auth": CDN} if token is None else {})
    assert response.status == 200, await response.text()
    return await response.read()


async def title_of(client: TestClient[Any, Any], profile: str, key: str) -> Title:
    return await client.server.app[CATALOG].title(profile, key)


@pytest.mark.parametrize(("key", "segments"), [("hour.mkv", CHUNK), ("six.mkv", STREAM_URIS)])
async def test_media_playlists_are_the_bytes_of_the_old_rendering(client: TestClient[Any, Any], key: str, segments: int) -> None:
    signer = make_signer(client.server.app[SETTINGS])
    prefix = title_prefix("default", key)
    title = await title_of(client, "default", key)
    [rendition] = title.variants
    durations = {float(w.duration) for w in rendition.windows}
    assert len(rendition.windows) > segments and {2.0, 10.0} <= durations  # initial and regular segments
    for kind, token in tokens(signer, prefix + "main.m3u8", prefix).items():
        expected = old_render_media(rendition, old_uri_for(signer, token, prefix)).encode()
        for attempt in ("rendered", "cached"):
            assert await fetch(client, prefix + "main.m3u8", token) == expected, f"{kind}, {attempt}"
    assert client.server.app[PLAYLISTS].renders == 1  # one rendering served every request


async def test_head_of_a_long_playlist_says_its_length(client: TestClient[Any, Any]) -> None:
    signer = make_signer(client.server.app[SETTINGS])
    prefix = title_prefix("default", "six.mkv")
    for token in tokens(signer, prefix + "main.m3u8", prefix).values():
        url = prefix + "main.m3u8" + ("" if token is None else f"?{token.query_string()}")
        headers = {"X-Livetx-Origin-Auth": CDN} if token is None else {}
        head = await client.head(url, headers=headers)
        assert head.status == 200 and await head.read() == b""
        assert int(head.headers["Content-Length"]) == len(await fetch(client, prefix + "main.m3u8", token))


async def test_ladder_masters_are_the_bytes_of_the_old_rendering(client: TestClient[Any, Any]) -> None:
    signer = make_signer(client.server.app[SETTINGS])
    prefix = title_prefix("ladder", "hour.mkv")
    title = await title_of(client, "ladder", "hour.mkv")
    assert len(title.variants) == 3 and len(title.iframe_renditions) == 1
    bandwidth = client.server.app[SEGMENTS].bandwidth
    for kind, token in tokens(signer, prefix + "master.m3u8", prefix).items():
        expected = master_text(title, old_uri_for(signer, token, prefix), bandwidth).encode()
        for attempt in ("rendered", "cached"):
            assert await fetch(client, prefix + "master.m3u8", token) == expected, f"{kind}, {attempt}"
        for r in title.renditions:
            media_path = f"{prefix}{r.name}.m3u8"
            token = tokens(signer, media_path, prefix)[kind]
            assert await fetch(client, media_path, token) == old_render_media(r, old_uri_for(signer, token, prefix)).encode()


async def test_a_replaced_source_is_rendered_again(client: TestClient[Any, Any], media: Path, tmp_path: Path) -> None:
    """The cache is per title version: a new source (new ETag) never meets the old playlist."""
    sparse_title(media / "swap.mkv", 60)
    prefix = title_prefix("default", "swap.mkv")
    before = await fetch(client, prefix + "main.m3u8", None)
    sparse_title(tmp_path / "swap.mkv", 120)
    (tmp_path / "swap.mkv").replace(media / "swap.mkv")
    after = await fetch(client, prefix + "main.m3u8", None)
    assert before.count(b"#EXTINF") < after.count(b"#EXTINF")
    title = await title_of(client, "default", "swap.mkv")
    assert after == old_render_media(title.renditions[0], quote).encode()
