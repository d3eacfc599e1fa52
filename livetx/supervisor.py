"""`livetx serve --processes N`: a small supervisor of N server processes on one port.

The supervisor runs no app of its own. It starts N server processes, each `livetx.app.serve`
with the supervisor's settings, binding host:port with SO_REUSEPORT, so that the kernel
spreads connections over them. They are spawned, not forked: a fresh interpreter each, as the
transcode pools' workers are, so nothing the supervisor holds (threads, an event loop, open
sockets) reaches them; the settings are handed over pickled, so every process runs the same
configuration, a restarted one too.

- It prints the "livetx listening on ..." announcement once, when every process listens. A
  process that exits before it listens (a bad config, a port taken by another program) stops
  the start: the others are stopped and the supervisor exits 1.
- SIGTERM or SIGINT is forwarded, once, to every process as SIGTERM: each drains (in-flight
  requests finish, write-backs land: `livetx.app.serve`), and the supervisor exits 0 when all
  of them exited cleanly. A second signal, or processes still running STOP_GRACE seconds on,
  kills them (exit 1). Each server process is the leader of its own process group, so a
  terminal's Ctrl-C reaches the supervisor alone and no process is told twice.
- A process that dies otherwise (a crash, the OOM killer) is started again after a backoff,
  with a log line: BACKOFF_FIRST seconds, doubled for each death in a row up to BACKOFF_MAX; a
  process that served STABLE seconds starts the count afresh. The others serve meanwhile (the
  kernel leaves a closed socket out of SO_REUSEPORT's spread).
- Every scrape of /metrics answers for all the processes (livetx/web/siblings.py), through
  Unix sockets in a directory private to the run, removed at the end (by the last server
  process to end, if the supervisor was killed).
- A server process whose supervisor dies (SIGKILL) sees its pipe to it close and drains as on
  SIGTERM: no server outlives its supervisor for long.

Each server process logs with its index and process id (`logs.configure(process=...)`); the
supervisor's own lines say "supervisor". The supervisor never imports the app (aiohttp's
server, the pools): it stays a small process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType

from livetx import logs
from livetx.errors import LivetxError
from livetx.server_process import SHUTDOWN_TIMEOUT, ServerProcess
from livetx.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0  # seconds a server process may take to start listening
BACKOFF_FIRST = 0.5  # seconds before a process that died is started again, the first time
BACKOFF_MAX = 30.0  # ... doubled for each death in a row, up to this
STABLE = 60.0  # seconds of service after which a death counts as a first one again
STOP_GRACE = SHUTDOWN_TIMEOUT + 60.0  # seconds after SIGTERM before processes still running are killed


def _server_main(settings: Settings, place: ServerProcess, conn: Connection) -> None:
    """A server process: serve until SIGTERM (or the supervisor's end of `conn` closing)."""
    os.setpgid(0, 0)  # a group of its own: a terminal's Ctrl-C is for the supervisor to forward
    logs.configure(settings.server.log_format, process=str(place.index))
    from livetx.app import serve  # here: the supervisor itself never loads the app

    def listening() -> None:
        import asyncio

        conn.send(os.getpid())  # the supervisor announces once every process listens

        def orphaned() -> None:  # readable means closed: the supervisor never writes
            loop.remove_reader(conn.fileno())
            log.warning("supervisor gone: stopping", extra={"event": "supervisor_gone"})
            os.kill(os.getpid(), signal.SIGTERM)

        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), orphaned)

    try:
        serve(settings, listening, place)
    except LivetxError as exc:  # a bad setting: said as `livetx serve` alone says it
        print(f"livetx: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except Exception:  # a log line rather than multiprocessing's bare traceback
        log.exception("server process failed", extra={"event": "process_failed"})
        sys.exit(1)


@dataclass
class _Child:
    place: ServerProcess
    process: SpawnProcess | None = None
    conn: Connection | None = None  # the supervisor's end of the pipe: a pid when listening
    started: float = 0.0
    listening: bool = False
    deaths: int = 0  # in a row, without STABLE seconds of service between
    restart_at: float | None = None


class Supervisor:
    def __init__(self, settings: Settings, count: int, announce: Callable[[], None]) -> None:
        self.settings = settings
        # private to this run (mode 0700): the processes' metrics sockets (livetx/web/siblings.py)
        self.run_dir = tempfile.mkdtemp(prefix="livetx-run-")
        self.children = [_Child(ServerProcess(count, index, self.run_dir)) for index in range(count)]
        self.announce = announce
        self.signals = 0  # SIGTERM and SIGINT received
        self._ctx = multiprocessing.get_context("spawn")
        self._wakeup, self._wakeup_w = socket.socketpair()

    # ---- one server process -------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_server_main, args=(self.settings, child.place, theirs), name=f"livetx-server-{child.place.index}"
        )
        process.start()
        theirs.close()
        child.process, child.conn, child.started, child.listening, child.restart_at = process, ours, time.monotonic(), False, None

    def _listening(self, child: _Child) -> None:
        assert child.conn is not None
        try:
            pid = child.conn.recv()
        except (EOFError, OSError):
            return  # it died before it listened: its sentinel says so too
        child.listening = True
        if child.deaths:
            log.info("server process started again", extra={"event": "process_restarted", "index": child.place.index, "child_pid": pid})

    def _reap(self, child: _Child) -> int:
        """A process that exited: joined, its pipe closed; its exit code."""
        assert child.process is not None
        child.process.join()
        code = child.process.exitcode
        if child.conn is not None:
            child.conn.close()
        child.process, child.conn = None, None
        return code if code is not None else 1

    def _died(self, child: _Child, code: int) -> None:
        """A process exited while serving: start another after a backoff."""
        now = time.monotonic()
        served = now - child.started
        child.deaths = 1 if child.listening and served >= STABLE else child.deaths + 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (child.deaths - 1))
        child.restart_at = now + delay
        log.warning(
            f"server process {child.place.index} exited with code {code} after {served:.1f} s; starting another in {delay:g} s",
            extra={"event": "process_died", "index": child.place.index, "code": code, "deaths": child.deaths, "delay": delay},
        )

    # ---- the whole group -----------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1

    def _waitables(self) -> list[Connection | socket.socket | int]:
        out: list[Connection | socket.socket | int] = [self._wakeup]
        for child in self.children:
            if child.process is not None:
                out.append(child.process.sentinel)
                if not child.listening and child.conn is not None:
                    out.append(child.conn)
        return out

    def _wait(self, timeout: float | None) -> Sequence[object]:
        ready = wait(self._waitables(), timeout)
        if self._wakeup in ready:
            try:
                while self._wakeup.recv(256):
                    pass
            except BlockingIOError:
                pass
        return ready

    def run(self) -> int:
        """Start the processes, announce, keep them running until a signal; the exit code."""
        for sock in (self._wakeup, self._wakeup_w):
            sock.setblocking(False)
        previous = signal.set_wakeup_fd(self._wakeup_w.fileno())
        handlers = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            if not self._start_all():
                code = self._stop()
                return code if self.signals else 1
            self.announce()
            self._supervise()
            return self._stop()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _start_all(self) -> bool:
        """Start every process and wait until each listens. False if one exited first (after
        a log line), or a signal came, or READY_TIMEOUT passed."""
        for child in self.children:
            self._start(child)
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(child.listening for child in self.children):
            remaining = deadline - time.monotonic()
            if self.signals or remaining <= 0:
                if remaining <= 0:
                    log.error(f"server processes did not listen within {READY_TIMEOUT:g} s", extra={"event": "start_failed"})
                return False
            ready = self._wait(remaining)
            for child in self.children:
                if child.conn is not None and child.conn in ready and not child.listening:
                    self._listening(child)
                if child.process is not None and child.process.sentinel in ready and not child.listening:
                    code = self._reap(child)
                    log.error(
                        f"server process {child.place.index} exited with code {code} before it listened",
                        extra={"event": "start_failed", "index": child.place.index, "code": code},
                    )
                    return False
        return True

    def _supervise(self) -> None:
        """Until a signal: restart the processes that die, with a backoff."""
        while not self.signals:
            due = [child.restart_at for child in self.children if child.restart_at is not None]
            ready = self._wait(max(0.0, min(due) - time.monotonic()) if due else None)
            for child in self.children:
                if child.conn is not None and child.conn in ready and not child.listening:
                    self._listening(child)
                if child.process is not None and child.process.sentinel in ready:
                    self._died(child, self._reap(child))
                if child.restart_at is not None and child.restart_at <= time.monotonic() and not self.signals:
                    try:
                        self._start(child)
                    except OSError as exc:  # no process could be made (EAGAIN, ENOMEM): later
                        self._died(child, -1)
                        log.error("server process could not be started", extra={"event": "start_failed", "error": str(exc)})

    def _stop(self) -> int:
        """SIGTERM to every process, then wait for all of them to drain and exit; 0 if each
        exited cleanly. A second signal, or STOP_GRACE seconds, kills those still running."""
        signals = self.signals
        running = [child for child in self.children if child.process is not None]
        for child in running:
            assert child.process is not None and child.process.pid is not None
            os.kill(child.process.pid, signal.SIGTERM)
        log.info("stopping: server processes drain", extra={"event": "stopping", "processes": len(running)})
        failed = 0
        deadline = time.monotonic() + STOP_GRACE
        while running:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.signals > signals:
                log.error("server processes still running: killed", extra={"event": "killed", "processes": len(running)})
                for child in running:
                    assert child.process is not None
                    child.process.kill()
                    self._reap(child)
                return 1
            ready = self._wait(remaining)
            for child in [child for child in running if child.process is not None and child.process.sentinel in ready]:
                listening = child.listening
                code = self._reap(child)
                running.remove(child)
                # one still starting has no handler for SIGTERM yet: it ends by the signal
                failed += code != 0 and not (code == -signal.SIGTERM and not listening)
        log.info("stopped", extra={"event": "stopped", "failed": failed})
        return 1 if failed else 0
