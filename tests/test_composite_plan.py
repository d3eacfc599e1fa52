"""The composite planner (livetx/composite.py), pure: tables of clips in, a Title out; and a
composite's identity through the app (its record, a replaced clip)."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import m3u8
import pytest

from livetx.app import create_app
from livetx.composite import (
    ClipSource,
    build_composite_title,
    clip_windows,
    composite_id,
    from_record,
    is_composite_profile,
    profile_name,
    to_record,
)
from livetx.concat import Clip, concat_params, make_composite, oss_clip_field
from livetx.errors import ParameterError
from livetx.hls.plan import video_grid
from livetx.layout import composite_key
from livetx.media.model import AudioInfo, MediaInfo, VideoInfo
from livetx.storage.base import ObjectInfo
from livetx.web.keys import SEGMENTS
from tests.conftest import Source, app_settings


def media(
    seconds: float, width: int = 320, height: int = 180, fps: Fraction = Fraction(30), rate: int = 48000, start: float = 0
) -> MediaInfo:
    begin = Fraction(str(start))
    end = begin + Fraction(str(seconds))
    video = VideoInfo(0, "h264", width, height, fps, "yuv420p", begin, end)
    audio = AudioInfo(1, "aac", rate, 2, begin, end)
    return MediaInfo("mov,mp4", Fraction(seconds), begin, video, audio)


def found(key: str, info: MediaInfo, etag: str = "v1") -> ClipSource:
    return ClipSource(ObjectInfo(key, 1000, etag, pin=etag), info)


THREE = [
    found("a.mp4", media(7)),
    found("b.mkv", media(6, 320, 240, Fraction(25), 44100)),
    found("c.ts", media(5, 320, 240, Fraction(30000, 1001), start=1.4)),
]


def composite(*clips: Clip, **params: Any) -> Any:
    return make_composite(list(clips), concat_params(params))


def plan(*clips: Clip, sources: list[ClipSource] = THREE, **params: Any) -> Any:
    value = composite(*clips, **params)
    return build_composite_title(value, profile_name(value), sources[: len(clips)])


def test_clip_tail_shorter_than_half_a_segment_joins_the_one_before() -> None:
    grid = video_grid(Fraction(12), Fraction(30))
    assert clip_windows(grid, 10000, ()) == [(0, 360)]  # 10 s + 2 s: one 12 s segment
    assert clip_windows(video_grid(Fraction(16), Fraction(30)), 10000, ()) == [(0, 300), (300, 480)]  # 6 s stays
    assert clip_windows(grid, 10000, (2000, 2000)) == [(0, 60), (60, 120), (120, 360)]
    short = video_grid(Fraction(4), Fraction(30))
    assert clip_windows(short, 10000, (2000, 2000, 2000)) == [(0, 60), (60, 120)]  # initial segments stay
    assert clip_windows(video_grid(Fraction(7), Fraction(30)), 10000, (2000, 2000, 2000)) == [(0, 60), (60, 120), (120, 210)]


def test_every_clip_boundary_is_a_segment_boundary_numbered_across_the_title() -> None:
    title = plan(Clip("a.mp4", 500, 4000), Clip("b.mkv", 1000, 3000), Clip("c.ts"))
    windows = title.renditions[0].windows
    assert [w.index for w in windows] == list(range(len(windows)))
    assert all(a.end == b.first for a, b in itertools.pairwise(windows))  # no gap, no overlap
    clips = title.clips
    assert [(c.start, c.stop) for c in clips] == [(0, 4), (4, 7), (7, 7 + Fraction(150, 30))]  # whole output frames
    assert [(c.first, c.end) for c in clips] == [(0, 2), (2, 3), (3, 4)]  # 2+2 s (initial segments), then one each
    for clip in clips:
        assert windows[clip.first].start == clip.start and windows[clip.end - 1].stop == clip.stop
    # origin: the source time of title time 0, as each clip sees it (negative once it plays later than its source time)
    assert [c.origin for c in clips] == [Fraction(1, 2), 1 - 4, Fraction(7, 5) - 7]
    assert title.duration == clips[-1].stop and title.source.key == "a.mp4"


def test_the_align_clip_gives_the_output_and_other_shapes_are_fitted_not_stretched() -> None:
    title = plan(Clip("a.mp4"), Clip("b.mkv"))
    video, audio = title.renditions[0].video, title.renditions[0].audio
    assert (video.width, video.height, video.fps, audio.sample_rate) == (320, 180, 30, 48000)
    assert [c.video.picture for c in title.clips] == [None, (240, 180)]  # 4:3 pillarboxed in 16:9
    aligned = plan(Clip("a.mp4"), Clip("b.mkv"), align=1)
    video = aligned.renditions[0].video
    assert (video.width, video.height, video.fps, aligned.renditions[0].audio.sample_rate) == (320, 240, 25, 44100)
    assert [c.video.picture for c in aligned.clips] == [(320, 180), None]  # 16:9 letterboxed in 4:3
    cropped = plan(Clip("a.mp4"), Clip("b.mkv"), scaletype="crop")
    assert cropped.clips[1].video.picture == (320, 240)  # covers the frame, its middle kept


def test_a_segment_job_reads_one_clip_with_its_origin_and_audio_span() -> None:
    title = plan(Clip("a.mp4", 500, 4000), Clip("b.mkv", 1000, 3000), Clip("c.ts"))
    rendition = title.renditions[0]
    job = title.job(rendition, 2, "file:///b.mkv")
    assert (job.origin, job.start, job.stop, job.audio_span) == (-3, 4, 7, (4, 7))
    assert job.video.picture == (240, 180) and job.source_pin == "v1"
    assert title.source_key_of(2) == "b.mkv" and title.source_key_of(3) == "c.ts" and title.source_key_of("init") == "a.mp4"
    assert title.job(rendition, 3, "").audio_span == (7, None)  # the last clip's audio runs to the title's end
    assert title.job(rendition, 0, "").audio_span == (0, 4)


def test_a_replaced_clip_changes_the_spec_id_and_the_title_version() -> None:
    clips = (Clip("a.mp4"), Clip("b.mkv"))
    before = plan(*clips)
    after = plan(*clips, sources=[THREE[0], replace(THREE[1], source=ObjectInfo("b.mkv", 1000, "v2"))])
    assert before.renditions[0].spec_id != after.renditions[0].spec_id
    assert before.source.etag != after.source.etag
    assert plan(*clips).renditions[0].spec_id == before.renditions[0].spec_id  # a function of its facts


@pytest.mark.parametrize(
    ("clips", "field", "parameter"),
    [
        pytest.param((Clip("a.mp4"), Clip("b.mkv", 6000)), None, "Clips[1].StartTime", id="json"),
        pytest.param((Clip("a.mp4"), Clip("b.mkv", 6000)), oss_clip_field(0), "sur[0].ss", id="oss sur"),
        pytest.param((Clip("a.mp4", 9000), Clip("b.mkv")), oss_clip_field(0), "ss", id="oss source"),
        pytest.param((Clip("a.mp4"), Clip("b.mkv", 9000)), oss_clip_field(1), "ss", id="oss source after a pre"),
    ],
)
def test_a_start_past_a_clips_end_names_its_field(clips: tuple[Clip, ...], field: Any, parameter: str) -> None:
    value = composite(*clips)
    with pytest.raises(ParameterError) as raised:
        if field is None:
            build_composite_title(value, profile_name(value), THREE[:2])
        else:
            build_composite_title(value, profile_name(value), THREE[:2], field=field)
    assert raised.value.name == parameter


def test_clips_without_a_stream_the_output_has_are_refused_unless_it_is_dropped() -> None:
    silent = found("v.mp4", replace(media(4), audio=None))
    with pytest.raises(ParameterError) as raised:
        plan(Clip("a.mp4"), Clip("v.mp4"), sources=[THREE[0], silent])
    assert raised.value.name == "Clips[1].URI"
    assert plan(Clip("a.mp4"), Clip("v.mp4"), sources=[THREE[0], silent], an=1).renditions[0].audio is None


def test_without_video_clips_last_whole_aac_frames_and_join_on_the_grid() -> None:
    title = plan(Clip("a.mp4", 0, 3000), Clip("b.mkv", 0, 3000), vn=1)
    rendition = title.renditions[0]
    assert rendition.video is None and rendition.audio.sample_rate == 48000
    for clip in title.clips:
        assert (clip.start * 48000) % 1024 == 0  # on the AAC grid: no silent frame at the join
    assert title.clips[1].start == Fraction(141 * 1024, 48000)  # 3 s rounded up to whole AAC frames


def test_record_round_trip_and_id() -> None:
    value = composite(Clip("a.mp4", 500, 4000), Clip("b.mkv"), fps="30000/1001", s="640x360", container="fmp4", align=1)
    assert from_record(to_record(value)) == value
    name = profile_name(value)
    assert is_composite_profile(name) and name == "c-" + composite_id(value)
    assert composite_id(composite(Clip("a.mp4", 500, 4000), Clip("b.mkv"))) != composite_id(value)
    assert not is_composite_profile("c-xyz") and not is_composite_profile("j-" + composite_id(value))
    with pytest.raises(ValueError):
        from_record({"version": 0})


# ---- through the app --------------------------------------------------------------------

API_KEY = "composer-" + "k" * 40
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def test_a_replaced_clip_answers_404_reload_and_the_record_serves_any_origin(
    aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]
) -> None:
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    shutil.copy(sources["mp4-30"].path, media_dir / "a.mp4")
    shutil.copy(sources["ts-2997"].path, media_dir / "b.ts")
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media_dir),
        LIVETX_STORAGE_OUTPUT_URI=str(tmp_path / "out"),
        LIVETX_API_KEYS=f"composer:{API_KEY}",
        LIVETX_CACHE_LOCAL_DIR=str(tmp_path / "tier"),
        LIVETX_CACHE_STAT_TTL="0",
        LIVETX_CACHE_LOOKAHEAD="false",
    )
    client = await aiohttp_client(create_app(settings))
    body = {"Clips": [{"URI": "oss://local/a.mp4", "Duration": 2}, {"URI": "oss://local/b.ts", "Duration": 2}]}
    response = await client.post("/api/v1/composites", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert await client.server.app[SEGMENTS].output.stat(composite_key(answer["Profile"])) is not None
    url = urlsplit(answer["MasterURL"])
    folder = url.path.rsplit("/", 1)[0] + "/"
    master = m3u8.loads(await (await client.get(f"{url.path}?{url.query}")).text())
    media = m3u8.loads(await (await client.get(folder + master.playlists[0].uri)).text())
    second = folder + media.segments[-1].uri  # made from b.ts
    assert (await client.get(second)).status == 200
    # a title-scoped token of the composite covers its playlists and segments
    signed = await client.post("/api/v1/sign", json={"key": "a.mp4", "profile": answer["Profile"], "scope": "title"}, headers=AUTH)
    assert signed.status == 200, await signed.text()
    scoped = urlsplit((await signed.json())["url"])
    assert scoped.path == url.path and (await client.get(f"{scoped.path}?{scoped.query}")).status == 200
    # another origin (a fresh app on the same stores) knows the composite from its record
    other = await aiohttp_client(create_app(settings))
    assert (await other.get(second)).status == 200
    shutil.copy(sources["mkv-25-44k"].path, media_dir / "b.ts")  # the second clip replaced
    stale = await client.get(second)
    assert stale.status == 404 and "reload the playlist" in (await stale.json())["error"]["message"]
    again = m3u8.loads(await (await client.get(folder + master.playlists[0].uri)).text())
    assert (await client.get(folder + again.segments[-1].uri)).status == 200


async def test_a_scoped_key_may_join_only_clips_it_may_read(aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]) -> None:
    media_dir = tmp_path / "media"
    (media_dir / "open").mkdir(parents=True)
    shutil.copy(sources["mp4-30"].path, media_dir / "open" / "a.mp4")
    shutil.copy(sources["mp4-30"].path, media_dir / "closed.mp4")
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media_dir),
        LIVETX_STORAGE_OUTPUT_URI=str(tmp_path / "out"),
        LIVETX_API_KEYS=f"composer:{API_KEY}",
        LIVETX_API_SCOPES_COMPOSER_OPERATIONS="composites",
        LIVETX_API_SCOPES_COMPOSER_READ="open/",
        LIVETX_CACHE_LOCAL_DIR=str(tmp_path / "tier"),
    )
    client = await aiohttp_client(create_app(settings))
    body = {"Clips": [{"URI": "oss://local/open/a.mp4"}, {"URI": "oss://local/closed.mp4"}]}
    response = await client.post("/api/v1/composites", json=body, headers=AUTH)
    assert response.status == 403 and (await response.json())["error"]["parameter"] == "Clips[1].URI"
    assert not (tmp_path / "out" / ".jobs").exists()  # nothing kept for a refused request
    response = await client.post("/api/v1/playlists", json={}, headers=AUTH)
    assert response.status == 403  # not its operation


async def test_a_clip_that_is_not_media_names_its_field(aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]) -> None:
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    shutil.copy(sources["mp4-30"].path, media_dir / "a.mp4")
    (media_dir / "text.mp4").write_bytes(b"not media" * 100)
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media_dir),
        LIVETX_STORAGE_OUTPUT_URI=str(tmp_path / "out"),
        LIVETX_API_KEYS=f"composer:{API_KEY}",
        LIVETX_CACHE_LOCAL_DIR=str(tmp_path / "tier"),
    )
    client = await aiohttp_client(create_app(settings))
    body = {"Clips": [{"URI": "oss://local/a.mp4"}, {"URI": "oss://local/text.mp4"}]}
    response = await client.post("/api/v1/composites", json=body, headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 422 and error["parameter"] == "Clips[1].URI", error
    assert not (tmp_path / "out" / ".jobs").exists()
