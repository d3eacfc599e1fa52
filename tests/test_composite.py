"""Composite titles (livetx/composite.py) through the real server: three clips of the format
matrix (MP4 30 fps 48 kHz 16:9, Matroska 25 fps 44.1 kHz 4:3, MPEG-TS 29.97 fps 48 kHz 4:3)
joined into one title, its segments made in shuffled order, then joined and decoded: every
output frame shows the source frame its clip's timestamps say (4:3 clips pillarboxed, not
stretched), the audio runs on without a gap, an overlap or a click at the joins, and the
EXTINFs are the clips' real lengths."""

from __future__ import annotations

import base64
import itertools
import json
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import urljoin

import av
import m3u8
import numpy as np
import pytest

from livetx.media.probe import probe
from livetx.media.sample import read_index
from tests.checker import TS_CLOCK, AudioTrack, check_tone, decode_audio, open_fmp4, open_joined, reference_indexes
from tests.conftest import Server, Source
from tests.player_pages import ENGINE, chromium, installed, page_html, serve_page, state
from tests.support import get_url, wait_until

CLIPS = (("mp4-30", 500, 4000), ("mkv-25-44k", 1000, 3000), ("ts-2997", 0, 0))  # (source, ss ms, t ms)
OUT_FPS = Fraction(30)  # the align clip's (clip 0)
OUT_SIZE = (320, 180)
TONE_HZ = 440.0
MAX_SLOPE = 0.5 * 2 * np.pi * TONE_HZ / 44100  # the tone's steepest step between samples


