"""Subtitle renditions (issue 16): the planner, the master and media playlists, and WebVTT
segments served through the real app.

The multitrack source carries embedded text tracks (SubRip and ASS in Matroska, mov_text in
MP4); sidecars are `Sidecar` records parsed from real SRT bytes (until the catalog finds them
next to the source itself, the app's planner is handed them). A sidecar's segments are read back
through HTTP and their cues, placed on the media timeline by their X-TIMESTAMP-MAP and measured
against the served video's first frame, equal the sidecar's cues to the millisecond, in MPEG-TS
and in fMP4 titles alike.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import m3u8
import pytest
from aiohttp.test_utils import TestClient

import livetx.catalog
from livetx.app import create_app
from livetx.cache.keys import strong_etag
from livetx.dash.manifest import check_dash, mpd
from livetx.errors import ParameterError
from livetx.hls.model import MediaRendition
from livetx.media.model import MediaInfo, SubtitleTrack
from livetx.media.params import parse_title_params
from livetx.media.probe import probe
from livetx.playlists import master_text, media_text, playlist_objects
from livetx.storage.base import ObjectInfo
from livetx.subtitles import sidecar as sidecars
from livetx.subtitles.cues import Cue
from livetx.subtitles.sidecar import Sidecar, SidecarName
from livetx.titles import Title, build_title, parse_profile, sidecar_segment
from livetx.web.api import subtitle_tracks
from tests.conftest import ROOT, app_settings
from tests.multitrack import MultiTrackSpec, write_multitrack

SECRET = "v" * 40
PULL = {"X-Livetx-Origin-Auth": SECRET}
API_KEY = "subtitles-" + "k" * 32
# windows 0-1, 1-2, 2-3.52, 3.52-6 s; the audio muxed (the source's audio tracks are tests/test_audio_renditions.py's)
SEGMENTING = {"st": 5000, "initial_segments": [1000, 1000, 1500], "initd": 0, "audio": "muxed"}
CONTAINERS = {"subts": "ts", "subfmp4": "fmp4"}
MPEGTS = {"ts": 126000, "fmp4": 0}  # X-TIMESTAMP-MAP: title time 0 on the media timeline, 90 kHz
TRANSCRIBES = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"

# each cue's text says what it tests; times in ms of the sidecar (= title time)
SRT = b"""1
00:00:00,200 --> 00:00:00,900
first

2
00:00:00,900 --> 00:00:01,400
<i>spans segments 0 and 1</i>

3
00:00:02,000 --> 00:00:02,500
starts on a boundary: segment 2 only

4
00:00:03,000 --> 00:00:04,000
{\\an8}spans segments 2 and 3, at the top

5
00:00:05,000 --> 00:00:07,000
runs past the end, unclipped

6
00:00:08,000 --> 00:00:09,000
after the end: in no segment
"""
CUES = sidecars.parse(SRT, "tracks.en.srt", "srt")
TITLE_END = 6000  # ms: the source's six seconds


def sidecar(key: str, name: SidecarName, etag: str = "e1", error: str | None = None) -> Sidecar:
    return Sidecar(key, etag, name, () if error else CUES, error)


def x(key: str) -> str:
    """A sidecar's rendition name: `x` and 8 hex digits of the SHA-256 of its key."""
    return "x" + hashlib.sha256(key.encode()).hexdigest()[:8]


SIDECARS = (
    sidecar("tracks.en.srt", SidecarName("en")),
    sidecar("tracks.forced.en.srt", SidecarName("en", forced=True)),
    sidecar("tracks.sdh.fr.vtt", SidecarName("fr", hearing_impaired=True, kind="vtt")),
    sidecar("tracks.en.commentary.srt", SidecarName("en", label="Commentary")),
    sidecar("tracks.ja.default.srt", SidecarName("ja", default=True)),
    sidecar("tracks.de.srt", SidecarName("de"), error="subtitle track tracks.de.srt: no cue with valid times and text"),
)


