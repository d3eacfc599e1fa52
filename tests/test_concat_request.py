"""livetx/concat.py on its own: the request contract of a concatenation, in its OSS `video/concat`
form and its JSON form, into one model.

Pure: no server, no storage I/O. Clip URIs of the JSON form are resolved by a real LocalStorage
(bucket `local`), as the API does for a local-directory store.
"""

from __future__ import annotations

import base64
import copy
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from livetx.concat import (
    COMPOSITE,
    MAX_CLIPS,
    Clip,
    ConcatParams,
    SaveAs,
    SegmentParams,
    check_makeable,
    json_name,
    parse_composite,
    parse_oss_concat,
    to_json,
    to_oss,
)
from livetx.contract import params_schema
from livetx.errors import ParameterError, ParameterUnsupported
from livetx.storage.local import LocalStorage

KEY_FOR = LocalStorage(Path("/nonexistent")).key_for_uri  # pure: maps oss://local/<key> to <key>
SOURCE = "in/main.mp4"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def uri(key: str) -> str:
    return f"oss://local/{key}"


SAVEAS = f"sys/saveas,b_{b64('outbucket')},o_{b64('out/joined.mp4')}"
PARAMS = "f_mp4,vcodec_h264,fps_25,s_1280x720,acodec_aac,ar_44100,ac_2"


def oss(params: str = PARAMS, parts: str = f"/pre,o_{b64('in/intro.mkv')}", saveas: str = SAVEAS) -> str:
    return f"video/concat,{params}{parts}|{saveas}"


# The reference's sample (section 4), as written, with real base64url values:
# video/concat,<transcode params>/pre,o_<b64url>[,ss_ms][,t_ms]/sur,o_<b64url>[,ss_ms][,t_ms]|sys/saveas,b_…,o_…/notify,topic_…
SAMPLE = (
    f"video/concat,{PARAMS},ss_2000,t_30000"
    f"/pre,o_{b64('in/intro.mkv')},ss_1000,t_5000"
    f"/sur,o_{b64('in/outro.ts')},ss_0,t_4000"
    f"|sys/saveas,b_{b64('outbucket')},o_{b64('out/joined.mp4')}/notify,topic_{b64('AudioConvert')}"
)


def test_the_reference_sample_is_accepted() -> None:
    request = parse_oss_concat(SOURCE, SAMPLE)
    assert request.composite.clips == (Clip("in/intro.mkv", 1000, 5000), Clip(SOURCE, 2000, 30000), Clip("in/outro.ts", 0, 4000))
    assert (request.source_index, request.source_key) == (1, SOURCE)
    params = request.composite.params
    assert (params.f, params.vcodec, params.fps, params.s, params.acodec, params.ar, params.ac) == (
        "mp4",
        "h264",
        Fraction(25),
        "1280x720",
        "aac",
        44100,
        2,
    )
    assert (params.g, params.crf, params.align, request.composite.align) == (150, 23.0, 0, 0)  # the defaults
    assert (request.saveas, request.saveas.uri, request.notify, request.segment) == (
        SaveAs("outbucket", "out/joined.mp4"),
        "oss://outbucket/out/joined.mp4",
        "AudioConvert",
        None,
    )
    check_makeable(request)  # livetx makes it today


def test_pre_clips_play_before_the_source_and_sur_clips_after_it_each_in_written_order() -> None:
    parts = "".join(f"/{kind},o_{b64(key)}" for kind, key in (("sur", "s/1"), ("pre", "p/1"), ("sur", "s/2"), ("pre", "p/2")))
    request = parse_oss_concat(SOURCE, oss(parts=parts))
    assert [c.key for c in request.composite.clips] == ["p/1", "p/2", SOURCE, "s/1", "s/2"]
    assert request.source_index == 2


def test_eleven_clips_and_a_segment_output_are_accepted() -> None:
    parts = "".join(f"/pre,o_{b64(f'p/{i}')}" for i in range(5)) + "".join(f"/sur,o_{b64(f's/{i}')}" for i in range(5))
    request = parse_oss_concat(SOURCE, oss(parts=parts + "/segment,f_hls,t_6000"))
    assert len(request.composite.clips) == MAX_CLIPS
    assert request.segment == SegmentParams("hls", 6000)
    assert parse_oss_concat(SOURCE, oss(parts="/segment,f_dash")).segment == SegmentParams("dash", 10000)  # st's default


def test_a_lone_source_is_a_composite_of_one_clip() -> None:
    assert parse_oss_concat(SOURCE, oss(parts="")).composite.clips == (Clip(SOURCE),)


