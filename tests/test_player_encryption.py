"""AES-128 encrypted titles in real players (issue 18): hls.js, Shaka Player and video.js (VHS) in
Chromium, their MSE engines, play an MPEG-TS and an fMP4 title whose every media segment is
encrypted (EXT-X-KEY METHOD=AES-128, IV the media sequence number) with a new content key every
ROTATION segments, fetched from the title's signed key URLs.

One real server for the module, its two titles made before the players start (so the run
measures the players, not the transcoder), one page load per player and container
(tests/player_pages.py): the player plays from the start across the first key rotation, then
from a seek into the last key period. Playwright's response events record what the page
fetched: the segments and each key URL, with its status; the server's metrics count the keys
it served. And once, a page whose key URLs carry a broken signature (the server refuses them
with 403) does not play.

SAMPLE-AES (CMAF 'cbcs', one key per title, `KEYFORMAT="identity"`): the same server has two
more titles whose samples are encrypted, one with the audio muxed into the video segments, one
with a separate audio rendition (its samples encrypted too). Which players play them:

- Shaka Player plays them with no configuration: its HLS parser fetches an identity key's URI
  as the raw key, reads the key id from the init segment's `tenc`, and hands both to the
  browser's ClearKey CDM with scheme cbcs (Chromium's ClearKey decrypts cbcs). Checked from the
  start and after a seek, and that the media really is encrypted: the page's EME `encrypted`
  event carries the init segments' common `pssh`, naming the key id the server derives, and
  Shaka's DRM info says ClearKey, cbcs.
- hls.js does not: SAMPLE-AES with KEYFORMAT identity is its MPEG-TS path (it decrypts TS
  samples itself); on fMP4 it fetches the key, appends the encrypted segments as they are and
  opens no CDM (EME would need KEYFORMAT "org.w3.clearkey", `emeEnabled` and a ClearKey
  licence server). Chromium then waits for a key (`waitingforkey`) at time 0, with no error
  event but a non-fatal stall.
- video.js (VHS) does not: its playlist parser takes any EXT-X-KEY but FairPlay, PlayReady and
  Widevine ones for whole-segment AES, decrypts the segment whole into garbage, and takes the
  failure for a playlist error of its only playlist: it reloads and refetches segment 0 and its
  key without end, with no error event.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import pytest

from livetx.crypto.cbcs import COMMON_SYSTEM_ID
from livetx.crypto.keys import KeyName
from livetx.factories import make_key_source
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import ROOT, Server, app_settings, launch_server
from tests.player_pages import ENGINE, chromium, installed, page_html, serve_page, state
from tests.player_tracks import SEGMENT, profiles_toml, warm
from tests.support import get_url as fetch
from tests.support import samples, wait_until

SOURCE = "clip.mp4"
SPEC = SampleSpec(seconds=12.0, width=320, height=180, fps=Fraction(30), gop=30)
SEGMENT_SECONDS = 2.0  # profiles_toml's windows: six 2 s segments on the 12 s source
ROTATION = 2  # segments per content key: keys 0 (0-4 s), 1 (4-8 s), 2 (8-12 s)
ROTATES_AT = ROTATION * SEGMENT_SECONDS  # where key 1 takes over from key 0
PERIODS = {0, 1, 2}
SEEK = 9.0  # s: into the last key period
PROFILES = {"aests": ("auto", "ts"), "aesfmp4": ("auto", "fmp4")}
ENCRYPTED = f'encryption = "aes-128"\nkey_rotation = {ROTATION}\n'
PLAYERS = ("hls.js", "shaka", "video.js")
CASES = [(player, container) for player in PLAYERS for container in ("ts", "fmp4")]
PLAYBACK_RATE = 2
PAGE_PREFIX = "/__encrypted__/"  # answered by the browser's route, never by the server
TIMEOUT = 30.0  # s for one step of a page (start, rotation, seek)
KEY = re.compile(r"^key-[A-Za-z0-9_]+-[0-9a-f]+-(?P<period>\d+)\.key$")
KEY_SIG = re.compile(r'(URI="key-[^"]*[?&]sig=)[^"&]+')  # an EXT-X-KEY URI's signature
WRONG_SIG = "A" * 43  # a well-formed signature (base64url of 32 bytes) that is not the key URL's
BAD_HTTP_STATUS = 1001  # shaka.util.Error.Code: a request answered with an error status
SERVED = ("livetx_key_requests_total", (("result", "served"),))
LIMITED = ("livetx_key_requests_total", (("result", "limited"),))
REFUSED = ("livetx_http_requests_total", (("method", "GET"), ("route", "hls-key"), ("status", "403")))
SAMPLE_AES = 'encryption = "sample-aes"\n'  # CMAF cbcs, one key for the title (key_rotation 0)
CBCS_PROFILES = {"cbcs": ("auto", "fmp4"), "cbcsaudio": ("all", "fmp4")}  # muxed audio; a separate audio rendition
LAYOUTS = {"muxed": "cbcs", "separate audio": "cbcsaudio"}
CBCS_START = SEGMENT_SECONDS + 0.5  # past the first segment join
# the sample entries of the init segments appended to each kind of SourceBuffer: all encrypted
APPENDED = {"muxed": {("video", "encv"), ("video", "enca")}, "separate audio": {("video", "encv"), ("audio", "enca")}}
# the page's view of EME, installed before the page's scripts: every `encrypted` event's init
# data (hex) and `waitingforkey` (neither bubbles: caught on the way down), whether a CDM is
# attached, and what the decoders decoded (Chromium's byte counters)
EME = """
window.encryptedData = []; window.waitingForKey = 0;
document.addEventListener('encrypted', e => encryptedData.push({type: e.initDataType,
  hex: Array.from(new Uint8Array(e.initData || new ArrayBuffer(0)), b => b.toString(16).padStart(2, '0')).join('')}), true);