@pytest.fixture(scope="module", params=[".mkv", ".mp4"])
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("subtitle-media") / f"tracks{request.param}"
    write_multitrack(path, MultiTrackSpec())
    return path


@pytest.fixture(scope="module")
def mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("subtitle-mkv") / "tracks.mkv"
    write_multitrack(path, MultiTrackSpec())
    return path


def title_of(path: Path, info: MediaInfo | None = None, sidecars: tuple[Sidecar, ...] = SIDECARS, **params: Any) -> Title:
    """A profile with one rendition `v` (or `renditions`) in `container`, and title `params`."""
    renditions = params.pop("renditions", None) or {"v": {"preset": "ultrafast", "container": params.pop("container", "ts")}}
    profile = parse_profile("t", {**SEGMENTING, **params, "renditions": renditions})
    return build_title(ObjectInfo(path.name, 1, "etag"), info or probe(str(path)), profile, sidecars=sidecars)


# ---- the master playlist --------------------------------------------------------------------

EXPECTED = {  # (URI, LANGUAGE, NAME, DEFAULT, FORCED, CHARACTERISTICS), AUTOSELECT=YES on all
    ".mkv": [
        ("s5.m3u8", "en", "English", "YES", None, None),
        ("s6.m3u8", "fr", "Forcés", "NO", "YES", None),
    ],
    # (MP4's muxer flags its first subtitle track default by itself: that says nothing, so NO)
    ".mp4": [("s5.m3u8", "en", "English SDH", "NO", None, TRANSCRIBES)],
}
SECOND_ENGLISH = {".mkv": "English 2", ".mp4": "English"}  # (the MP4's English track is named "English SDH")
EXPECTED_SIDECARS = [
    (f"{x('tracks.en.srt')}.m3u8", "en", "{english}", "NO", None, None),
    (f"{x('tracks.forced.en.srt')}.m3u8", "en", "English (forced)", "NO", "YES", None),
    (f"{x('tracks.sdh.fr.vtt')}.m3u8", "fr", "French (SDH)", "NO", None, TRANSCRIBES),
    (f"{x('tracks.en.commentary.srt')}.m3u8", "en", "Commentary", "NO", None, None),
    # named default: DEFAULT=YES unless an embedded track flagged default comes first (the MKV's s5)
    (f"{x('tracks.ja.default.srt')}.m3u8", "ja", "Japanese", "{japanese}", None, None),
]


def check_rfc_8216(master: m3u8.M3U8) -> None:
    """EXT-X-MEDIA rules of RFC 8216 4.3.4.1 (and the authoring spec's for FORCED)."""
    groups: dict[tuple[str, str], list[m3u8.Media]] = {}
    for medium in master.media:
        groups.setdefault((medium.type, medium.group_id), []).append(medium)
        assert medium.uri and medium.name and medium.language
        assert medium.forced in (None, "YES") and (medium.forced is None or medium.type == "SUBTITLES")
        if "YES" in (medium.default, medium.forced):
            assert medium.autoselect == "YES", medium.name
    for members in groups.values():
        assert len({m.name for m in members}) == len(members)  # NAME unique in the group
        assert sum(m.default == "YES" for m in members) <= 1


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_master_lists_each_text_track_and_readable_sidecar(source: Path, container: str) -> None:
    master = m3u8.loads(master_text(title_of(source, container=container)))
    check_rfc_8216(master)
    subtitles = [m for m in master.media if m.type == "SUBTITLES"]
    got = [(m.uri, m.language, m.name, m.default, m.forced, m.characteristics) for m in subtitles]
    japanese = "NO" if source.suffix == ".mkv" else "YES"
    sidecars = [
        (uri, lang, name.format(english=SECOND_ENGLISH[source.suffix]), default.format(japanese=japanese), *rest)
        for uri, lang, name, default, *rest in EXPECTED_SIDECARS
    ]
    assert got == EXPECTED[source.suffix] + sidecars  # not the unreadable German sidecar
    assert {(m.group_id, m.autoselect) for m in subtitles} == {("subs", "YES")}
    assert master.playlists and all(p.stream_info.subtitles == "subs" for p in master.playlists)


