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

from livetx.app import create_app, make_signer
from livetx.settings import load_settings
from livetx.urls import signed_url
from livetx.web.keys import CATALOG, SETTINGS
from tests.conftest import ROOT, Source

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Path, sources: dict[str, Source]) -> TestClient[Any, Any]:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    settings = load_settings(
        ROOT / "conf" / "livetx.toml",
        {
            "LIVETX_STORAGE_URI": str(media),
            "LIVETX_SIGNING_KEYS": "t:" + "ab" * 32,
            "LIVETX_SIGNING_KEY_FILE": "",
            "LIVETX_TRANSCODE_WORKERS": "1",
        },
    )
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
