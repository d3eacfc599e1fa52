"""Streamed segments: how soon a cold segment's first bytes, and a cold seek's first frame,
arrive with `transcode.stream` on against off, with the ffmpeg CLI's time for the same window as
the anchor.

One synthetic 1920x1080 30 fps H.264/AAC source (2 s GOP, `--seconds` long). Two real servers
(`livetx serve` subprocesses, 2 workers each) run side by side, one with `transcode.stream` on
and one with it off, each with pre-transcode and lookahead off (`initd` 0, `cache.lookahead`
false), so nothing is made unless asked for. Their rounds alternate, so both meet the same load.

1. Segments over HTTP. Per round and server, a fresh hard link of the source (a new title,
   nothing cached): its master and media playlists first (the probe is not counted), then one
   GET of a full-length segment mid-title, timed to the first body byte (TTFB) and to the last
   (TTLB). Two renditions:
     - MPEG-TS: the default profile (720p H.264 veryfast crf 23, no B-frames, 10 s segments),
       the 10 s segment that holds the title's middle;
     - fMP4: the shipped ladder's p720 rung (H.264 veryfast crf 23, capped at 3 Mbit/s, B-frames,
       CMAF) with the ladder's `st` set to 10000 (LIVETX_PROFILES_LADDER_ST), its 10 s segment
       that holds the middle; the ladder's other rungs are never asked for.
   Anchor, in the same run: the ffmpeg CLI making that window with the same settings, as a
   fresh process (`-ss S -i SRC -t 10 -vf scale=1280:720 -c:v libx264 -preset veryfast -crf 23
   -x264-params bframes=0 -c:a aac -b:a 128k -f mpegts`; for fMP4 the rung's VBV cap, default
   B-frames and a fragmented MP4), its total wall time. Reported: TTFB and TTLB over it.
2. A cold seek in hls.js (`progressive: true`, so its fetch loader hands bytes on as they come)
   in Debian's Chromium (Playwright, never `playwright install`). The page (served by this
   script on another loopback port) plays a fresh title of the default profile from 0, holding
   at most 4 s ahead (`maxBufferLength`); once its first frame is shown it pauses, and when hls.js
   has buffered what it wants (nothing left to make on the server), the script calls
   `currentTime = --seek` (a cold 10 s segment) and `play()`, and times from that call to the
   first frame shown at the new position (requestVideoFrameCallback, mediaTime at or past the
   target less a frame).

Medians of `--rounds` (default 3). Writes benchmarks/results/streamed_segments.json and prints a
table. Not a pass/fail test; needs the ffmpeg CLI, and for part 2 Chromium and hls.js
(var/test-hlsjs, installed by .ci/run; `--no-browser` skips it).

    python benchmarks/streamed_segments.py [--seconds 60] [--rounds 3] [--seek 40] [--no-browser] [--no-segments] [--out FILE]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import m3u8

from benchmarks.jobs import call
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import Server, launch_server
from tests.support import CHROMIUM, HLS_JS

RESULTS = Path(__file__).resolve().parent / "results"
QUIET = {
    "LIVETX_PROFILES_DEFAULT_INITD": "0",
    "LIVETX_PROFILES_LADDER_INITD": "0",
    "LIVETX_PROFILES_LADDER_ST": "10000",
    "LIVETX_CACHE_LOOKAHEAD": "false",
    "LIVETX_TRANSCODE_WORKERS": "2",
}
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
AUDIO = ["-c:a", "aac", "-b:a", "128k"]
# rendition: (profile, the ffmpeg CLI's settings for the same encode after the scale)
RENDITIONS = {
    "ts": ("default", [*X264, "-x264-params", "bframes=0", *AUDIO, "-f", "mpegts"]),
    "fmp4": (
        "ladder",
        [*X264, "-maxrate", "3M", "-bufsize", "6M", *AUDIO, "-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
    ),
}
MODES = ("on", "off")


def log(message: str) -> None:
    """Progress, on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- part 1: segments over HTTP ------------------------------------------------------------


def ffmpeg_time(src: Path, start: float, duration: float, settings: list[str], out: Path) -> float:
    """The anchor: a fresh ffmpeg process making the window, its total wall time."""
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-ss",
        f"{start}",
        "-i",
        str(src),
        "-t",
        f"{duration}",
        "-vf",
        "scale=1280:720",
        *settings,
        str(out),
    ]
    began = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - began


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=120) as response:
        return str(response.read().decode())


