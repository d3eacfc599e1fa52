"""'cbcs'-protected fMP4 renditions play in Chromium through MSE and EME Clear Key.

livetx's transcoder makes an init segment and two 1 s media segments of an H.264+AAC and of an
H.264-only rendition; they are protected with `livetx.crypto.cbcs` and appended by a static
page to one SourceBuffer of a video element whose MediaKeys are Chromium's Clear Key CDM. The
CDM learns the key id from the `pssh` of the init segment (the `encrypted` event's 'cenc' init
data) and the page answers its license request with the key. With the key, the video must play
past 1 s (into the second segment) with no error from the element, the SourceBuffer or the key
session; with a wrong key, Chromium must fail to decode (so it did decrypt, and what it decoded
was the picture). Frames cannot be read back: Chromium draws no video of an element holding
MediaKeys onto a canvas. The page is answered by Playwright's routing at a loopback origin (a
secure context, which EME needs), so no network is reached.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import pytest

from livetx.crypto.cbcs import protect_fragment, protect_init, tracks_of
from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import transcode_segment
from tests.player_pages import chromium
from tests.support import wait_until

KEY = bytes.fromhex("5f2e8d1c4b7a09e6d3c2b1a0f9e8d7c6")
WRONG_KEY = bytes.fromhex("5f2e8d1c4b7a09e6d3c2b1a0f9e8d7c7")
KID = bytes.fromhex("9a8b7c6d5e4f30211203f4e5d6c7b8a9")
IV = bytes.fromhex("c0ffee00112233445566778899aabbcc")
ORIGIN = "http://127.0.0.1:9"  # answered by the page's route alone; loopback is a secure context
WIDTH, HEIGHT, FPS = 320, 180, Fraction(30)
RENDITIONS = {"h264+aac": True, "h264": False}  # name: with audio
PLAYED = 1.2  # seconds of playback that reach into the second segment

PAGE = """<!doctype html><meta charset="utf-8"><video muted playsinline></video><script>
const MIME = MIME_TYPE, KEYS = KEY_TABLE, PARTS = ['init.mp4', '0.m4s', '1.m4s'];
window.errors = []; window.requests = [];
const media = document.querySelector('video');
const fail = source => e => errors.push({source, message: String((e && (e.message || e.type)) || e)});
media.addEventListener('error', () => errors.push({source: 'video', code: media.error.code, message: media.error.message}));
media.addEventListener('encrypted', e => {
  const session = media.mediaKeys.createSession();
  session.addEventListener('message', m => {
    const request = JSON.parse(new TextDecoder().decode(m.message));
    requests.push({type: e.initDataType, kids: request.kids});
    const keys = request.kids.map(kid => ({kty: 'oct', kid, k: KEYS[kid]}));
    session.update(new TextEncoder().encode(JSON.stringify({keys}))).catch(fail('session.update'));
  });
  session.generateRequest(e.initDataType, e.initData).catch(fail('generateRequest'));
});
const appended = buffer => new Promise(resolve => buffer.addEventListener('updateend', resolve, {once: true}));
(async () => {
  const [video, audio] = MIME.match(/codecs="(.*)"/)[1].split(',');  // a capability names one stream's codec
  const config = {initDataTypes: ['cenc'], videoCapabilities: [{contentType: `video/mp4; codecs="${video}"`, encryptionScheme: 'cbcs'}]};
  if (audio) config.audioCapabilities = [{contentType: `audio/mp4; codecs="${audio}"`, encryptionScheme: 'cbcs'}];
  const access = await navigator.requestMediaKeySystemAccess('org.w3.clearkey', [config]);
  await media.setMediaKeys(await access.createMediaKeys());
  const source = new MediaSource();
  media.src = URL.createObjectURL(source);
  await new Promise(resolve => source.addEventListener('sourceopen', resolve, {once: true}));
  const buffer = source.addSourceBuffer(MIME);
  buffer.addEventListener('error', fail('SourceBuffer'));
  for (const part of PARTS) {
    buffer.appendBuffer(await (await fetch(part)).arrayBuffer());
    await appended(buffer);
  }
  source.endOfStream();
  await media.play();
})().catch(fail('setup'));
</script>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, bytes], str]]:
    """By rendition: the page's parts ('init.mp4', '0.m4s', '1.m4s'), protected, and their MIME type."""
    path = tmp_path_factory.mktemp("clearkey") / "source.mp4"
    write_sample(path, SampleSpec(seconds=2.0, width=WIDTH, height=HEIGHT, fps=FPS, gop=30))
    out = {}
    for name, audio in RENDITIONS.items():
        job = SegmentJob(
            str(path), Fraction(0), Fraction(0), Fraction(1), VideoSpec("h264", WIDTH, HEIGHT, FPS), AudioSpec(48000, 2) if audio else None,
            video_stream=0, audio_stream=1 if audio else None, container="fmp4",
        )  # fmt: skip
        init = transcode_segment(replace(job, init=True)).data
        tracks = tracks_of(init)
        parts = {"init.mp4": protect_init(init, KID, IV)}
        for index in range(2):
            window = replace(job, start=Fraction(index), stop=Fraction(index + 1))
            parts[f"{index}.m4s"] = protect_fragment(transcode_segment(window).data, KEY, IV, tracks)
        sps = next(track for track in tracks.values() if track.is_video).parameter_sets[0]
        out[name] = parts, f'video/mp4; codecs="avc1.{sps[1:4].hex()}{",mp4a.40.2" if audio else ""}"'
    return out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def play(browser: Any, parts: dict[str, bytes], mime: str, key: bytes) -> dict[str, Any]:
    """The page's record once it has played past PLAYED seconds or met an error."""
    html = PAGE.replace("MIME_TYPE", json.dumps(mime)).replace("KEY_TABLE", json.dumps({b64url(KID): b64url(key)}))
    page = browser.new_page()

    def route(request_route: Any) -> None:
        url = request_route.request.url
        name = urlsplit(url).path.lstrip("/")
        if url.startswith(ORIGIN) and name == "page.html":
            request_route.fulfill(body=html, content_type="text/html")
        elif url.startswith(ORIGIN) and name in parts:
            request_route.fulfill(body=parts[name], content_type="video/mp4")
        else:
            request_route.abort()

    page.route("**/*", route)
    try:
        page.goto(f"{ORIGIN}/page.html")
        wait_until(lambda: page.evaluate(f"errors.length > 0 || media.currentTime > {PLAYED}"), 60, f"playback past {PLAYED} s or an error")
        record: dict[str, Any] = page.evaluate("({errors, requests, time: media.currentTime})")
        return record
    finally:
        page.close()


@pytest.mark.parametrize("name", RENDITIONS)
def test_a_protected_rendition_plays_with_the_key(browser: Any, protected: dict[str, tuple[dict[str, bytes], str]], name: str) -> None:
    record = play(browser, *protected[name], KEY)
    assert record["errors"] == []
    assert record["time"] > PLAYED
    assert [(request["type"], request["kids"]) for request in record["requests"]] == [("cenc", [b64url(KID)])]  # from the init's pssh


@pytest.mark.parametrize("name", RENDITIONS)
def test_with_a_wrong_key_chromium_cannot_decode_it(browser: Any, protected: dict[str, tuple[dict[str, bytes], str]], name: str) -> None:
    record = play(browser, *protected[name], WRONG_KEY)
    decode_errors = [error for error in record["errors"] if error["source"] == "video" and error["code"] == 3]  # MEDIA_ERR_DECODE
    assert decode_errors, record
