"""Audio track switching and subtitle cues in real players (issue 16), shared by tests/test_player_tracks.py and
docs/probes/audio_layout_ab.py.

One page load per player: it starts the title, then switches to each audio track in turn
while playing, and each switch is one `Phase` record of what the player reported (the active
track), what it fetched (Playwright's request events: the audio-bearing segment URLs after the
switch) and what it played (a WebAudio AnalyserNode on a MediaElementSource: headless Chromium
feeds it, so the tone that actually plays is measured, not only the tone in the bytes). The
fetched segments are fetched again here and their tone measured by FFT.

A track whose segments are the variant's own (`prefix` None) is a default track muxed into the
video segments, for the layout experiment: its EXT-X-MEDIA has no URI.

Then, on the same page, `check_cues` shows each subtitle track in turn and records its cues as
the player exposes them (`CueCheck`), against the start each cue's text names.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import av
import m3u8
import numpy as np

from tests.checker import decode_audio, open_fmp4, open_joined
from tests.multitrack import TRACKS
from tests.player_pages import ENGINE, serve_page
from tests.support import SCRIPTS
from tests.support import get_url as fetch

PAGE_PREFIX = "/__audio__/"  # answered by the browser's route, never by the server
FFT_SIZE = 8192  # the analyser's: 5.4 Hz bins at 44.1 kHz, well apart for the tracks' tones
HEARD_RUN = 5  # analyser reads (100 ms apart, the media playing) on the tone that make it "heard"
PHASE_TIMEOUT = 30.0  # s for one switch to be reported, fetched and heard
SEGMENT = re.compile(r"^(?P<name>[a-z][a-z0-9]*)-[0-9a-f]+-(?P<n>\d+|init)\.(ts|m4s|mp4)$")
QUIET = 0.3  # s with no WebVTT request in flight before a track's active cues are checked
ROOM = 4.0  # s of media a phase may need; with less left, the page seeks back before the switch

# Playback rate 1: the analyser hears real time; 12 s of media hold the five phases.
COMMON = f"""
window.errors = [];
window.heard = [];
window.media = document.querySelector('video');
media.addEventListener('error', () => errors.push({{source: 'video element', fatal: true, code: media.error && media.error.code,
                                                     message: media.error && media.error.message}}));
window.ranges = () => {{ const b = media.buffered, r = []; for (let i = 0; i < b.length; i++) r.push([b.start(i), b.end(i)]); return r; }};
// the text tracks, their cues and active cues: the video element's (hls.js and Shaka render
// natively); video.js replaces textTracks() with its own (emulated under VHS's overrideNative)
window.textTracks = () => Array.from(media.textTracks);
window.subs = () => textTracks().filter(t => t.kind === 'subtitles' || t.kind === 'captions').map(t => ({{
  label: t.label, language: t.language, kind: t.kind, mode: t.mode,
  cues: t.cues ? Array.from(t.cues).map(c => [c.startTime, c.endTime, c.text]) : [],
  active: t.activeCues ? Array.from(t.activeCues).map(c => c.text) : []}}));
// seek (paused) and settle: the seek done and two frames drawn, so every player has updated its active cues
window.seekTo = t => new Promise(resolve => {{
  media.addEventListener('seeked', () => requestAnimationFrame(() => requestAnimationFrame(resolve)), {{once: true}});
  media.currentTime = t;
}});
window.start = () => media.play().catch(e => errors.push({{source: 'play()', fatal: true, message: String(e)}}));
window.listen = () => {{
  const ctx = new AudioContext(), analyser = ctx.createAnalyser();
  analyser.fftSize = {FFT_SIZE}; analyser.smoothingTimeConstant = 0;
  ctx.createMediaElementSource(media).connect(analyser); analyser.connect(ctx.destination);
  const bins = new Float32Array(analyser.frequencyBinCount);
  window.binHz = ctx.sampleRate / analyser.fftSize;
  setInterval(() => {{
    analyser.getFloatFrequencyData(bins);
    let best = 0; for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    heard.push([media.currentTime, best * binHz, bins[best], media.paused]);
  }}, 100);
  ctx.resume();
}};
"""
# each page defines tracks() (the player's audio track list: label, language, active),
# pick(label) (switch to the audio track of that label), pickSub(label) (show only the subtitle
# track of that label) and noSubs(), and calls start() and listen()
PAGES = {
    "hls.js": """