def test_master_without_subtitle_tracks_is_unchanged(source: Path) -> None:
    plain = replace(probe(str(source)), subtitle_tracks=())
    text = master_text(title_of(source, plain, sidecars=()))
    assert "SUBTITLES" not in text and "TYPE=SUBTITLES" not in text  # (its audio tracks are EXT-X-MEDIA renditions)


def test_bitmap_tracks_play_no_rendition(mkv: Path) -> None:
    info = probe(str(mkv))
    bitmap = SubtitleTrack(7, "hdmv_pgs_subtitle", True, language="eng")
    title = title_of(mkv, replace(info, subtitle_tracks=(*info.subtitle_tracks, bitmap)), sidecars=())
    assert [r.name for r in title.subtitle_renditions] == ["s5", "s6"]


def test_audio_only_titles_get_no_subtitles(mkv: Path) -> None:
    info = probe(str(mkv))
    title = title_of(mkv, replace(info, video=None))
    assert title.subtitle_renditions == () and "SUBTITLES" not in master_text(title)


def test_api_made_playlists_carry_none_without_a_master(mkv: Path) -> None:
    profile = replace(parse_profile("t", {**SEGMENTING, "renditions": {"v": {}}}), source_key=mkv.name)
    title = build_title(ObjectInfo(mkv.name, 1, "etag"), probe(str(mkv)), profile, sidecars=SIDECARS)
    assert title.subtitle_renditions == ()  # each target plays alone: a media playlist lists no renditions


def test_api_made_playlists_with_a_master_put_them_next_to_it(mkv: Path) -> None:
    """The request's files all play (`subtitles` selects the embedded tracks), each next to the master."""
    profile = parse_profile("t", {**SEGMENTING, "subtitles": "s6", "renditions": {"v": {}}})
    profile = replace(profile, source_key=mkv.name, master_key="out/m.m3u8", track_prefix="out/m-")
    title = build_title(ObjectInfo(mkv.name, 1, "etag"), probe(str(mkv)), profile, sidecars=SIDECARS)
    names = ["s6", *(x(s.key) for s in SIDECARS[:5])]  # not s5, nor the unreadable German file
    assert [(r.name, r.object_prefix) for r in title.subtitle_renditions] == [(n, f"out/m-{n}") for n in names]


def test_variants_of_another_container_play_without_them(mkv: Path) -> None:
    """The map is written for the first video rendition's container: a variant in the other one
    would see every cue 1.4 s off, so it goes without."""
    renditions = {"v": {"preset": "ultrafast"}, "c": {"preset": "ultrafast", "container": "fmp4", "s": "x64"}}
    master = m3u8.loads(master_text(title_of(mkv, renditions=renditions)))
    assert {p.uri: p.stream_info.subtitles for p in master.playlists} == {"v.m3u8": "subs", "c.m3u8": None}


# ---- media playlists, spec ids, jobs ------------------------------------------------------


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_subtitle_playlists_have_the_video_extinfs(mkv: Path, container: str) -> None:
    title = title_of(mkv, container=container)
    video = m3u8.loads(media_text(title.rendition("v")))
    for rendition in title.subtitle_renditions:
        subtitles = m3u8.loads(media_text(rendition))
        assert [s.duration for s in subtitles.segments] == [s.duration for s in video.segments]
        assert subtitles.target_duration == video.target_duration and subtitles.segment_map == []
        uris = [f"{rendition.name}-{rendition.spec_id}-{n}.vtt" for n in range(len(video.segments))]
        assert [s.uri for s in subtitles.segments] == uris


