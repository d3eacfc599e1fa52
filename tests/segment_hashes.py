"""Hash every segment of a few titles, made through the real app: run it on two commits and
compare, to show that a refactor left the output byte-identical.

    python -m tests.segment_hashes before.json          # on the old commit
    python -m tests.segment_hashes after.json           # on the new one
    python -m tests.segment_hashes --compare before.json after.json

The titles are the test suite's synthetic sources (made afresh, deterministically, with
PyAV) under the `default` profile and the shipped ladder scaled to them. Segments are read
through HTTP as a CDN pulls them (origin secret, no token), so planning, the pool, the
transcoder, the seal and the write-back path all take part.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import m3u8
from aiohttp.test_utils import TestClient, TestServer

from livetx.app import create_app
from livetx.media.sample import write_sample
from tests.conftest import SOURCES, SUFFIX, app_settings

TITLES = ("mp4-30", "mkv-25-44k", "ts-2997", "audio-only")
LADDER = {"P720": "x180", "P1080": "x1080", "P480": "x144", "P360": "x90"}
SECRET = "s" * 40
PULL = {"X-Livetx-Origin-Auth": SECRET}


async def _hashes(media: Path) -> dict[str, str]:
    env = {f"LIVETX_PROFILES_LADDER_RENDITIONS_{name}_S": size for name, size in LADDER.items()}
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_CDN_ORIGIN_SECRET=SECRET,
        LIVETX_CACHE_LOOKAHEAD="false",
        LIVETX_PROFILES_DEFAULT_INITD="0",
        LIVETX_PROFILES_LADDER_INITD="0",
        LIVETX_TRANSCODE_WORKERS="2",
        **env,
    )
    out: dict[str, str] = {}
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        for name in TITLES:
            key = name + SUFFIX.get(SOURCES[name].container or "", ".mp4")
            for profile in ("default", "ladder"):
                base = f"/hls/{profile}/{key}/"
                master = m3u8.loads(await (await client.get(base + "master.m3u8", headers=PULL)).text())
                for variant in master.playlists:
                    media_text = await (await client.get(base + variant.uri, headers=PULL)).text()
                    for n, segment in enumerate(m3u8.loads(media_text).segments):
                        response = await client.get(base + segment.uri, headers=PULL)
                        assert response.status == 200, (segment.uri, response.status)
                        # named without the spec id: it hashes the source's mtime, new with every run
                        out[f"{profile}/{key}/{variant.uri.split('?')[0]}#{n}"] = hashlib.sha256(await response.read()).hexdigest()
    finally:
        await client.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(Path(f).read_text()) for f in args.files)
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        print(f"{len(a)} and {len(b)} segments; {len(differ)} differ")
        for k in differ[:20]:
            print("  differs:", k)
        return 1 if differ else 0
    with tempfile.TemporaryDirectory() as folder:
        media = Path(folder)
        for name in TITLES:
            write_sample(media / (name + SUFFIX.get(SOURCES[name].container or "", ".mp4")), SOURCES[name])
        hashes = asyncio.run(_hashes(media))
    Path(args.files[0]).write_text(json.dumps(hashes, indent=1, sort_keys=True))
    print(f"{len(hashes)} segments hashed into {args.files[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