const hls = new Hls(); window.player = hls;
hls.on(Hls.Events.ERROR, (_, d) => errors.push({source: 'hls.js', details: d.details, fatal: d.fatal,
                                                  reason: String(d.reason || d.error || ''),
                                                  frag: d.frag ? d.frag.type + ' ' + d.frag.sn + ' @' + d.frag.start : null}));
hls.on(Hls.Events.MANIFEST_PARSED, () => start());
hls.loadSource(SRC); hls.attachMedia(media);
window.tracks = () => hls.audioTracks.map((t, i) => ({label: t.name, language: t.lang, active: i === hls.audioTrack}));
window.pick = label => { hls.audioTrack = hls.audioTracks.findIndex(t => t.name === label); };
window.pickSub = label => { hls.subtitleTrack = hls.subtitleTracks.findIndex(t => t.name === label); };
window.noSubs = () => { hls.subtitleTrack = -1; };
listen();
""",
    "shaka": """
shaka.polyfill.installAll();
const player = new shaka.Player(); window.player = player;
player.addEventListener('error', e => errors.push({source: 'shaka', code: e.detail.code, fatal: e.detail.severity === 2,
                                                   data: JSON.stringify(e.detail.data)}));
player.attach(media).then(() => player.load(SRC)).then(() => start())
  .catch(e => errors.push({source: 'shaka load', fatal: true, code: e.code, message: String(e)}));
window.tracks = () => player.getAudioTracks().map(t => ({label: t.label, language: t.language, active: t.active}));
window.pick = label => player.selectAudioTrack(player.getAudioTracks().find(t => t.label === label));
window.pickSub = label => player.selectTextTrack(player.getTextTracks().find(t => t.label === label));
window.noSubs = () => player.selectTextTrack(null);
listen();
""",
    "video.js": """
// useForcedSubtitles: VHS leaves FORCED=YES subtitle renditions out by default (Safari does not list
// them either), and their cue timing is tested here too
const player = videojs(media, {html5: {vhs: {overrideNative: true, useForcedSubtitles: true}, nativeAudioTracks: false,
                                       nativeVideoTracks: false}});
window.player = player;
window.media = player.tech({IWillNotUseThisInPlugins: true}).el();
player.on('error', () => errors.push({source: 'video.js', fatal: true, code: player.error() && player.error().code,
                                       message: player.error() && player.error().message}));
player.src({src: SRC, type: 'application/x-mpegURL'});
player.ready(() => start());
window.tracks = () => Array.from({length: player.audioTracks().length}, (_, i) => player.audioTracks()[i])
  .map(t => ({label: t.label, language: t.language, active: t.enabled}));
window.pick = label => { const list = player.audioTracks();
                         for (let i = 0; i < list.length; i++) if (list[i].label === label) list[i].enabled = true; };
window.textTracks = () => Array.from({length: player.textTracks().length}, (_, i) => player.textTracks()[i]);
const subtitleTracks = () => textTracks().filter(t => t.kind === 'subtitles' || t.kind === 'captions');
window.pickSub = label => subtitleTracks().forEach(t => { t.mode = t.label === label ? 'showing' : 'disabled'; });
window.noSubs = () => subtitleTracks().forEach(t => { t.mode = 'disabled'; });
listen();
""",
}


@dataclass(frozen=True)
class Track:
    name: str  # NAME: the label the player lists
    language: str  # LANGUAGE
    tone_hz: float
    prefix: str | None  # its rendition's segment names start `<prefix>-` (a2); None: muxed in the variant's segments


def tracks_of(master: m3u8.M3U8) -> list[Track]:
    """The master's audio renditions, with the tone each plays (`a<stream index>`: TRACKS[index - 1])."""
    out = []
    for media in master.media:
        if media.type != "AUDIO":
            continue
        prefix = urlsplit(media.uri).path.rsplit("/", 1)[-1].removesuffix(".m3u8") if media.uri else None
        index = int(prefix[1:]) if prefix else 1  # a URI-less rendition: the muxed default, the source's first track
        out.append(Track(media.name, media.language, TRACKS[index - 1].tone_hz, prefix))
    return out