def test_subtitles_leave_the_other_spec_ids_alone(mkv: Path) -> None:
    with_subtitles, without = title_of(mkv, audio="all"), title_of(mkv, audio="all", subtitles="none")
    assert [(r.name, r.spec_id) for r in without.renditions] == [
        (r.name, r.spec_id) for r in with_subtitles.renditions if r.subtitle is None
    ]
    ids = [r.spec_id for r in with_subtitles.renditions]
    assert len(set(ids)) == len(ids)


def test_subtitle_spec_ids_follow_the_map_and_the_sidecar_version(mkv: Path) -> None:
    ts, fmp4 = title_of(mkv), title_of(mkv, container="fmp4")
    assert not {r.spec_id for r in ts.subtitle_renditions} & {r.spec_id for r in fmp4.subtitle_renditions}
    changed = title_of(mkv, sidecars=(replace(SIDECARS[0], etag="e2"), *SIDECARS[1:]))
    before, after = ({r.name: r.spec_id for r in t.subtitle_renditions} for t in (ts, changed))
    assert before.keys() == after.keys()
    assert [name for name in before if before[name] != after[name]] == [x("tracks.en.srt")]  # that sidecar alone
    fewer = title_of(mkv, sidecars=SIDECARS[1:])  # a sibling gone: the others keep their names and ids
    assert {r.name: r.spec_id for r in fewer.subtitle_renditions}.items() < before.items()


def test_embedded_segments_are_pool_jobs_on_the_video_windows(mkv: Path) -> None:
    title = title_of(mkv, container="fmp4")
    rendition = title.rendition("s6")
    job = title.job(rendition, 2, "file:///tracks.mkv")
    window = title.rendition("v").windows[2]
    assert (job.subtitle_stream, job.container, job.video, job.audio) == (6, "fmp4", None, None)
    assert (job.start, job.stop, job.origin) == (window.start, window.stop, title.origin)


def test_playlists_written_to_storage_include_them(mkv: Path) -> None:
    title = title_of(mkv)
    objects = playlist_objects(title, "https://origin.example/hls/t/tracks.mkv/")
    for rendition in title.subtitle_renditions:
        assert objects[f"tracks.mkv/t/{rendition.name}.m3u8"] == media_text(rendition, stored=True)
    assert objects["tracks.mkv/t/master.m3u8"].count("TYPE=SUBTITLES") == len(title.subtitle_renditions)


def test_dash_leaves_subtitles_out(mkv: Path) -> None:
    title = title_of(mkv, container="fmp4")
    check_dash(title)  # WebVTT renditions don't make the title "not all fMP4"
    assert [s.content_type for s in mpd(title).adaptation_sets] == ["video"]


def test_a_sidecar_follows_the_title_window(mkv: Path) -> None:
    """With `ss`, title time 0 is `ss` into the source, so into the sidecar too: its cues move
    back by `ss`, one running across the new start begins at 0, and earlier ones are gone."""
    title = title_of(mkv, replace(probe(str(mkv)), subtitle_tracks=()), sidecars=SIDECARS[:1], ss=1000)
    [rendition] = title.subtitle_renditions
    vtt = read_vtt(sidecar_segment(rendition, 0).decode())
    assert [(c.start, c.end) for c in vtt.cues] == [(0, 400)]  # the 0.9-1.4 s cue
    later = [c for n in range(len(rendition.windows)) for c in read_vtt(sidecar_segment(rendition, n).decode()).cues]
    assert {(c.start, c.end) for c in later} == {(0, 400), (1000, 1500), (2000, 3000), (4000, 6000)}  # 8-9 s: past the end


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param({"type": "AUDIO", "forced": True}, id="forced-audio"),
        pytest.param({"type": "SUBTITLES", "default": True, "autoselect": False}, id="default-without-autoselect"),
        pytest.param({"type": "SUBTITLES", "forced": True, "autoselect": False}, id="forced-without-autoselect"),
    ],
)
def test_the_model_refuses_what_rfc_8216_forbids(wrong: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"FORCED|AUTOSELECT"):
        MediaRendition(group_id="g", name="n", uri="u.m3u8", **wrong)