def _post(server: Server, path: str, data: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        server.base_url + path, data=data, headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_json(server: Server, body: Any) -> tuple[int, dict[str, Any]]:
    return _post(server, "/api/v1/composites", json.dumps(body).encode(), "application/json")


def post_oss(server: Server, key: str, process: str) -> tuple[int, dict[str, Any]]:
    form = urllib.parse.urlencode({"x-oss-process": process}).encode()
    return _post(server, f"/{key}?x-oss-process", form, "application/x-www-form-urlencoded")


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def request_body(sources: dict[str, Source], **extra: Any) -> dict[str, Any]:
    clips = [{"URI": f"oss://local/{sources[name].key}", "StartTime": ss / 1000, "Duration": t / 1000} for name, ss, t in CLIPS]
    return {"Clips": clips, **extra}


@dataclass
class Made:
    answer: dict[str, Any]
    media: m3u8.M3U8
    init: bytes | None
    segments: list[bytes]  # in play order (fetched shuffled)


def make(server: Server, sources: dict[str, Source], **extra: Any) -> Made:
    status, answer = post_json(server, request_body(sources, **extra))
    assert status == 200, answer
    url = answer["MasterURL"]
    master = m3u8.loads(get_url(url)[2].decode(), uri=url)
    [variant] = master.playlists
    media = m3u8.loads(get_url(variant.absolute_uri)[2].decode(), uri=variant.absolute_uri)
    order = list(range(len(media.segments)))
    random.Random(19).shuffle(order)  # made in any order, they still join
    got: dict[int, bytes] = {}
    for i in order:
        status, _, data = get_url(media.segments[i].absolute_uri)
        assert status == 200
        got[i] = data
    init = None
    if media.segment_map:
        init = get_url(urljoin(variant.absolute_uri, media.segment_map[0].uri))[2]
    return Made(answer, media, init, [got[i] for i in range(len(order))])


@pytest.fixture(scope="module")
def ts(server: Server, sources: dict[str, Source]) -> Made:
    return make(server, sources)


@pytest.fixture(scope="module")
def fmp4(server: Server, sources: dict[str, Source]) -> Made:
    return make(server, sources, Container="fmp4")


def _open(made: Made) -> av.container.InputContainer:
    return open_joined(made.segments) if made.init is None else open_fmp4(made.init, made.segments)


def _offset(made: Made) -> Fraction:
    return Fraction(7, 5) if made.init is None else Fraction(0)  # TS_OFFSET in MPEG-TS, none in fMP4


def test_extinf_are_the_clips_real_lengths(ts: Made, sources: dict[str, Source]) -> None:
    clips = ts.answer["Clips"]
    assert [c["Key"] for c in clips] == [sources[name].key for name, _, _ in CLIPS]
    # each clip is whole output frames; the last runs to its source's end (5 s of 29.97 fps)
    assert [c["Duration"] for c in clips] == [4.0, 3.0, pytest.approx(150 / 30, abs=0.034)]
    assert all(c["Start"] * 30 == pytest.approx(round(c["Start"] * 30), abs=1e-4) for c in clips)  # whole frames
    durations = [Fraction(s.duration).limit_denominator(1000) for s in ts.media.segments]
    assert sum(s.duration for s in ts.media.segments) == pytest.approx(ts.answer["Duration"], abs=1e-3)
    starts = [sum(durations[:i]) for i in range(len(durations))]
    for clip in clips:  # every clip boundary is a segment boundary
        assert any(abs(float(s) - clip["Start"]) < 1e-3 for s in starts), (clip, starts)
    assert ts.answer["Resolution"] == "320x180" and ts.answer["FrameRate"] == "30"


def _clip_geometry(made: Made, sources: dict[str, Source]) -> list[tuple[Source, Fraction, int, int]]:
    """(source, origin, first output frame, end output frame) of each clip."""
    out = []
    for (name, ss, _), clip in zip(CLIPS, made.answer["Clips"], strict=True):
        info = probe(str(sources[name].path))
        assert info.video is not None and info.video.start is not None
        start = Fraction(clip["Start"]).limit_denominator(1000)
        first, end = round(start * OUT_FPS), round((start + Fraction(clip["Duration"]).limit_denominator(1000)) * OUT_FPS)
        out.append((sources[name], info.video.start + Fraction(ss, 1000) - start, first, end))
    return out


def _shown(frame: av.VideoFrame, source: Source) -> int:
    """The index a frame shows, its clip's picture cut out of the black bars and scaled back."""
    width, height = source.spec.width, source.spec.height
    pic_h = OUT_SIZE[1]
    pic_w = min(OUT_SIZE[0], round(width * pic_h / height / 2) * 2)
    dx = ((OUT_SIZE[0] - pic_w) // 4) * 2
    luma = frame.to_ndarray(format="gray")[:, dx : dx + pic_w]
    if (pic_w, pic_h) != (width, height):
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(luma), format="gray")
        luma = picture.reformat(width=width, height=height).to_ndarray()
    return read_index(luma)


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_frames_are_exact_across_the_joins(container: str, request: pytest.FixtureRequest, sources: dict[str, Source]) -> None:
    made: Made = request.getfixturevalue(container)
    geometry = _clip_geometry(made, sources)
    total = geometry[-1][3]
    expected = {}
    for source, origin, first, end in geometry:
        reference = reference_indexes(str(source.path), origin, OUT_FPS, end)
        expected |= {k: (source, reference[k]) for k in range(first, end)}
    seen: dict[int, int] = {}
    shift: Fraction | None = None  # FFmpeg's mp4 demuxer shows fMP4 video its reorder delay late
    with _open(made) as joined:
        for frame in joined.decode(joined.streams.video[0]):
            assert (frame.width, frame.height) == OUT_SIZE
            time = frame.pts * frame.time_base - _offset(made)
            shift = time if shift is None and made.init is not None else shift or Fraction(0)
            k = round((time - shift) * OUT_FPS)
            assert k not in seen, f"output frame {k} twice"
            source, _ = expected[k]
            seen[k] = _shown(frame, source)
    assert sorted(seen) == list(range(total))  # no frame missing
    assert [seen[k] for k in range(total)] == [expected[k][1] for k in range(total)]


@dataclass
class Join:
    at: float  # title seconds
    silent: int  # samples of silence around it
    steepest: float  # largest step between neighbouring samples near it
    error: float  # largest difference from the tones as designed: each clip's, faded, the frame of the join silent


FADE = 240  # samples: 5 ms at 48 kHz (media/transcode.py FADE_SECONDS)
NEAR = 3072  # samples either side of a join looked at


def _tone_fit(samples: np.ndarray, first: int, rate: int) -> tuple[float, float]:
    """(sin, cos) amplitudes of the tone in `samples`, which start at title sample `first`."""
    w = 2 * np.pi * TONE_HZ * np.arange(first, first + len(samples)) / rate
    (a, c), *_ = np.linalg.lstsq(np.stack([np.sin(w), np.cos(w)], axis=1), samples, rcond=None)
    return float(a), float(c)


def _joins(track: AudioTrack, made: Made) -> list[Join]:
    """Each join measured against the design (livetx/media/transcode.py `_AudioWindow`): clip A
    plays up to AAC frame floor(T) fading out over its last 5 ms, clip B from the frame after it
    fading in; the tone of each is fitted away from the join."""
    rate = track.sample_rate
    zero = round((Fraction(track.first_pts, TS_CLOCK) - _offset(made)) * rate)  # title sample of samples[0]
    bounds = [round(Fraction(c["Start"]) * rate) for c in made.answer["Clips"]] + [len(track.samples) + zero]
    fits = [_tone_fit(track.samples[a - zero + NEAR : b - zero - NEAR], a + NEAR, rate) for a, b in itertools.pairwise(bounds)]
    out = []
    for i, at in enumerate(bounds[1:-1]):
        n = np.arange(at - NEAR, at + NEAR)
        near = track.samples[n - zero]
        hi, lo = at // 1024 * 1024, (at // 1024 + 1) * 1024  # frame floor(T) is silent
        w = 2 * np.pi * TONE_HZ * n / rate
        (a1, c1), (a2, c2) = fits[i], fits[i + 1]
        fade_out = np.clip((hi - n) / FADE, 0, 1)
        fade_in = np.clip((n - lo + 1) / FADE, 0, 1)
        design = (a1 * np.sin(w) + c1 * np.cos(w)) * fade_out + (a2 * np.sin(w) + c2 * np.cos(w)) * fade_in
        quiet = np.abs(near) < 1e-3
        run = best = 0
        for q in quiet:
            run = run + 1 if q else 0
            best = max(best, run)
        out.append(Join(at / rate, best, float(np.max(np.abs(np.diff(near)))), float(np.max(np.abs(near - design)))))
    return out


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_audio_has_no_gap_overlap_or_click_at_the_joins(container: str, request: pytest.FixtureRequest) -> None:
    made: Made = request.getfixturevalue(container)
    with _open(made) as joined:
        channels = joined.streams.audio[0].channels
        track = decode_audio(joined)
    rate = track.sample_rate
    assert (rate, channels) == (48000, 2)  # the align clip's
    step = 1024 * TS_CLOCK // rate
    assert all(b - a == step for a, b in zip(track.pts, track.pts[1:], strict=False)), "AAC frames not back to back"
    assert abs(len(track.samples) - made.answer["Duration"] * rate) <= 1024
    for join in _joins(track, made):
        # one silent AAC frame (the one the join falls in), and the two 5 ms fades
        assert 1024 <= join.silent <= 1024 + 2 * 240, join
        assert join.steepest < 1.5 * MAX_SLOPE, join  # a click is a step far steeper than the tone's
        # measured: 0.002 at the 4 s join; 0.011 at the 7 s one, whose clip starts at its source's first
        # sample (the source's own first AAC frame has no overlap partner); 0.5 with the straddling
        # frame's packet left to the earlier clip
        assert join.error < 0.02, join
    # inside each clip the tone keeps its phase and level across its segment joins
    starts = [Fraction(c["Start"]).limit_denominator(1000) for c in made.answer["Clips"]] + [Fraction(made.answer["Duration"])]
    first = Fraction(track.first_pts, TS_CLOCK) - _offset(made)
    for lo, hi in itertools.pairwise(starts):
        a, b = round((lo - first) * rate) + 2048, round((hi - first) * rate) - 2048
        part = AudioTrack(track.samples[a:b], track.first_pts + a * TS_CLOCK // rate, [], rate)
        report = check_tone(part, TONE_HZ, relative=True)
        assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report


def test_same_request_same_composite_and_oss_form(ts: Made, server: Server, sources: dict[str, Source]) -> None:
    status, again = post_json(server, request_body(sources))
    assert status == 200 and again["CompositeId"] == ts.answer["CompositeId"]
    # OSS video/concat on the middle clip's object, without sys/saveas: the same composite
    first, middle, last = CLIPS
    process = f"video/concat,ss_{middle[1]},t_{middle[2]}/pre,o_{b64(sources[first[0]].key)},ss_{first[1]},t_{first[2]}"
    process += f"/sur,o_{b64(sources[last[0]].key)},align_0"
    status, oss = post_oss(server, sources[middle[0]].key, process)
    assert status == 400 and oss["error"]["parameter"] == "sur[0].align"  # align is the action's
    process = f"video/concat,ss_{middle[1]},t_{middle[2]},align_0/pre,o_{b64(sources[first[0]].key)},ss_{first[1]},t_{first[2]}"
    process += f"/sur,o_{b64(sources[last[0]].key)}"
    status, oss = post_oss(server, sources[middle[0]].key, process)
    assert status == 200, oss
    assert oss["CompositeId"] == ts.answer["CompositeId"] and oss["MasterURL"].split("?")[0] == ts.answer["MasterURL"].split("?")[0]


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        pytest.param(lambda b: b.update(Clips=b["Clips"] * 4), "Clips", id="12 clips"),
        pytest.param(lambda b: b["Clips"][1].update(URI="oss://local/missing.mp4"), "Clips[1].URI", id="unknown key"),
        pytest.param(lambda b: b["Clips"][2].update(StartTime=60), "Clips[2].StartTime", id="ss past the end"),
        pytest.param(lambda b: b.update(Align=3), "Align", id="align past the clips"),
        pytest.param(lambda b: b.update(Format="mp4"), "Format", id="a file's container"),
        pytest.param(lambda b: b["Clips"][0].update(Start=1), "Clips[0].Start", id="unknown clip field"),
        pytest.param(lambda b: b["Clips"][0].update(URI="oss://local/a%2F..%2Fb.mp4", Duration=-1), "Clips[0].Duration", id="negative"),
        pytest.param(lambda b: b.update(Video={"TranscodeVideo": {"FrameRate": 120}}), "Video.TranscodeVideo.FrameRate", id="over limits"),
    ],
)
def test_bad_json_requests_name_the_field(server: Server, sources: dict[str, Source], change: Any, parameter: str) -> None:
    body = request_body(sources)
    change(body)
    status, answer = post_json(server, body)
    assert status == 400, answer
    assert answer["error"]["parameter"] == parameter, answer


