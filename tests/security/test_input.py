"""Attacks with an API key or a viewer token on what requests cost: numbers that freeze the
event loop, and requests that set off transcodes nobody watches. Against the real `livetx serve`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from fractions import Fraction

import m3u8
import pytest

from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import Server, launch_server
from tests.security.conftest import api, call, watch
from tests.support import samples, wait_until

LONG = SampleSpec(seconds=20.0, width=160, height=90, fps=Fraction(10), gop=10)
PER_CLIENT = 4  # background segments a viewer may set off a minute


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("input")
    media = home / "media"
    media.mkdir()
    write_sample(media / "long.mp4", LONG)
    env = {
        "LIVETX_PROFILES_DEFAULT_INITD": "0",
        "LIVETX_PROFILES_DEFAULT_ST": "5000",
        "LIVETX_PROFILES_DEFAULT_INITIAL_SEGMENTS": "1000,1000,1000,1000,1000,1000,1000,1000,1000,1000",
        "LIVETX_PROFILES_DEFAULT_RENDITIONS_MAIN_S": "x90",
        "LIVETX_CACHE_PREFETCH_PER_CLIENT": str(PER_CLIENT),
    }
    with launch_server(home, media, **env) as running:
        yield running


FREEZERS = [
    pytest.param({"FrameRate": "1e6000000"}, "Video.TranscodeVideo.FrameRate", id="framerate-exponent"),
    pytest.param({"FrameRate": "9" * 4000 + "/1"}, "Video.TranscodeVideo.FrameRate", id="framerate-long-ratio"),
    pytest.param({"CRF": "1e600000"}, "Video.TranscodeVideo.CRF", id="crf-exponent"),
    pytest.param({"Bitrate": "1" * 4000}, "Video.TranscodeVideo.Bitrate", id="bitrate-digits"),
]


@pytest.mark.parametrize(("video", "field"), FREEZERS)
def test_numbers_that_used_to_freeze_the_loop(server: Server, video: dict[str, str], field: str) -> None:
    body = {"SourceURI": "oss://local/long.mp4", "Targets": [{"URI": "oss://local/out/x", "Video": {"TranscodeVideo": video}}]}
    with watch(server):
        status, answer = api(server, "/api/v1/playlists", body)
    assert status == 400, answer
    assert answer["error"]["parameter"] == f"Targets[0].{field}"


def test_oss_process_numbers_that_used_to_freeze_the_loop(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/x-www-form-urlencoded"}
    form = b"x-oss-process=hls/m3u8,fps_1e6000000|sys/saveas,o_b3V0L3k,b_bG9jYWw"
    with watch(server):
        status, _, payload = call(server, "POST", "/long.mp4?x-oss-process", headers=headers, raw=form)
    assert status == 400 and json.loads(payload)["error"]["parameter"] == "fps"


def metric(server: Server, name: str) -> float:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(value for (sample, _), value in samples(text).items() if sample == name)


def settled(server: Server) -> float:
    """The transcode count once no transcode is queued or running (read twice, equal)."""
    seen: list[float] = []

    def steady() -> tuple[float] | None:
        busy = metric(server, "livetx_transcode_queue_depth") + metric(server, "livetx_transcodes_in_flight")
        made = metric(server, "livetx_transcodes_total")
        done = not busy and bool(seen) and seen[-1] == made
        seen.append(made)
        return (made,) if done else None

    return wait_until(steady, 120, "transcodes to settle (none queued or running, the count unchanged)", interval=0.3)[0]


def test_a_cached_segment_fetched_over_and_over_sets_off_a_bounded_lookahead(server: Server) -> None:
    url = server.cli("url", "long.mp4", "--scope", "title", "--base-url", server.base_url)
    with urllib.request.urlopen(url, timeout=30) as response:
        master = m3u8.loads(response.read().decode(), uri=url)
    media_url = master.playlists[0].absolute_uri
    with urllib.request.urlopen(media_url, timeout=30) as response:
        media = m3u8.loads(response.read().decode(), uri=media_url)
    assert len(media.segments) == 12  # ten 1 s segments, then two of 5 s
    before = settled(server)
    first = media.segments[0].absolute_uri
    for _ in range(10):  # the first makes it; the others are cache hits
        assert call(server, "GET", first.removeprefix(server.base_url))[0] == 200
    made = settled(server) - before
    # before the budgets: 1 + all 11 segments ahead (ta = 12) for one viewer's request
    assert made == 1 + PER_CLIENT
    assert metric(server, "livetx_prefetch_refused_total") >= 1
