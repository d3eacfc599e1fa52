"""Segmented jobs with DASH output (`Output.Segment.Format: "dash"`, OSS `/segment,f_dash`)
against the real server: the MPD is written next to the HLS playlist at submission, names only
stored objects (relative names, no query), and its init segment and media segments joined
decode to every frame of the source, in order."""

from __future__ import annotations

import base64
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from livetx.media.sample import write_sample
from tests.checker import decode_video, open_joined
from tests.conftest import Server, launch_server
from tests.jobs_support import FAST, call, output_path, wait_state
from tests.test_batch import SHORT

NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}
FRAMES = list(range(round(SHORT.seconds * SHORT.fps)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    media = tmp_path_factory.mktemp("segmented-media")
    write_sample(media / "short.mp4", SHORT)
    with launch_server(tmp_path_factory.mktemp("segmented-home"), media, **FAST) as running:
        yield running


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def stored_segments(mpd: Path) -> list[Path]:
    """The one Representation's init segment then its media segments, as the MPD names them
    (relative to the MPD), each checked to be a plain stored name."""
    (rep,) = ET.fromstring(mpd.read_text()).findall(".//mpd:Representation", NS)
    template = rep.find("mpd:SegmentTemplate", NS)
    assert template is not None
    count = sum(int(s.get("r", "0")) + 1 for s in template.findall("mpd:SegmentTimeline/mpd:S", NS))
    assert template.get("startNumber") == "0"
    init, media = template.get("initialization", ""), template.get("media", "")
    names = [init] + [media.replace("$Number$", str(n)) for n in range(count)]
    assert all("/" not in name and "?" not in name and "://" not in name for name in names), names
    assert init.endswith("-init.mp4") and media.endswith("$Number$.m4s")
    return [mpd.parent / name for name in names]


def check_dash_output(server: Server, submitted: dict[str, Any], prefix: str, uri: str) -> None:
    mpd, playlist = output_path(server, prefix + ".mpd"), output_path(server, prefix + ".m3u8")
    assert mpd.exists() and playlist.exists()  # written at submission, with the playlist: both play at once
    done = wait_state(server, submitted.get("JobId") or submitted["TaskId"], ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    assert done["Outputs"] == [
        {"URI": uri + ".m3u8", "Size": playlist.stat().st_size},
        {"URI": uri + ".mpd", "Size": mpd.stat().st_size},
    ]
    paths = stored_segments(mpd)
    assert all(path.exists() for path in paths), [p.name for p in paths if not p.exists()]
    # the MPD and the HLS playlist name the very same stored objects
    hls = [line for line in playlist.read_text().splitlines() if line.endswith(".m4s")]
    assert [p.name for p in paths[1:]] == hls and f'URI="{paths[0].name}"' in playlist.read_text()
    with open_joined((p.read_bytes() for p in paths), "mp4") as container:
        assert decode_video(container).indexes == FRAMES


def test_a_dash_job_writes_an_mpd_over_the_stored_fmp4_segments(server: Server) -> None:
    body = {
        "Clips": [{"URI": "oss://local/short.mp4"}],
        "Output": {"URI": "oss://local/out/dash/short", "Format": "mp4", "Segment": {"Format": "dash", "Duration": 5}},
    }
    status, submitted = call(server, "POST", "/api/v1/jobs", body)
    assert status == 201, submitted
    check_dash_output(server, submitted, "out/dash/short", "oss://local/out/dash/short")


def test_the_oss_segment_f_dash_form_makes_the_same_output(server: Server) -> None:
    process = f"video/concat,f_mp4/segment,f_dash,t_5000|sys/saveas,b_{b64('local')},o_{b64('out/ossdash/short')}"
    form = urllib.parse.urlencode({"x-oss-async-process": process}).encode()
    status, answer = call(server, "POST", "/short.mp4?x-oss-async-process", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, answer
    check_dash_output(server, answer, "out/ossdash/short", "oss://local/out/ossdash/short")


def test_dash_output_needs_fmp4_segments(server: Server) -> None:
    body = {
        "Clips": [{"URI": "oss://local/short.mp4"}],
        "Output": {"URI": "oss://local/out/dash/ts", "Format": "ts", "Segment": {"Format": "dash"}},
    }
    status, answer = call(server, "POST", "/api/v1/jobs", body)
    assert status == 400 and answer["error"]["parameter"] == "Output.Format", answer
    process = f"video/concat,f_ts/segment,f_dash|sys/saveas,b_{b64('local')},o_{b64('out/ossdash/ts')}"
    form = urllib.parse.urlencode({"x-oss-async-process": process}).encode()
    status, answer = call(server, "POST", "/short.mp4?x-oss-async-process", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and answer["error"]["parameter"] == "f", answer
    assert not output_path(server, "out/dash/ts.m3u8").exists() and not output_path(server, "out/ossdash/ts.m3u8").exists()
