"""A livetx fleet on loopback, as deploy/compose.yaml runs it in Docker, without Docker.

SeaweedFS as S3 (sources and output), one real valkey-server, N `livetx serve` origins (each a
subprocess with its own port, local tier and lock directory; all with the same signing keys,
storage and Redis), and optionally the nginx front rendered from deploy/nginx.conf with the
upstream lines pointing at the origins' loopback ports.

    with Fleet(tmp, origins=3, front=True) as fleet:
        fleet.upload("a.mp4", data)
        fleet.origins[0].base_url, fleet.front.url, fleet.transcodes()
        fleet.origins[1].kill(); fleet.origins[1].start()     # same port, same env
        fleet.valkey.stop(); fleet.valkey.start()             # same port

Used by tests/test_fleet.py (one fleet per module), tests/chaos.py (--origins 3) and
benchmarks/cluster_burst.py. Nothing here sleeps to synchronise: an origin or nginx is up when
its port accepts connections, valkey-server when it answers PING.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import botocore.session
from botocore.config import Config

from tests.conftest import ROOT, Server, free_port, launch_server
from tests.s3server import BUCKET, SeaweedS3
from tests.support import descendants, samples
from tests.valkey import Valkey

CDN = "f" * 40  # the CDN origin-pull secret of every origin (tests fetch without tokens with it)
CDN_HEADERS = {"X-Livetx-Origin-Auth": CDN}
SIGNING_KEYS = "fleet:" + "5a" * 32  # one key shared by every origin: a URL signed for one plays on all
NGINX_CONF = ROOT / "deploy" / "nginx.conf"

# Fast, deterministic segments for tests (Fleet(..., **QUICK)): 2, 2, 2 s then 5 s windows,
# x264 ultrafast, nothing made ahead of a request (no pre-transcode, no lookahead), so the
# segments a test asks for are exactly the segments made.
QUICK = {
    "LIVETX_PROFILES_DEFAULT_ST": "5000",
    "LIVETX_PROFILES_DEFAULT_INITD": "0",
    "LIVETX_PROFILES_DEFAULT_RENDITIONS_MAIN_PRESET": "ultrafast",
    "LIVETX_CACHE_LOOKAHEAD": "false",
}


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def wait_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30) -> None:
    """Until something accepts connections on the loopback port (fails if `process` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:g} s:\n{log.read_text()[-3000:]}")


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Origin:
    """One `livetx serve` of the fleet: a fixed port and environment, so it can be killed and
    started again as the same origin."""

    name: str
    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    server: Server | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.server is not None, f"{self.name} is not running"
        return self.server.process.pid

    @property
    def alive(self) -> bool:
        return self.server is not None and self.server.process.poll() is None

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.server = self._stack.enter_context(launch_server(self.home, Path("unused"), port=self.port, **self.env))

    def kill(self) -> None:
        """SIGKILL the origin and every process under it (its transcode workers), as a host
        that dies takes them all: no drain, no lease released, write-backs lost."""
        assert self.server is not None
        below = descendants(self.pid)
        self.server.process.send_signal(signal.SIGKILL)
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.server.process.wait()
        self.stop()

    def stop(self) -> None:
        self._stack.close()
        self.server = None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(self.base_url + "/metrics", timeout=10) as response:
            return samples(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
        wanted = set(labels.items())
        return sum(value for (sample, have), value in self.metrics().items() if sample == name and wanted <= set(have))

    def log(self) -> str:
        return (self.home / "server.log").read_text(errors="replace")


def render_front(conf: str, origins: list[int], listen: int, home: Path) -> str:
    """deploy/nginx.conf for loopback: its upstream `server originN:8080 ...;` lines become one
    per origin port (same parameters), it listens on 127.0.0.1:`listen`, and its pid and temp
    paths move into `home`. Everything else (the hash, retries, timeouts) is the shipped file."""
    lines = conf.splitlines()
    upstream = [i for i, line in enumerate(lines) if re.match(r"\s*server\s+origin\d+:\d+", line)]
    if not upstream or upstream != list(range(upstream[0], upstream[0] + len(upstream))):
        raise ValueError("deploy/nginx.conf: expected consecutive `server originN:port ...;` lines in its upstream")
    template = re.fullmatch(r"(\s*)server\s+origin\d+:\d+(.*)", lines[upstream[0]])
    assert template is not None
    indent, params = template.groups()
    servers = [f"{indent}server 127.0.0.1:{port}{params}" for port in origins]
    lines[upstream[0] : upstream[-1] + 1] = servers
    text = "\n".join(lines) + "\n"
    text, listens = re.subn(r"(?m)^(\s*)listen\s+\d+;", rf"\g<1>listen 127.0.0.1:{listen};", text)
    if listens != 1:
        raise ValueError("deploy/nginx.conf: expected one `listen <port>;`")
    return text.replace("/tmp/livetx-front", str(home / "front"))


@dataclass
class Front:
    """nginx running the rendered deploy/nginx.conf in the foreground."""

    home: Path
    origins: list[int]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx not found (Debian: apt-get install nginx-light)")
        self.home.mkdir(parents=True, exist_ok=True)
        conf = self.home / "nginx.conf"
        conf.write_text(render_front(NGINX_CONF.read_text(), self.origins, self.port, self.home))
        log = self.home / "nginx.log"
        with open(log, "wb") as out:
            # -e: the startup error log too (before the file's error_log is read) goes to stderr
            cmd = [binary, "-c", str(conf), "-p", str(self.home), "-e", "stderr", "-g", "daemon off;"]
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port, self.process, "nginx", log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGQUIT)  # graceful shutdown
            self.process = None


