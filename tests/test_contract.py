"""The request contracts: each bound is declared once (livetx/contract.py specs on the parameter
dataclasses and request shapes), and parsing, error texts and the OpenAPI schemas all follow it."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from livetx.contract import Field, Integer, Number, Shape, Via
from livetx.errors import LimitExceeded, ParameterError
from livetx.jobs import IMM_NAMES, TARGET, imm_request, parse_imm
from livetx.media.params import RenditionParams, TitleParams, parse_rendition_params, parse_title_params
from livetx.settings import LimitsSettings, Settings
from livetx.urls import parse_sign_request, sign_contract
from livetx.web.openapi import document
from tests.support import IMM_SAMPLE

# the values that are valid only with another parameter set: what they need
COMPANIONS = {("dynamicrange", "hdr"): {"vcodec": "h265"}}
PARAMS = [(cls, f.name) for cls in (TitleParams, RenditionParams) for f in fields(cls)]
SCHEMAS = document(Settings())["components"]["schemas"]


def parse(cls: type, values: dict[str, Any]) -> Any:
    return parse_title_params(values) if cls is TitleParams else parse_rendition_params(values)


@pytest.mark.parametrize(("cls", "name"), PARAMS, ids=[name for _, name in PARAMS])
def test_each_parameter_has_one_bound_that_parsing_and_the_schema_share(cls: type, name: str) -> None:
    schema = SCHEMAS["HlsParameters"]["properties"][name]
    spec = next(f for f in fields(cls) if f.name == name).metadata["spec"]
    assert schema == {**spec.schema(), **{k: v for k, v in schema.items() if k in ("default", "description")}}
    assert schema["description"], f"{name} is undocumented"
    if "maximum" in schema:
        high = schema["maximum"]
        assert getattr(parse(cls, {name: high}), name) is not None
        with pytest.raises(ParameterError) as raised:
            parse(cls, {name: high + 1})
        assert raised.value.name == name and str(high) in raised.value.details["allowed"]
    if "minimum" in schema:
        with pytest.raises(ParameterError) as raised:
            parse(cls, {name: schema["minimum"] - 1})
        assert raised.value.name == name
    if "enum" in schema:
        for choice in schema["enum"]:
            assert getattr(parse(cls, {name: choice} | COMPANIONS.get((name, choice), {})), name) == choice
        with pytest.raises(ParameterError, match="one of"):
            parse(cls, {name: "none-of-these"})


def test_defaults_are_the_dataclass_defaults() -> None:
    assert parse_title_params({}) == TitleParams()
    parsed = parse_rendition_params({})
    assert parsed.crf == 23.0 and parsed == RenditionParams(crf=23.0)  # crf unless vb: the one computed default


def imm_target(**fields: Any) -> dict[str, Any]:
    return {**IMM_SAMPLE, "Targets": [{"URI": "oss://bucket/out/a", **fields}]}


def keys(uri: str, field: str) -> str:
    return uri.split("/", 3)[3]


@pytest.mark.parametrize(
    ("fields", "field", "allowed"),
    [
        ({"Duration": 4}, "Targets[0].Duration", "a number of seconds from 5 to 15"),
        ({"Duration": "10"}, "Targets[0].Duration", "a number of seconds from 5 to 15"),
        ({"InitialSegments": [2, 16]}, "Targets[0].InitialSegments", "each from 1 to 15"),
        ({"TranscodeAhead": 9}, "Targets[0].TranscodeAhead", "an integer from 10 to 30"),
        ({"Video": {"TranscodeVideo": {"FrameRate": 121}}}, "Targets[0].Video.TranscodeVideo.FrameRate", "from 1 to 120"),
        ({"Video": {"TranscodeVideo": {"Codec": "vp9"}}}, "Targets[0].Video.TranscodeVideo.Codec", "one of h264, h265"),
        ({"Audio": {"TranscodeAudio": {"SampleRate": 44000}}}, "Targets[0].Audio.TranscodeAudio.SampleRate", "44100"),
        ({"Audio": {"TranscodeAudio": {"Loud": 1}}}, "Targets[0].Audio.TranscodeAudio.Loud", "unknown field"),
        ({"Video": []}, "Targets[0].Video", "an object"),
    ],
)
def test_imm_fields_are_checked_by_the_parameters_they_set(fields: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_imm(imm_target(**fields), keys, keys)
    assert raised.value.name == field and allowed in raised.value.details["allowed"], raised.value.details


def test_imm_names_cover_every_target_field_and_reach_the_rendition() -> None:
    assert IMM_NAMES["fps"] == "Video.TranscodeVideo.FrameRate" and IMM_NAMES["st"] == "Duration"
    assert IMM_NAMES["ta"] == "TranscodeAhead" and IMM_NAMES["ab"] == "Audio.TranscodeAudio.Bitrate"
    job = parse_imm(imm_target(Duration=6, TranscodeAhead=20, InitialSegments=[1.5]), keys, keys)
    [rendition] = job.profile().renditions
    assert (rendition.title.st, rendition.title.ta, rendition.title.initial_segments) == (6000, 20, (1500,))


def test_the_openapi_request_schemas_are_the_contracts() -> None:
    limits = LimitsSettings(max_renditions=3)
    schema = imm_request(limits).schema()
    assert schema["properties"]["Targets"]["maxItems"] == 3
    target = schema["properties"]["Targets"]["items"]
    assert set(target["properties"]) == set(TARGET.fields) and target["required"] == ["URI"]
    assert target["properties"]["Duration"] == {"type": "number", "minimum": 5, "maximum": 15, "description": "seconds per segment"}
    with pytest.raises(LimitExceeded) as raised:
        parse_imm({**IMM_SAMPLE, "Targets": IMM_SAMPLE["Targets"] * 4}, keys, keys, limits)
    assert raised.value.name == "Targets" and "limits.max_renditions" in raised.value.details["allowed"]
    assert SCHEMAS["PlaylistRequest"] == imm_request(Settings().limits).schema()
    assert SCHEMAS["SignRequest"] == sign_contract(Settings().signing.max_ttl).schema()
    assert sign_contract(60).schema()["properties"]["ttl"]["maximum"] == 60


def test_sign_fields_follow_their_contract() -> None:
    profiles = {"default": object()}
    with pytest.raises(ParameterError) as raised:
        parse_sign_request({"key": "a.mp4", "ttl": 61}, profiles, 30, max_ttl=60)
    assert raised.value.name == "ttl" and raised.value.details["allowed"] == "an integer from 1 to 60 (s) (signing.max_ttl)"
    for body, field in [({"key": "a.mp4", "ttl": 5.0}, "ttl"), ({"key": "a.mp4", "nbf": "1"}, "nbf"), ({"key": 1}, "key")]:
        with pytest.raises(ParameterError) as raised:
            parse_sign_request(body, profiles, 30)
        assert raised.value.name == field
    with pytest.raises(ParameterError, match="unknown field"):
        parse_sign_request({"key": "a.mp4", "exp": 1}, profiles, 30)
    assert parse_sign_request({"key": "a.mp4", "ip": "10.0.0.0/8"}, profiles, 30).ip == "10.0.0.0/8"
    with pytest.raises(ParameterError) as raised:
        parse_sign_request({"key": "a.mp4", "ip": "10.0.0.300"}, profiles, 30)
    assert raised.value.name == "ip"


def test_shapes_refuse_what_they_do_not_declare() -> None:
    shape = Shape({"n": Field(Integer(1, 2))})
    assert shape.parse({"n": "2"}) == {"n": 2}
    for body, name in [([], "body"), ({"m": 1}, "m"), ({"n": 3}, "n")]:
        with pytest.raises(ParameterError) as raised:
            shape.parse(body)
        assert raised.value.name == name
    via = Via("st", Integer(5000, 15000, "ms"), scale=1000)
    assert via.parse(7.5) == 7500 and via.allowed == "a number of seconds from 5 to 15"
    assert Number(0, 51).parse("22.5") == 22.5
