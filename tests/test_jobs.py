"""livetx/jobs.py on its own: IMM and OSS requests -> jobs, their ids, namespace, limits and records.

Pure functions: no server, no storage I/O. Object URIs are resolved by a real LocalStorage
(bucket `local`), as the API does for a local-directory store.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from livetx.errors import LimitExceeded, OutputReserved, ParameterError
from livetx.jobs import JOB_PREFIX, Job, check_limits, check_namespace, imm_request, is_job_profile, parse_imm, parse_oss, renamed
from livetx.media.params import resolve_container
from livetx.settings import LimitsSettings
from livetx.storage.local import LocalStorage

KEY_FOR = LocalStorage(Path("/nonexistent")).key_for_uri  # pure: maps oss://local/<key> to <key>
SOURCE = "in/a.mp4"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


SAVEAS = f"sys/saveas,o_{b64('out/x')},b_{b64('local')}"


def imm(**changes: Any) -> dict[str, Any]:
    """A valid GenerateVideoPlaylist body with one target; `changes` replace top-level fields."""
    body: dict[str, Any] = {
        "ProjectName": "p",
        "SourceURI": f"oss://local/{SOURCE}",
        "MasterURI": "oss://local/out/master.m3u8",
        "Targets": [
            {
                "URI": "oss://local/out/v0",
                "Duration": 10,
                "InitialSegments": [2, 2],
                "InitialTranscode": 20,
                "Video": {"TranscodeVideo": {"Codec": "H264", "FrameRate": 25, "Resolution": "640x", "CRF": 26, "Bitrate": 900000}},
                "Audio": {"TranscodeAudio": {"Codec": "aac", "Bitrate": 96000, "SampleRate": 44100, "Channels": 2}},
            }
        ],
    }
    return {**body, **changes}


def target(**changes: Any) -> dict[str, Any]:
    """A body whose first target has `changes` (None removes a field)."""
    body = imm()
    body["Targets"][0] = {k: v for k, v in {**body["Targets"][0], **changes}.items() if v is not None}
    return body


def video(**changes: Any) -> dict[str, Any]:
    body = imm()
    body["Targets"][0]["Video"]["TranscodeVideo"].update(changes)
    return body


def audio(**changes: Any) -> dict[str, Any]:
    body = imm()
    body["Targets"][0]["Audio"]["TranscodeAudio"].update(changes)
    return body


# ---- IMM GenerateVideoPlaylist -------------------------------------------------------------


def test_an_imm_request_becomes_a_profile_table_with_its_prefixes() -> None:
    job = parse_imm(imm(), KEY_FOR, KEY_FOR)
    assert job.source_key == SOURCE and job.master_key == "out/master.m3u8"
    assert job.table == {
        "renditions": {
            "t0": {
                "preset": "veryfast",
                "vcodec": "h264",  # Codec lowered
                "fps": 25,
                "s": "640x",
                "crf": 26,
                "maxrate": 900000,  # CRF and Bitrate both: quality mode capped at the bitrate
                "acodec": "aac",
                "ab": 96000,
                "ar": 44100,
                "ac": 2,
                "st": 10000,  # seconds -> ms
                "initial_segments": [2000, 2000],
                "initd": 20000,
            }
        }
    }
    assert job.prefixes == {"t0": "out/v0"} and job.uris == {"t0": "oss://local/out/v0"}
    assert job.profile_name == JOB_PREFIX + job.id and is_job_profile(job.profile_name)
    assert job.claims() == {"out/master.m3u8": "MasterURI", "out/v0.m3u8": "Targets[0].URI"}


@pytest.mark.parametrize(
    ("changes", "container"),
    [
        pytest.param({}, "ts", id="default"),
        pytest.param({"Container": "fmp4"}, "fmp4", id="fmp4"),
        pytest.param({"Container": "FMP4"}, "fmp4", id="fmp4-any-case"),
        pytest.param({"Container": "ts", "Video": {"TranscodeVideo": {"Codec": "H265"}}}, "ts", id="hevc-ts-asked"),
        pytest.param({"Video": {"TranscodeVideo": {"Codec": "H265"}}}, "fmp4", id="hevc-default"),
        pytest.param({"Video": {"TranscodeVideo": {"Codec": "AV1"}}}, "fmp4", id="av1-default"),
    ],
)
def test_an_imm_target_takes_its_container_from_the_request(changes: dict[str, Any], container: str) -> None:
    job = parse_imm(target(**changes), KEY_FOR, KEY_FOR)
    asked = changes.get("Container")
    assert job.table["renditions"]["t0"].get("container") == (asked.lower() if asked else None)
    (rendition,) = job.profile().renditions
    assert resolve_container(rendition.params) == container


def test_an_oss_process_takes_its_container() -> None:
    job = parse_oss(SOURCE, f"hls/m3u8,container_fmp4,s_x180|{SAVEAS}", KEY_FOR)
    assert job.table["renditions"]["t0"]["container"] == "fmp4"
    assert resolve_container(job.profile().renditions[0].params) == "fmp4"
    with pytest.raises(ParameterError) as raised:
        parse_oss(SOURCE, f"hls/m3u8,vcodec_av1,container_ts|{SAVEAS}", KEY_FOR)
    assert raised.value.name == "container"


@pytest.mark.parametrize(
    ("encryption", "method", "rotation"),
    [
        pytest.param({"Method": "AES-128", "KeyRotation": 30}, "aes-128", 30, id="aes-128-rotating"),
        pytest.param({"Method": "aes-128"}, "aes-128", 0, id="aes-128-one-key"),
        pytest.param({"Method": "NONE", "KeyRotation": 30}, "none", 30, id="none"),
    ],
)
def test_an_imm_target_takes_its_encryption_from_the_request(encryption: dict[str, Any], method: str, rotation: int) -> None:
    """`Encryption` (a livetx extension) sets the target's title parameters `encryption` and
    `key_rotation`; an encrypted target is another job than the clear one."""
    job = parse_imm(target(Encryption=encryption), KEY_FOR, KEY_FOR)
    params = job.table["renditions"]["t0"]
    assert params["encryption"] == method and params.get("key_rotation", 0) == rotation
    (rendition,) = job.profile().renditions
    assert (rendition.title.encryption, rendition.title.key_rotation) == (method, rotation)
    assert job.id != parse_imm(imm(), KEY_FOR, KEY_FOR).id


def test_a_planning_error_about_encryption_names_the_target_that_asked() -> None:
    """No master key (found when the title is planned): the error names the first target that
    set `encryption`, in the request's terms; an OSS request's names the parameter."""
    body = imm()
    body["Targets"].append({**body["Targets"][0], "URI": "oss://local/out/v1", "Encryption": {"Method": "AES-128"}})
    job = parse_imm(body, KEY_FOR, KEY_FOR)
    error = renamed(job, ParameterError("encryption", "none: no encryption master key is configured"))
    assert error.name == "Targets[1].Encryption.Method" and "no encryption master key" in error.message
    oss = parse_oss(SOURCE, f"hls/m3u8,encryption_aes-128|{SAVEAS}", KEY_FOR)
    assert renamed(oss, ParameterError("encryption", "none")).name == "encryption"


def test_the_imm_schema_declares_the_encryption_extension() -> None:
    """The OpenAPI schema follows from the declaration: the parameter's choices and bounds."""
    schema = imm_request().schema()["properties"]["Targets"]["items"]["properties"]["Encryption"]
    assert schema["required"] == ["Method"] and "livetx extension" in schema["description"]
    assert schema["properties"]["Method"]["enum"] == ["none", "aes-128", "sample-aes"]
    assert (schema["properties"]["KeyRotation"]["minimum"], schema["properties"]["KeyRotation"]["maximum"]) == (0, 100000)