class Fleet:
    """The topology, started on enter and stopped on exit (in reverse order)."""

    def __init__(
        self,
        home: Path,
        origins: int = 3,
        *,
        redis: bool = True,
        front: bool = False,
        lease_ttl: float | None = None,
        workers: int = 2,
        s3: SeaweedS3 | None = None,
        sources: str = "fleet",
        output: str = "fleet-out",
        **env: str,
    ) -> None:
        """`origins` origins (one process each) with `workers` transcode workers each, sources
        under s3://livetx/`sources`/ and made segments under `output`/, on `s3` (else a
        SeaweedFS of their own); `redis`: a valkey-server they share; `front`: nginx before
        them; `lease_ttl`: cluster.lease_ttl (None: the configured default); `env`: more
        LIVETX_* settings, the same for every origin."""
        self.home = home
        self._stack = ExitStack()
        self._own_s3 = s3 is None
        self.s3 = s3 or SeaweedS3(home / "s3")
        self.valkey = Valkey(home / "valkey", free_port()) if redis else None
        self.sources, self.output = sources, output
        self.env = {
            "LIVETX_STORAGE_URI": f"s3://{BUCKET}/{sources}",
            "LIVETX_STORAGE_OUTPUT_URI": f"s3://{BUCKET}/{output}",
            "LIVETX_SIGNING_KEYS": SIGNING_KEYS,
            "LIVETX_SIGNING_KEY_FILE": "",
            "LIVETX_CDN_ORIGIN_SECRET": CDN,
            "LIVETX_TRANSCODE_WORKERS": str(workers),
            "LIVETX_CLUSTER_REDIS_URL": self.valkey.url if self.valkey is not None else "",
            **({"LIVETX_CLUSTER_LEASE_TTL": f"{lease_ttl:g}"} if lease_ttl is not None else {}),
            **env,
        }
        # each its own port, local tier and lock folder (launch_server's, in its home)
        self.origins = [Origin(f"origin{n}", home / f"origin{n}", {}) for n in range(1, origins + 1)]
        self.front = Front(home / "front", [o.port for o in self.origins]) if front else None
        if self.front is not None:
            self.env.setdefault("LIVETX_SERVER_BASE_URL", self.front.url)  # what `livetx url` signs
            self.env.setdefault("LIVETX_SERVER_CLIENT_IP_HEADER", "X-Real-IP")
        self._client: Any = None

    def __enter__(self) -> Fleet:
        try:
            if self._own_s3:
                self.s3.start()
                self._stack.callback(self.s3.stop)
            if self.valkey is not None:
                self.valkey.start()
                self._stack.callback(self.valkey.stop)
            for origin in self.origins:
                origin.env = {**self.s3.env, **self.env, **origin.env}
                origin.start()
                self._stack.callback(origin.stop)
            if self.front is not None:
                self.front.start()
                self._stack.callback(self.front.stop)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.close()

    # ---- storage ----------------------------------------------------------------------

    @property
    def s3_client(self) -> Any:
        """A botocore S3 client on the fleet's SeaweedFS (for sources and checking output)."""
        if self._client is None:
            env = self.s3.env
            self._client = botocore.session.get_session().create_client(
                "s3",
                endpoint_url=self.s3.endpoint,
                region_name="us-east-1",
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
            )
        return self._client

    def upload(self, key: str, data: bytes) -> None:
        """A source, under the origins' storage.uri."""
        self.s3_client.put_object(Bucket=BUCKET, Key=f"{self.sources}/{key}", Body=data)

    def stored(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """(key under the output root, bytes) of every made object under `prefix`."""
        root = f"{self.output}/"
        paginator = self.s3_client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=root + prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(root) :], self.s3_client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()

    # ---- what the origins say -----------------------------------------------------------

    def metric(self, name: str, **labels: str) -> dict[str, float]:
        """`name` on every running origin, by origin name."""
        return {o.name: o.metric(name, **labels) for o in self.origins if o.alive}

    def transcodes(self) -> float:
        """Segments transcoded, summed over the running origins."""
        return sum(self.metric("livetx_transcodes_total").values())
