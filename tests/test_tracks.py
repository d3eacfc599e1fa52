"""Every audio and subtitle track (issue 16), worker and model layer: the probe records each
track's facts; audio-only segments of any audio stream, made alone in any order on the video's
windows, join as one pass (checked by decoding); video-only segments carry no audio."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from livetx.media.model import INIT, AudioTrack, MediaInfo, SubtitleTrack
from livetx.media.probe import is_bitmap_subtitle, probe
from livetx.media.transcode import AAC_FRAME, TS_OFFSET, transcode_segment
from livetx.storage.base import ObjectInfo
from livetx.titles import Title, build_title, parse_profile
from tests.checker import check_tone, decode_audio, decode_video, open_fmp4, open_joined, residual_peaks
from tests.multitrack import TRACKS, MultiTrackSpec, write_multitrack

SPEC = MultiTrackSpec()
CONTAINERS = (".mkv", ".mp4")
STREAM = 2  # the French track: 660 Hz


@pytest.fixture(scope="module", params=CONTAINERS)
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tracks") / f"tracks{request.param}"
    write_multitrack(path, SPEC)
    return path


# ---- the probe --------------------------------------------------------------------------


EXPECTED_AUDIO = {
    ".mkv": [
        AudioTrack(1, "aac", 2, "stereo", 48000, language="eng", default=True),
        AudioTrack(2, "aac", 2, "stereo", 48000, language="fra", title="Français"),
        AudioTrack(3, "aac", 2, "stereo", 48000, language="eng", title="Director's commentary", roles=("comment",)),
        AudioTrack(4, "aac", 6, "5.1", 48000, language="deu", title="Deutsch 5.1", roles=("visual_impaired",)),
    ],
    # MP4 keeps the title as `name` (next to a `handler_name`), and adds `descriptions`
    ".mp4": [
        AudioTrack(1, "aac", 2, "stereo", 48000, language="eng", default=True),
        AudioTrack(2, "aac", 2, "stereo", 48000, language="fra", title="Français"),
        AudioTrack(3, "aac", 2, "stereo", 48000, language="eng", title="Director's commentary", roles=("comment",)),
        AudioTrack(4, "aac", 6, "5.1", 48000, language="deu", title="Deutsch 5.1", roles=("visual_impaired", "descriptions")),
    ],
}
EXPECTED_SUBTITLES = {
    ".mkv": [
        SubtitleTrack(5, "srt", False, language="eng", default=True),
        SubtitleTrack(6, "ssa", False, language="fra", title="Forcés", forced=True),
    ],
    # the MP4 muxer flags the first track of each kind default by itself
    ".mp4": [SubtitleTrack(5, "mov_text", False, "eng", "English SDH", True, roles=("hearing_impaired", "captions"))],
}


def test_probe_records_every_audio_track(source: Path) -> None:
    info = probe(str(source))
    # header facts; bit rates (MP4 only) and ends (tail probe) are checked below
    assert [replace(t, bit_rate=None, start=None, end=None) for t in info.audio_tracks] == EXPECTED_AUDIO[source.suffix]
    for track in info.audio_tracks:
        assert track.start == 0 and track.end is not None and abs(track.end - 6) < Fraction(2 * AAC_FRAME, 48000)
        assert (track.bit_rate is not None) == (source.suffix == ".mp4")


def test_probe_records_every_subtitle_track(source: Path) -> None:
    assert list(probe(str(source)).subtitle_tracks) == EXPECTED_SUBTITLES[source.suffix]


BITMAP = [("srt", False), ("ssa", False), ("mov_text", False), ("hdmv_pgs_subtitle", True), ("dvd_subtitle", True)]


@pytest.mark.parametrize(("codec", "bitmap"), BITMAP)
def test_bitmap_subtitles_are_told_from_text(codec: str, bitmap: bool) -> None:
    assert is_bitmap_subtitle(codec) is bitmap


def test_first_audio_stays_what_muxed_renditions_use(source: Path) -> None:
    info = probe(str(source))
    assert info.audio is not None and info.audio.index == 1
    first = info.audio_tracks[0]
    assert (first.index, first.codec, first.sample_rate, first.channels, first.start, first.end) == (
        info.audio.index,
        info.audio.codec,
        info.audio.sample_rate,
        info.audio.channels,
        info.audio.start,
        info.audio.end,
    )
    assert info.default_audio_track == first and info.audio_track(STREAM) == info.audio_tracks[1]


def test_probe_record_round_trips_through_json(source: Path) -> None:
    info = probe(str(source))
    assert MediaInfo.from_record(json.loads(json.dumps(info.to_record()))) == info


def test_a_record_from_before_the_tracks_is_probed_again(source: Path) -> None:
    """A version-1 record knows no tracks: loading it would say "no audio tracks", so it is refused
    and the catalog probes the source again (the same video/audio facts, so the same spec ids)."""
    record = json.loads(json.dumps(probe(str(source)).to_record()))
    del record["info"]["audio_tracks"], record["info"]["subtitle_tracks"]
    record["version"] = 1
    with pytest.raises(ValueError, match="version"):
        MediaInfo.from_record(record)


# ---- audio-only and video-only segments ---------------------------------------------------


def _title(source: Path, container: str) -> Title:
    rendition = {"preset": "ultrafast", "ab": 128000, "container": container}
    table = {"st": 5000, "initial_segments": [1000, 1000, 1500], "audio": "muxed", "renditions": {"r": rendition}}  # muxed jobs
    profile = parse_profile("t", table)
    return build_title(ObjectInfo(source.name, source.stat().st_size, "test"), probe(str(source)), profile)


def _audio_segments(source: Path, container: str, stream: int) -> tuple[bytes | None, list[bytes], list[Fraction]]:
    """Audio-only segments of source `stream` on the video rendition's windows, made alone in a
    shuffled order (and the init segment, for fMP4)."""
    title = _title(source, container)
    rendition = title.renditions[0]
    assert rendition.video is not None and rendition.audio is not None

    def job(index: int) -> bytes:
        muxed = title.job(rendition, index, str(source))
        return transcode_segment(replace(muxed, video=None, video_stream=None, audio_stream=stream)).data

    order = list(range(len(rendition.windows)))
    random.Random(16).shuffle(order)
    made = {i: job(i) for i in order}
    init = None
    if container == "fmp4":
        muxed_init = title.job(rendition, INIT, "")
        init = transcode_segment(replace(muxed_init, video=None)).data
    return init, [made[i] for i in range(len(order))], [w.start for w in rendition.windows]


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_audio_only_segments_of_one_track_join_as_one_pass(source: Path, container: str) -> None:
    init, segments, starts = _audio_segments(source, container, STREAM)
    offset = TS_OFFSET if container == "ts" else Fraction(0)
    for data, start in zip(segments, starts, strict=True):
        with av.open(io.BytesIO((init or b"") + data), format="mpegts" if container == "ts" else "mp4") as one:
            assert not one.streams.video and len(one.streams.audio) == 1
            first = decode_audio(one).first_pts
        # each segment opens on the global AAC grid, within one AAC frame after its video window's start
        grid = Fraction(first, 90000) - offset
        assert (grid * 48000) % AAC_FRAME == 0 and 0 <= grid - start < Fraction(AAC_FRAME, 48000)
    joined = open_joined(segments) if init is None else open_fmp4(init, segments)
    with joined:
        audio = decode_audio(joined)
    step = AAC_FRAME * 90000 / audio.sample_rate
    assert max(abs(b - a - step) for a, b in zip(audio.pts, audio.pts[1:], strict=False)) <= 90  # joins within 1 ms
    tone = TRACKS[STREAM - 1].tone_hz
    report = check_tone(audio, tone, skip_tail=3, offset=offset)
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report  # this track's tone, phase constant
    assert residual_peaks(audio, tone, offset=offset)[2048 : -3 * 2048].max() < 0.05  # no click


def test_audio_only_ts_groups_frames_and_sends_its_tables_once(source: Path) -> None:
    """An audio-only MPEG-TS segment carries its AAC with little overhead: frames grouped into
    PES packets (not one PES, and so one padded run of TS packets, per 21 ms frame) and PAT,
    PMT and SDT once at its start. One PES per frame and the tables ten times a second cost
    46 % more bytes at 128 kbit/s; grouped, the joins and the tone above are checked on these
    very segments."""
    _, segments, _ = _audio_segments(source, "ts", STREAM)
    for data in segments[:-1]:  # (the last is the shortest)
        packets = [data[i : i + 188] for i in range(0, len(data), 188)]
        pids = Counter(((p[1] & 0x1F) << 8) | p[2] for p in packets)
        assert pids[0] == 1 and pids[0x11] == 1, pids  # PAT once, SDT once
        audio_pid = max(pids, key=pids.__getitem__)
        pes = sum(1 for p in packets if ((p[1] & 0x1F) << 8) | p[2] == audio_pid and p[1] & 0x40)  # payload unit starts
        with av.open(io.BytesIO(data), format="mpegts") as one:
            frames = [p.size for p in one.demux(one.streams.audio[0]) if p.size]
        assert pes < len(frames) / 4, (pes, len(frames))  # several AAC frames in each PES
        assert len(data) < 1.15 * sum(frames), (len(data), sum(frames))


def test_surround_track_is_downmixed_to_stereo_without_joins(source: Path) -> None:
    _, segments, _ = _audio_segments(source, "ts", 4)
    with open_joined(segments) as joined:
        assert joined.streams.audio[0].codec_context.channels == 2
        audio = decode_audio(joined)
    report = check_tone(audio, TRACKS[3].tone_hz, skip_tail=3, relative=True)  # the downmix sets its own level
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_video_only_segment_has_no_audio(source: Path, container: str) -> None:
    title = _title(source, container)
    rendition = title.renditions[0]
    job = replace(title.job(rendition, 1, str(source)), audio=None, audio_stream=None)
    data = transcode_segment(job).data
    if container == "fmp4":
        data = transcode_segment(replace(title.job(rendition, INIT, ""), audio=None)).data + data
    with av.open(io.BytesIO(data), format="mpegts" if container == "ts" else "mp4") as one:
        assert not one.streams.audio
        video = decode_video(one)
    window = rendition.windows[1]
    assert video.indexes == list(range(round(window.start * SPEC.fps), round(window.stop * SPEC.fps)))
