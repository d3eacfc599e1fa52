"""The DASH manifest (livetx/dash): a static MPD over the very same fMP4 segments the HLS
playlists name, signed like the master playlist. Players are in tests/test_players.py."""

from __future__ import annotations

import shutil
import time
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.dash.manifest import mpd_text
from livetx.layout import segment_name
from livetx.media.model import INIT
from livetx.playlists import media_text, variant_order
from livetx.titles import Title
from livetx.urls import hls_parts
from livetx.web.keys import CATALOG, SIGNER
from tests.checker import decode_video, open_fmp4
from tests.conftest import Source, app_settings

NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}
CDN = "c" * 40
TITLE = "/hls/ladder/a.mp4/"
SMALL_LADDER = {"LIVETX_PROFILES_LADDER_RENDITIONS_P720_S": "x180", "LIVETX_PROFILES_LADDER_RENDITIONS_P480_S": "x144"}
SMALL_LADDER |= {"LIVETX_PROFILES_LADDER_RENDITIONS_P360_S": "x90", "LIVETX_PROFILES_LADDER_RENDITIONS_P1080_S": "x1080"}


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]) -> TestClient[Any, Any]:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_CDN_ORIGIN_SECRET=CDN,
        LIVETX_CACHE_LOOKAHEAD="false",
        LIVETX_PROFILES_LADDER_INITD="0",
        LIVETX_PROFILES_DEFAULT_INITD="0",
        **SMALL_LADDER,
    )
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


async def ladder(client: TestClient[Any, Any]) -> Title:
    return await client.server.app[CATALOG].title("ladder", "a.mp4")


def representations(text: str) -> list[ET.Element]:
    return ET.fromstring(text).findall(".//mpd:Representation", NS)


async def test_the_mpd_describes_the_hls_segments_exactly(client: TestClient[Any, Any]) -> None:
    title = await ladder(client)
    root = ET.fromstring(mpd_text(title))
    assert root.get("type") == "static" and root.get("profiles") == "urn:mpeg:dash:profile:isoff-live:2011"
    assert root.get("mediaPresentationDuration") == "PT7S" and title.duration == 7
    (video,) = root.findall(".//mpd:AdaptationSet", NS)  # muxed: audio rides in the video set's segments
    assert video.get("contentType") == "video" and video.get("segmentAlignment") == "true"
    reps = video.findall("mpd:Representation", NS)
    # the master's variants in its order (not the I-frame rendition): the three rungs and the source's copy
    ordered = variant_order(title)
    assert [r.get("id") for r in reps] == [r.name for r in ordered] and sorted(r.name for r in ordered) == [
        "original",
        "p360",
        "p480",
        "p720",
    ]
    for rep, rendition in zip(reps, ordered, strict=True):
        assert rendition.video is not None and rendition.audio is not None
        assert rep.get("codecs") == rendition.codecs == f"{rendition.codecs.split(',')[0]},mp4a.40.2"
        assert (rep.get("width"), rep.get("height"), rep.get("frameRate")) == (
            str(rendition.video.width),
            str(rendition.video.height),
            "30",
        )
        assert rep.get("audioSamplingRate") == str(rendition.audio.sample_rate)
        template = rep.find("mpd:SegmentTemplate", NS)
        assert template is not None
        scale = int(template.get("timescale", ""))
        assert scale == 90000  # the fMP4 video clock: t is the segment's tfdt
        starts, lengths = [], []
        for s in template.findall("mpd:SegmentTimeline/mpd:S", NS):
            t, d = int(s.get("t", "")), int(s.get("d", ""))
            for k in range(int(s.get("r", "0")) + 1):
                starts.append(t + k * d)
                lengths.append(d)
        assert starts == [w.start * scale for w in rendition.windows]  # each segment's exact start
        assert lengths == [w.duration * scale for w in rendition.windows] == [180000, 180000, 270000]  # 2-2-3 s
        assert Fraction(sum(lengths), scale) == title.duration
        assert all(starts[i] + lengths[i] == starts[i + 1] for i in range(len(starts) - 1))  # no gap, no overlap
        # the very same URLs as the HLS media playlist's (relative to the same folder)
        playlist = m3u8.loads(media_text(rendition))
        assert template.get("initialization") == playlist.segment_map[0].uri == segment_name(rendition, INIT)
        assert template.get("startNumber") == "0"
        media = template.get("media", "")
        assert [media.replace("$Number$", str(n)) for n in range(len(starts))] == [s.uri for s in playlist.segments]