def test_an_imm_target_uri_ending_in_m3u8_names_the_same_prefix() -> None:
    job = parse_imm(target(URI="oss://local/out/v0.m3u8"), KEY_FOR, KEY_FOR)
    assert job.prefixes == {"t0": "out/v0"}


def test_an_imm_job_profile_carries_its_source_master_and_prefixes() -> None:
    profile = parse_imm(imm(), KEY_FOR, KEY_FOR).profile()
    assert profile.source_key == SOURCE and profile.master_key == "out/master.m3u8"
    assert [(r.name, r.object_prefix, r.title.st) for r in profile.renditions] == [("t0", "out/v0", 10000)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param([], "body", id="body-not-object"),
        pytest.param(imm(Extra=1), "Extra", id="unknown-top-field"),
        pytest.param(imm(ProjectName=7), "ProjectName", id="project-name-not-text"),
        pytest.param({k: v for k, v in imm().items() if k != "SourceURI"}, "SourceURI", id="source-missing"),
        pytest.param(imm(SourceURI="oss://other/a.mp4"), "SourceURI", id="source-other-bucket"),
        pytest.param(imm(SourceURI="a.mp4"), "SourceURI", id="source-not-uri"),
        pytest.param(imm(MasterURI="oss://local/out/master.txt"), "MasterURI", id="master-not-m3u8"),
        pytest.param(imm(Targets=[]), "Targets", id="no-targets"),
        pytest.param(imm(Targets={"URI": "x"}), "Targets", id="targets-not-list"),
        pytest.param(imm(Targets=["x"]), "Targets[0]", id="target-not-object"),
        pytest.param(target(Bogus=1), "Targets[0].Bogus", id="unknown-target-field"),
        pytest.param(target(URI=None), "Targets[0].URI", id="target-uri-missing"),
        pytest.param(target(URI="oss://other/out/v0"), "Targets[0].URI", id="target-uri-other-bucket"),
        pytest.param(imm(Targets=[imm()["Targets"][0]] * 2), "Targets[1].URI", id="target-uri-twice"),
        pytest.param(target(Duration=3), "Targets[0].Duration", id="duration-short"),
        pytest.param(target(Duration="10"), "Targets[0].Duration", id="duration-text"),
        pytest.param(target(Duration=float("nan")), "Targets[0].Duration", id="duration-nan"),
        pytest.param(target(InitialSegments=[0.5]), "Targets[0].InitialSegments", id="initial-segment-short"),
        pytest.param(target(InitialSegments=2), "Targets[0].InitialSegments", id="initial-segments-not-list"),
        pytest.param(target(InitialTranscode="20"), "Targets[0].InitialTranscode", id="initial-transcode-text"),
        pytest.param(target(Video=[]), "Targets[0].Video", id="video-not-object"),
        pytest.param(target(Video={"TranscodeVideo": 1}), "Targets[0].Video.TranscodeVideo", id="transcode-video-not-object"),
        pytest.param(video(Gop=1), "Targets[0].Video.TranscodeVideo.Gop", id="unknown-video-field"),
        pytest.param(video(Codec="vp9"), "Targets[0].Video.TranscodeVideo.Codec", id="video-codec"),
        pytest.param(video(FrameRate=500), "Targets[0].Video.TranscodeVideo.FrameRate", id="frame-rate"),
        pytest.param(video(Resolution="641x"), "Targets[0].Video.TranscodeVideo.Resolution", id="resolution-odd"),
        pytest.param(video(ScaleType="zoom"), "Targets[0].Video.TranscodeVideo.ScaleType", id="scale-type"),
        pytest.param(video(CRF=60), "Targets[0].Video.TranscodeVideo.CRF", id="crf"),
        pytest.param(video(Bitrate=5), "Targets[0].Video.TranscodeVideo.Bitrate", id="video-bitrate-capped"),
        pytest.param(video(CRF=None, Bitrate=5), "Targets[0].Video.TranscodeVideo.Bitrate", id="video-bitrate"),
        pytest.param(target(Audio="aac"), "Targets[0].Audio", id="audio-not-object"),
        pytest.param(audio(Codec="mp3"), "Targets[0].Audio.TranscodeAudio.Codec", id="audio-codec"),
        pytest.param(audio(Bitrate=5), "Targets[0].Audio.TranscodeAudio.Bitrate", id="audio-bitrate"),
        pytest.param(audio(SampleRate=12345), "Targets[0].Audio.TranscodeAudio.SampleRate", id="sample-rate"),
        pytest.param(audio(Channels=9), "Targets[0].Audio.TranscodeAudio.Channels", id="channels"),
        pytest.param(target(Container="mkv"), "Targets[0].Container", id="container"),
        pytest.param(target(Container=1), "Targets[0].Container", id="container-not-text"),
        pytest.param(target(Container="ts", Video={"TranscodeVideo": {"Codec": "AV1"}}), "Targets[0].Container", id="av1-in-ts"),
        pytest.param(target(Encryption="aes-128"), "Targets[0].Encryption", id="encryption-not-object"),
        pytest.param(target(Encryption={"Method": "des"}), "Targets[0].Encryption.Method", id="encryption-method"),
        pytest.param(target(Encryption={"KeyRotation": 30}), "Targets[0].Encryption.Method", id="encryption-method-missing"),
        pytest.param(target(Encryption={"Method": "AES-128", "KeyRotation": -1}), "Targets[0].Encryption.KeyRotation", id="key-rotation"),
        pytest.param(target(Encryption={"Method": "AES-128", "Key": "00"}), "Targets[0].Encryption.Key", id="encryption-unknown-field"),
        pytest.param(target(Encryption={"Method": "SAMPLE-AES"}), "Targets[0].Encryption.Method", id="sample-aes-in-ts"),
    ],
)
def test_an_invalid_imm_field_is_named_in_the_requests_terms(body: Any, field: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_imm(body, KEY_FOR, KEY_FOR)
    assert raised.value.name == field and raised.value.details["parameter"] == field


# ---- OSS hls/m3u8 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "method", "rotation"),
    [
        pytest.param("encryption_aes-128,key_rotation_30", "aes-128", 30, id="aes-128-rotating"),
        pytest.param("key_rotation_2,encryption_aes-128", "aes-128", 2, id="rotation-first"),
        pytest.param("encryption_aes-128", "aes-128", 0, id="aes-128-one-key"),
        pytest.param("encryption_sample-aes,container_fmp4", "sample-aes", 0, id="sample-aes-fmp4"),
    ],
)
def test_an_oss_process_takes_encryption_for_the_title(options: str, method: str, rotation: int) -> None:
    """`encryption_<method>` and `key_rotation_<segments>` (livetx extensions) are title
    parameters; a parameter name with an underscore is read whole."""
    job = parse_oss(SOURCE, f"hls/m3u8,st_5000,{options},s_x180|{SAVEAS}", KEY_FOR)
    assert job.table["encryption"] == method and int(job.table.get("key_rotation", 0)) == rotation
    assert "encryption" not in job.table["renditions"]["t0"]
    title = job.profile().title
    assert (title.encryption, title.key_rotation, title.st) == (method, rotation, 5000)


