"""Jobs whose file's audio is not AAC (batch/remux.py re-encodes the segments' AAC once) and
audio-only files, against the real server: an MP3 file, Opus in Matroska, FLAC in Matroska
compared with its AAC intermediate, the OSS form with vn_1, and the refusals; and snapshot
jobs (pictures of one clip, each its own object)."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from livetx.batch.work import INTERMEDIATE_AB
from livetx.media.sample import SampleSpec, read_index, write_sample
from tests.checker import TS_CLOCK, TS_OFFSET, AudioTrack, check_tone, decode_audio, decode_video
from tests.conftest import Server, launch_server
from tests.jobs_support import FAST, call, finished, job_body, output_path, wait_state

SOURCE = SampleSpec(seconds=4.0, width=320, height=180, fps=Fraction(30), gop=30, sample_rate=44100)  # 44.1 kHz: Opus resamples
WINDOW = (1, 2)  # StartTime, Duration: seconds
CODEC_FRAME = {"mp3": 1152, "opus": 960, "flac": 4608, "aac": 1024}  # samples per frame at most


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    media = tmp_path_factory.mktemp("outputs-media")
    write_sample(media / "tone.mp4", SOURCE)
    with launch_server(tmp_path_factory.mktemp("outputs-home"), media, **FAST) as running:
        yield running


def run_job(server: Server, output: str, fmt: str, audio: dict[str, Any] | None = None) -> Path:
    body = job_body("tone.mp4", output)
    body["Clips"][0] |= {"StartTime": WINDOW[0], "Duration": WINDOW[1]}
    body["Output"]["Format"] = fmt
    if audio is not None:
        body["Audio"] = {"TranscodeAudio": audio}
    finished(server, body)
    return output_path(server, output)


@dataclass
class Decoded:
    codec: str
    track: AudioTrack  # samples as floats in [-1, 1] whatever the decoder's format
    start: Fraction  # seconds: the stream's start time (see check_audio)


def decoded(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        start = Fraction(stream.start_time or 0) * (stream.time_base or 1)
        track = decode_audio(container)
        name = stream.codec_context.codec.canonical_name
        fmt, planar, channels = stream.format.name, stream.format.is_planar, stream.codec_context.channels
    if not planar:  # decode_audio's first row of a packed frame is every channel's samples in turn (FLAC)
        track.samples = track.samples[::channels]
    if fmt.startswith("s16") or fmt.startswith("s32"):  # integer samples (FLAC) as floats
        track.samples = track.samples / 2.0 ** (15 if fmt.startswith("s16") else 31)
    return Decoded(name, track, start)


@pytest.fixture(scope="module")
def intermediate(server: Server) -> AudioTrack:
    """The AAC segments a job re-encodes (the rendition asked at INTERMEDIATE_AB), copied into a file."""
    path = run_job(server, "out/intermediate.mkv", "mkv", {"Codec": "aac", "Bitrate": INTERMEDIATE_AB, "BitrateOption": 0})
    return decoded(path).track


def check_audio(got: Decoded, intermediate: AudioTrack) -> None:
    """The tone at its time from the window's start, without a gap or a jump, and as long as
    the AAC it was made from (whole AAC frames, a little over the window) within one codec
    frame. FFmpeg's MP3 demuxer gives the first sample the time of the encoder delay it skipped
    (ffprobe's start_time 0.025057 of a LAME file at 44.1 kHz): title time 0 is the stream's
    start time there."""
    track, frame = got.track, CODEC_FRAME[got.codec]
    report = check_tone(track, SOURCE.tone_hz, skip_tail=3, offset=got.start if got.codec == "mp3" else Fraction(0))
    assert report.worst_phase < 0.05, report
    assert report.worst_amplitude < 0.1, report
    made = Fraction(len(track.samples), track.sample_rate)
    asked = Fraction(len(intermediate.samples), intermediate.sample_rate)
    assert abs(made - asked) <= Fraction(frame, track.sample_rate), (made, asked)
    assert abs(asked - WINDOW[1]) <= Fraction(CODEC_FRAME["aac"], intermediate.sample_rate)


def test_an_mp3_job_writes_an_mp3_file_of_the_window(server: Server, intermediate: AudioTrack) -> None:
    path = run_job(server, "out/a.mp3", "mp3", {"Bitrate": 128000})
    with av.open(str(path)) as container:
        assert container.format.name == "mp3" and not container.streams.video
    got = decoded(path)
    assert (got.codec, got.track.sample_rate) == ("mp3", 44100)
    check_audio(got, intermediate)


def test_opus_in_matroska_is_resampled_to_48_khz_beside_the_copied_video(server: Server, intermediate: AudioTrack) -> None:
    path = run_job(server, "out/opus.mkv", "mkv", {"Codec": "opus", "Bitrate": 96000})
    got = decoded(path)
    assert (got.codec, got.track.sample_rate) == ("opus", 48000)
    check_audio(got, intermediate)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert decode_video(container).indexes == list(range(30, 90))


def test_the_re_encode_keeps_the_channels_asked_for(server: Server) -> None:
    path = run_job(server, "out/mono.mka", "mkv", {"Codec": "opus", "Channels": 1})
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.channels == 1
    track = decoded(path).track
    report = check_tone(track, SOURCE.tone_hz, skip_tail=3, offset=Fraction(0))
    assert report.worst_phase < 0.05, report  # at its time
    report = check_tone(track, SOURCE.tone_hz, skip_tail=3, offset=Fraction(0), relative=True)
    assert report.worst_amplitude < 0.1, report  # at one level (the downmix's, not the source's)


@pytest.mark.parametrize(("fmt", "codec"), [("mp4", "opus"), ("mov", "mp3"), ("ts", "mp3")])
def test_other_containers_carry_the_re_encoded_audio_at_its_time(server: Server, intermediate: AudioTrack, fmt: str, codec: str) -> None:
    path = run_job(server, f"out/other.{codec}.{fmt}", fmt, {"Codec": codec})
    got = decoded(path)
    assert got.codec == codec
    if fmt == "ts":  # MPEG-TS keeps the segments' clock and does not record the encoder's delay:
        # the priming decodes, stamped before the window's start, and the tone is at its time
        report = check_tone(got.track, SOURCE.tone_hz, skip_tail=3, offset=TS_OFFSET)
        assert report.worst_phase < 0.05 and report.worst_amplitude < 0.1, report
    else:
        check_audio(got, intermediate)
    with av.open(str(path)) as container:
        assert decode_video(container).indexes == list(range(30, 90))


@pytest.mark.parametrize("depth", [16, 24])
def test_flac_in_matroska_is_its_aac_intermediate_losslessly(server: Server, intermediate: AudioTrack, depth: int) -> None:
    path = run_job(server, f"out/flac{depth}.mkv", "mkv", {"Codec": "flac", "BitDepth": depth})
    got = decoded(path)
    assert got.codec == "flac"
    with av.open(str(path)) as container:
        assert container.streams.audio[0].format.name == ("s16" if depth == 16 else "s32")
    check_audio(got, intermediate)
    # lossless: the AAC it was made from (the same rendition's segments), sample for sample,
    # but for the depth's quantisation
    assert got.track.first_pts == intermediate.first_pts and len(got.track.samples) == len(intermediate.samples)
    assert np.max(np.abs(intermediate.samples - got.track.samples)) <= 2.0 ** (1 - depth)


def test_the_oss_form_with_vn_writes_audio_only(server: Server, intermediate: AudioTrack) -> None:
    b64 = lambda text: base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")  # noqa: E731
    process = f"video/concat,f_mkv,vn_1,acodec_opus,ab_64000,ss_1000,t_2000|sys/saveas,b_{b64('local')},o_{b64('out/oss-opus.mkv')}"
    form = urllib.parse.urlencode({"x-oss-async-process": process}).encode()
    status, answer = call(server, "POST", "/tone.mp4?x-oss-async-process", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, answer
    done = wait_state(server, answer["TaskId"], ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    path = output_path(server, "out/oss-opus.mkv")
    with av.open(str(path)) as container:
        assert not container.streams.video
    got = decoded(path)
    assert got.codec == "opus"
    check_audio(got, intermediate)


@pytest.mark.parametrize(("fmt", "acodec"), [("webm", "opus"), ("mkv", "aac"), ("mp4", "opus")])
def test_vp9_is_made_in_fmp4_segments_and_copied_into_the_file(server: Server, intermediate: AudioTrack, fmt: str, acodec: str) -> None:
    body = job_body("tone.mp4", f"out/vp9.{acodec}.{fmt}")
    body["Clips"][0] |= {"StartTime": WINDOW[0], "Duration": WINDOW[1]}
    body["Output"]["Format"] = fmt
    body["Video"] = {"TranscodeVideo": {"Codec": "vp9"}}
    body["Audio"] = {"TranscodeAudio": {"Codec": acodec}}
    finished(server, body)
    path = output_path(server, f"out/vp9.{acodec}.{fmt}")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.codec.canonical_name == "vp9"
        video = decode_video(container)
    assert video.indexes == list(range(30, 90))
    if fmt == "webm":
        assert video.pts == [round(Fraction(k, 30) * 1000) * TS_CLOCK // 1000 for k in range(60)]  # Matroska's clock: ms
    got = decoded(path)
    assert got.codec == acodec
    if acodec == "aac":
        report = check_tone(got.track, SOURCE.tone_hz, skip_tail=3, offset=Fraction(0))
        assert report.worst_phase < 0.05 and report.worst_amplitude < 0.1, report
    else:
        check_audio(got, intermediate)


ONE = job_body("tone.mp4", "o.mkv")


@pytest.mark.parametrize(
    ("output", "audio", "status", "parameter"),
    [
        pytest.param({"Format": "mp3"}, {"Codec": "aac"}, 400, "Audio.TranscodeAudio.Codec", id="mp3-holds-mp3"),
        pytest.param({"Format": "m4a"}, {"Codec": "opus"}, 400, "Audio.TranscodeAudio.Codec", id="m4a-holds-aac"),
        pytest.param({"Format": "mov"}, {"Codec": "flac"}, 400, "Audio.TranscodeAudio.Codec", id="mov-no-flac"),
        pytest.param({"Format": "ts"}, {"Codec": "flac"}, 400, "Audio.TranscodeAudio.Codec", id="ts-no-flac"),
        pytest.param({"Format": "mkv"}, {"Codec": "opus", "SampleRate": 44100}, 400, "Audio.TranscodeAudio.SampleRate", id="opus-rate"),
        pytest.param({"Format": "mkv"}, {"Codec": "mp3", "BitDepth": 24}, 400, "Audio.TranscodeAudio.BitDepth", id="depth-flac-only"),
        pytest.param({"Format": "mkv"}, {"Codec": "vorbis"}, 422, "Audio.TranscodeAudio.Codec", id="vorbis-not-made"),
        pytest.param({"Format": "webm"}, {"Codec": "aac"}, 422, "Video.TranscodeVideo.Codec", id="webm-h264"),
    ],
)
def test_bad_audio_outputs_name_the_field(
    server: Server, output: dict[str, Any], audio: dict[str, Any], status: int, parameter: str
) -> None:
    body = {**ONE, "Output": {**ONE["Output"], **output}, "Audio": {"TranscodeAudio": audio}}
    got, answer = call(server, "POST", "/api/v1/jobs", body)
    assert got == status, answer
    assert answer["error"]["parameter"] == parameter, answer


# ---- snapshot jobs (livetx/batch/snapshots.py): pictures of one clip, numbered objects -----


def picture_index(path: Path) -> int:
    with Image.open(path) as image:
        return read_index(np.asarray(image.convert("L")))


def test_a_snapshot_job_writes_each_exact_frame_to_its_numbered_object(server: Server) -> None:
    """Every Interval seconds from Time, in the clip's time (after its StartTime): picture n is
    the frame its time implies, at the size asked, named with {Count} as 00001, 00002..."""
    body = job_body("tone.mp4", "shots/tone-{Count}.png")
    body["Clips"][0]["StartTime"] = 1
    body["Output"]["Format"] = "png"
    body["Snapshot"] = {"Time": 250, "Interval": 1, "Width": 320}
    done = finished(server, body)
    times = [250, 1250, 2250]  # to the clip's end (3 s of it): three
    assert [o["URI"] for o in done["Outputs"]] == [f"oss://local/shots/tone-{n:05d}.png" for n in (1, 2, 3)]
    for n, t in enumerate(times, 1):
        path = output_path(server, f"shots/tone-{n:05d}.png")
        assert [o["Size"] for o in done["Outputs"]][n - 1] == path.stat().st_size
        with Image.open(path) as image:
            assert image.size == (320, 180) and image.format == "PNG"
        assert picture_index(path) == int((1000 + t) * SOURCE.fps / 1000)  # StartTime 1 s, then t
    assert not output_path(server, "shots/tone-00004.png").exists()


def test_a_snapshot_job_at_given_times_takes_keyframes_with_frametype_intra(server: Server) -> None:
    body = job_body("tone.mp4", "shots/key-{Count}.jpg")
    body["Output"].pop("Format")  # from the URI's suffix
    body["Snapshot"] = {"Times": [1500, 500], "FrameType": "intra", "Width": 160, "Quality": 90}
    done = finished(server, body)
    assert len(done["Outputs"]) == 2
    gop_ms = 1000 * SOURCE.gop / SOURCE.fps
    for n, t in enumerate([1500, 500], 1):
        path = output_path(server, f"shots/key-{n:05d}.jpg")
        with Image.open(path) as image:
            assert image.size == (160, 90) and image.format == "JPEG"
            # scaled to half: the index blocks read at the source's size
            index = read_index(np.asarray(image.convert("L").resize((SOURCE.width, SOURCE.height), Image.Resampling.BICUBIC)))
        assert index == int(t // gop_ms * SOURCE.gop)  # the keyframe at or before t


@pytest.mark.parametrize(
    ("snapshot", "output", "parameter"),
    [
        ({"Times": [500, 9000]}, {}, "Snapshot.Times[1]"),  # past the 4 s clip
        ({"Time": 500, "Interval": 1, "Num": 9}, {}, "Snapshot.Num"),
        ({"Time": 4000}, {}, "Snapshot.Time"),
        ({"Times": [0], "Time": 5}, {}, "Snapshot.Time"),
        ({"Num": 3}, {}, "Snapshot.Num"),  # several with no Interval
        ({"Width": 100000}, {}, "Snapshot.Width"),
        ({"FrameType": "b"}, {}, "Snapshot.FrameType"),
        ({"Times": [0, 1000]}, {"URI": "oss://local/shots/one.jpg"}, "Output.URI"),  # two pictures, one name
        ({"Times": [0]}, {"URI": "oss://local/shots/one.gif", "Format": None}, "Output.Format"),
        ({"Times": [0]}, {"Segment": {"Format": "hls"}}, "Output.Segment"),
    ],
)
def test_bad_snapshot_jobs_name_the_field(server: Server, snapshot: dict[str, Any], output: dict[str, Any], parameter: str) -> None:
    body = job_body("tone.mp4", "shots/bad-{Count}.jpg", Snapshot=snapshot)
    body["Output"] = {k: v for k, v in {**body["Output"], "Format": "jpg", **output}.items() if v is not None}
    got, answer = call(server, "POST", "/api/v1/jobs", body)
    assert got == 400, answer
    assert answer["error"]["parameter"] == parameter, answer


def test_a_picture_format_without_snapshot_is_refused(server: Server) -> None:
    body = job_body("tone.mp4", "shots/file.jpg")
    body["Output"]["Format"] = "jpg"
    got, answer = call(server, "POST", "/api/v1/jobs", body)
    assert got == 400 and answer["error"]["parameter"] == "Output.Format", answer