document.addEventListener('waitingforkey', () => { waitingForKey += 1; }, true);
window.eme = () => ({encrypted: encryptedData, waiting: waitingForKey, mediaKeys: media.mediaKeys !== null,
  videoBytes: media.webkitVideoDecodedByteCount, audioBytes: media.webkitAudioDecodedByteCount});
window.fetchedTimes = part => performance.getEntriesByType('resource').filter(e => e.name.includes(part)).length;
"""


@pytest.fixture(scope="module")
def encrypted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the shipped config plus the two AES-128 and the two SAMPLE-AES profiles."""
    home = tmp_path_factory.mktemp("player-encryption")
    media = home / "media"
    media.mkdir()
    write_sample(media / SOURCE, SPEC)
    config = home / "livetx.toml"
    profiles = profiles_toml(PROFILES, extra=ENCRYPTED) + profiles_toml(CBCS_PROFILES, extra=SAMPLE_AES)
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + profiles)
    with launch_server(home, media, LIVETX_CONFIG=str(config)) as server:
        yield server


@pytest.fixture(scope="module")
def masters(encrypted_server: Server) -> dict[str, str]:
    """Container -> the signed master URL of its title, every segment made (no key fetched)."""
    out = {}
    for profile, (_, container) in PROFILES.items():
        url = encrypted_server.cli("url", SOURCE, "--profile", profile, "--base-url", encrypted_server.base_url)
        warm(url)
        out[container] = url
    return out


@pytest.fixture(scope="module")
def cbcs_masters(encrypted_server: Server) -> dict[str, str]:
    """Layout -> the signed master URL of its SAMPLE-AES title, every segment made (no key fetched)."""
    out = {}
    for layout, profile in LAYOUTS.items():
        url = encrypted_server.cli("url", SOURCE, "--profile", profile, "--base-url", encrypted_server.base_url)
        warm(url)
        out[layout] = url
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, _, body = fetch(server.base_url + "/metrics")
    assert status == 200, body
    return samples(body.decode())


def file_name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