def test_an_oss_process_becomes_a_title_table_and_one_rendition() -> None:
    job = parse_oss(SOURCE, f"hls/m3u8,st_5000,ta_20,s_x180,fps_25|{SAVEAS}", KEY_FOR)
    assert job.table == {"st": "5000", "ta": "20", "renditions": {"t0": {"preset": "veryfast", "s": "x180", "fps": "25"}}}
    assert job.prefixes == {"t0": "out/x"} and job.uris == {"t0": "oss://local/out/x"}
    assert job.master_key is None and job.oss
    assert job.claims() == {"out/x.m3u8": "sys/saveas"}
    assert job.profile().title.st == 5000


@pytest.mark.parametrize(
    ("process", "field"),
    [
        pytest.param(f"hls/m3u9|{SAVEAS}", "x-oss-process", id="not-hls"),
        pytest.param(f"hls/m3u8,st5000|{SAVEAS}", "x-oss-process", id="option-without-value"),
        pytest.param(f"hls/m3u8,_5000|{SAVEAS}", "x-oss-process", id="option-without-name"),
        pytest.param("hls/m3u8,st_5000", "sys/saveas", id="no-saveas"),
        pytest.param(f"hls/m3u8|sys/saveas,o_{b64('out/x')}", "sys/saveas", id="saveas-no-bucket"),
        pytest.param(f"hls/m3u8|{SAVEAS}|{SAVEAS}", "sys/saveas", id="three-steps"),
        pytest.param(f"hls/m3u8|sys/saveas,o_{b64('out/x')},b_!!", "sys/saveas.b", id="bucket-not-base64"),
        pytest.param(f"hls/m3u8|sys/saveas,o_,b_{b64('local')}", "sys/saveas.o", id="prefix-empty"),
        pytest.param(f"hls/m3u8|sys/saveas,o_{b64('out/x')},b_{b64('other')}", "sys/saveas", id="other-bucket"),
        pytest.param(f"hls/m3u8|sys/saveas,o_{b64('../x')},b_{b64('local')}", "sys/saveas", id="prefix-escapes"),
        pytest.param(f"hls/m3u8,st_3000|{SAVEAS}", "st", id="st"),
        pytest.param(f"hls/m3u8,ss_-1|{SAVEAS}", "ss", id="ss"),
        pytest.param(f"hls/m3u8,ta_5|{SAVEAS}", "ta", id="ta"),
        pytest.param(f"hls/m3u8,fps_500|{SAVEAS}", "fps", id="fps"),
        pytest.param(f"hls/m3u8,s_101x|{SAVEAS}", "s", id="size-odd"),
        pytest.param(f"hls/m3u8,crf_20,vb_100000|{SAVEAS}", "crf", id="crf-and-vb"),
        pytest.param(f"hls/m3u8,bogus_1|{SAVEAS}", "bogus", id="unknown-param"),
        pytest.param(f"hls/m3u8,encryption_des|{SAVEAS}", "encryption", id="encryption"),
        pytest.param(f"hls/m3u8,encryption_sample-aes|{SAVEAS}", "encryption", id="sample-aes-in-ts"),
        pytest.param(f"hls/m3u8,encryption_aes-128,key_rotation_x|{SAVEAS}", "key_rotation", id="key-rotation"),
        pytest.param(f"hls/m3u8,key_rotation_-1|{SAVEAS}", "key_rotation", id="key-rotation-negative"),
        pytest.param(f"hls/m3u8,initial_segments_2000|{SAVEAS}", "initial_segments", id="not-an-oss-title-param"),
        pytest.param(f"hls/m3u8,audio_all|{SAVEAS}", "audio", id="audio"),
    ],
)
def test_an_invalid_oss_parameter_is_named_as_written(process: str, field: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_oss(SOURCE, process, KEY_FOR)
    assert raised.value.name == field


# ---- idempotent ids ---------------------------------------------------------------------------


def reordered(body: dict[str, Any]) -> dict[str, Any]:
    """The same body with every object's fields in reverse order."""
    if isinstance(body, dict):
        return {k: reordered(v) for k, v in reversed(body.items())}
    if isinstance(body, list):
        return [reordered(v) for v in body]
    return body


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(imm(), id="repeated"),
        pytest.param(reordered(imm()), id="fields-reordered"),
        pytest.param(imm(ProjectName="another"), id="project-name"),
        pytest.param(target(Duration=10.0), id="duration-float"),
        pytest.param(video(Codec="h264"), id="codec-case"),
    ],
)
def test_the_same_imm_meaning_has_the_same_job_id(other: dict[str, Any]) -> None:
    assert parse_imm(other, KEY_FOR, KEY_FOR).id == parse_imm(imm(), KEY_FOR, KEY_FOR).id


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(imm(SourceURI="oss://local/in/b.mp4"), id="source"),
        pytest.param(imm(MasterURI="oss://local/out/other.m3u8"), id="master"),
        pytest.param(target(URI="oss://local/out/v1"), id="target-uri"),
        pytest.param(video(FrameRate=30), id="frame-rate"),
    ],
)
def test_another_imm_meaning_has_another_job_id(other: dict[str, Any]) -> None:
    assert parse_imm(other, KEY_FOR, KEY_FOR).id != parse_imm(imm(), KEY_FOR, KEY_FOR).id