@pytest.mark.parametrize(
    ("process", "parameter"),
    [
        pytest.param("video/concat/pre,o_!!notbase64", "pre[0].o", id="bad base64"),
        pytest.param("video/concat" + "/sur,o_{}" * 11, "sur[10]", id="12 clips"),
        pytest.param("video/concat/sur,o_{},ss_60000", "sur[0].ss", id="ss past the end"),
        pytest.param("video/concat,f_mp4", "f", id="a file's container"),
    ],
)
def test_bad_oss_requests_name_the_field(server: Server, sources: dict[str, Source], process: str, parameter: str) -> None:
    status, answer = post_oss(server, sources["mp4-30"].key, process.replace("{}", b64(sources["ts-2997"].key)))
    assert status == 400, answer
    assert answer["error"]["parameter"] == parameter, answer


PAGE_PREFIX = "/__players__/"  # answered by the browser's route, never by the server


def test_hlsjs_plays_the_composite_across_its_joins(ts: Made, server: Server) -> None:
    """hls.js in Chromium plays the composite (its segments made already) from the start to the
    end, over both joins, with no error event of any kind."""
    script = installed("hls.js")
    with chromium() as browser:
        page = browser.new_page()
        serve_page(page, server.base_url, PAGE_PREFIX, page_html("hls.js", ts.answer["MasterURL"], 2), script)
        try:
            page.goto(f"{server.base_url}{PAGE_PREFIX}hls.js.html")
            wait_until(lambda: state(page)["ended"], 60, "hls.js to play the composite to its end")
            end = state(page)
            engine = page.evaluate(ENGINE)
            errors = page.evaluate("errors")
            buffered = page.evaluate("ranges()")
        finally:
            page.close()
    assert engine.split()[0] == "hls.js", engine
    assert end["duration"] == pytest.approx(ts.answer["Duration"], abs=0.05) and end["t"] == pytest.approx(end["duration"], abs=0.05)
    assert len(buffered) == 1 and buffered[0][0] == pytest.approx(0, abs=0.001), buffered  # no hole at a join
    assert errors == []