@dataclass
class Phase:
    track: Track
    active: str | None = None  # the label the player reported active
    requested: list[str] = field(default_factory=list)  # audio-bearing segment URLs fetched after the switch
    stray: list[str] = field(default_factory=list)  # of those, other tracks' after this one's first
    heard: list[float] = field(default_factory=list)  # the analyser's peaks (Hz) over the run that matched
    segment_tones: dict[str, float] = field(default_factory=dict)  # segment name -> FFT peak of its audio (Hz)
    failure: str | None = None  # what did not happen within PHASE_TIMEOUT
    errors: list[dict[str, Any]] = field(default_factory=list)  # error events (fatal or not) from the switch to the next

    @property
    def ok(self) -> bool:
        tone = self.track.tone_hz
        return (
            self.failure is None
            and not self.stray
            and bool(self.segment_tones)
            and all(abs(hz - tone) < 2 for hz in self.segment_tones.values())
        )

    def summary(self) -> str:
        tones = sorted({round(hz) for hz in self.segment_tones.values()})
        heard = sorted({round(hz) for hz in self.heard})
        parts = [f"{self.track.name}: active={self.active!r} fetched={len(self.requested)} tones={tones} heard={heard}"]
        if self.stray:
            parts.append(f"stray={[urlsplit(u).path.rsplit('/', 1)[-1] for u in self.stray]}")
        if self.errors:
            parts.append(f"errors={[e.get('details') or e.get('code') or e.get('message') for e in self.errors]}")
        if self.failure:
            parts.append(f"FAILED: {self.failure}")
        return " ".join(parts)


CUE_TEXT = re.compile(r"t=(\d+\.\d{3})")  # a test cue's text: its intended start, title time


@dataclass
class CueCheck:
    """One subtitle track's cues as a player exposes them, against the starts their texts carry."""

    label: str
    when: str  # "after a seek to 7 s" or "from the start"
    expected: list[float]  # the starts that must be exposed by now
    exposed: list[tuple[float, float, str]] = field(default_factory=list)  # (startTime, endTime, text), all cues of the track
    early: list[float] = field(default_factory=list)  # cues already active one frame before their start
    late: list[float] = field(default_factory=list)  # cues not active one frame after it
    timed_out: bool = False  # not every expected cue was exposed within PHASE_TIMEOUT

    def intended(self, text: str) -> float | None:
        match = CUE_TEXT.search(text)
        return float(match[1]) if match else None

    @property
    def missing(self) -> list[float]:
        have = {self.intended(text) for _, _, text in self.exposed}
        return [t for t in self.expected if t not in have]

    def off(self, frame: float) -> list[tuple[float | None, float]]:
        """(intended, exposed start) of every cue more than a frame off, or of no test cue."""
        return [
            (intended, start)
            for start, _, text in self.exposed
            if (intended := self.intended(text)) is None or abs(start - intended) > frame + 1e-6
        ]

    @property
    def duplicates(self) -> list[str]:
        texts = [text for _, _, text in self.exposed]
        return sorted({text for text in texts if texts.count(text) > 1})

    def summary(self, frame: float) -> str:
        worst = max((abs(start - (self.intended(text) or 0)) for start, _, text in self.exposed), default=0.0)
        parts = [f"{self.label} {self.when}: {len(self.exposed)} cues, worst start error {worst * 1000:.1f} ms"]
        for name, value in (
            ("missing", self.missing),
            ("off", self.off(frame)),
            ("duplicated", self.duplicates),
            ("active early", self.early),
            ("not active", self.late),
        ):
            if value:
                parts.append(f"{name} {value}")
        return "; ".join(parts)


@dataclass
class Session:
    player: str
    engine: str = ""
    listed: list[dict[str, Any]] = field(default_factory=list)  # the player's track list after loading
    phases: list[Phase] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None  # the page never started
    subtitles: list[dict[str, Any]] = field(default_factory=list)  # the player's subtitle tracks
    cues: list[CueCheck] = field(default_factory=list)

    @property
    def fatal(self) -> list[dict[str, Any]]:
        return [e for e in self.errors if e.get("fatal")]