# ---- selection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subtitles", "names"),
    [
        pytest.param("all", ["s5", "s6", *(x(s.key) for s in SIDECARS[:5])], id="all"),
        pytest.param("none", [], id="none"),
        pytest.param("fre", ["s6", x("tracks.sdh.fr.vtt")], id="iso-639-2"),
        pytest.param("FR", ["s6", x("tracks.sdh.fr.vtt")], id="case"),
        pytest.param("ja, s5", ["s5", x("tracks.ja.default.srt")], id="language-and-stream"),
        pytest.param("s6", ["s6"], id="stream"),
        pytest.param("de", [], id="only-the-unreadable-one"),
    ],
)
def test_the_subtitles_parameter_selects(mkv: Path, subtitles: str, names: list[str]) -> None:
    title = title_of(mkv, subtitles=subtitles)
    assert [r.name for r in title.subtitle_renditions] == names
    if not names:
        assert "SUBTITLES" not in master_text(title)


def test_a_regional_sidecar_is_selected_by_its_language(mkv: Path) -> None:
    brazilian = sidecar("tracks.pt-BR.srt", SidecarName("pt-BR"))
    assert [r.name for r in title_of(mkv, sidecars=(brazilian,), subtitles="pt").subtitle_renditions] == [x(brazilian.key)]
    assert master_text(title_of(mkv, sidecars=(brazilian,), subtitles="none")).count("pt-") == 0


@pytest.mark.parametrize("value", ["s", "english!", "en,,fr", "s123456", ",".join(["en"] * 33), 5])
def test_bad_selections_are_refused_by_name(value: object) -> None:
    with pytest.raises(ParameterError) as refused:
        parse_title_params({"subtitles": value})
    assert refused.value.name == "subtitles" and "comma-separated" in refused.value.details["allowed"]


def test_a_rendition_named_like_a_track_is_refused(mkv: Path) -> None:
    with pytest.raises(ParameterError) as refused:
        title_of(mkv, renditions={"s5": {"preset": "ultrafast"}})
    assert refused.value.name == "subtitles"
    assert [r.name for r in title_of(mkv, subtitles="s6", renditions={"s5": {}}).renditions] == ["s5", "s6", "iframe"]


# ---- served through the app ---------------------------------------------------------------

CONFIG = "".join(
    f"""
[profiles.{name}]
st = 5000
initial_segments = [1000, 1000, 1500]
initd = 0
audio = "muxed"

[profiles.{name}.renditions.v]
preset = "ultrafast"
container = "{container}"
"""
    for name, container in CONTAINERS.items()
) + (
    """
[profiles.nosubs]
subtitles = "none"
[profiles.nosubs.renditions.v]
preset = "ultrafast"
"""
)


@dataclass(frozen=True)
class Vtt:
    mpegts: int
    local: int  # ms
    cues: list[Cue]