def test_an_fmp4_composite_has_a_dash_manifest_over_the_same_segments(fmp4: Made, server: Server) -> None:
    path = urllib.parse.urlsplit(fmp4.answer["MasterURL"]).path.removesuffix("master.m3u8") + "manifest.mpd"
    status, headers, body = get_url(server.cli("sign", path, "--base-url", server.base_url))
    assert status == 200 and headers["Content-Type"].startswith("application/dash+xml"), body
    text = body.decode()
    assert text.count("<S ") >= 1 and fmp4.media.segments[0].uri.split("?")[0].rsplit("-", 1)[0] in text


def test_an_audio_only_composite_joins_on_the_aac_grid(server: Server, sources: dict[str, Source]) -> None:
    """Clips of whole AAC frames: each join on the grid, the frame after it silent (were it
    not, the later clip's first frame would decode aliased: measured 0.55 off the design)."""
    made = make(server, sources, Video={"Disable": 1})
    with _open(made) as joined:
        assert not joined.streams.video
        track = decode_audio(joined)
    assert all(b - a == 1024 * TS_CLOCK // 48000 for a, b in itertools.pairwise(track.pts))
    for clip in made.answer["Clips"]:
        assert round(clip["Start"] * 48000) % 1024 == 0
    for join in _joins(track, made):
        assert 1024 <= join.silent <= 1024 + 240 and join.error < 0.02, join


def test_what_livetx_does_not_make_yet_is_a_422_naming_the_field(server: Server, sources: dict[str, Source]) -> None:
    status, answer = post_json(server, request_body(sources, Video={"TranscodeVideo": {"Codec": "VP9"}}))
    assert status == 422 and answer["error"]["parameter"] == "Video.TranscodeVideo.Codec", answer
    status, answer = post_oss(server, sources["mp4-30"].key, "video/concat,acodec_opus")
    assert status == 422 and answer["error"]["parameter"] == "acodec", answer