def page_html(player: str, src: str) -> str:
    return (
        f'<!doctype html><meta charset="utf-8"><video id="video" playsinline></video>'
        f'<script src="{SCRIPTS[player].name}"></script><script>const SRC = {json.dumps(src)};{COMMON}{PAGES[player]}</script>'
    )


def segment_name(url: str) -> str | None:
    """The rendition name of a segment URL (`a2`, `v`), None for anything else."""
    match = SEGMENT.match(urlsplit(url).path.rsplit("/", 1)[-1])
    return match["name"] if match else None


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def segment_tone(init: bytes | None, data: bytes) -> float:
    """The FFT peak of a segment's audio (0 when it has none)."""
    with open_fmp4(init, [data]) if init is not None else open_joined([data]) as container:
        if not container.streams.audio:
            return 0.0
        audio = decode_audio(container)
    return dominant_hz(audio.samples, audio.sample_rate) if len(audio.samples) else 0.0


class Run:
    """One player page on one master; `play(tracks)` runs the phases."""

    def __init__(self, browser: Any, origin: str, player: str, src: str, master_text: str | None = None) -> None:
        self.origin, self.player = origin, player
        self.requests: list[str] = []
        self.page = browser.new_page()
        files = {".m3u8": (master_text, "application/vnd.apple.mpegurl")} if master_text is not None else None
        serve_page(self.page, origin, PAGE_PREFIX, page_html(player, src), SCRIPTS[player], files)
        self.page.on("request", self._requested)
        self.page.on("requestfinished", self._done)
        self.page.on("requestfailed", self._done)
        self.vtt_in_flight = 0
        self.vtt_done = 0.0  # time.monotonic() when the last WebVTT request ended

    def _requested(self, request: Any) -> None:
        self.requests.append(request.url)
        self.vtt_in_flight += urlsplit(request.url).path.endswith(".vtt")

    def _done(self, request: Any) -> None:
        if urlsplit(request.url).path.endswith(".vtt"):
            self.vtt_in_flight -= 1
            self.vtt_done = time.monotonic()

    def close(self) -> None:
        self.page.close()

    def state(self) -> dict[str, Any]:
        return self.page.evaluate("({t: media.currentTime, duration: media.duration, paused: media.paused})")  # type: ignore[no-any-return]

    def play(self, tracks: Sequence[Track], order: Sequence[int]) -> Session:
        """Load the page, check it plays tracks[order[0]] (the default: no switch), then switch
        to each of order[1:] in turn."""
        session = Session(self.player)
        self.page.goto(f"{self.origin}{PAGE_PREFIX}{self.player}.html")
        deadline = time.monotonic() + 60
        while not self._playing():
            if time.monotonic() > deadline or self._fatal():
                session.failure = f"did not start: {self.page.evaluate('errors')}"
                session.errors = self.page.evaluate("errors")
                return session
            self.page.wait_for_timeout(100)
        session.engine = self.page.evaluate(ENGINE)
        session.listed = self.page.evaluate("tracks()")
        marks, error_marks = [0], [0]
        for step, index in enumerate(order):
            track = tracks[index]
            if step:
                self._make_room()
                marks.append(len(self.requests))
                error_marks.append(self.page.evaluate("errors.length"))
            heard_from = self.page.evaluate("heard.length")
            if step:
                self.page.evaluate(f"pick({json.dumps(track.name)})")
            session.phases.append(self._phase(track, marks[-1], heard_from))
        marks.append(len(self.requests))
        session.errors = self.page.evaluate("errors")
        error_marks.append(len(session.errors))
        for i, phase in enumerate(session.phases):
            self._judge(phase, self.requests[marks[i] : marks[i + 1]])
            phase.errors = session.errors[error_marks[i] : error_marks[i + 1]]
        return session

    def check_cues(self, session: Session, tracks: Mapping[str, Sequence[float]], seek: float, frame: float) -> None:
        """After `play`: paused, subtitles off, seek to `seek`, then show each subtitle track in
        turn (label -> its cue starts) and check the cues from `seek` on: their starts, and each
        inactive one frame before its start and active one frame after. Then seek to 0 and do
        the same for the cues before `seek`: a track first shown after the seek loads its
        segments from there on first."""
        self.page.evaluate("media.pause(); noSubs()")
        session.subtitles = [{k: t[k] for k in ("label", "language", "kind")} for t in self.page.evaluate("subs()")]
        for label, starts in tracks.items():
            session.cues.append(self._cues(label, seek, [t for t in starts if t >= seek], f"after a seek to {seek} s", frame))
        for label, starts in tracks.items():
            session.cues.append(self._cues(label, 0.0, [t for t in starts if t < seek], "from the start", frame))
        session.errors = self.page.evaluate("errors")

    def _track(self, label: str) -> dict[str, Any] | None:
        return next((t for t in self.page.evaluate("subs()") if t["label"] == label), None)

    def _cues(self, label: str, origin: float, expected: list[float], when: str, frame: float) -> CueCheck:
        """Show the track at `origin` (the checks of the track before moved the time on), playing
        until its cues are there (VHS loads a track shown a second time only while playing)."""
        check = CueCheck(label, when, expected)
        self.page.evaluate(f"seekTo({origin})")
        self.page.evaluate(f"pickSub({json.dumps(label)}); start()")
        picked = time.monotonic()
        deadline = picked + PHASE_TIMEOUT
        playing = True
        while True:
            track = self._track(label)
            check.exposed = [(start, end, text) for start, end, text in track["cues"]] if track else []
            if playing and not check.missing:
                self.page.evaluate("media.pause()")
                playing = False
            # settled: no WebVTT request in flight or made for QUIET, so no cue is being replaced
            # (a player that re-appends a segment it had swaps the cue objects; a cue added to a
            # paused video is not active until the time next moves)
            if not playing and not self.vtt_in_flight and time.monotonic() - max(picked, self.vtt_done) >= QUIET:
                break
            if time.monotonic() > deadline:
                self.page.evaluate("media.pause()")
                check.timed_out = True
                return check
            self.page.wait_for_timeout(100)
        for start in expected:
            text = f"t={start:.3f}"
            self.page.evaluate(f"seekTo({start - frame})")
            if text in (self._track(label) or {"active": []})["active"]:
                check.early.append(start)
            self.page.evaluate(f"seekTo({start + frame})")
            if text not in (self._track(label) or {"active": []})["active"]:
                check.late.append(start)
        return check

    def _playing(self) -> bool:
        return bool(self.page.evaluate("media.currentTime > 0.3 && !media.paused"))

    def _fatal(self) -> bool:
        return bool(self.page.evaluate("errors.some(e => e.fatal)"))

    def _make_room(self) -> None:
        """Seek back near the start when less than ROOM of media is left for the next phase."""
        now = self.state()
        if now["t"] < now["duration"] - ROOM:
            return
        self.page.evaluate("media.currentTime = 0.5; start()")
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not (0.6 < (now := self.state())["t"] < now["duration"] - ROOM):
            assert time.monotonic() < deadline, f"{self.player} did not play on after a seek back: {now}"
            self.page.wait_for_timeout(100)

    def _phase(self, track: Track, mark: int, heard_from: int) -> Phase:
        """Wait until the player reports `track` active, has fetched its segments (a rendition
        of its own) and the analyser hears its tone for HEARD_RUN reads in a row, the media playing."""
        phase = Phase(track)
        deadline = time.monotonic() + PHASE_TIMEOUT
        while True:
            active = [t["label"] for t in self.page.evaluate("tracks()") if t["active"]]
            phase.active = active[0] if len(active) == 1 else repr(active)
            fetched = track.prefix is None or any(segment_name(u) == track.prefix for u in self.requests[mark:])
            run = self._heard_run(track.tone_hz, heard_from)
            if run is not None:
                phase.heard = run
            if phase.active == track.name and fetched and run is not None:
                return phase
            if time.monotonic() > deadline or self._fatal():
                checks = (("reported active", phase.active == track.name), ("fetched", fetched), ("heard", run is not None))
                missing = [what for what, done in checks if not done]
                tail = sorted({round(hz) for _, hz, _, _ in self.page.evaluate(f"heard.slice({heard_from}).slice(-10)")})
                media = self.page.evaluate(
                    "`t=${media.currentTime.toFixed(2)} ${media.paused ? 'paused' : 'playing'} readyState=${media.readyState}"
                    " buffered=${JSON.stringify(ranges().map(r => r.map(x => +x.toFixed(2))))}`"
                )
                phase.failure = f"not {', '.join(missing)} (heard lately {tail} Hz; media {media})"
                return phase
            self.page.wait_for_timeout(100)

    def _heard_run(self, tone_hz: float, heard_from: int) -> list[float] | None:
        reads = self.page.evaluate(f"heard.slice({heard_from})")
        tolerance = 1.5 * self.page.evaluate("binHz")
        run: list[float] = []
        last_t = -1.0
        for t, hz, db, paused in reads:
            if abs(hz - tone_hz) <= tolerance and db > -60 and not paused and t > last_t:
                run.append(hz)
                if len(run) >= HEARD_RUN:
                    return run
            else:
                run = []
            last_t = t
        return None

    def _judge(self, phase: Phase, requests: list[str]) -> None:
        """The phase's audio-bearing segment requests: after the first of its own track (the
        switch may leave the old track's requests in flight), every one is its own; each of its
        own holds its tone."""
        own_name = phase.track.prefix or "v"
        audio = [u for u in requests if (name := segment_name(u)) is not None and (name.startswith("a") or name == own_name)]
        if phase.track.prefix is not None:
            first = next((i for i, u in enumerate(audio) if segment_name(u) == own_name), len(audio))
            audio = audio[first:]
        phase.requested = audio
        phase.stray = [u for u in audio if segment_name(u) != own_name]
        for url in audio:
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            if segment_name(url) != own_name or name.split("-")[-1].startswith("init"):
                continue
            init_url = self._init_url(own_name)
            init = fetch(init_url)[2] if init_url is not None else None
            status, _, data = fetch(url)
            assert status == 200, (url, status)
            phase.segment_tones[name] = segment_tone(init, data)

    def _init_url(self, name: str) -> str | None:
        for url in self.requests:
            if segment_name(url) == name and urlsplit(url).path.endswith("-init.mp4"):
                return url
        return None