def read_vtt(text: str) -> Vtt:
    """A WebVTT segment as a player reads it (the parts livetx writes): header, map, cue blocks."""
    blocks = [b.split("\n") for b in text.strip("\n").split("\n\n")]
    assert blocks[0][0] == "WEBVTT" and len(blocks[0]) == 2, blocks[0]
    found = re.fullmatch(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:(\d\d):(\d\d):(\d\d)\.(\d\d\d)", blocks[0][1])
    assert found, blocks[0][1]
    h, m, s, ms = (int(v) for v in found.group(2, 3, 4, 5))
    cues = []
    for block in blocks[1:]:
        if block[0].startswith("NOTE"):
            continue
        timing = re.fullmatch(r"(\d\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d\d+):(\d\d):(\d\d)\.(\d{3})( .*)?", block[0])
        assert timing, block[0]
        t = [int(v) for v in timing.group(1, 2, 3, 4, 5, 6, 7, 8)]
        start = ((t[0] * 60 + t[1]) * 60 + t[2]) * 1000 + t[3]
        end = ((t[4] * 60 + t[5]) * 60 + t[6]) * 1000 + t[7]
        cues.append(Cue(start, end, "\n".join(block[1:]), (timing.group(9) or "").strip()))
    return Vtt(int(found.group(1)), ((h * 60 + m) * 60 + s) * 1000 + ms, cues)


def first_video_pts(init: bytes | None, segment: bytes) -> int:
    """The first frame's presentation time in 90 kHz ticks, as a player's demuxer sees it."""
    data, kind = (init + segment, "mp4") if init is not None else (segment, "mpegts")
    with av.open(io.BytesIO(data), format=kind) as container:
        stream = container.streams.video[0]
        pts = min(p.pts for p in container.demux(stream) if p.pts is not None)
        return int(pts * stream.time_base * 90000)


async def app_client(aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch, media: Path, found: tuple[Sidecar, ...]) -> TestClient[Any, Any]:
    """The app on `media`, its planner handed `found` as the sidecars of every source (until
    the catalog finds them itself: then its own, when it found any)."""
    real = livetx.catalog.build_title

    def with_sidecars(*args: Any, **kwargs: Any) -> Title:
        kwargs["sidecars"] = kwargs.get("sidecars") or found
        return real(*args, **kwargs)

    monkeypatch.setattr(livetx.catalog, "build_title", with_sidecars)
    config = media / "livetx.toml"
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + CONFIG)
    settings = app_settings(
        config,
        LIVETX_API_KEYS=f"t:{API_KEY}",
        LIVETX_TRANSCODE_WORKERS="1",
        LIVETX_STORAGE_URI=str(media),
        LIVETX_CACHE_LOOKAHEAD="false",
        LIVETX_CDN_ORIGIN_SECRET=SECRET,
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
async def served(aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mkv: Path) -> TestClient[Any, Any]:
    shutil.copyfile(mkv, tmp_path / "tracks.mkv")
    (tmp_path / "tracks.en.srt").write_bytes(SRT)  # where the catalog will find it
    return await app_client(aiohttp_client, monkeypatch, tmp_path, (sidecar("tracks.en.srt", SidecarName("en")),))


async def get(client: TestClient[Any, Any], path: str, **headers: str) -> Any:
    response = await client.get(path, headers={**PULL, **headers})
    body = await response.read()
    assert response.status in (200, 206, 304), (path, response.status, body[:300])
    return response, body


async def sidecar_rendition(client: TestClient[Any, Any], base: str) -> str:
    """The URI of the master's sidecar subtitle rendition (the one whose name starts with x)."""
    _, body = await get(client, base + "master.m3u8")
    master = m3u8.loads(body.decode())
    check_rfc_8216(master)
    [uri] = [m.uri for m in master.media if m.type == "SUBTITLES" and m.uri.startswith("x")]
    assert all(p.stream_info.subtitles == "subs" for p in master.playlists)
    return str(uri)


@pytest.mark.parametrize("profile", CONTAINERS)
async def test_sidecar_cues_come_back_exactly_on_the_media_timeline(served: TestClient[Any, Any], profile: str) -> None:
    base = f"/hls/{profile}/tracks.mkv/"
    container = CONTAINERS[profile]
    video = m3u8.loads((await get(served, base + "v.m3u8"))[1].decode())
    init = (await get(served, base + video.segment_map[0].uri))[1] if video.segment_map else None
    zero = first_video_pts(init, (await get(served, base + video.segments[0].uri))[1])  # title time 0, 90 kHz
    subtitles = m3u8.loads((await get(served, base + await sidecar_rendition(served, base)))[1].decode())
    assert [s.duration for s in subtitles.segments] == [s.duration for s in video.segments]
    served_cues: list[Cue] = []
    start = Fraction(0)
    for segment in subtitles.segments:
        response, body = await get(served, base + segment.uri)
        assert response.headers["Content-Type"] == "text/vtt; charset=utf-8"
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        n = int(segment.uri.rsplit("-", 1)[1].removesuffix(".vtt"))
        assert response.headers["ETag"] == strong_etag(segment.uri.split("-")[1], n)
        vtt = read_vtt(body.decode())
        assert vtt.mpegts == MPEGTS[container] == zero and vtt.local == 0
        # media time (90 kHz) = cue - LOCAL + MPEGTS; title time = media time - the first frame's
        shift = (vtt.mpegts - zero) // 90 - vtt.local
        cues = [replace(c, start=c.start + shift, end=c.end + shift) for c in vtt.cues]
        stop = start + Fraction(str(segment.duration))
        assert cues == [c for c in CUES if c.start < stop * 1000 and c.end > start * 1000], n  # every overlapping cue, whole
        served_cues += [c for c in cues if c not in served_cues]
        start = stop
    assert served_cues == [c for c in CUES if c.start < TITLE_END]
    spanning = [c for c in CUES if "spans" in c.text]
    assert len(spanning) == 2 and all(c.settings == "" or c.settings.startswith("line:") for c in spanning)


async def test_sidecar_segments_have_segment_http_semantics(served: TestClient[Any, Any]) -> None:
    base = "/hls/subts/tracks.mkv/"
    name = (await sidecar_rendition(served, base)).removesuffix(".m3u8")
    uri = m3u8.loads((await get(served, f"{base}{name}.m3u8"))[1].decode()).segments[0].uri
    _, whole = await get(served, base + uri)
    response, part = await get(served, base + uri, Range="bytes=0-5")
    assert response.status == 206 and part == b"WEBVTT" and response.headers["Content-Range"] == f"bytes 0-5/{len(whole)}"
    response, _ = await get(served, base + uri, **{"If-None-Match": strong_etag(uri.split("-")[1], 0)})
    assert response.status == 304
    head = await served.head(base + uri, headers=PULL)
    assert head.status == 200 and head.headers["Content-Type"] == "text/vtt; charset=utf-8"
    unsigned = await served.get(base + uri)
    assert unsigned.status in (401, 403)  # a segment route: the token check applies


WRONG = {  # what a URL gets wrong -> that URL, from the rendition's name, its spec id and the video's
    "ts suffix": "{name}-{spec}-0.ts",
    "m4s suffix": "{name}-{spec}-0.m4s",
    "an init segment": "{name}-{spec}-init.mp4",
    "another spec": "{name}-000000000000-0.vtt",
    "past the end": "{name}-{spec}-99.vtt",
    "vtt of a video rendition": "v-{video}-0.vtt",
}


async def test_wrong_subtitle_urls_are_404(served: TestClient[Any, Any]) -> None:
    base = "/hls/subts/tracks.mkv/"
    name = (await sidecar_rendition(served, base)).removesuffix(".m3u8")
    spec = m3u8.loads((await get(served, f"{base}{name}.m3u8"))[1].decode()).segments[0].uri.split("-")[1]
    video = m3u8.loads((await get(served, f"{base}v.m3u8"))[1].decode()).segments[0].uri.split("-")[1]
    statuses = {}
    for wrong, url in WRONG.items():
        response = await served.get(base + url.format(name=name, spec=spec, video=video), headers=PULL)
        statuses[wrong] = (response.status, (await response.json())["error"]["code"])
    assert statuses == dict.fromkeys(WRONG, (404, "segment_not_found"))


async def test_subtitles_none_through_the_app(served: TestClient[Any, Any]) -> None:
    master = (await get(served, "/hls/nosubs/tracks.mkv/master.m3u8"))[1].decode()
    assert "SUBTITLES" not in master and "#EXT-X-STREAM-INF" in master


def listed(tracks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(t.get("stream"), t.get("key"), t["language"], t["rendition"], t["converted"], t["reason"]) for t in tracks]


async def test_the_title_api_lists_every_subtitle_track(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mkv: Path
) -> None:
    shutil.copyfile(mkv, tmp_path / "tracks.mkv")
    client = await app_client(aiohttp_client, monkeypatch, tmp_path, (SIDECARS[0], SIDECARS[-1]))
    response = await client.get("/api/v1/titles/subts/tracks.mkv", headers={"Authorization": f"Bearer {API_KEY}"})
    answer = await response.json()
    assert listed(answer["subtitles"]) == [
        (5, None, "en", "s5", True, None),
        (6, None, "fr", "s6", True, None),
        (None, "tracks.en.srt", "en", x("tracks.en.srt"), True, None),
        (None, "tracks.de.srt", "de", None, False, SIDECARS[-1].error),  # unreadable: listed, not played
    ]
    assert [r["name"] for r in answer["renditions"]] == ["v"]  # segment states: the media renditions'


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        pytest.param({}, None, id="played"),
        pytest.param({"subtitles": "s6"}, "not selected (subtitles=s6)", id="not-selected"),
    ],
)
def test_bitmap_tracks_are_listed_as_not_converted(mkv: Path, params: dict[str, str], reason: str | None) -> None:
    info = probe(str(mkv))
    bitmap = SubtitleTrack(7, "hdmv_pgs_subtitle", True, "ger")
    title = title_of(mkv, replace(info, subtitle_tracks=(*info.subtitle_tracks, bitmap)), sidecars=(), **params)
    assert listed(subtitle_tracks(title)) == [
        (5, None, "en", "s5" if reason is None else None, reason is None, reason),
        (6, None, "fr", "s6", True, None),
        (7, None, "de", None, False, "bitmap subtitles (pictures) are not converted to WebVTT"),
    ]