def test_values_livetx_does_not_make_yet_are_parsed_then_refused_with_a_422_naming_them() -> None:
    request = parse_oss_concat(SOURCE, oss(params="f_webm,vcodec_vp9,acodec_opus,ar_48000"))
    assert (request.composite.params.vcodec, request.composite.params.acodec) == ("vp9", "opus")
    check_makeable(request, file=True)  # a job's WebM
    with pytest.raises(ParameterUnsupported) as raised:
        check_makeable(request)  # VP9 and Opus only in a job's file
    assert (raised.value.name, raised.value.status) == ("vcodec", 422)
    for params, name in (
        ("f_mkv,acodec_vorbis", "acodec"),
        ("f_mxf,acodec_pcm", "f"),
        ("f_flv", "f"),
        ("f_webm,acodec_opus", "vcodec"),  # WebM holds VP9 ...
        ("f_webm,vcodec_vp9,acodec_aac", "acodec"),  # ... and Opus
        ("f_ts,vcodec_vp9,acodec_aac", "vcodec"),  # MPEG-TS no VP9
    ):
        with pytest.raises(ParameterUnsupported) as raised:
            check_makeable(parse_oss_concat(SOURCE, oss(params=params)), file=True)
        assert raised.value.name == name, params
    check_makeable(parse_oss_concat(SOURCE, oss(params="f_ts,vn_1,vcodec_vp9")))  # no video: its codec is not asked for
    flac = parse_oss_concat(SOURCE, oss(params="f_mkv,acodec_flac,adepth_24"))
    check_makeable(flac, file=True)  # a job's file: its AAC re-encoded
    with pytest.raises(ParameterUnsupported) as raised:
        check_makeable(flac)  # played on demand, or as HLS: AAC only
    assert raised.value.name == "acodec" and "only in a job's file" in raised.value.message


def test_a_refusal_of_the_json_form_names_the_json_field() -> None:
    composite = parse_composite(json_body(Video={"TranscodeVideo": {"Codec": "VP9"}}), KEY_FOR)
    with pytest.raises(ParameterUnsupported) as raised:
        check_makeable(composite, json_name)
    assert raised.value.name == "Video.TranscodeVideo.Codec"


def _many(n: int) -> str:
    return "".join(f"/sur,o_{b64(f's/{i}')}" for i in range(n))