def profiles_toml(profiles: Mapping[str, tuple[str, str]], subtitles: str = "all", extra: str = "") -> str:
    """Config tables for profiles named `name` -> (audio, container): one cheap rendition each,
    2 s segments (six on the 12 s source), the same windows in every profile; `extra`: more
    title parameters of each profile (TOML lines)."""
    return "".join(
        f"""
[profiles.{name}]
st = 5000
initial_segments = [2000, 2000, 2000, 2000, 2000]
initd = 0
audio = "{audio}"
subtitles = "{subtitles}"
{extra}
[profiles.{name}.renditions.v]
preset = "ultrafast"
container = "{container}"
ab = 128000
"""
        for name, (audio, container) in profiles.items()
    )


def warm(master_url: str) -> m3u8.M3U8:
    """Fetch every playlist and segment of the title, so players never wait for a transcode;
    the master, parsed."""
    master = m3u8.loads(fetch(master_url)[2].decode(), uri=master_url)
    for playlist in [*master.playlists, *(m for m in master.media if m.uri)]:
        media = m3u8.loads(fetch(playlist.absolute_uri)[2].decode(), uri=playlist.absolute_uri)
        for uri in [*(m.absolute_uri for m in media.segment_map), *(s.absolute_uri for s in media.segments)]:
            assert fetch(uri)[0] == 200, uri
    return master


def ffmpeg_streams(master_url: str) -> list[tuple[str, dict[str, str]]]:
    """FFmpeg's HLS demuxer on the master: each stream's type and metadata."""
    with av.open(master_url, options={"protocol_whitelist": "http,tcp"}) as container:
        return [(stream.type, dict(stream.metadata)) for stream in container.streams]
