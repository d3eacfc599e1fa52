"""Hostile input against the real app: broken and absurd media files, hostile paths, oversized
requests. Each gets a named 4xx/422 JSON error or a bounded 5xx JSON error; never a 500, a
traceback, or a worker that outlives its time limit."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.factories import make_signer
from livetx.media.sample import SampleSpec, write_sample
from livetx.urls import signed_url
from livetx.web.keys import SEGMENTS, SETTINGS
from tests.checker import decode_video, open_joined
from tests.conftest import Source, app_settings, launch_server
from tests.support import raw_mkv

API_KEY = "hostile-" + "k" * 32

# starts 1.7 s before the 33-bit 90 kHz clock wraps (2**33 / 90000 = 95443.7 s)
WRAP = SampleSpec(seconds=4.0, width=160, height=90, container="mpegts", start_offset=95442.0)


def corrupt_middle(data: bytes) -> bytes:
    third = len(data) // 3
    return data[:third] + os.urandom(third) + data[2 * third :]


# FFmpeg's probe may take random bytes for some format: one it can't read, or one livetx refuses
RANDOM = "source_unreadable|source_type_refused"
HOSTILE: dict[str, tuple[str, Callable[[Path, dict[str, Source]], None], int, str]] = {
    # name: (file name, maker, status of the master playlist, error code)
    "zero bytes": ("zero.mp4", lambda p, s: p.write_bytes(b""), 422, "source_unreadable"),
    "random bytes as .mp4": ("random.mp4", lambda p, s: p.write_bytes(os.urandom(200_000)), 422, RANDOM),
    "random bytes as .ts": ("random.ts", lambda p, s: p.write_bytes(os.urandom(200_000)), 422, RANDOM),
    "random bytes as .mkv": ("random.mkv", lambda p, s: p.write_bytes(os.urandom(200_000)), 422, RANDOM),
    "mp4 cut before its index": (
        "cut.mp4",
        lambda p, s: p.write_bytes(s["mp4-30"].path.read_bytes()[: s["mp4-30"].path.stat().st_size // 2]),
        422,
        "source_unreadable",
    ),
    "16384x16384 declared": ("huge16k.mkv", lambda p, s: raw_mkv(p, 256, [0, 1, 2], declared=16384), 422, "source_unreadable"),
    "12000x12000 declared": ("huge12k.mkv", lambda p, s: raw_mkv(p, 256, [0, 1, 2], declared=12000), 422, "source_too_large"),
    "100 h between two frames": ("long.mkv", lambda p, s: raw_mkv(p, 64, [0, 100 * 3600 * 25]), 422, "source_too_large"),
}


@pytest.fixture(scope="module")
def hostile_media(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Path:
    media = tmp_path_factory.mktemp("hostile")
    for name, maker, _, _ in HOSTILE.values():
        maker(media / name, sources)
    ts = sources["ts-2997"].path.read_bytes()
    (media / "cut.ts").write_bytes(ts[: len(ts) // 2])
    (media / "damaged.ts").write_bytes(corrupt_middle(ts))
    write_sample(media / "wrap.ts", WRAP)
    os.mkfifo(media / "fifo.mp4")  # opening it would block forever
    return media


@pytest.fixture
async def client(aiohttp_client: Any, hostile_media: Path) -> TestClient[Any, Any]:
    settings = app_settings(
        LIVETX_STORAGE_URI=str(hostile_media),
        LIVETX_TRANSCODE_TIMEOUT="20",
        LIVETX_TRANSCODE_WORKERS="2",
        LIVETX_API_KEYS=f"t:{API_KEY}",
    )
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


def sign(client: TestClient[Any, Any], path: str) -> str:
    return signed_url(make_signer(client.server.app[SETTINGS]), "", path, 600)[0]


async def get(client: TestClient[Any, Any], path: str, **kwargs: Any) -> tuple[int, dict[str, Any] | bytes]:
    response = await client.get(sign(client, path), **kwargs)
    body = await response.read()
    if response.content_type == "application/json":
        payload = await response.json()
        assert set(payload) == {"error", "request_id"} and payload["error"]["code"], payload
        return response.status, payload
    return response.status, body


async def playlist(client: TestClient[Any, Any], key: str) -> list[str]:
    status, body = await get(client, f"/hls/default/{key}/master.m3u8")
    assert status == 200, body
    assert isinstance(body, bytes)
    media_uri = next(line for line in body.decode().splitlines() if line and not line.startswith("#")).split("?")[0]
    status, body = await get(client, f"/hls/default/{key}/{media_uri}")
    assert status == 200 and isinstance(body, bytes)
    return [f"/hls/default/{key}/{line.split('?')[0]}" for line in body.decode().splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_broken_or_absurd_files_get_a_named_error(client: TestClient[Any, Any], case: str) -> None:
    name, _, status, code = HOSTILE[case]
    got, body = await get(client, f"/hls/default/{name}/master.m3u8")
    assert got == status and isinstance(body, dict), body
    assert body["error"]["code"] in code.split("|")
    # and the same answer for a segment of it (no playlist was ever made for it)
    got, body = await get(client, f"/hls/default/{name}/main-000000000000-0.ts")
    assert got in (404, status) and isinstance(body, dict)


async def test_a_fifo_is_not_a_source(client: TestClient[Any, Any]) -> None:
    got, body = await asyncio.wait_for(get(client, "/hls/default/fifo.mp4/master.m3u8"), 10)
    assert got == 404 and isinstance(body, dict) and body["error"]["code"] == "source_not_found"


async def play_all(client: TestClient[Any, Any], key: str) -> list[bytes]:
    """Every segment of the title, each of which must be served."""
    bodies = []
    for path in await playlist(client, key):
        status, body = await get(client, path)
        assert status == 200 and isinstance(body, bytes)
        bodies.append(body)
    return bodies


async def test_a_cut_transport_stream_plays_what_it_holds(client: TestClient[Any, Any]) -> None:
    indexes = decode_video(open_joined(await play_all(client, "cut.ts"))).indexes
    # every frame slot of the playlist is filled, in order; the frame the cut damaged is
    # held from the one before it (the source had B-frames: the cut hit one mid-GOP)
    assert indexes[0] == 0 and indexes == sorted(indexes)
    assert sum(shown != slot for slot, shown in enumerate(indexes)) <= 2
    assert len(indexes) >= 0.45 * 5 * 30000 / 1001  # about half of the 5 s title


async def test_a_damaged_middle_gives_whole_segments_or_json_errors(client: TestClient[Any, Any]) -> None:
    segments = await playlist(client, "damaged.ts")
    statuses = []
    for path in segments:
        status, body = await get(client, path)
        statuses.append(status)
        if status == 200:
            assert isinstance(body, bytes)
            with av.open(io.BytesIO(body), format="mpegts") as container:  # what is served decodes
                assert decode_video(container).indexes
        else:
            assert status in (422, 502, 504) and isinstance(body, dict)
    assert statuses[0] == 200
    pool = client.server.app[SEGMENTS].pool
    assert len(pool.worker_pids()) == pool.size  # no worker left dead or stuck


async def test_timestamps_that_wrap_the_33_bit_clock(client: TestClient[Any, Any]) -> None:
    bodies = await play_all(client, "wrap.ts")
    assert decode_video(open_joined(bodies)).indexes == list(range(Source(Path("wrap.ts"), WRAP).frames))


# ---- hostile requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/hls/default/../../etc/passwd/master.m3u8",
        "/hls/default/%2e%2e/%2e%2e/etc/passwd/master.m3u8",
        "/hls/default/.livetx/x/master.m3u8",
        "/hls/default/a%00b.mp4/master.m3u8",
        "/hls/default/" + "a/" * 600 + "master.m3u8",
    ],
    ids=["dot-dot", "encoded-dot-dot", "hidden", "nul", "deep"],
)
async def test_hostile_source_keys(client: TestClient[Any, Any], path: str) -> None:
    token = sign(client, "/hls/default/cut.ts/master.m3u8").split("?")[1]  # a valid token, for another path
    for query in ("", "?" + token):
        response = await client.get(path + query)
        assert response.status in (400, 401, 403, 404), (path, response.status)
        assert (await response.json())["error"]["code"]


async def test_oversized_query_string_and_headers(client: TestClient[Any, Any]) -> None:
    for size in (9_000, 40_000):
        response = await client.get("/hls/default/a.mp4/master.m3u8?x=" + "a" * size)
        assert response.status == 414, size
        assert (await response.json())["error"]["code"] == "uri_too_long"
    response = await client.get("/healthz", headers={"X-Big": "b" * 20_000})
    assert response.status == 431
    assert (await response.json())["error"]["code"] == "headers_too_large"


async def test_oversized_bodies(client: TestClient[Any, Any]) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    for path, size in (("/api/v1/sign", 100_000), ("/api/v1/playlists", 100_000), ("/api/v1/sign", 5 * 1024**2)):
        response = await client.post(path, data=io.BytesIO(b'{"path": "' + b"a" * size + b'"}'), headers=headers)
        assert response.status == 413, (path, size)
        assert (await response.json())["error"]["code"] == "request_too_large"


def test_slow_clients_are_cut_off_and_others_served_meanwhile(tmp_path: Path, sources: dict[str, Source]) -> None:
    """Slowloris against the real `livetx serve`: 200 connections trickling header bytes."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.mp4").write_bytes(sources["mp4-30"].path.read_bytes())
    with launch_server(tmp_path, media, LIVETX_SERVER_IDLE_TIMEOUT="2") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        slow = []
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        began = time.monotonic()
        closed: set[int] = set()
        answered = []
        while time.monotonic() - began < 6 and len(closed) < len(slow):
            for i, sock in enumerate(slow):  # one more header byte each, every 0.25 s
                if i in closed:
                    continue
                try:
                    sock.sendall(b"X")
                    sock.settimeout(0.001)
                    if sock.recv(1) == b"":
                        closed.add(i)
                except TimeoutError:
                    pass
                except OSError:
                    closed.add(i)
            t = time.monotonic()
            with urllib.request.urlopen(server.base_url + "/healthz", timeout=5) as response:
                answered.append((response.status, time.monotonic() - t))
            time.sleep(0.25)
        elapsed = time.monotonic() - began
        for sock in slow:
            sock.close()
    assert len(closed) == len(slow) and elapsed < 5  # all cut off after the 2 s idle timeout
    assert all(status == 200 for status, _ in answered)
    assert max(took for _, took in answered) < 0.5  # others were served all along