@pytest.mark.parametrize(
    ("process", "field"),
    [
        pytest.param(oss(parts=_many(MAX_CLIPS)), f"sur[{MAX_CLIPS - 1}]", id="twelve-clips"),
        pytest.param(oss(params=PARAMS + ",bogus_1"), "bogus", id="unknown-param"),
        pytest.param(oss(params=PARAMS + ",,g_5"), "x-oss-async-process", id="empty-item"),
        pytest.param(oss(params=PARAMS + ",container_ts"), "container", id="not-a-concat-param"),
        pytest.param(oss(params=PARAMS + ",st_5000"), "st", id="hls-param"),
        pytest.param(oss(params=PARAMS + ",s_640x360"), "s", id="given-twice"),
        pytest.param(oss(parts=f"/pre,o_{b64('a')},x_1"), "pre[0].x", id="unknown-clip-option"),
        pytest.param(oss(parts="/pre,ss_1000"), "pre[0].o", id="clip-without-object"),
        pytest.param(oss(parts="/pre,o_!!!"), "pre[0].o", id="bad-base64"),
        pytest.param(oss(parts="/pre,o_/w"), "pre[0].o", id="bad-base64-slash"),
        pytest.param(oss(parts="/sur,o_gA"), "sur[0].o", id="base64-not-utf8"),
        pytest.param(oss(parts=f"/pre,o_{b64('.jobs/x.json')}"), "pre[0].o", id="hidden-key"),
        pytest.param(oss(parts=f"/pre,o_{b64('a//b.mp4')}"), "pre[0].o", id="invalid-key"),
        pytest.param(oss(parts=f"/pre,o_{b64('list.m3u8')}"), "pre[0].o", id="playlist-key"),
        pytest.param(oss(parts=f"/pre,o_{b64('a')},ss_-1"), "pre[0].ss", id="clip-ss-negative"),
        pytest.param(oss(parts=f"/sur,o_{b64('a')},t_1.5"), "sur[0].t", id="clip-t-spelling"),
        pytest.param(oss(params=PARAMS + ",ss_x"), "ss", id="source-ss"),
        pytest.param(oss(params=PARAMS + ",g_0"), "g", id="g-low"),
        pytest.param(oss(params=PARAMS + ",g_100001"), "g", id="g-high"),
        pytest.param(oss(params="f_mp4,fps_abc"), "fps", id="fps-spelling"),
        pytest.param(oss(params="f_mp4,vb_9999"), "vb", id="vb-low"),
        pytest.param(oss(params="f_mp4,ab_999"), "ab", id="ab-low"),
        pytest.param(oss(params="f_mp4,vcodec_av1"), "vcodec", id="vcodec"),
        pytest.param(oss(params="f_mp4,acodec_wma"), "acodec", id="acodec"),
        pytest.param(oss(params="f_mp4,adepth_8"), "adepth", id="adepth-value"),
        pytest.param(oss(params="f_mp3"), "f", id="f"),
        pytest.param(oss(params="vcodec_h264"), "f", id="no-f"),
        pytest.param(oss(params="f_mp4,crf_20,vb_1000000"), "crf", id="crf-and-vb"),
        pytest.param(oss(params="f_mp4,vb_1000000,maxrate_2000000"), "maxrate", id="maxrate-without-crf"),
        pytest.param(oss(params="f_mp4,aq_50,ab_128000"), "aq", id="aq-and-ab"),
        pytest.param(oss(params="f_mp4,vn_1,an_1"), "vn", id="nothing-left"),
        pytest.param(oss(params="f_mxf,vcodec_h265,acodec_pcm"), "vcodec", id="mxf-h265"),
        pytest.param(oss(params="f_flv,vcodec_h265"), "vcodec", id="flv-h265"),
        pytest.param(oss(params="f_mp4,acodec_pcm"), "acodec", id="mp4-pcm"),
        pytest.param(oss(params="f_mov,acodec_opus"), "acodec", id="mov-opus"),
        pytest.param(oss(params="f_avi,acodec_opus"), "acodec", id="avi-opus"),
        pytest.param(oss(params="f_ts,acodec_flac"), "acodec", id="ts-flac"),
        pytest.param(oss(params="f_flv,acodec_vorbis"), "acodec", id="flv-vorbis"),
        pytest.param(oss(params="f_mxf"), "acodec", id="mxf-aac"),
        pytest.param(oss(params="f_mp4,acodec_mp3,ar_96000"), "ar", id="mp3-rate"),
        pytest.param(oss(params="f_mp4,acodec_mp3,ac_6"), "ac", id="mp3-channels"),
        pytest.param(oss(params="f_mkv,acodec_opus,ar_44100"), "ar", id="opus-rate"),
        pytest.param(oss(params="f_mkv,acodec_ac3,ar_22050"), "ar", id="ac3-rate"),
        pytest.param(oss(params="f_mkv,acodec_ac3,ac_8"), "ac", id="ac3-channels"),
        pytest.param(oss(params="f_mkv,acodec_aac,adepth_16"), "adepth", id="adepth-not-flac"),
        pytest.param(oss(params=PARAMS + ",align_2"), "align", id="align-past-clips"),
        pytest.param(oss(params=PARAMS + ",align_11"), "align", id="align-out-of-range"),
        pytest.param(oss(params=PARAMS + ",align_-1"), "align", id="align-negative"),
        pytest.param(oss(params="f_mkv", parts="/segment,f_hls"), "f", id="segment-needs-mp4-or-ts"),
        pytest.param(oss(parts="/segment,f_smooth"), "segment.f", id="segment-format"),
        pytest.param(oss(parts="/segment,t_6000"), "segment.f", id="segment-without-format"),
        pytest.param(oss(parts="/segment,f_hls,t_100"), "segment.t", id="segment-duration"),
        pytest.param(oss(parts="/segment,f_hls/segment,f_dash"), "/segment", id="two-segments"),
        pytest.param(oss(parts="/watermark,t_1"), "/watermark", id="unknown-part"),
        pytest.param(oss(saveas=f"sys/saveas,b_{b64('b')}"), "sys/saveas.o", id="saveas-without-object"),
        pytest.param(oss(saveas=f"sys/saveas,b_{b64('b')},o_{b64('a/../b')}"), "sys/saveas.o", id="saveas-bad-key"),
        pytest.param(oss(saveas=f"sys/saveas,b_***,o_{b64('x')}"), "sys/saveas.b", id="saveas-bad-base64"),
        pytest.param(oss(saveas=f"{SAVEAS},x_1"), "sys/saveas.x", id="saveas-unknown"),
        pytest.param(oss(saveas=f"{SAVEAS}/notify,topic_%%"), "notify.topic", id="notify-bad-base64"),
        pytest.param(oss(saveas=f"{SAVEAS}/notify"), "notify.topic", id="notify-without-topic"),
        pytest.param(oss(saveas=f"{SAVEAS}/watermark,t_1"), "sys/saveas/watermark", id="saveas-unknown-part"),
        pytest.param(f"video/concat,{PARAMS}", "x-oss-async-process", id="no-saveas"),
        pytest.param(oss(saveas="sys/other"), "sys/saveas", id="other-step"),
        pytest.param(f"video/convert,{PARAMS}|{SAVEAS}", "x-oss-async-process", id="other-action"),
        pytest.param(f"video/concatx,{PARAMS}|{SAVEAS}", "x-oss-async-process", id="misspelt-action"),
    ],
)
def test_an_oss_refusal_names_its_field(process: str, field: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_oss_concat(SOURCE, process)
    assert (raised.value.name, raised.value.status) == (field, 400)


def test_a_hidden_source_object_is_refused_as_key() -> None:
    with pytest.raises(ParameterError) as raised:
        parse_oss_concat(".jobs/x.mp4", oss())
    assert raised.value.name == "key"


# ---- the JSON form ------------------------------------------------------------------------


def json_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Clips": [{"URI": uri("in/intro.mkv"), "StartTime": 1, "Duration": 5}, {"URI": uri(SOURCE), "StartTime": 2.0, "Duration": 30}],
        "Format": "MP4",
        "Video": {"TranscodeVideo": {"Codec": "H264", "FrameRate": 25, "Resolution": "1280x720"}},
        "Audio": {"TranscodeAudio": {"Codec": "aac", "SampleRate": 44100, "Channels": 2}},
    }
    return {**body, **changes}


