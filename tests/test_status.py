"""The title status view (`GET /api/v1/titles/...`): states from memory and one folder listing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.layout import segment_key
from livetx.web.keys import CATALOG
from tests.conftest import app_settings
from tests.support import sparse_title

API_KEY = "status-" + "k" * 32
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def test_states_come_from_the_folder_listing(aiohttp_client: Any, tmp_path: Path) -> None:
    sparse_title(tmp_path / "t.mkv", 600)
    settings = app_settings(LIVETX_STORAGE_URI=str(tmp_path), LIVETX_API_KEYS=f"t:{API_KEY}", LIVETX_PROFILES_DEFAULT_INITD="0")
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    title = await client.server.app[CATALOG].title("default", "t.mkv")
    [rendition] = title.variants
    for index in (0, 5, len(rendition.windows) - 1):  # made earlier, by this or another process
        path = tmp_path / ".livetx" / segment_key(title, rendition, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (tmp_path / ".livetx" / "t.mkv" / "default" / "main-000000000000-7.ts").write_bytes(b"x")  # another spec
    response = await client.get("/api/v1/titles/default/t.mkv", headers=AUTH)
    body = await response.read()
    answer = json.loads(body)
    segments = answer["renditions"][0]["segments"]
    cached = [s["n"] for s in segments if s["state"] == "cached"]
    assert cached == [0, 5, len(rendition.windows) - 1]
    assert [(s["start"], s["duration"]) for s in segments] == [(float(w.start), float(w.duration)) for w in rendition.windows]
    assert answer["duration"] == float(title.duration) and answer["renditions"][0]["resolution"]
    again = await client.get("/api/v1/titles/default/t.mkv", headers={**AUTH, "If-None-Match": response.headers["ETag"]})
    assert again.status == 304 and again.headers["ETag"] == response.headers["ETag"]
