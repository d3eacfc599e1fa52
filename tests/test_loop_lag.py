"""The event-loop lag monitor sees a stall: a handler that holds the loop shows in the histogram."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp import web

from livetx.app import create_app
from livetx.web.keys import LOOP_LAG
from tests.conftest import app_settings
from tests.support import samples


async def test_a_blocked_loop_is_measured(aiohttp_client: Any, tmp_path: Path) -> None:
    app = create_app(app_settings(LIVETX_STORAGE_URI=str(tmp_path)))

    async def block(request: web.Request) -> web.Response:
        time.sleep(0.3)  # what a hostile request used to do: hold every other client
        return web.Response(text="done")

    app.router.add_get("/test-block", block)
    client = await aiohttp_client(app)
    got = samples(await (await client.get("/metrics")).text())
    assert got[("livetx_event_loop_lag_seconds_bucket", (("le", "0.25"),))] == got[("livetx_event_loop_lag_seconds_count", ())]
    assert (await client.get("/test-block")).status == 200
    got = samples(await (await client.get("/metrics")).text())
    over = got[("livetx_event_loop_lag_seconds_count", ())] - got[("livetx_event_loop_lag_seconds_bucket", (("le", "0.25"),))]
    assert over == 1
    assert client.server.app[LOOP_LAG].worst >= 0.25
