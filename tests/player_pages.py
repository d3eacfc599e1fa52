"""The browser side of the player tests (tests/test_players.py, tests/test_player_tracks.py,
tests/test_player_encryption.py, tests/test_browser.py): Chromium as they launch it, a page
whose player script and HTML are answered by Playwright at the server's origin (so the page is
same-origin with the server and only 127.0.0.1 is reached), and the player matrix's pages.

Each page of `PAGES` plays `SRC` in the player's MSE engine (hls.js, Shaka, video.js with VHS's
overrideNative, dash.js; never Chromium's native HLS: `ENGINE` tells which played), and records
every error event the player and the video element raise in `window.errors`, each with `fatal`
(the player gave up: hls.js's `fatal`, Shaka's CRITICAL severity, any video.js or video element
error).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from livetx.media.scheduling import drop_realtime
from tests.support import CHROMIUM, SCRIPTS, wait_until

COMMON = """
window.errors = [];
window.media = document.querySelector('video');
media.addEventListener('error', () => errors.push({source: 'video element', fatal: true, code: media.error && media.error.code,
                                                     message: media.error && media.error.message}));
window.ranges = () => { const b = media.buffered, r = []; for (let i = 0; i < b.length; i++) r.push([b.start(i), b.end(i)]); return r; };
window.start = () => { media.defaultPlaybackRate = media.playbackRate = RATE;
                       return media.play().catch(e => errors.push({source: 'play()', fatal: true, message: String(e)})); };
"""
PAGES = {
    "hls.js": """
const hls = new Hls(); window.player = hls;
hls.on(Hls.Events.ERROR, (_, d) => errors.push({source: 'hls.js', details: d.details, fatal: d.fatal,
                                                  reason: String(d.reason || d.error || '')}));
hls.on(Hls.Events.MANIFEST_PARSED, () => start());
hls.loadSource(SRC); hls.attachMedia(media);
""",
    "shaka": """
shaka.polyfill.installAll();
const player = new shaka.Player(); window.player = player;
player.addEventListener('error', e => errors.push({source: 'shaka', code: e.detail.code, severity: e.detail.severity,
                                                   fatal: e.detail.severity === shaka.util.Error.Severity.CRITICAL,
                                                   data: JSON.stringify(e.detail.data)}));
player.attach(media).then(() => player.load(SRC)).then(() => start())
  .catch(e => errors.push({source: 'shaka load', fatal: true, code: e.code, message: String(e)}));
""",
    "video.js": """
const player = videojs(media, {html5: {vhs: {overrideNative: true}, nativeAudioTracks: false, nativeVideoTracks: false}});
window.player = player;
window.media = player.tech({IWillNotUseThisInPlugins: true}).el();
player.on('error', () => errors.push({source: 'video.js', fatal: true, code: player.error() && player.error().code,
                                       message: player.error() && player.error().message}));
player.src({src: SRC, type: 'application/x-mpegURL'});
player.ready(() => start());
""",
    "dash.js": """
const player = dashjs.MediaPlayer().create(); window.player = player;
const events = dashjs.MediaPlayer.events;
// the segments are muxed (codecs "avc1...,mp4a.40.2"); dash.js 5.2.1 hands MediaCapabilities that
// codecs list unquoted, which Chromium cannot parse ("Failed to parse video contentType"), and drops
// every Representation: its MSE isTypeSupported check takes the quoted list
player.updateSettings({streaming: {capabilities: {useMediaCapabilitiesApi: false}}});
player.on(events.ERROR, e => errors.push({source: 'dash.js', fatal: true, code: e.error && e.error.code,
                                           message: e.error && e.error.message}));