# ---- embedded tracks, made by the pool -----------------------------------------------------

EMBEDDED = {".mkv": ["s5", "s6"], ".mp4": ["s5"]}


@pytest.mark.parametrize("profile", CONTAINERS)
async def test_embedded_cues_are_served_on_the_media_timeline(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: Path, profile: str
) -> None:
    """Each embedded track's one cue (1 to 2 s, its text its intended start, `t=1.000`) comes back
    in segment 1 alone (windows 1-2 s), on the media timeline as the video's first frame places it."""
    media = tmp_path / "media"
    media.mkdir()
    (media / source.name).write_bytes(source.read_bytes())
    client = await app_client(aiohttp_client, monkeypatch, media, ())
    base = f"/hls/{profile}/{source.name}/"
    video = m3u8.loads((await get(client, base + "v.m3u8"))[1].decode())
    init = (await get(client, base + video.segment_map[0].uri))[1] if video.segment_map else None
    zero = first_video_pts(init, (await get(client, base + video.segments[0].uri))[1])
    for name in EMBEDDED[source.suffix]:
        playlist = m3u8.loads((await get(client, f"{base}{name}.m3u8"))[1].decode())
        assert [s.duration for s in playlist.segments] == [s.duration for s in video.segments]
        found: dict[int, list[Cue]] = {}
        for n, segment in enumerate(playlist.segments):
            response, body = await get(client, base + segment.uri)
            assert response.headers["Content-Type"] == "text/vtt; charset=utf-8"
            vtt = read_vtt(body.decode())
            assert vtt.mpegts == MPEGTS[CONTAINERS[profile]] == zero
            shift = (vtt.mpegts - zero) // 90 - vtt.local
            found[n] = [replace(c, start=c.start + shift, end=c.end + shift) for c in vtt.cues]
        assert {n: [(c.start, c.end, c.text) for c in cues] for n, cues in found.items() if cues} == {1: [(1000, 2000, "t=1.000")]}
