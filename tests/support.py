"""Helpers shared by test modules (a home for them, so no test module imports another).

Waiting: never sleep a guessed time and hope; wait for a condition, with a bound and a message
saying what did not happen. Time: move an injected clock instead of waiting time out.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av
import m3u8
import numpy as np
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.probe import probe
from livetx.media.transcode import transcode_segment
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile
from tests.conftest import CDN, ROOT, Source

# the browser and the players the browser tests drive (installed by .ci/run, never committed)
CHROMIUM = Path(os.environ.get("LIVETX_TEST_CHROMIUM", "/usr/bin/chromium"))
HLS_JS = Path(os.environ.get("LIVETX_TEST_HLSJS", ROOT / "var" / "test-hlsjs" / "node_modules" / "hls.js" / "dist" / "hls.min.js"))
PLAYERS_DIR = Path(os.environ.get("LIVETX_TEST_PLAYERS", ROOT / "var" / "test-players" / "node_modules"))
SCRIPTS = {  # the player matrix's players (tests/test_players.py, tests/test_player_tracks.py)
    "hls.js": HLS_JS,
    "shaka": PLAYERS_DIR / "shaka-player" / "dist" / "shaka-player.compiled.js",
    "video.js": PLAYERS_DIR / "video.js" / "dist" / "video.min.js",
    "dash.js": PLAYERS_DIR / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js",
}


def get_url(url: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET to a live server, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


T = TypeVar("T")


def _timed_out(what: str, timeout: float) -> AssertionError:
    return AssertionError(f"timed out after {timeout:g} s waiting for {what}")


async def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `condition` on the event loop until it returns something truthy, and return that;
    fail naming `what` after `timeout` seconds. `condition` may assert: that fails at once."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(interval)
    return result


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """`wait_for` for synchronous tests (a real server in a subprocess, a browser): blocks."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout)
        time.sleep(interval)
    return result


class Clock:
    """A wall clock a test moves by hand: set as the app's `CLOCK` before the app starts."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux): a sign that a
    worker is busy with a job, independent of how loaded the machine is."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after "pid (comm)"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str]:
    with open(path) as stat:
        return stat.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...


def alive(pid: int) -> bool:
    """A thread of the process is not a zombie yet (Linux /proc). A killed process's first
    thread can be a zombie while others are still ending, its files (sockets) still open."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for tid in tasks:
        try:
            if _stat_fields(f"/proc/{pid}/task/{tid}/stat")[0] != "Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            continue
    return False


