"""Real playback: Debian's Chromium (driven by Playwright, never `playwright install`) plays a
stream from the real server with hls.js (installed from npm into a git-ignored folder by
.ci/run). hls.js is forced: Chromium also claims native HLS. Only 127.0.0.1 is reached: the
page's hls.js URL is answered from the local copy, and every other outside request is refused.
The local copy is the pinned version (.ci/run installs it), so the pages' Subresource Integrity
and Content-Security-Policy hold as they do in production.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import time
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
from PIL import Image

from livetx.media.sample import read_index
from livetx.settings import PlayerSettings
from tests.conftest import Server, Source
from tests.multitrack import TRACKS, MultiTrackSpec, write_multitrack
from tests.player_pages import chromium
from tests.support import CHROMIUM, HLS_JS

THUMB_BORDER = 2  # px: the demo page's seek-bar thumbnail's border (web/pages/demo.html #thumb)


@pytest.fixture(scope="module")
def browser() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    if not HLS_JS.exists():
        pytest.skip(f"no hls.js at {HLS_JS} (npm install --prefix var/test-hlsjs hls.js@<pinned version>; .ci/run does)")
    digest = "sha384-" + base64.b64encode(hashlib.sha384(HLS_JS.read_bytes()).digest()).decode()
    assert digest == PlayerSettings.hls_js_integrity, f"{HLS_JS} is not the pinned {PlayerSettings.hls_js_url}: rerun .ci/run"
    with chromium() as browser:
        yield browser


def open_player(browser: Any, server: Server, master_url: str) -> Any:
    page = browser.new_page()

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.endswith("/hls.min.js"):
            # as jsDelivr answers: crossorigin="anonymous" (for its integrity check) needs CORS
            request_route.fulfill(path=str(HLS_JS), content_type="application/javascript", headers={"Access-Control-Allow-Origin": "*"})
        elif urlsplit(url).hostname in ("127.0.0.1", "localhost"):  # loopback only; localhost is another origin
            request_route.continue_()
        else:
            request_route.abort()

    page.route("**/*", route)
    page.goto(f"{server.base_url}/player?src={quote(master_url, safe='')}")
    return page


def wait_for(page: Any, expression: str, timeout: float) -> None:
    """page.wait_for_function without eval: the pages' CSP (no 'unsafe-eval') refuses the
    predicate Playwright would build inside the page, so the condition is polled from here."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"!!({expression})"):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def test_chromium_plays_seeks_and_plays_on(browser: Any, server: Server, sources: dict[str, Source]) -> None:
    src = sources["ts-2997"]
    url = server.cli("url", src.key, "--base-url", server.base_url)
    page = open_player(browser, server, url)
    wait_for(page, "window.livetx && window.livetx.hls", 30)  # hls.js, not native HLS
    wait_for(page, "document.getElementById('video').currentTime > 3", 90)
    duration = page.evaluate("document.getElementById('video').duration")
    assert duration == pytest.approx(src.spec.seconds, abs=0.1)
    target = 0.8 * duration
    page.evaluate(f"document.getElementById('video').currentTime = {target}")
    wait_for(page, f"document.getElementById('video').currentTime > {target + 0.5}", 90)
    quality = page.evaluate(
        "(() => { const q = document.getElementById('video').getVideoPlaybackQuality();"
        " return {dropped: q.droppedVideoFrames, total: q.totalVideoFrames}; })()"
    )
    errors = page.evaluate("window.livetx.errors")
    print(f"hls.js errors: {errors}; frames: {quality}")
    # none at all, not even the non-fatal bufferSeekOverHole that a B-frame delay in the
    # first segment used to cause
    assert not errors, errors
    assert quality["total"] > 0
    page.close()