def test_an_imm_frame_rate_spelled_as_a_float_has_the_same_job_id() -> None:
    assert parse_imm(video(FrameRate=25.0), KEY_FOR, KEY_FOR).id == parse_imm(imm(), KEY_FOR, KEY_FOR).id


def test_the_same_oss_options_in_another_order_have_the_same_job_id() -> None:
    one = parse_oss(SOURCE, f"hls/m3u8,st_5000,s_x180,fps_25|{SAVEAS}", KEY_FOR)
    other = parse_oss(SOURCE, f"hls/m3u8,fps_25,s_x180,st_5000|sys/saveas,b_{b64('local')},o_{b64('out/x')}", KEY_FOR)
    assert one.id == other.id


def test_another_oss_source_has_another_job_id() -> None:
    process = f"hls/m3u8,st_5000|{SAVEAS}"
    assert parse_oss(SOURCE, process, KEY_FOR).id != parse_oss("in/b.mp4", process, KEY_FOR).id


# ---- namespace ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(imm(MasterURI="oss://local/.jobs/master.m3u8"), "MasterURI", id="hidden-master"),
        pytest.param(target(URI="oss://local/out/.hidden/v0"), "Targets[0].URI", id="hidden-folder"),
        pytest.param(imm(MasterURI=f"oss://local/{SOURCE}/default/master.m3u8"), "MasterURI", id="profile-area-master"),
        pytest.param(target(URI="oss://local/in/a.mp4/ladder/x/v0"), "Targets[0].URI", id="profile-area-deep"),
    ],
)
def test_a_claim_on_a_reserved_key_is_refused(body: dict[str, Any], field: str) -> None:
    job = parse_imm(body, KEY_FOR, KEY_FOR)
    with pytest.raises(OutputReserved) as raised:
        check_namespace(job, ["default", "ladder"])
    assert raised.value.details["parameter"] == field


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("oss://local/default/master.m3u8", id="profile-name-as-first-folder"),
        pytest.param("oss://local/out/default.m3u8", id="profile-name-as-file"),
        pytest.param("oss://local/out/master.m3u8", id="plain"),
    ],
)
def test_a_claim_outside_reserved_keys_is_allowed(uri: str) -> None:
    check_namespace(parse_imm(imm(MasterURI=uri), KEY_FOR, KEY_FOR), ["default", "ladder"])