def master_url(server: Server, key: str, profile: str) -> str:
    """The title's master playlist, signed with a title-scoped token (every URI in it is signed)."""
    return str(call(server, "POST", "/api/v1/sign", {"key": key, "profile": profile, "scope": "title"})["url"])


def segments(master: str) -> list[tuple[str, float, float]]:
    """The first variant's segments: URL, start and duration. Fetching the playlists probes the title."""
    variant = urllib.parse.urljoin(master, m3u8.loads(fetch_text(master)).playlists[0].uri)
    found, at = [], 0.0
    for segment in m3u8.loads(fetch_text(variant)).segments:
        found.append((urllib.parse.urljoin(variant, segment.uri), at, float(segment.duration)))
        at += segment.duration
    return found


def mid_segment(master: str, seconds: float) -> tuple[str, float, float]:
    """The full-length segment that holds the title's middle (or the nearest one)."""
    listed = segments(master)
    longest = max(duration for _, _, duration in listed)
    return min((s for s in listed if s[2] == longest), key=lambda s: abs(s[1] + s[2] / 2 - seconds / 2))


def timed_get(url: str) -> dict[str, Any]:
    """One GET: seconds to the response headers, to the first body byte and to the last, the
    bytes and whether the body came chunked."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=180)
    try:
        began = time.perf_counter()
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        headers = time.perf_counter() - began
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {response.read()[:200]!r}")
        first = response.read1(1 << 16)  # blocks for the first bytes of the body (of its first chunk)
        ttfb = time.perf_counter() - began
        body = first + response.read()
        ttlb = time.perf_counter() - began
        chunked = response.getheader("Transfer-Encoding") == "chunked"
    finally:
        connection.close()
    return {"headers_s": headers, "ttfb_s": ttfb, "ttlb_s": ttlb, "bytes": len(body), "first_bytes": len(first), "chunked": chunked}


def fresh_title(server: Server, src: Path, name: str) -> str:
    """A new key for the same source: a title nothing of which is cached."""
    os.link(src, server.media / name)
    return name


def segment_rounds(servers: dict[str, Server], src: Path, seconds: float, rounds: int, tmp: Path) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {r: {m: [] for m in MODES} for r in RENDITIONS}
    anchors: dict[str, list[float]] = {r: [] for r in RENDITIONS}
    windows: dict[str, tuple[float, float]] = {}
    for n in range(rounds):
        for rendition, (profile, settings) in RENDITIONS.items():
            for mode in MODES if n % 2 == 0 else reversed(MODES):
                server = servers[mode]
                key = fresh_title(server, src, f"seg-{rendition}-{mode}-{n}.mp4")
                url, start, duration = mid_segment(master_url(server, key, profile), seconds)
                windows[rendition] = (start, duration)
                runs[rendition][mode].append(timed_get(url))
                log(f"{rendition} stream {mode}: {runs[rendition][mode][-1]}")
            start, duration = windows[rendition]
            anchors[rendition].append(ffmpeg_time(src, start, duration, settings, tmp / f"anchor-{rendition}"))
            log(f"{rendition} ffmpeg: {anchors[rendition][-1]:.3f} s")
    results: dict[str, Any] = {}
    for rendition in RENDITIONS:
        anchor = statistics.median(anchors[rendition])
        row: dict[str, Any] = {"window_s": windows[rendition], "ffmpeg_s": anchor, "ffmpeg_runs": anchors[rendition]}
        for mode in MODES:
            ttfb = statistics.median(r["ttfb_s"] for r in runs[rendition][mode])
            ttlb = statistics.median(r["ttlb_s"] for r in runs[rendition][mode])
            row[mode] = {
                "ttfb_s": ttfb,
                "ttlb_s": ttlb,
                "ttfb_over_ffmpeg": ttfb / anchor,
                "ttlb_over_ffmpeg": ttlb / anchor,
                "runs": runs[rendition][mode],
            }
        results[rendition] = row
    return results


# ---- part 2: a cold seek in hls.js ---------------------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><video muted playsinline></video>
<script src="hls.min.js"></script><script>
window.errors = []; window.loading = 0;
const media = document.querySelector('video'); window.media = media;
const hls = new Hls({progressive: true, maxBufferLength: 4, maxMaxBufferLength: 4}); window.hls = hls;
hls.on(Hls.Events.ERROR, (_, d) => errors.push({details: d.details, fatal: d.fatal, url: d.frag && d.frag.url,
                                                  code: d.response && d.response.code, text: d.response && d.response.text,
                                                  reason: String(d.reason || d.error || '')}));
hls.on(Hls.Events.FRAG_LOADING, () => { loading++; });
for (const done of [Hls.Events.FRAG_LOADED, Hls.Events.FRAG_LOAD_EMERGENCY_ABORTED]) hls.on(done, () => { loading--; });
// hls.js's own timing of each fragment: ms from its request to the first bytes and to the last
window.loads = [];
hls.on(Hls.Events.FRAG_LOADED, (_, d) => { const l = d.frag.stats.loading;
  loads.push({start: d.frag.start, duration: d.frag.duration, first_ms: l.first - l.start, end_ms: l.end - l.start}); });
window.firstFrame = null;
media.requestVideoFrameCallback((now, meta) => { media.pause(); window.firstFrame = meta.mediaTime; });
hls.on(Hls.Events.MANIFEST_PARSED, () => media.play().catch(() => {}));  // (interrupted by the pause at the first frame)
window.ahead = () => { const b = media.buffered; return b.length ? b.end(b.length - 1) - media.currentTime : 0; };
// resolves with the ms from the seek call to the first frame shown at or past `target` (less a frame)
window.seek = target => new Promise(resolve => {
  const began = performance.now();
  const frame = (now, meta) => {
    if (meta.mediaTime >= target - 0.04) resolve({ms: performance.now() - began, mediaTime: meta.mediaTime});
    else media.requestVideoFrameCallback(frame);
  };
  media.requestVideoFrameCallback(frame);
  media.currentTime = target;
  media.play().catch(e => errors.push({details: String(e), fatal: true}));
});
hls.loadSource(SRC); hls.attachMedia(media);
</script>"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def page_server(folder: Path) -> Iterator[str]:
    """The page and hls.js from `folder`, on a loopback port of their own (another origin: the
    servers answer with CORS `*`)."""
    shutil.copy(HLS_JS, folder / "hls.min.js")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def poll(page: Any, expression: str, timeout: float, what: str) -> Any:
    """Evaluate `expression` until it is truthy (a measurement's wait for the player's state)."""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}; errors: {page.evaluate('errors')}")
        page.wait_for_timeout(50)
    return value


def seek_once(browser: Any, origin: str, folder: Path, src: str, target: float) -> dict[str, Any]:
    name = f"page-{time.monotonic_ns()}.html"
    (folder / name).write_text(PAGE.replace("SRC", json.dumps(src)))
    page = browser.new_page()
    try:
        page.goto(f"{origin}/{name}")
        poll(page, "window.firstFrame !== null", 60, "the first frame")
        # held: 4 s or more buffered ahead and no fragment in flight, so hls.js asks for nothing
        # more and the server makes nothing until the seek
        poll(page, "media.paused && loading === 0 && ahead() >= 4", 60, "hls.js to fill its buffer")
        holds = f"loads.find(l => l.start <= {target} && {target} < l.start + l.duration)"
        if page.evaluate(holds):
            raise RuntimeError(f"the segment at {target} s was loaded before the seek: not a cold seek")
        shown = page.evaluate(f"seek({target})")
        errors = page.evaluate("errors")
        if any(e["fatal"] for e in errors):
            raise RuntimeError(f"hls.js failed: {errors}")
        # with streaming, the frame may be shown before its fragment has all arrived
        seeked = poll(page, holds, 60, "the seek's fragment to be loaded")
        loads = page.evaluate("loads")
        return {
            "first_frame_ms": shown["ms"],
            "media_time": shown["mediaTime"],
            "fragment_first_byte_ms": seeked["first_ms"],
            "fragment_loaded_ms": seeked["end_ms"],
            "fragments_loaded": [load["start"] for load in loads],
            "errors": len(errors),
        }
    finally:
        page.close()


def browser_rounds(servers: dict[str, Server], src: Path, rounds: int, target: float, tmp: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from livetx.media.scheduling import drop_realtime

    folder = tmp / "pages"
    folder.mkdir()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    with page_server(folder) as origin, sync_playwright() as playwright:
        drop_realtime()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"])
        try:
            for n in range(rounds):
                for mode in MODES if n % 2 == 0 else reversed(MODES):
                    server = servers[mode]
                    key = fresh_title(server, src, f"seek-{mode}-{n}.mp4")
                    runs[mode].append(seek_once(browser, origin, folder, master_url(server, key, "default"), target))
                    log(f"seek, stream {mode}: {runs[mode][-1]}")
        finally:
            browser.close()
    medians = {mode: statistics.median(r["first_frame_ms"] for r in runs[mode]) for mode in MODES}
    fragment = {
        mode: {k: statistics.median(r[k] for r in runs[mode]) for k in ("fragment_first_byte_ms", "fragment_loaded_ms")} for mode in MODES
    }
    return {
        "seek_s": target,
        "runs": runs,
        "median_ms": medians,
        "on_over_off": medians["on"] / medians["off"],
        "fragment_median_ms": fragment,
    }


# ---- the run -------------------------------------------------------------------------------


def warm_up(server: Server, src: Path) -> None:
    """Start the server's workers (a first segment of a title not measured)."""
    key = fresh_title(server, src, "warm.mp4")
    timed_get(segments(master_url(server, key, "default"))[0][0])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    spec = SampleSpec(seconds=args.seconds, width=1920, height=1080)
    with tempfile.TemporaryDirectory(prefix="livetx-streamed-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        src = tmp / "source.mp4"
        log(f"writing a {args.seconds:g} s 1920x1080 source")
        write_sample(src, spec)
        log("starting the servers")
        servers = {}
        for mode in MODES:
            home, media = tmp / f"home-{mode}", tmp / f"media-{mode}"
            home.mkdir()
            media.mkdir()
            env = {**QUIET, "LIVETX_TRANSCODE_STREAM": "true" if mode == "on" else "false"}
            servers[mode] = stack.enter_context(launch_server(home, media, 1, None, **env))
            warm_up(servers[mode], src)
        results: dict[str, Any] = {}
        if args.segments:
            results["segments"] = segment_rounds(servers, src, args.seconds, args.rounds, tmp)
        if args.browser:
            results["seek"] = browser_rounds(servers, src, args.rounds, args.seek, tmp)
        return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"cold segments of a {results['media_s']:.0f} s 1920x1080 source to 720p, medians of {results['rounds']} "
        f"(load average {results['machine']['load_before']:.2f} before, {results['machine']['load_after']:.2f} after)",
        "",
        f"{'segment':<26}{'stream':>7}{'TTFB s':>9}{'TTLB s':>9}{'ffmpeg s':>10}{'TTFB/CLI':>10}{'TTLB/CLI':>10}",
    ]
    for rendition, row in results.get("segments", {}).items():
        start, duration = row["window_s"]
        label = f"{rendition} {duration:g} s at {start:g} s"
        for mode in MODES:
            m = row[mode]
            lines.append(
                f"{label:<26}{mode:>7}{m['ttfb_s']:>9.3f}{m['ttlb_s']:>9.3f}{row['ffmpeg_s']:>10.3f}"
                f"{m['ttfb_over_ffmpeg']:>10.2f}{m['ttlb_over_ffmpeg']:>10.2f}"
            )
    if seek := results.get("seek"):
        on, off = seek["median_ms"]["on"], seek["median_ms"]["off"]
        lines += [
            "",
            f"hls.js (progressive) cold seek to {seek['seek_s']:g} s, to the first frame there: "
            f"stream on {on:.0f} ms, off {off:.0f} ms, on/off {seek['on_over_off']:.2f}",
        ]
        for mode in MODES:
            f = seek["fragment_median_ms"][mode]
            lines.append(
                f"  its fragment in hls.js, stream {mode}: first bytes {f['fragment_first_byte_ms']:.0f} ms, "
                f"loaded {f['fragment_loaded_ms']:.0f} ms after its request"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic source")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seek", type=float, default=40.0, help="the cold seek's target, s (part 2)")
    parser.add_argument("--no-browser", dest="browser", action="store_false", help="skip part 2 (hls.js in Chromium)")
    parser.add_argument("--no-segments", dest="segments", action="store_false", help="skip part 1 (segments over HTTP)")
    parser.add_argument("--out", type=Path, default=RESULTS / "streamed_segments.json")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs the ffmpeg CLI: apt-get install ffmpeg")
    if args.browser and not (CHROMIUM.exists() and HLS_JS.exists()):
        raise SystemExit(f"part 2 needs Chromium at {CHROMIUM} and hls.js at {HLS_JS} (.ci/run installs it), or --no-browser")
    load_before = os.getloadavg()[0]
    measured = measure(args)
    machine = {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()[0]}
    results = {"machine": machine, "media_s": args.seconds, "rounds": args.rounds, **measured}
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