@dataclass
class Played:
    player: str
    container: str
    engine: str = ""
    crossed: float | None = None  # the time once past the rotation point (None: never got there)
    after_seek: float | None = None  # the time once past SEEK + 0.5 after the seek
    failure: str | None = None  # the step that did not happen
    errors: list[dict[str, Any]] = field(default_factory=list)
    responses: list[tuple[str, int, bool]] = field(default_factory=list)  # (file name, status, after the seek)
    served: float = 0.0  # keys the server counted served during the page
    limited: float = 0.0  # key requests it refused for the rate limit

    def keys(self, after_seek: bool | None = None) -> dict[int, list[int]]:
        """Key period -> the statuses of its key URL's requests (before or after the seek, or all)."""
        out: dict[int, list[int]] = {}
        for name, status, late in self.responses:
            if (match := KEY.match(name)) and after_seek in (None, late):
                out.setdefault(int(match["period"]), []).append(status)
        return out

    def segments(self) -> dict[str, list[int]]:
        """Segment index (or "init") -> the statuses of its requests."""
        out: dict[str, list[int]] = {}
        for name, status, _ in self.responses:
            if match := SEGMENT.match(name):
                out.setdefault(match["n"], []).append(status)
        return out

    def row(self) -> str:
        """The player matrix's row: plays / rotation crossed / seek."""
        plays = "plays" if self.crossed is not None or self.after_seek is not None else "no"
        crossed = f"crossed at t={self.crossed:.2f}" if self.crossed is not None else "not crossed"
        seek = f"seek ok (t={self.after_seek:.2f})" if self.after_seek is not None else "seek failed"
        keys = dict(sorted(self.keys().items()))
        return f"| {self.player} | {self.container} | {plays} | {crossed} | {seek} | keys {keys} | {self.engine} |"


def reach(page: Any, t: float, what: str) -> str | None:
    """Wait until the media time passes `t`; what did not happen when a fatal error came first or
    the time ran out."""
    try:
        wait_until(lambda: page.evaluate(f"media.currentTime > {t} || errors.some(e => e.fatal)"), TIMEOUT, what)
    except AssertionError as exc:
        return str(exc)
    return None if state(page)["t"] > t else f"a fatal error before {what}"


class Responses:
    """What a page fetched: (file name, status, after the seek) per response, in order."""

    def __init__(self, page: Any) -> None:
        self.seen: list[tuple[str, int, bool]] = []
        self.seeked = False  # set at the seek: later responses are marked
        page.on("response", lambda r: self.seen.append((file_name(r.url), r.status, self.seeked)))


def open_page(browser: Any, server: Server, player: str, src: str, loopback: Callable[[Any], None] | None = None) -> tuple[Any, Responses]:
    """The player's page on `src`, not loaded yet, and its responses."""
    page = browser.new_page()
    serve_page(page, server.base_url, PAGE_PREFIX, page_html(player, src, PLAYBACK_RATE), installed(player), loopback=loopback)
    return page, Responses(page)


@dataclass
class Run:
    """A page played from the start past a time, then from a seek to SEEK."""

    engine: str = ""
    first: float | None = None  # the time once past the first target (None: never got there)
    after_seek: float | None = None  # the time once past SEEK + 0.5 after the seek
    failure: str | None = None  # the step that did not happen


def play_and_seek(page: Any, responses: Responses, player: str, past: float, what: str) -> Run:
    """Play the loaded page past `past` (`what` is there), then seek to SEEK and play past it."""
    run = Run()
    run.failure = reach(page, past, f"{player} to play past {what}")
    if run.failure is None:
        run.first = state(page)["t"]
        run.engine = page.evaluate(ENGINE)
        responses.seeked = True
        page.evaluate(f"media.currentTime = {SEEK}; start()")
        run.failure = reach(page, SEEK + 0.5, f"{player} to play on after a seek to {SEEK} s")
        if run.failure is None:
            run.after_seek = state(page)["t"]
    return run


@pytest.fixture(scope="module", params=CASES, ids=[f"{player}-{container}" for player, container in CASES])
def played(request: pytest.FixtureRequest, browser: Any, encrypted_server: Server, masters: dict[str, str]) -> Played:
    player, container = request.param
    out = Played(player, container)
    before = metrics(encrypted_server)
    page, responses = open_page(browser, encrypted_server, player, masters[container])
    try:
        page.goto(f"{encrypted_server.base_url}{PAGE_PREFIX}{player}.html")
        run = play_and_seek(page, responses, player, ROTATES_AT + 0.5, f"the key rotation at {ROTATES_AT} s")
        out.crossed, out.after_seek, out.failure, out.engine = run.first, run.after_seek, run.failure, run.engine
        out.errors = page.evaluate("errors")
    finally:
        page.close()
    out.responses = responses.seen
    after = metrics(encrypted_server)
    out.served = after.get(SERVED, 0.0) - before.get(SERVED, 0.0)
    out.limited = after.get(LIMITED, 0.0) - before.get(LIMITED, 0.0)
    print(f"\n{out.row()} errors {out.errors} failure {out.failure}")
    return out


