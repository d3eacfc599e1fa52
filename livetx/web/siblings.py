"""/metrics with several server processes: every scrape answers for all of them.

The kernel hands a scrape to one of the server processes of `livetx serve --processes N`, as
it does any connection. So each process also answers for its own registry on a Unix socket in
the supervisor's run directory (a fresh directory of mode 0700: this user's processes only, so
it needs no token), and the process a scrape reaches asks every other one, all at once, then
answers with every process's series, each labelled `process="<index>"`, plus
`livetx_server_process_up{process}`: 0 for one that did not answer within SIBLING_TIMEOUT (a
process being started again). Nothing is summed: a process's counters are series of their
own, and those of a process started again begin at 0 (a counter reset, which Prometheus's
rate() allows for). The cost is N-1 local requests per scrape, and nothing per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric

from livetx.web.keys import METRICS, PROCESS
from livetx.web.metrics import all_processes, families

SIBLING_TIMEOUT = 2.0  # seconds a scrape waits for another process's registry


async def answer_siblings(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: this process's registry on its Unix socket, for the others."""
    process = app[PROCESS]
    registry = app[METRICS].registry

    async def own(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    inner = web.Application()
    inner.router.add_get("/metrics", own)
    runner = web.AppRunner(inner, access_log=None)
    await runner.setup()
    path = process.metrics_socket(process.index)
    await asyncio.to_thread(path.parent.mkdir, mode=0o700, exist_ok=True)  # made by the supervisor, unless all had ended
    await web.UnixSite(runner, str(path)).start()
    try:
        yield
    finally:
        await runner.cleanup()
        await asyncio.to_thread(_leave, path)


def _leave(path: Path) -> None:
    """This process's socket goes; the last one to go (when the supervisor was killed and
    cannot) takes the run's directory with it."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # others still there: not empty
        path.parent.rmdir()


async def _fetch(path: Path) -> list[Metric] | None:
    """Another process's families, or None if it did not answer in time."""
    try:
        timeout = aiohttp.ClientTimeout(total=SIBLING_TIMEOUT)
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path)), timeout=timeout) as session:
            async with session.get("http://livetx/metrics") as response:
                if response.status != 200:
                    return None
                return families(await response.text())
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None


async def scrape(app: web.Application) -> bytes:
    """The exposition text of every server process (this one's read here, live)."""
    process = app[PROCESS]
    others = [index for index in range(process.count) if index != process.index]
    fetched = await asyncio.gather(*(_fetch(process.metrics_socket(index)) for index in others))
    found: dict[str, list[Metric] | None] = {str(index): got for index, got in zip(others, fetched, strict=True)}
    # its own, read the same way as the others' (as text: the `_created` samples come apart)
    found[str(process.index)] = families(generate_latest(app[METRICS].registry).decode())
    return all_processes(dict(sorted(found.items(), key=lambda item: int(item[0]))))
