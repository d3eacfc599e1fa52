"""Which server process this is, of those one `livetx serve` runs on one port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHUTDOWN_TIMEOUT = 30.0  # seconds in-flight requests get to finish after SIGTERM


@dataclass(frozen=True)
class ServerProcess:
    """Process `index` of the `count` server processes of `livetx serve --processes N`
    (livetx/supervisor.py); count 1: the only one, with nothing shared."""

    count: int = 1
    index: int = 0
    run_dir: str = ""  # the supervisor's private directory (several processes): their metrics sockets

    @property
    def shared(self) -> bool:
        """Several processes share the host: its transcode slots, and the singleflight."""
        return self.count > 1

    def metrics_socket(self, index: int) -> Path:
        """Where server process `index` answers for its own metrics (livetx/web/siblings.py)."""
        return Path(self.run_dir) / f"metrics-{index}.sock"


ALONE = ServerProcess()  # `livetx serve` with one process, and apps made in-process (tests)
