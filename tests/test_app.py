"""The app in-process (aiohttp test client, real pool and storage): routing, errors, catalog caching."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.catalog import Catalog
from livetx.factories import make_signer
from livetx.urls import signed_url
from livetx.web.keys import CATALOG, SEGMENTS, SETTINGS
from tests.conftest import Source, app_settings

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Path, sources: dict[str, Source]) -> TestClient[Any, Any]:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    settings = app_settings(LIVETX_STORAGE_URI=str(media), LIVETX_CACHE_STAT_TTL="0")  # replaced sources seen at once
    return await aiohttp_client(create_app(settings))


def sign(client: TestClient[Any, Any], path: str) -> str:
    url, _ = signed_url(make_signer(client.server.app[SETTINGS]), "", path, 60)
    return url


async def test_healthz(client: TestClient[Any, Any]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_unknown_route_is_json_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/nope")
    body = await response.json()
    assert response.status == 404 and body["error"]["code"] == "not_found" and body["request_id"]


async def test_unknown_profile_is_404(client: TestClient[Any, Any]) -> None:
    response = await client.get(sign(client, "/hls/nosuch/a.mp4/master.m3u8"))
    assert response.status == 404 and (await response.json())["error"]["code"] == "profile_not_found"


async def test_hidden_source_key_refused(client: TestClient[Any, Any]) -> None:
    response = await client.get(sign(client, "/hls/default/.livetx/x/master.m3u8"))
    assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_path"


async def test_segment_past_end_and_stale_spec_are_404(client: TestClient[Any, Any]) -> None:
    title = await client.server.app[CATALOG].title("default", "a.mp4")
    r = title.renditions[0]
    past = await client.get(sign(client, f"/hls/default/a.mp4/{r.name}-{r.spec_id}-{len(r.windows)}.ts"))
    assert past.status == 404 and (await past.json())["error"]["code"] == "segment_not_found"
    stale = await client.get(sign(client, f"/hls/default/a.mp4/{r.name}-000000000000-0.ts"))
    assert stale.status == 404


async def test_probe_cached_until_source_changes(client: TestClient[Any, Any]) -> None:
    catalog = client.server.app[CATALOG]
    for _ in range(3):
        assert (await client.get(sign(client, "/hls/default/a.mp4/master.m3u8"))).status == 200
    assert catalog.probe_count == 1
    source = Path(catalog.sources.local_path("a.mp4"))  # type: ignore[arg-type]
    later = time.time() + 5
    os.utime(source, (later, later))  # a replaced source has a new identity
    first = await catalog.title("default", "a.mp4")
    assert catalog.probe_count == 2 and first.source.etag


async def test_a_busy_title_stats_its_local_source_once_per_stat_ttl(
    aiohttp_client: ClientFactory, tmp_path: Path, sources: dict[str, Source]
) -> None:
    """Playlists of a busy title cost no stat each (a thread hop each, for a local file)."""
    shutil.copy(sources["mp4-30"].path, tmp_path / "a.mp4")
    client = await aiohttp_client(create_app(app_settings(LIVETX_STORAGE_URI=str(tmp_path), LIVETX_CACHE_STAT_TTL="60")))
    for _ in range(5):
        assert (await client.get(sign(client, "/hls/default/a.mp4/main.m3u8"))).status == 200
    assert client.server.app[CATALOG].stat_count == 1


async def test_playlist_pretranscodes_initd_and_playback_looks_ahead(client: TestClient[Any, Any]) -> None:
    service = client.server.app[SEGMENTS]
    title = await client.server.app[CATALOG].title("default", "a.mp4")
    r = title.renditions[0]
    assert [w.duration for w in r.windows] == [2, 2, 2, 1]
    assert (await client.get(sign(client, "/hls/default/a.mp4/master.m3u8"))).status == 200
    await service.wait_idle()
    assert service.stats.transcodes == 3  # initd 6000 ms: segments 0, 1 and 2
    assert (await client.get(sign(client, "/hls/default/a.mp4/master.m3u8"))).status == 200
    await service.wait_idle()
    assert service.stats.transcodes == 3  # once per title, not per request
    response = await client.get(sign(client, f"/hls/default/a.mp4/{r.name}-{r.spec_id}-0.ts"))
    assert response.status == 200 and service.stats.hits["storage"] >= 1
    await service.wait_idle()
    assert service.stats.transcodes == 4  # playback started: segment 3 made ahead
    before = service.stats.transcodes
    assert (await client.get(sign(client, f"/hls/default/a.mp4/{r.name}-{r.spec_id}-3.ts"))).status == 200
    assert service.stats.transcodes == before


async def test_probe_record_in_storage_spares_the_next_origin_a_probe(client: TestClient[Any, Any]) -> None:
    catalog = client.server.app[CATALOG]
    first = await catalog.title("default", "a.mp4")
    await catalog.drain()
    assert catalog.probe_count == 1
    record = await catalog.output.read(catalog.probe_key(first.source))
    another = Catalog(catalog.sources, catalog.profiles, output=catalog.output)  # a second origin, or a restart
    second = await another.title("default", "a.mp4")
    assert another.probe_count == 0 and second.info == first.info and second.renditions == first.renditions
    await catalog.output.write(catalog.probe_key(first.source), b"{not a record")
    third = Catalog(catalog.sources, catalog.profiles, output=catalog.output)
    assert (await third.title("default", "a.mp4")).info == first.info and third.probe_count == 1
    assert record.startswith(b"{")


async def test_demo_page_embeds_no_key_and_can_be_turned_off(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    on = await aiohttp_client(create_app(app_settings(LIVETX_STORAGE_URI=str(tmp_path), LIVETX_API_KEYS="a:" + "z" * 40)))
    page = await on.get("/")
    text = await page.text()
    assert page.status == 200 and "/api/v1/sign" in text and "zzzz" not in text and "abab" not in text
    off = await aiohttp_client(create_app(app_settings(LIVETX_STORAGE_URI=str(tmp_path), LIVETX_PLAYER_DEMO="false")))
    assert (await off.get("/")).status == 404


async def test_fmp4_segments_have_the_ts_http_semantics_and_pretranscode(client: TestClient[Any, Any]) -> None:
    """An fMP4 rendition (the shipped ladder) through the same path as TS: the playlist
    pre-transcodes its init and first `initd` ms; init and media segments are immutable, carry an
    ETag (If-None-Match: 304), answer ranges (206) and HEAD, and are made once."""
    service = client.server.app[SEGMENTS]
    title = await client.server.app[CATALOG].title("ladder", "a.mp4")
    r = title.renditions[0]
    assert (await client.get(sign(client, "/hls/ladder/a.mp4/master.m3u8"))).status == 200
    await service.wait_idle()
    made = service.stats.transcodes
    assert made >= 2 * len(title.variants)  # initd 4000 ms: two 2 s segments per rendition, and the inits
    for name in (f"{r.name}-{r.spec_id}-init.mp4", f"{r.name}-{r.spec_id}-0.m4s"):
        url = sign(client, f"/hls/ladder/a.mp4/{name}")
        whole = await client.get(url)
        body = await whole.read()
        assert whole.status == 200 and "immutable" in whole.headers["Cache-Control"]
        assert whole.headers["Content-Type"] == ("video/mp4" if name.endswith(".mp4") else "video/iso.segment")
        etag = whole.headers["ETag"]
        assert (await client.get(url, headers={"If-None-Match": etag})).status == 304
        part = await client.get(url, headers={"Range": "bytes=8-107"})
        assert part.status == 206 and await part.read() == body[8:108]
        assert part.headers["Content-Range"] == f"bytes 8-107/{len(body)}"
        head = await client.head(url)
        assert head.status == 200 and int(head.headers["Content-Length"]) == len(body) and await head.read() == b""
    assert body[4:8] in (b"moof", b"styp")  # a media segment: fragments only, its init apart
    assert service.stats.transcodes == made  # all of that was made by the pre-transcode