def test_the_oss_and_json_forms_of_one_concatenation_give_equal_models() -> None:
    body = json_body(Clips=[*json_body()["Clips"], {"URI": uri("in/outro.ts"), "Duration": 4}])
    assert parse_composite(body, KEY_FOR) == parse_oss_concat(SOURCE, SAMPLE).composite
    quality = "f_ts,crf_20,maxrate_3000000,bufsize_6000000,g_50,vn_0,an_1,align_1,fps_29.97002997,s_x720,scaletype_fit"
    video = {"CRF": 20, "Bitrate": 3000000, "BufferSize": 6000000, "GOPSize": 50, "FrameRate": "30000/1001", "Resolution": "x720"}
    video["ScaleType"] = "Fit"
    body = {
        "Clips": [{"URI": uri("in/intro.mkv")}, {"URI": uri(SOURCE)}],
        "Align": 1,
        "Format": "ts",
        "Video": {"TranscodeVideo": video},
        "Audio": {"Disable": 1},
    }
    assert parse_composite(body, KEY_FOR) == parse_oss_concat(SOURCE, oss(params=quality)).composite


def test_json_defaults() -> None:
    composite = parse_composite({"Clips": [{"URI": uri("a.mp4")}]}, KEY_FOR)
    assert composite.clips == (Clip("a.mp4"),)
    assert composite.params == ConcatParams(crf=23.0)
    assert (composite.params.f, composite.params.g, composite.align) == (None, 150, 0)  # no f: a composite title played as HLS


def _clips(n: int) -> list[dict[str, Any]]:
    return [{"URI": uri(f"c/{i}.mp4")} for i in range(n)]