# ---- limits --------------------------------------------------------------------------------------

TIGHT = LimitsSettings(max_pixels=640 * 360, max_side=640, max_fps=30, slowest_preset="fast", max_renditions=2, max_initd=10000)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(imm(Targets=[{"URI": f"oss://local/out/v{i}"} for i in range(3)]), "Targets", id="renditions"),
        pytest.param(video(FrameRate=50), "Targets[0].Video.TranscodeVideo.FrameRate", id="fps"),
        pytest.param(video(Resolution="1280x"), "Targets[0].Video.TranscodeVideo.Resolution", id="side"),
        pytest.param(video(Resolution="640x640"), "Targets[0].Video.TranscodeVideo.Resolution", id="pixels"),
        pytest.param(target(InitialTranscode=11), "Targets[0].InitialTranscode", id="initd"),
        pytest.param(target(InitialTranscode=-1), "Targets[0].InitialTranscode", id="initd-negative"),
    ],
)
def test_an_imm_request_over_the_limits_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(LimitExceeded) as raised:
        parse_imm(body, KEY_FOR, KEY_FOR, TIGHT)
    assert raised.value.name == field


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param("fps_50", "fps", id="fps"),
        pytest.param("preset_slow", "preset", id="preset"),
        pytest.param("s_1280x", "s", id="side"),
        pytest.param("s_640x640", "s", id="pixels"),
        pytest.param("initd_11000", "initd", id="initd"),
    ],
)
def test_an_oss_request_over_the_limits_names_the_parameter(options: str, field: str) -> None:
    with pytest.raises(LimitExceeded) as raised:
        parse_oss(SOURCE, f"hls/m3u8,{options}|{SAVEAS}", KEY_FOR, TIGHT)
    assert raised.value.name == field


