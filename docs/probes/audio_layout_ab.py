"""Issue 16 layout experiment: which audio layout do hls.js, Shaka and video.js handle best?

(1) separate: video-only variants + one EXT-X-MEDIA rendition per audio track, each with a URI
    (what livetx serves for `audio = "all"`);
(2) muxed default: the variant keeps the default track muxed inside its video segments, its
    EXT-X-MEDIA has no URI, the other tracks are renditions with URIs.

Subtitles are off (`subtitles = "none"`): audio only. Layout (2) is built from the server's own
segments: the variant of an `audio = "muxed"` title (its first audio track, the 440 Hz English
default, inside the video segments) and the other tracks' renditions of the `audio = "all"` title
(same segment windows), in a hand-written master the test page serves with absolute signed URLs.
Both layouts in TS and fMP4; per player one page load: start on the default, switch to each
other track while playing, then back to the default (tests/player_tracks.py: reported active,
fetched segments, their tone by FFT, and the tone a WebAudio analyser hears).

Run from the worktree (Chromium and the players as for tests/test_players.py; about 7 min, most
of it switches that time out); arguments keep only the cases whose "player container layout"
contains each of them (`hls.js "(2)"`):
    /work/main/.venv/bin/python docs/probes/audio_layout_ab.py > docs/probes/audio_layout_ab.out
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import m3u8  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.conftest import launch_server  # noqa: E402
from tests.multitrack import MultiTrackSpec, write_multitrack  # noqa: E402
from tests.player_tracks import Run, Session, profiles_toml, tracks_of, warm  # noqa: E402
from tests.support import CHROMIUM  # noqa: E402
from tests.support import get_url as fetch  # noqa: E402

PROFILES = {"allts": ("all", "ts"), "allfmp4": ("all", "fmp4"), "muxts": ("muxed", "ts"), "muxfmp4": ("muxed", "fmp4")}
SOURCE = "tracks.mkv"
PLAYERS = ("hls.js", "shaka", "video.js")
ORDER = (0, 1, 2, 3, 0)
URI = re.compile(r'URI="([^"]*)"')


def muxed_default_master(separate_url: str, separate: str, muxed_url: str, muxed: str) -> str:
    """Layout (2): the separate title's EXT-X-MEDIA lines (URIs made absolute; the DEFAULT one
    loses its URI) over the muxed title's variant."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for line in separate.splitlines():
        if line.startswith("#EXT-X-MEDIA:"):
            if "DEFAULT=YES" in line:
                lines.append(URI.sub("", line).replace("#EXT-X-MEDIA:,", "#EXT-X-MEDIA:"))
            else:
                lines.append(URI.sub(lambda m: f'URI="{urljoin(separate_url, m[1])}"', line))
    muxed_lines = muxed.splitlines()
    for i, line in enumerate(muxed_lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            lines += [line + ',AUDIO="aac"', urljoin(muxed_url, muxed_lines[i + 1])]
    return "\n".join(lines) + "\n"


def row(layout: str, container: str, session: Session) -> str:
    """One line of the table: the result, how many switches held, the first that did not (and
    why), the error events."""
    errors = f"{len(session.fatal)} / {len(session.errors) - len(session.fatal)}"
    if session.failure:
        fatal = "; ".join(f"{e['source']} {e.get('code') or e.get('details') or e.get('message')}" for e in session.fatal)
        return f"| {session.player} | {container} | {layout} | no start | 0/{len(ORDER)} | {fatal} | {errors} |"
    good = [p.ok for p in session.phases]
    bad = next((p for p in session.phases if not p.ok), None)
    why = ""
    if bad is not None:
        why = f"{bad.track.name}: {bad.failure or 'stray or wrong segments'}"
        if bad.errors:
            why += f"; events {[e.get('details') or e.get('code') for e in bad.errors]}"
    status = "pass" if all(good) and not session.fatal else "FAIL"
    return f"| {session.player} | {container} | {layout} | {status} | {sum(good)}/{len(good)} | {why} | {errors} |"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        media = home / "media"
        media.mkdir()
        write_multitrack(media / SOURCE, MultiTrackSpec(seconds=12.0))
        config = home / "livetx.toml"
        config.write_text((ROOT / "conf" / "livetx.toml").read_text() + profiles_toml(PROFILES, subtitles="none"))
        rows = []
        with launch_server(home, media, LIVETX_CONFIG=str(config)) as server, sync_playwright() as playwright:
            urls = {p: server.cli("url", SOURCE, "--profile", p, "--base-url", server.base_url) for p in PROFILES}
            for url in urls.values():
                warm(url)
            texts = {profile: fetch(url)[2].decode() for profile, url in urls.items()}
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"])
            for container in ("ts", "fmp4"):
                separate, muxed = f"all{container}", f"mux{container}"
                layouts = {
                    "(1) separate": (urls[separate], None),
                    "(2) muxed default": (
                        f"{server.base_url}/__audio__/master.m3u8",
                        muxed_default_master(urls[separate], texts[separate], urls[muxed], texts[muxed]),
                    ),
                }
                for layout, (src, text) in layouts.items():
                    if text is not None:
                        print(f"== hand-written master, {container}:\n{text}")
                    tracks = tracks_of(m3u8.loads(text if text is not None else texts[separate], uri=src))
                    for player in PLAYERS:
                        if not all(word in f"{player} {container} {layout}" for word in sys.argv[1:]):
                            continue
                        began = time.monotonic()
                        run = Run(browser, server.base_url, player, src, text)
                        try:
                            session = run.play(tracks, ORDER)
                        finally:
                            run.close()
                        print(f"== {player} {container} {layout}: {session.engine} ({time.monotonic() - began:.1f} s)")
                        print(f"   listed: {[(t['label'], t['language']) for t in session.listed]}")
                        for phase in session.phases:
                            print("   " + phase.summary())
                        if session.errors:
                            print(f"   errors: {session.errors}")
                        rows.append(row(layout, container, session))
            browser.close()
        print("\n| player | container | layout | result | phases held | first that did not | error events fatal / non-fatal |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