player.on(events.PLAYBACK_ERROR, e => errors.push({source: 'dash.js playback', fatal: true, message: String(e.error)}));
player.on(events.STREAM_INITIALIZED, () => start());
player.initialize(media, SRC, false);
""",
}
ENGINE = (  # what plays: the player's MSE engine, never Chromium's native HLS
    "(() => { if (window.shaka) return player.getLoadMode() === shaka.Player.LoadMode.MEDIA_SOURCE"
    " ? 'shaka ' + shaka.Player.version : 'native: load mode ' + player.getLoadMode();"
    " if (!media.src.startsWith('blob:')) return 'native: ' + media.src;"
    " if (window.dashjs) return 'dash.js ' + player.getVersion();"
    " return window.Hls ? 'hls.js ' + Hls.version"
    " : 'video.js ' + videojs.VERSION + ' / VHS ' + videojs.VhsHandler.version()['@videojs/http-streaming']; })()"
)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never `playwright install`), autoplay allowed;
    skips the test when either is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        drop_realtime()  # an AV1 encode in this process left it real-time: the browser would inherit it
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"])
        try:
            yield browser
        finally:
            browser.close()


def installed(player: str) -> Path:
    """The player's script; skips the test when it is not installed."""
    script = SCRIPTS[player]
    if not script.exists():
        pytest.skip(f"{player} is not installed at {script} (.ci/run installs it with npm)")
    return script


def page_html(player: str, src: str, rate: float) -> str:
    """The page of `player` (PAGES) playing `src` at `rate` once started."""
    setup = COMMON.replace("RATE", str(rate))
    return (
        f'<!doctype html><meta charset="utf-8"><video id="video" muted playsinline></video>'
        f'<script src="{SCRIPTS[player].name}"></script><script>const SRC = {json.dumps(src)};{setup}{PAGES[player]}</script>'
    )


def serve_page(
    page: Any,
    origin: str,
    prefix: str,
    html: str,
    script: Path,
    files: Mapping[str, tuple[str, str]] | None = None,
    loopback: Callable[[Any], None] | None = None,
) -> None:
    """Answer `page`'s requests: under `origin` + `prefix` (never the server's), the page (any
    `.html`), a file of `files` (suffix -> (body, content type)) or else the player `script`;
    other requests to 127.0.0.1 go to the server (through `loopback`, which may rewrite them);
    any other host is refused."""

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(origin + prefix):
            path = urlsplit(url).path
            if path.endswith(".html"):
                request_route.fulfill(body=html, content_type="text/html")
            elif (found := next((f for suffix, f in (files or {}).items() if path.endswith(suffix)), None)) is not None:
                request_route.fulfill(body=found[0], content_type=found[1])
            else:
                request_route.fulfill(path=str(script), content_type="application/javascript")
        elif urlsplit(url).hostname == "127.0.0.1":
            (loopback or (lambda r: r.continue_()))(request_route)
        else:
            request_route.abort()

    page.route("**/*", route)


def state(page: Any) -> dict[str, Any]:
    """The video element's time, end, duration and paused flag."""
    return page.evaluate(  # type: ignore[no-any-return]
        "({t: media.currentTime, ended: media.ended, duration: media.duration, paused: media.paused})"
    )


PLAY_PREFIX = "/__players__/"  # answered by the browser's route, never by the server


def play_through(browser: Any, base_url: str, player: str, src: str, rate: float, timeout: float = 90) -> dict[str, Any]:
    """`player` plays `src` to its end in a new page: the error events, what played it (ENGINE),
    the picture's size and the frames shown."""
    script = installed(player)
    page = browser.new_page()
    serve_page(page, base_url, PLAY_PREFIX, page_html(player, src, rate), script)
    try:
        page.goto(f"{base_url}{PLAY_PREFIX}{player}.html")
        wait_until(lambda: state(page)["ended"], timeout, f"{player} to play {src} to the end")
        return {
            "errors": page.evaluate("errors"),
            "engine": page.evaluate(ENGINE),
            "size": page.evaluate("[media.videoWidth, media.videoHeight]"),
            "frames": page.evaluate("media.getVideoPlaybackQuality().totalVideoFrames"),
        }
    finally:
        page.close()