def test_plays_in_the_players_engine(played: Played) -> None:
    assert played.failure is None, played.failure
    assert played.engine.split()[0] in PLAYERS, played.engine  # MSE, not Chromium's native HLS


def test_plays_from_the_start_across_the_key_rotation(played: Played) -> None:
    """Past the rotation point, having fetched the first two keys before the seek."""
    assert played.crossed is not None and played.crossed > ROTATES_AT, played.row()
    keys = played.keys(after_seek=False)
    assert {0, 1} <= set(keys) and all(s == 200 for p in (0, 1) for s in keys[p]), played.row()


def test_plays_on_after_a_seek_into_the_last_key_period(played: Played) -> None:
    assert played.after_seek is not None and played.after_seek > SEEK + 0.5, played.row()
    assert 200 in played.keys().get(2, []), played.row()  # the last period's key: fetched before or after the seek


def test_fetches_the_segments_and_one_key_url_per_period(played: Played) -> None:
    segments = played.segments()
    wanted = {"0", "1", "2", str(int(SEEK // SEGMENT_SECONDS))} | ({"init"} if played.container == "fmp4" else set())
    assert wanted <= set(segments), segments
    assert all(s == 200 for statuses in segments.values() for s in statuses), segments
    keys = played.keys()
    assert set(keys) == PERIODS and all(s == 200 for statuses in keys.values() for s in statuses), keys


def test_the_server_counts_the_keys_it_served(played: Played) -> None:
    """Every key the page got, the server counted (a request the page closed on may count
    without the page seeing its answer); none was refused for the rate limit."""
    fetched = sum(statuses.count(200) for statuses in played.keys().values())
    assert played.served >= fetched >= len(PERIODS) and played.limited == 0


def test_no_error_event_of_any_kind(played: Played) -> None:
    assert played.errors == []


def test_a_refused_key_url_stops_playback(browser: Any, encrypted_server: Server, masters: dict[str, str]) -> None:
    """Shaka on the TS title, its media playlist answered with every key URI's signature
    broken: the server refuses the key (403), Shaka fails the load (fatal BAD_HTTP_STATUS on
    the key URL), and nothing plays. (Shaka, as it gives up fastest: hls.js reports a fatal
    keyLoadError too, after eight retries, ~10 s. VHS 3.17.5 takes the refused key for a
    playlist error and, the title having one rendition, reloads the playlist and waits, with
    no error event ("Trying again since it is the only playlist"): nothing plays, but no event
    says so, and no bounded wait tells that from slow.)"""

    def break_key_signatures(route: Any) -> None:
        if urlsplit(route.request.url).path.endswith(".m3u8"):
            response = route.fetch()
            route.fulfill(response=response, body=KEY_SIG.sub(rf"\g<1>{WRONG_SIG}", response.text()))
        else:
            route.continue_()

    before = metrics(encrypted_server)
    page, responses = open_page(browser, encrypted_server, "shaka", masters["ts"], loopback=break_key_signatures)
    try:
        page.goto(f"{encrypted_server.base_url}{PAGE_PREFIX}shaka.html")
        wait_until(lambda: page.evaluate("errors.some(e => e.fatal)"), TIMEOUT, "Shaka to give up")
        errors = page.evaluate("errors")
        now = state(page)
        buffered = page.evaluate("ranges()")
    finally:
        page.close()
    after = metrics(encrypted_server)
    keys = [status for name, status, _ in responses.seen if KEY.match(name)]
    print(f"\nrefused keys: {keys}; errors {[(e['source'], e['code']) for e in errors]}; media {now}; buffered {buffered}")
    assert keys and all(status == 403 for status in keys), responses.seen
    assert after.get(REFUSED, 0.0) - before.get(REFUSED, 0.0) == len(keys)
    assert after.get(SERVED, 0.0) == before.get(SERVED, 0.0)
    assert [e["code"] for e in errors if e["fatal"]] == [BAD_HTTP_STATUS], errors
    assert now["t"] == 0 and buffered == [], (now, buffered)


# ---- SAMPLE-AES (cbcs) ----------------------------------------------------------------------

# what the player appends, seen from the page: each SourceBuffer's type and the sample entries
# of the init segments appended to it (encv/enca: encrypted; avc1/mp4a: clear), a name that
# follows "frma" (an encrypted entry's original format) left out
APPENDS = """
window.appended = [];
const addSourceBuffer = MediaSource.prototype.addSourceBuffer;
MediaSource.prototype.addSourceBuffer = function (type) {
  const buffer = addSourceBuffer.call(this, type);
  buffer.entries = {type, entries: []}; appended.push(buffer.entries);
  return buffer;
};
const appendBuffer = SourceBuffer.prototype.appendBuffer;
SourceBuffer.prototype.appendBuffer = function (data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const text = String.fromCharCode.apply(null, bytes.subarray(0, 4096));
  if (this.entries && text.includes('moov'))
    for (const entry of ['encv', 'enca', 'avc1', 'mp4a'])
      for (let at = text.indexOf(entry); at >= 0; at = text.indexOf(entry, at + 4))
        if (text.slice(at - 4, at) !== 'frma') this.entries.entries.push(entry);
  return appendBuffer.call(this, data);
};
"""


def content_key_id(key_url_name: str) -> bytes:
    """The key id (tenc's default_KID) of the content key a key URL names, derived as the server
    derives it, from the tests' master key."""
    kid, version, period = key_url_name.removeprefix("key-").removesuffix(".key").split("-")
    return make_key_source(app_settings()).key(KeyName(kid, version, int(period))).key_id


def common_pssh_kids(init_data: bytes) -> list[bytes]:
    """The key ids of a W3C common `pssh` (version 1), as an `encrypted` event carries it."""
    size, kind, version = struct.unpack_from(">I4sB", init_data)
    assert (size, kind, version) == (len(init_data), b"pssh", 1), init_data.hex()
    assert init_data[12:28] == COMMON_SYSTEM_ID, init_data.hex()
    (count,) = struct.unpack_from(">I", init_data, 28)
    return [init_data[32 + 16 * i : 48 + 16 * i] for i in range(count)]


@dataclass
class Protected:
    """Shaka on a SAMPLE-AES title."""

    layout: str
    run: Run
    errors: list[dict[str, Any]]
    responses: list[tuple[str, int, bool]]
    drm: dict[str, Any]  # Shaka's drmInfo(): the key system and scheme it chose
    eme: dict[str, Any]  # the page's view of EME (`eme()` of the EME script)
    appended: list[dict[str, Any]]  # per SourceBuffer: its type and the sample entries of its init segments
    served: float  # keys the server counted served during the page

    def keys(self) -> dict[str, list[int]]:
        """Key URL file name -> the statuses of its requests."""
        out: dict[str, list[int]] = {}
        for name, status, _ in self.responses:
            if KEY.match(name):
                out.setdefault(name, []).append(status)
        return out

    def row(self) -> str:
        plays = "plays" if self.run.first is not None else "no"
        seek = f"seek ok (t={self.run.after_seek:.2f})" if self.run.after_seek is not None else "seek failed"
        drm = f"{self.drm.get('keySystem')} {self.drm.get('encryptionScheme')}"
        return f"| shaka | cbcs fmp4, {self.layout} | {plays} | {seek} | {drm} | {self.run.engine} |"


@pytest.fixture(scope="module", params=list(LAYOUTS))
def cbcs_played(request: pytest.FixtureRequest, browser: Any, encrypted_server: Server, cbcs_masters: dict[str, str]) -> Protected:
    layout = request.param
    before = metrics(encrypted_server)
    page, responses = open_page(browser, encrypted_server, "shaka", cbcs_masters[layout])
    page.add_init_script(EME + APPENDS)
    try:
        page.goto(f"{encrypted_server.base_url}{PAGE_PREFIX}shaka.html")
        run = play_and_seek(page, responses, "shaka", CBCS_START, f"the first segment join at {SEGMENT_SECONDS} s")
        errors, drm, eme, appended = page.evaluate("[errors, player.drmInfo() || {}, eme(), appended]")
    finally:
        page.close()
    served = metrics(encrypted_server).get(SERVED, 0.0) - before.get(SERVED, 0.0)
    out = Protected(layout, run, errors, responses.seen, drm, eme, appended, served)
    print(f"\n{out.row()} errors {errors} failure {run.failure} appended {appended} keys {out.keys()}")
    return out


def test_shaka_plays_a_cbcs_title_from_the_start_and_after_a_seek(cbcs_played: Protected) -> None:
    run = cbcs_played.run
    assert run.failure is None, run.failure
    assert run.engine.startswith("shaka "), run.engine  # MSE, not Chromium's native HLS
    assert run.first is not None and run.first > CBCS_START, cbcs_played.row()
    assert run.after_seek is not None and run.after_seek > SEEK + 0.5, cbcs_played.row()
    assert cbcs_played.errors == []


def test_shaka_decrypts_it_with_clearkey_cbcs_and_the_key_from_the_key_url(cbcs_played: Protected) -> None:
    """The segments Shaka appended are encrypted (encv/enca sample entries: the audio too), the
    browser's CDM was attached and told the title's key id, and both decoders decoded."""
    drm = cbcs_played.drm
    assert (drm.get("keySystem"), drm.get("encryptionScheme")) == ("org.w3.clearkey", "cbcs"), drm
    appended = {(a["type"].split("/")[0], entry) for a in cbcs_played.appended for entry in a["entries"]}
    assert appended == APPENDED[cbcs_played.layout], cbcs_played.appended  # no clear sample entry anywhere
    eme = cbcs_played.eme
    assert eme["mediaKeys"] and eme["videoBytes"] > 0 and eme["audioBytes"] > 0, eme
    (key_url,) = cbcs_played.keys()  # one key for the title, every rendition's
    pssh = [bytes.fromhex(e["hex"]) for e in eme["encrypted"]]
    assert len(pssh) >= len(cbcs_played.appended) and {e["type"] for e in eme["encrypted"]} == {"cenc"}, eme["encrypted"]
    assert all(common_pssh_kids(data) == [content_key_id(key_url)] for data in pssh)


def test_shaka_fetches_the_titles_one_key_url(cbcs_played: Protected) -> None:
    keys = cbcs_played.keys()
    assert len(keys) == 1 and all(status == 200 for statuses in keys.values() for status in statuses), keys
    match = KEY.match(next(iter(keys)))
    assert match is not None and match["period"] == "0"
    assert cbcs_played.served >= sum(len(statuses) for statuses in keys.values())


@pytest.mark.parametrize("player", ["hls.js", "video.js"])
def test_hlsjs_and_videojs_do_not_play_a_cbcs_title(
    player: str, browser: Any, encrypted_server: Server, cbcs_masters: dict[str, str]
) -> None:
    """hls.js appends the encrypted segments with no CDM: Chromium waits for a key at time 0
    (`waitingforkey`; the only error event hls.js raises is a non-fatal stall). VHS decrypts
    each segment whole as AES-128, cannot read the result, and retries segment 0 and its key
    without end: nothing is appended, and no error event says so."""
    page, responses = open_page(browser, encrypted_server, player, cbcs_masters["muxed"])
    page.add_init_script(EME)
    try:
        page.goto(f"{encrypted_server.base_url}{PAGE_PREFIX}{player}.html")
        if player == "hls.js":
            wait_until(lambda: page.evaluate("waitingForKey > 0 || errors.some(e => e.fatal)"), TIMEOUT, "Chromium to wait for a key")
        else:
            wait_until(lambda: page.evaluate("fetchedTimes('-0.m4s') >= 2"), TIMEOUT, "VHS to retry segment 0")
        errors, eme, now, buffered = page.evaluate("[errors, eme(), {t: media.currentTime}, ranges()]")
    finally:
        page.close()
    keys = [status for name, status, _ in responses.seen if KEY.match(name)]
    key_urls = {name for name, _, _ in responses.seen if KEY.match(name)}
    print(f"\n| {player} | cbcs fmp4, muxed | no | keys {keys} | errors {errors} | buffered {buffered} | eme {eme} |")
    assert keys and all(status == 200 for status in keys)  # the key was had: the player cannot use it
    assert now["t"] == 0 and eme["videoBytes"] == 0 and not eme["mediaKeys"], (now, eme)
    assert not any(e["fatal"] for e in errors), errors
    if player == "hls.js":  # the encrypted segments are in the buffer; the browser saw their key id
        (key_url,) = key_urls
        assert buffered and eme["encrypted"], (buffered, eme)
        assert all(common_pssh_kids(bytes.fromhex(e["hex"])) == [content_key_id(key_url)] for e in eme["encrypted"])
    else:
        assert buffered == [] and eme["encrypted"] == [], (buffered, eme)