def child_pids(pid: int, marker: str = "") -> list[int]:
    """The live child processes of `pid` (from /proc), those whose command line holds `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(f"/proc/{entry}/stat")
            if int(fields[1]) == pid and fields[0] != "Z" and marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`."""
    out, todo = [], [pid]
    while todo:
        below = child_pids(todo.pop())
        out += below
        todo += below
    return out


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """CPU time each live thread of the process has used so far, in nanoseconds (Linux
    /proc/<pid>/task/<tid>/schedstat: exact, where /proc/<pid>/stat counts clock ticks)."""
    out = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                out[int(tid)] = int(stat.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def cpu_used_ns(before: dict[int, int], after: dict[int, int]) -> int:
    """CPU time used between two `thread_cpu_ns` readings by the threads alive at both."""
    return sum(after[tid] - before[tid] for tid in before.keys() & after.keys())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus exposition text -> {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


# ---- Media made for a test ---------------------------------------------------------------


def sparse_title(path: Path, seconds: int, width: int = 320, height: int = 180) -> None:
    """Two grey rawvideo frames `seconds` apart: a tiny file that plans as a long title."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "gray"
        for pts in (0, seconds * 25):
            frame = av.VideoFrame.from_ndarray(np.full((height, width), 128, np.uint8), format="gray")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)


def raw_mkv(path: Path, size: int, pts: list[int], declared: int | None = None) -> None:
    """A grey rawvideo Matroska file at 25 fps; `declared` rewrites the size its header claims."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "gray"
        for t in pts:
            frame = av.VideoFrame.from_ndarray(np.full((size, size), 128, np.uint8), format="gray")
            frame.pts = t
            for packet in stream.encode(frame):
                out.mux(packet)
    if declared is not None:
        data = path.read_bytes()
        for element in (b"\xb0", b"\xba"):  # PixelWidth, PixelHeight
            old = element + b"\x82" + size.to_bytes(2, "big")
            assert data.count(old) == 1
            data = data.replace(old, element + b"\x82" + declared.to_bytes(2, "big"))
        path.write_bytes(data)


def make_any_segments(
    src: Source, out_fps: Fraction | None = None, seed: int = 1, **params: object
) -> tuple[list[bytes], list[Fraction], Fraction | None]:
    """Plan the source as the server does, then make every segment alone, in shuffled order."""
    rendition: dict[str, object] = {"preset": "ultrafast", "ab": 128000, **params}
    if out_fps is not None:
        rendition["fps"] = str(out_fps)
        rendition["fpsopt"] = 0
    profile = parse_profile("t", {"st": 5000, "initial_segments": [2000, 1000], "renditions": {"r": rendition}})
    source = ObjectInfo(src.key, src.path.stat().st_size, "test")
    title = build_title(source, probe(str(src.path)), profile)
    r = title.renditions[0]
    order = list(range(len(r.windows)))
    random.Random(seed).shuffle(order)
    made = {i: transcode_segment(title.job(r, i, str(src.path))).data for i in order}
    return [made[i] for i in range(len(r.windows))], [w.duration for w in r.windows], r.video.fps if r.video else None


def job_for(src: Source, start: Fraction = Fraction(0), stop: Fraction = Fraction(1)) -> SegmentJob:
    return SegmentJob(
        source=str(src.path),
        origin=Fraction(0),
        start=start,
        stop=stop,
        video=VideoSpec("h264", src.spec.width, src.spec.height, src.spec.fps, preset="ultrafast"),
        audio=AudioSpec(src.spec.sample_rate, 2),
        video_stream=0,
        audio_stream=1,
    )


# ---- The app as a CDN pulls from it (needs the `s3_app`/`CDN` settings of conftest) ------


CDN_HEADERS = {"X-Livetx-Origin-Auth": CDN}


async def fetch(client: TestClient[Any, Any], path: str) -> bytes:
    response = await client.get(path, headers=CDN_HEADERS)
    assert response.status == 200, (path, response.status, await response.text())
    return await response.read()


async def playlist_segments(client: TestClient[Any, Any], key: str) -> list[str]:
    base = f"/hls/default/{key}/"
    master = m3u8.loads((await fetch(client, base + "master.m3u8")).decode())
    media = m3u8.loads((await fetch(client, base + master.playlists[0].uri)).decode())
    return [base + s.uri for s in media.segments]


class SlowStore:
    """The real output store, with its HEADs and PUTs held back: widens the window in which a
    request looks in storage while the segment is being made and written back."""

    def __init__(self, store: Any, stat_delay: float, write_delay: float) -> None:
        self.store, self.stat_delay, self.write_delay = store, stat_delay, write_delay

    async def stat(self, key: str) -> Any:
        found = await self.store.stat(key)  # looked now, answered late: as a slow HEAD
        await asyncio.sleep(self.stat_delay)
        return found

    async def write(self, key: str, data: bytes) -> None:
        await asyncio.sleep(self.write_delay)
        await self.store.write(key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


# ---- Request bodies and hostile sources --------------------------------------------------


IMM_SAMPLE = {
    "ProjectName": "p",
    "SourceURI": "oss://bucket/test.avi",
    "MasterURI": "oss://bucket/output/master.m3u8",
    "SourceSubtitles": [{"URI": "oss://bucket/sub.srt"}],
    "Targets": [
        {
            "URI": "oss://bucket/output/720p/720p",
            "Duration": 10,
            "InitialSegments": [2, 2, 2],
            "InitialTranscode": 36,
            "Video": {
                "TranscodeVideo": {
                    "Codec": "h264",
                    "Bitrate": 2400000,
                    "CRF": 26,
                    "FrameRate": 25,
                    "Resolution": "1280x",
                    "ScaleType": "fit",
                }
            },
            "Audio": {"TranscodeAudio": {"Codec": "aac", "Bitrate": 128000, "SampleRate": 44100}},
        }
    ],
}

HLS = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"


def hls(ref: str, entries: int = 1) -> str:
    return HLS + "".join(f"#EXTINF:2.0,\n{ref}\n" for _ in range(entries)) + "#EXT-X-ENDLIST\n"


def readers(fifos: list[Path]) -> list[str]:
    """The FIFOs something has open for reading (a writer's non-blocking open succeeds only then).
    Opening the writer end also lets such a reader go on: it reads end-of-file."""
    found = []
    for fifo in fifos:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            assert exc.errno == errno.ENXIO, exc  # no reader
            continue
        os.close(fd)
        found.append(fifo.name)
    return found


def cpu_busy(interval: float = 0.5) -> float:
    """The machine's busy share of all cores over `interval` seconds (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(interval)  # a measuring window, not a wait for an event
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet_cpu(below: float = 0.3, timeout: float = 60) -> float:
    """Wait (bounded) until the machine's cores are mostly idle, e.g. until another test's
    server has finished its background transcodes; returns the last busy share measured. A
    latency test then measures its own server rather than its neighbours."""
    deadline = time.monotonic() + timeout
    busy = cpu_busy()
    while busy >= below and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy
