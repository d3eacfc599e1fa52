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
import pytest

from tests.checker import TS_CLOCK, decode_audio, open_fmp4, open_joined
from tests.concat_checks import CLIPS, check_audio, check_frames, joins
from tests.conftest import Server, Source
from tests.player_pages import ENGINE, chromium, installed, page_html, serve_page, state
from tests.support import get_url, wait_until


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


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_frames_are_exact_across_the_joins(container: str, request: pytest.FixtureRequest, sources: dict[str, Source]) -> None:
    made: Made = request.getfixturevalue(container)
    with _open(made) as joined:
        check_frames(joined, made.answer["Clips"], sources, _offset(made), shifted=made.init is not None)


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_audio_has_no_gap_overlap_or_click_at_the_joins(container: str, request: pytest.FixtureRequest) -> None:
    made: Made = request.getfixturevalue(container)
    with _open(made) as joined:
        check_audio(joined, made.answer["Clips"], made.answer["Duration"], _offset(made))


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
    for join in joins(track, made.answer["Clips"], _offset(made)):
        assert 1024 <= join.silent <= 1024 + 240 and join.error < 0.02, join


def test_what_livetx_does_not_make_yet_is_a_422_naming_the_field(server: Server, sources: dict[str, Source]) -> None:
    status, answer = post_json(server, request_body(sources, Video={"TranscodeVideo": {"Codec": "VP9"}}))
    assert status == 422 and answer["error"]["parameter"] == "Video.TranscodeVideo.Codec", answer
    status, answer = post_oss(server, sources["mp4-30"].key, "video/concat,acodec_opus")
    assert status == 422 and answer["error"]["parameter"] == "acodec", answer