def test_demo_page_lists_plays_and_colours_the_timeline(browser: Any, server: Server, sources: dict[str, Source]) -> None:
    page = open_player(browser, server, "unused")
    page.goto(f"{server.base_url}/#key={quote(server.api_key, safe='')}")  # the key stays in the fragment
    assert server.api_key not in page.content()
    button = page.get_by_role("button", name=sources["mkv-25-44k"].key)
    button.click()
    wait_for(page, "document.getElementById('video').currentTime > 1", 90)
    wait_for(page, "document.querySelectorAll('.cell.cached').length >= 2", 30)
    rows = page.locator("#timeline .row").count()
    assert rows >= 1
    # the seek bar's preview: hovering over a time shows its storyboard tile, as the page shows it
    spec = sources["mkv-25-44k"].spec
    wait_for(page, "window.livetx.storyboard.cues.length >= 2", 30)
    cue = page.evaluate("window.livetx.storyboard.cues[1]")
    duration = page.evaluate("document.getElementById('video').duration")
    box = page.locator("#scrub").bounding_box()
    page.mouse.move(box["x"] + box["width"] * (cue["start"] + cue["end"]) / 2 / duration, box["y"] + box["height"] / 2)
    wait_for(page, "document.getElementById('thumb').dataset.loaded === '1'", 30)
    with Image.open(io.BytesIO(page.locator("#thumb").screenshot())) as shot:
        tile = shot.convert("L").crop((THUMB_BORDER, THUMB_BORDER, THUMB_BORDER + cue["w"], THUMB_BORDER + cue["h"]))
        shown = read_index(np.asarray(tile.resize((spec.width, spec.height), Image.Resampling.BICUBIC)))
    assert shown == round(cue["start"] * spec.fps), (cue, shown)  # the frame at the cue's start, not the first tile's
    errors = page.evaluate("window.livetx.errors")
    assert not [e for e in errors if e["fatal"]], errors
    page.close()


def test_the_page_policy_keeps_other_origins_out(browser: Any, server: Server) -> None:
    """The CSP makes the browser itself refuse to fetch from an origin that is not allowed
    (`localhost` is another origin than `127.0.0.1`), and to run an injected inline script."""
    page = open_player(browser, server, "/hls/default/none.mp4/master.m3u8")
    wait_for(page, "window.livetx && window.livetx.hls", 30)  # hls.js ran: SRI and CSP let it
    foreign = server.base_url.replace("127.0.0.1", "localhost") + "/healthz"
    # no-cors: without the policy this resolves (an opaque answer), so only the CSP can refuse it
    outcome = page.evaluate(f"fetch({foreign!r}, {{mode: 'no-cors'}}).then(() => 'fetched', () => 'refused')")
    assert outcome == "refused"
    injected = page.evaluate(
        "(() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.append(s); return window.injected === undefined; })()"
    )
    assert injected
    page.close()


def test_the_player_page_offers_every_audio_and_subtitle_track(browser: Any, server: Server) -> None:
    """The page's menus (web/pages/track-menus.js, the demo page's too) list what the master
    offers, and choosing an entry switches hls.js to that track: a multi-track MKV with two
    embedded subtitle tracks and a subtitle file next to it."""
    folder = server.media / "tracks"
    folder.mkdir()
    try:
        write_multitrack(folder / "film.mkv", MultiTrackSpec(seconds=4))
        (folder / "film.de.srt").write_text("1\n00:00:00,500 --> 00:00:01,500\nHallo\n", encoding="utf-8")
        url = server.cli("url", "tracks/film.mkv", "--base-url", server.base_url)
        page = open_player(browser, server, url)
        wait_for(page, "document.getElementById('audio-menu').options.length === 4", 60)
        wait_for(page, "document.getElementById('subtitle-menu').options.length === 4", 30)  # "off" and three
        audio = page.evaluate("[...document.getElementById('audio-menu').options].map(o => o.text)")
        assert [name.split(" (")[0] for name in audio] == ["English", "Français", "Director's commentary", "Deutsch 5.1"]
        assert len(audio) == len(TRACKS)
        subtitles = page.evaluate("[...document.getElementById('subtitle-menu').options].map(o => o.text)")
        assert subtitles[0] == "off" and subtitles[-1].startswith("German")  # the file, after the embedded tracks
        assert page.evaluate("!document.getElementById('audio-menu').parentElement.hidden")
        page.select_option("#audio-menu", "1")
        wait_for(page, "window.livetx.hls.audioTrack === 1", 30)
        page.select_option("#subtitle-menu", "2")
        wait_for(page, "window.livetx.hls.subtitleTrack === 2", 30)
        page.select_option("#subtitle-menu", "-1")
        wait_for(page, "window.livetx.hls.subtitleTrack === -1", 30)
        errors = page.evaluate("window.livetx.errors")
        assert not [e for e in errors if e["fatal"]], errors
        page.close()
    finally:
        shutil.rmtree(folder)