async def test_a_path_token_gives_the_segment_urls_one_title_token(client: TestClient[Any, Any]) -> None:
    signer = client.server.app[SIGNER]
    exp = int(time.time()) + 600
    token = signer.sign_path(TITLE + "manifest.mpd", exp, nbf=exp - 900, ip="127.0.0.1")
    response = await client.get(f"{TITLE}manifest.mpd?{token.query_string()}")
    assert response.status == 200 and response.headers["Content-Type"].startswith("application/dash+xml")
    assert response.headers["Cache-Control"] == "private, no-store"
    for rep in representations(await response.text()):
        template = rep.find("mpd:SegmentTemplate", NS)
        assert template is not None
        init, media = template.get("initialization", ""), template.get("media", "")
        query = parse_qs(urlsplit(init).query)
        assert query["scope"] == [TITLE] and query["exp"] == [str(exp)] and query["ip"] == ["127.0.0.1"]
        assert query["nbf"] == [str(exp - 900)]
        assert urlsplit(media).query == urlsplit(init).query  # one query for every URL
        for url in (init, media.replace("$Number$", "2")):
            segment = await client.get(TITLE + url)
            assert segment.status == 200, await segment.text()
    # a token for the master playlist opens the master playlist only
    master = signer.sign_path(TITLE + "master.m3u8", exp)
    assert (await client.get(f"{TITLE}manifest.mpd?{master.query_string()}")).status == 403
    assert (await client.get(f"{TITLE}manifest.mpd")).status == 401


async def test_a_title_token_is_handed_on_and_an_origin_pull_gets_plain_urls(client: TestClient[Any, Any]) -> None:
    token = client.server.app[SIGNER].sign_prefix(TITLE, int(time.time()) + 600)
    text = await (await client.get(f"{TITLE}manifest.mpd?{token.query_string()}")).text()
    template = representations(text)[0].find("mpd:SegmentTemplate", NS)
    assert template is not None and urlsplit(template.get("media", "")).query == token.query_string()
    pulled = await client.get(f"{TITLE}manifest.mpd", headers={"X-Livetx-Origin-Auth": CDN})
    assert pulled.status == 200
    assert await pulled.text() == mpd_text(await ladder(client))  # no query anywhere
    urls = [
        t.get(a, "")
        for t in ET.fromstring(await pulled.text()).iter(f"{{{NS['mpd']}}}SegmentTemplate")
        for a in ("initialization", "media")
    ]
    assert len(urls) == 8 and not any("?" in url for url in urls)  # an init and a media template per rendition


async def test_the_copy_rendition_plays_from_the_mpd_at_its_timeline(client: TestClient[Any, Any], sources: dict[str, Source]) -> None:
    """The source's copy is a Representation like the rungs beside it: the source's codec,
    size and frame rate, and segments whose decode times are the timeline's (title time at
    90 kHz), every frame of the title once through them."""
    text = await (await client.get(f"{TITLE}manifest.mpd", headers={"X-Livetx-Origin-Auth": CDN})).text()
    (rep,) = [r for r in representations(text) if r.get("id") == "original"]
    spec = sources["mp4-30"].spec
    assert (rep.get("width"), rep.get("height"), rep.get("frameRate")) == (str(spec.width), str(spec.height), "30")
    with av.open(str(sources["mp4-30"].path)) as src:
        profile, level = src.streams.video[0].codec_context.profile, src.streams.video[0].codec_context.level
    assert profile == "High" and rep.get("codecs") == f"avc1.6400{level:02x},mp4a.40.2"  # the source's profile and level
    template = rep.find("mpd:SegmentTemplate", NS)
    assert template is not None
    starts = [
        int(s.get("t", "")) + k * int(s.get("d", ""))
        for s in template.findall("mpd:SegmentTimeline/mpd:S", NS)
        for k in range(int(s.get("r", "0")) + 1)
    ]
    init = await _segment(client, template.get("initialization", ""))
    segments = [await _segment(client, template.get("media", "").replace("$Number$", str(n))) for n in range(len(starts))]
    for start, segment in zip(starts, segments, strict=True):
        with open_fmp4(init, [segment]) as container:
            first = next(p for p in container.demux(video=0) if p.size)
            assert first.dts == start and first.is_keyframe
    with open_fmp4(init, segments) as container:
        assert decode_video(container).indexes == list(range(sources["mp4-30"].frames))


async def _segment(client: TestClient[Any, Any], url: str) -> bytes:
    response = await client.get(TITLE + url, headers={"X-Livetx-Origin-Auth": CDN})
    assert response.status == 200, await response.text()
    return await response.read()


async def test_no_mpd_for_an_mpeg_ts_title(client: TestClient[Any, Any]) -> None:
    response = await client.get("/hls/default/a.mp4/manifest.mpd", headers={"X-Livetx-Origin-Auth": CDN})
    assert response.status == 404
    error = (await response.json())["error"]
    assert error["code"] == "not_dash" and "container=fmp4" in error["message"]


def test_an_mpd_path_may_be_signed() -> None:
    assert hls_parts(TITLE + "manifest.mpd", {"ladder": None}) == ("ladder", "a.mp4")
