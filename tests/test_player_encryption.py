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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import pytest

from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import ROOT, Server, launch_server
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


@pytest.fixture(scope="module")
def encrypted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the shipped config plus the two encrypted profiles."""
    home = tmp_path_factory.mktemp("player-encryption")
    media = home / "media"
    media.mkdir()
    write_sample(media / SOURCE, SPEC)
    config = home / "livetx.toml"
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + profiles_toml(PROFILES, extra=ENCRYPTED))
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


@pytest.fixture(scope="module", params=CASES, ids=[f"{player}-{container}" for player, container in CASES])
def played(request: pytest.FixtureRequest, browser: Any, encrypted_server: Server, masters: dict[str, str]) -> Played:
    player, container = request.param
    out = Played(player, container)
    before = metrics(encrypted_server)
    page, responses = open_page(browser, encrypted_server, player, masters[container])
    try:
        page.goto(f"{encrypted_server.base_url}{PAGE_PREFIX}{player}.html")
        out.failure = reach(page, ROTATES_AT + 0.5, f"{player} to play past the key rotation at {ROTATES_AT} s")
        if out.failure is None:
            out.crossed = state(page)["t"]
            out.engine = page.evaluate(ENGINE)
            responses.seeked = True
            page.evaluate(f"media.currentTime = {SEEK}; start()")
            out.failure = reach(page, SEEK + 0.5, f"{player} to play on after a seek to {SEEK} s")
            if out.failure is None:
                out.after_seek = state(page)["t"]
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