def _with(path: str, value: Any) -> dict[str, Any]:
    """json_body() with the field at dotted `path` set to `value`."""
    body = copy.deepcopy(json_body())
    *parents, last = path.split(".")
    where = body
    for key in parents:
        where = where.setdefault(key, {})
    where[last] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param([], "body", id="not-an-object"),
        pytest.param(json_body(Clips=[]), "Clips", id="no-clip"),
        pytest.param({"Align": 0}, "Clips", id="no-clips-field"),
        pytest.param(json_body(Clips=_clips(MAX_CLIPS + 1)), "Clips", id="twelve-clips"),
        pytest.param(json_body(Bogus=1), "Bogus", id="unknown-field"),
        pytest.param(_with("Video.TranscodeVideo.Bogus", 1), "Video.TranscodeVideo.Bogus", id="unknown-nested-field"),
        pytest.param(json_body(Clips=[{"URI": uri("a"), "Ss": 1}]), "Clips[0].Ss", id="unknown-clip-field"),
        pytest.param(json_body(Clips=[{"StartTime": 1}]), "Clips[0].URI", id="clip-without-uri"),
        pytest.param(json_body(Clips=[{"URI": "http://x/a"}]), "Clips[0].URI", id="clip-bad-uri"),
        pytest.param(json_body(Clips=[{"URI": "oss://other/a"}]), "Clips[0].URI", id="clip-other-bucket"),
        pytest.param(json_body(Clips=[*_clips(1), {"URI": uri(".jobs/a.json")}]), "Clips[1].URI", id="hidden-key"),
        pytest.param(json_body(Clips=[{"URI": uri("a.m3u8")}]), "Clips[0].URI", id="playlist-key"),
        pytest.param(json_body(Clips=[{"URI": uri("a"), "StartTime": -1}]), "Clips[0].StartTime", id="start-negative"),
        pytest.param(json_body(Clips=[{"URI": uri("a"), "Duration": "5"}]), "Clips[0].Duration", id="duration-text"),
        pytest.param(json_body(Align=2), "Align", id="align-past-clips"),
        pytest.param(json_body(Align=True), "Align", id="align-boolean"),
        pytest.param(json_body(Format="mp3"), "Format", id="format"),
        pytest.param(_with("Video.TranscodeVideo.Codec", "av1"), "Video.TranscodeVideo.Codec", id="codec"),
        pytest.param(_with("Video.TranscodeVideo.GOPSize", 0), "Video.TranscodeVideo.GOPSize", id="gop"),
        pytest.param(_with("Audio.TranscodeAudio.BitDepth", 24), "Audio.TranscodeAudio.BitDepth", id="depth-not-flac"),
        pytest.param(_with("Audio.TranscodeAudio.Codec", "pcm"), "Audio.TranscodeAudio.Codec", id="mp4-pcm"),
        pytest.param(_with("Video.Disable", 2), "Video.Disable", id="disable"),
        pytest.param(json_body(Format="flv", Video={"TranscodeVideo": {"Codec": "h265"}}), "Video.TranscodeVideo.Codec", id="flv-h265"),
        pytest.param(json_body(Video={"Disable": 1}, Audio={"Disable": 1}), "Video.Disable", id="nothing-left"),
        pytest.param(json_body(Audio={"TranscodeAudio": {"Quality": 50, "Bitrate": 96000}}), "Audio.TranscodeAudio.Quality", id="aq-ab"),
    ],
)
def test_a_json_refusal_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_composite(body, KEY_FOR)
    assert raised.value.name == field


# ---- round trips ----------------------------------------------------------------------------

ROUND_TRIPS = [
    pytest.param(SAMPLE, id="sample"),
    pytest.param(oss(params="f_mp4,vb_2000000,vbopt_2,ab_96000,abopt_0,pixfmt_yuv444p,arotate_1,sopt_0,fpsopt_2,fps_24"), id="bitrate"),
    pytest.param(
        oss(params="f_ts,fps_29.97002997,preset_fast,aq_40,align_1", parts=f"/sur,o_{b64('z')},t_1/segment,f_dash,t_5000"), id="segment"
    ),
    pytest.param(oss(params="f_mkv,acodec_flac,adepth_24,ar_96000,ac_8,vcodec_vp9,crf_30.5", parts=""), id="flac"),
]


@pytest.mark.parametrize("process", ROUND_TRIPS)
def test_an_oss_request_renders_back_to_itself(process: str) -> None:
    request = parse_oss_concat(SOURCE, process)
    assert parse_oss_concat(SOURCE, to_oss(request)) == request


@pytest.mark.parametrize("process", ROUND_TRIPS)
def test_a_composite_renders_to_json_and_back(process: str) -> None:
    composite = parse_oss_concat(SOURCE, process).composite
    assert parse_composite(to_json(composite, uri), KEY_FOR) == composite


def test_the_contracts_give_schemas() -> None:
    """What a future OpenAPI document derives from: the JSON shape and each parameter's spec."""
    schema = COMPOSITE.schema()
    assert schema["properties"]["Clips"]["maxItems"] == MAX_CLIPS
    assert schema["properties"]["Video"]["properties"]["TranscodeVideo"]["properties"]["Codec"] == {"enum": ["h264", "h265", "vp9"]}
    params = params_schema(ConcatParams)
    assert (params["g"]["default"], params["align"]["maximum"], params["adepth"]["enum"]) == (150, MAX_CLIPS - 1, [16, 24])
