"""Every object key livetx writes to output storage (livetx/layout.py), as a table: a change of
layout is a deliberate change of this file."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from fractions import Fraction

import pytest

from livetx import layout
from livetx.media.model import INIT, MediaInfo, SubtitleTrack
from livetx.storage.base import ObjectInfo
from livetx.subtitles.sidecar import Sidecar, SidecarName
from livetx.titles import Rendition, SubtitleRef, Title, parse_profile, subtitle_rendition_name

SPEC = "0123456789ab"
PICTURE = "0123456789abcdef"  # a picture id (livetx.pictures.picture_id)
SOURCE = ObjectInfo("movies/a.mp4", 1000, "etag-1")
DEFAULT = parse_profile("default", {})
MAIN = Rendition("main", SPEC, None, None, (), 0, 0, "")
TITLE = Title(SOURCE, MediaInfo("mp4", Fraction(10), Fraction(0), None, None), DEFAULT, Fraction(0), Fraction(10), (MAIN,))
# a rendition made through the playlist APIs: its request named the prefix and the master
TARGET = replace(MAIN, name="t0", object_prefix="out/job/v0")
JOB = replace(
    TITLE, profile=replace(DEFAULT, name="j-" + "f" * 16, source_key=SOURCE.key, master_key="out/job/master.m3u8"), renditions=(TARGET,)
)
NO_MASTER = replace(JOB, profile=replace(JOB.profile, master_key=None))
CMAF = replace(MAIN, name="cmaf", container="fmp4")  # an fMP4 rendition: init segment and .m4s fragments
CMAF_TARGET = replace(TARGET, container="fmp4")
# an audio rendition of an API-made title with a master: next to the master (the prefix its profile gives)
TRACK = replace(MAIN, name="a2", object_prefix=layout.track_prefix("out/job/master.m3u8") + "a2")
# a subtitle rendition: WebVTT segments of embedded stream 2
SUBS = replace(MAIN, name="s2", container="vtt", subtitle=SubtitleRef(SubtitleTrack(2, "srt", False), "ts"))
SIDECAR = Sidecar("movies/a.en.srt", "etag-2", SidecarName("en"))
# a subtitle rendition of an API-made title with a master: next to the master, as its audio renditions
SUBS_TRACK = replace(SUBS, object_prefix=layout.track_prefix("out/job/master.m3u8") + "s2")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(layout.title_folder(SOURCE.key, "default"), "movies/a.mp4/default/", id="title-folder"),
        pytest.param(layout.segment_key(TITLE, MAIN, 7), "movies/a.mp4/default/main-0123456789ab-7.ts", id="segment"),
        pytest.param(layout.segment_stem(TITLE, MAIN), "movies/a.mp4/default/main-0123456789ab-", id="segment-stem"),
        pytest.param(
            layout.snapshot_key(TITLE, "0123456789abcdef", "webp"), "movies/a.mp4/default/snap-0123456789abcdef.webp", id="snapshot"
        ),
        pytest.param(layout.poster_key(TITLE, PICTURE), f"movies/a.mp4/default/poster-{PICTURE}.jpg", id="poster"),
        pytest.param(
            layout.storyboard_sheet_key(TITLE, "storyboard-0123456789ab-3.jpg"),
            "movies/a.mp4/default/storyboard-0123456789ab-3.jpg",
            id="storyboard-sheet",
        ),
        pytest.param(layout.segment_name(MAIN, 7), "main-0123456789ab-7.ts", id="segment-name"),
        pytest.param(layout.segment_key(TITLE, CMAF, 7), "movies/a.mp4/default/cmaf-0123456789ab-7.m4s", id="fmp4-segment"),
        pytest.param(layout.segment_key(TITLE, CMAF, INIT), "movies/a.mp4/default/cmaf-0123456789ab-init.mp4", id="fmp4-init"),
        pytest.param(layout.segment_name(CMAF, INIT), "cmaf-0123456789ab-init.mp4", id="fmp4-init-name"),
        pytest.param(layout.segment_key(JOB, CMAF_TARGET, 7), "out/job/v0-0123456789ab-7.m4s", id="target-fmp4-segment"),
        pytest.param(layout.stored_segment_name(CMAF_TARGET, INIT), "v0-0123456789ab-init.mp4", id="target-stored-fmp4-init-name"),
        pytest.param(layout.stored_segment_name(MAIN, 7), "main-0123456789ab-7.ts", id="stored-segment-name"),
        pytest.param(layout.segment_key(TITLE, SUBS, 7), "movies/a.mp4/default/s2-0123456789ab-7.vtt", id="subtitle-segment"),
        pytest.param(layout.segment_name(SUBS, 7), "s2-0123456789ab-7.vtt", id="subtitle-segment-name"),
        pytest.param(layout.media_playlist_key(TITLE, SUBS), "movies/a.mp4/default/s2.m3u8", id="subtitle-playlist"),
        pytest.param(subtitle_rendition_name(SIDECAR), "x8fdf4b74", id="sidecar-rendition-name"),
        pytest.param(layout.media_playlist_name(MAIN), "main.m3u8", id="media-playlist-name"),
        pytest.param(layout.media_playlist_key(TITLE, MAIN), "movies/a.mp4/default/main.m3u8", id="media-playlist"),
        pytest.param(layout.master_playlist_key(TITLE), "movies/a.mp4/default/master.m3u8", id="master-playlist"),
        pytest.param(layout.segment_key(JOB, TARGET, 7), "out/job/v0-0123456789ab-7.ts", id="target-segment"),
        pytest.param(layout.segment_stem(JOB, TARGET), "out/job/v0-0123456789ab-", id="target-segment-stem"),
        pytest.param(layout.segment_name(TARGET, 7), "t0-0123456789ab-7.ts", id="target-segment-url-name"),
        pytest.param(layout.stored_segment_name(TARGET, 7), "v0-0123456789ab-7.ts", id="target-stored-segment-name"),
        pytest.param(layout.media_playlist_key(JOB, TARGET), "out/job/v0.m3u8", id="target-playlist"),
        pytest.param(layout.master_playlist_key(JOB), "out/job/master.m3u8", id="target-master"),
        pytest.param(layout.master_playlist_key(NO_MASTER), None, id="target-no-master"),
        pytest.param(layout.target_prefix("out/job/v0.m3u8"), "out/job/v0", id="target-prefix-of-playlist"),
        pytest.param(layout.target_prefix("out/job/v0"), "out/job/v0", id="target-prefix"),
        pytest.param(layout.target_playlist_key("out/job/v0"), "out/job/v0.m3u8", id="target-playlist-of-prefix"),
        pytest.param(layout.target_segments_prefix("out/job/v0.m3u8"), "out/job/v0-", id="target-segments-prefix"),
        pytest.param(layout.track_prefix("out/job/master.m3u8"), "out/job/master-", id="track-prefix"),
        pytest.param(layout.media_playlist_key(JOB, TRACK), "out/job/master-a2.m3u8", id="track-playlist"),
        pytest.param(layout.segment_key(JOB, TRACK, 7), "out/job/master-a2-0123456789ab-7.ts", id="track-segment"),
        pytest.param(layout.stored_segment_name(TRACK, 7), "master-a2-0123456789ab-7.ts", id="track-stored-segment-name"),
        pytest.param(layout.media_playlist_key(JOB, SUBS_TRACK), "out/job/master-s2.m3u8", id="subtitle-track-playlist"),
        pytest.param(layout.segment_key(JOB, SUBS_TRACK, 7), "out/job/master-s2-0123456789ab-7.vtt", id="subtitle-track-segment"),
        pytest.param(layout.stored_segment_name(SUBS_TRACK, 7), "master-s2-0123456789ab-7.vtt", id="subtitle-track-stored-segment-name"),
        pytest.param(layout.probe_key(SOURCE.key, SOURCE.etag), "movies/a.mp4/probe-8323ea433ff6e0e4.json", id="probe-record"),
        pytest.param(layout.record_key("f" * 16), ".jobs/ffffffffffffffff.json", id="job-record"),
        pytest.param(layout.composite_key("c-" + "f" * 16), ".jobs/composites/c-ffffffffffffffff.json", id="composite-record"),
        pytest.param(layout.batch_record_key("f" * 16), ".jobs/batch/ffffffffffffffff.json", id="batch-record"),
        pytest.param(layout.batch_open_key("f" * 16), ".jobs/batch/open/ffffffffffffffff", id="batch-open"),
        pytest.param(layout.batch_cancel_key("f" * 16), ".jobs/batch/cancel/ffffffffffffffff", id="batch-cancel"),
        pytest.param(
            layout.batch_idempotency_key("tests", "k1"),
            ".jobs/batch/keys/" + hashlib.sha256(b"tests\nk1").hexdigest() + ".json",
            id="batch-idempotency-key",
        ),
        pytest.param(layout.batch_profile_name("x"), ".batch-2d711642b726", id="batch-profile"),
        pytest.param(
            layout.claim_key("out/job/v0.m3u8"),
            ".jobs/claims/00b88ed849ccda6c5edbcc1e5b12e2694e7982b35b106b428bb559dea559da91.json",
            id="job-claim",
        ),
        pytest.param(layout.template_key("hd-720"), ".jobs/templates/hd-720.json", id="template-record"),
        pytest.param(layout.pipeline_key("default"), ".jobs/pipelines/default.json", id="pipeline-record"),
        pytest.param(layout.record_name(".jobs/templates/hd-720.json", layout.TEMPLATES_PREFIX), "hd-720", id="template-name"),
    ],
)
def test_key_shapes(key: str | None, expected: str | None) -> None:
    assert key == expected


@pytest.mark.parametrize(
    ("key", "stem", "index"),
    [
        pytest.param("movies/a.mp4/default/main-0123456789ab-7.ts", "movies/a.mp4/default/main-0123456789ab-", 7, id="key"),
        pytest.param("main-0123456789ab-12.ts", "main-0123456789ab-", 12, id="file-name"),
        pytest.param("main-0123456789ab-12.m3u8", "main-0123456789ab-", None, id="not-a-segment"),
        pytest.param("main-0123456789ab-x.ts", "main-0123456789ab-", None, id="not-a-number"),
        pytest.param("main-0123456789ab-\u0663.ts", "main-0123456789ab-", None, id="non-ascii-digit"),
        pytest.param("p360-0123456789ab-1.ts", "main-0123456789ab-", None, id="other-rendition"),
    ],
)
def test_segment_index_reads_a_segment_key_back(key: str, stem: str, index: int | None) -> None:
    assert layout.segment_index(key, stem) == index


def test_every_segment_key_is_its_stem_and_number() -> None:
    for title, rendition in ((TITLE, MAIN), (JOB, TARGET)):
        stem = layout.segment_stem(title, rendition)
        assert all(layout.segment_index(layout.segment_key(title, rendition, n), stem) == n for n in (0, 1, 99_999))


@pytest.mark.parametrize(
    ("key", "area"),
    [
        pytest.param("movies/a.mp4/default/master.m3u8", "default", id="master"),
        pytest.param("a.mp4/default/x", "default", id="below-a-one-part-source"),
        pytest.param("default/a.m3u8", None, id="source-folder-named-like-a-profile"),
        pytest.param("out/job/v0.m3u8", None, id="elsewhere"),
        pytest.param("out/default", None, id="file-named-like-a-profile"),
    ],
)
def test_profile_area(key: str, area: str | None) -> None:
    assert layout.profile_area(key, ["default", "ladder"]) == area