def test_a_request_at_the_limits_is_accepted() -> None:
    job = parse_oss(SOURCE, f"hls/m3u8,fps_30,preset_fast,s_640x360,initd_10000|{SAVEAS}", KEY_FOR, TIGHT)
    check_limits(job, TIGHT)


# ---- records ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job",
    [
        pytest.param(parse_imm(imm(), KEY_FOR, KEY_FOR), id="imm"),
        pytest.param(parse_imm(imm(MasterURI=None), KEY_FOR, KEY_FOR), id="imm-no-master"),
        pytest.param(parse_oss(SOURCE, f"hls/m3u8,st_5000|{SAVEAS}", KEY_FOR), id="oss"),
        pytest.param(replace(parse_oss(SOURCE, f"hls/m3u8,st_5000|{SAVEAS}", KEY_FOR), mpd_key="out/film.mpd"), id="with-mpd"),
    ],
)
def test_a_job_record_round_trips(job: Job) -> None:
    # `oss` only names fields in errors and is not recorded
    assert Job.from_record(copy.deepcopy(job.to_record())) == replace(job, oss=False)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param([], id="not-object"),
        pytest.param(None, id="null"),
        pytest.param({**parse_imm(imm(), KEY_FOR, KEY_FOR).to_record(), "version": 2}, id="other-version"),
        pytest.param({k: v for k, v in parse_imm(imm(), KEY_FOR, KEY_FOR).to_record().items() if k != "version"}, id="no-version"),
    ],
)
def test_a_foreign_record_is_refused(record: Any) -> None:
    with pytest.raises(ValueError, match="not a job record"):
        Job.from_record(record)


def test_a_record_missing_a_field_is_refused() -> None:
    record = parse_imm(imm(), KEY_FOR, KEY_FOR).to_record()
    del record["prefixes"]
    with pytest.raises(KeyError):
        Job.from_record(record)
