"""Shared fixtures: synthetic sources (built once per session with PyAV), settings, a live server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from livetx.media.sample import SampleSpec, write_sample
from livetx.settings import generate_key_file

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

    def cli(self, *args: str) -> str:
        """Run the `livetx` CLI with the server's configuration; return its stdout."""
        done = subprocess.run([sys.executable, "-m", "livetx", *args], env=self.env, capture_output=True, text=True, check=True)
        return done.stdout.strip()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[Server]:
    """The real server, as `livetx serve` runs it, on a free loopback port."""
    home = tmp_path_factory.mktemp("server")
    media = home / "media"
    media.mkdir()
    for src in sources.values():
        shutil.copy(src.path, media / src.path.name)
    key_file = home / "signing.key"
    generate_key_file(key_file)
    port = free_port()
    env = {
        **os.environ,
        "LIVETX_CONFIG": str(ROOT / "conf" / "livetx.toml"),
        "LIVETX_SERVER_PORT": str(port),
        "LIVETX_STORAGE_URI": str(media),
        "LIVETX_SIGNING_KEY_FILE": str(key_file),
        "LIVETX_TRANSCODE_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    log = home / "server.log"
    with open(log, "wb") as log_fh:
        process = subprocess.Popen([sys.executable, "-m", "livetx", "serve"], env=env, stdout=log_fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited:\n" + log.read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("server did not start:\n" + log.read_text())
    yield Server(base, env, process, media, log)
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
