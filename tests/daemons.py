"""Starting a test's helper server (SeaweedFS, Valkey) as a subprocess and waiting until it answers."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def start_daemon(
    cmd: Sequence[str],
    log: Path,
    ready: Callable[[], bool],
    *,
    name: str,
    timeout: float,
    interval: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`cmd` started in `log`'s folder, its output appended to `log`, once `ready()` holds
    (polled every `interval` s). RuntimeError with the log's tail if it exits first or is not
    ready within `timeout` s (it is killed then)."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(cmd), env=dict(env if env is not None else os.environ), stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n" + log.read_text()[-3000:])
        if ready():
            return process
        time.sleep(interval)
    process.kill()
    process.wait()
    raise RuntimeError(f"{name} did not become ready:\n" + log.read_text()[-3000:])
