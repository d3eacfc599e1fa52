"""Templates and pipelines through the app (aiohttp's test server, real storage, local and
S3): create, read, list, delete, kept across a restart, refused with a 400 naming the field,
and only for keys whose scope has the operation. A playlist request naming a template."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.batch.pipelines import PipelineStore
from livetx.batch.templates import MAX_DEPTH
from livetx.errors import ConfigError
from livetx.jobs import template_names
from livetx.settings import LimitsSettings
from livetx.storage.local import LocalStorage
from tests.conftest import Source, app_settings, s3_settings
from tests.s3server import BUCKET, SeaweedS3

API_KEY = "backend-" + "k" * 40
SCOPED = "scoped-" + "s" * 40  # may sign and make playlists only
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
KEYS = {"LIVETX_API_KEYS": f"backend:{API_KEY},scoped:{SCOPED}", "LIVETX_API_SCOPES_SCOPED_OPERATIONS": "sign,playlists"}


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]) -> MakeClient:
    """The app over one local media folder: each call is a fresh start of the app on the same storage."""
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")

    async def make(**env: str) -> TestClient[Any, Any]:
        settings = app_settings(LIVETX_STORAGE_URI=str(media), LIVETX_CACHE_LOOKAHEAD="false", **{**KEYS, **env})
        return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()


async def put(client: TestClient[Any, Any], path: str, body: Any, status: int | None = None) -> dict[str, Any]:
    response = await client.put(path, json=body, headers=AUTH)
    answer: dict[str, Any] = await response.json()
    if status is not None:
        assert response.status == status, answer
    return answer


async def refused(client: TestClient[Any, Any], method: str, path: str, body: Any = None, status: int = 400) -> dict[str, Any]:
    response = await client.request(method, path, json=body, headers=AUTH)
    answer = await response.json()
    assert response.status == status, answer
    error: dict[str, Any] = answer["error"]
    return error


# ---- templates ----------------------------------------------------------------------------


async def test_a_template_extends_its_base(client: TestClient[Any, Any]) -> None:
    created = await put(client, "/api/v1/templates/hd", {"Params": {"vcodec": "h264", "s": "x720", "crf": 23, "st": 6000}}, 201)
    assert created["Resolved"] == {"vcodec": "h264", "s": "x720", "crf": 23, "st": 6000}
    # a child overrides crf, takes the base's bitrate mode away (null) and adds its own cap
    child = {"Base": "hd", "Params": {"s": "x360", "crf": None, "vb": 800000, "ab": 96000}}
    assert (await put(client, "/api/v1/templates/sd", child, 201))["Resolved"] == {
        "vcodec": "h264",
        "s": "x360",
        "st": 6000,
        "vb": 800000,
        "ab": 96000,
    }
    assert (await put(client, "/api/v1/templates/sd", child, 200))["Name"] == "sd"  # replaced
    response = await client.get("/api/v1/templates/sd", headers=AUTH)
    one = await response.json()
    assert one["Base"] == "hd" and one["Params"] == child["Params"] and one["Resolved"]["s"] == "x360" and one["Problem"] is None
    listed = await (await client.get("/api/v1/templates", headers=AUTH)).json()
    assert [t["Name"] for t in listed["Templates"]] == ["hd", "sd"]


# (each table runs against one app: an app starts its transcode worker, over a second)
BAD_TEMPLATES = [
    pytest.param({"Params": {"crf": 99}}, "Params.crf", id="out-of-range"),
    pytest.param({"Params": {"crf": 20, "vb": 900000}}, "Params.crf", id="crf-with-vb"),
    pytest.param({"Params": {"vcodec": "av1", "container": "ts"}}, "Params.container", id="av1-in-ts"),
    pytest.param({"Params": {"encryption": "sample-aes"}}, "Params.encryption", id="sample-aes-in-ts"),
    pytest.param({"Params": {"audio": "all"}}, "Params.audio", id="a-title-parameter"),
    pytest.param({"Params": {"bogus": 1}}, "Params.bogus", id="unknown-parameter"),
    pytest.param({"Params": {}, "Extra": 1}, "Extra", id="unknown-field"),
    pytest.param({"Base": "no such"}, "Base", id="bad-base-name"),
    pytest.param({"Params": {}, "Base": "absent"}, "Base", id="unknown-base"),
    pytest.param({"Params": {}, "Base": "loop"}, "Base", id="names-itself"),
    pytest.param([], "body", id="not-an-object"),
]


async def test_bad_templates_are_400_naming_the_field(client: TestClient[Any, Any]) -> None:
    for case in BAD_TEMPLATES:
        body, field = case.values
        error = await refused(client, "PUT", "/api/v1/templates/loop", body)
        assert error["code"] == "invalid_parameter" and error["parameter"] == field, (case.id, error)
        assert (await client.get("/api/v1/templates/loop", headers=AUTH)).status == 404  # nothing kept


async def test_a_cycle_of_bases_is_refused(client: TestClient[Any, Any]) -> None:
    await put(client, "/api/v1/templates/a", {"Params": {"crf": 20}}, 201)
    await put(client, "/api/v1/templates/b", {"Base": "a", "Params": {}}, 201)
    error = await refused(client, "PUT", "/api/v1/templates/a", {"Base": "b", "Params": {}})
    assert error["parameter"] == "Base" and "a -> b -> a" in error["allowed"]
    assert (await (await client.get("/api/v1/templates/a", headers=AUTH)).json())["Base"] is None  # a kept as it was


async def test_chains_are_bounded(client: TestClient[Any, Any]) -> None:
    await put(client, "/api/v1/templates/t0", {"Params": {}}, 201)
    for i in range(1, MAX_DEPTH):
        await put(client, f"/api/v1/templates/t{i}", {"Base": f"t{i - 1}", "Params": {}}, 201)
    error = await refused(client, "PUT", f"/api/v1/templates/t{MAX_DEPTH}", {"Base": f"t{MAX_DEPTH - 1}", "Params": {}})
    assert error["parameter"] == "Base" and f"at most {MAX_DEPTH}" in error["allowed"]


async def test_a_template_whose_base_went_says_so(client: TestClient[Any, Any]) -> None:
    await put(client, "/api/v1/templates/base", {"Params": {"crf": 20}}, 201)
    await put(client, "/api/v1/templates/child", {"Base": "base", "Params": {"s": "x360"}}, 201)
    assert (await client.delete("/api/v1/templates/base", headers=AUTH)).status == 204
    one = await (await client.get("/api/v1/templates/child", headers=AUTH)).json()
    assert one["Resolved"] is None and "'base'" in one["Problem"]


ABSENT_PROTECTED_BADLY_NAMED = [
    pytest.param("GET", "/api/v1/templates/absent", 404, "template_not_found", None, id="get-absent"),
    pytest.param("DELETE", "/api/v1/templates/absent", 404, "template_not_found", None, id="delete-absent"),
    pytest.param("GET", "/api/v1/templates/" + "x" * 65, 400, "invalid_parameter", "name", id="long-name"),
    pytest.param("PUT", "/api/v1/templates/a.b", 400, "invalid_parameter", "name", id="dotted-name"),
    pytest.param("GET", "/api/v1/pipelines/absent", 404, "pipeline_not_found", None, id="pipeline-absent"),
    pytest.param("DELETE", "/api/v1/pipelines/absent", 404, "pipeline_not_found", None, id="delete-pipeline-absent"),
    pytest.param("PUT", "/api/v1/pipelines/p%20q", 400, "invalid_parameter", "name", id="space-in-name"),
    pytest.param("DELETE", "/api/v1/pipelines/default", 409, "pipeline_protected", None, id="default-undeletable"),
]


async def test_absent_protected_and_badly_named(client: TestClient[Any, Any]) -> None:
    for case in ABSENT_PROTECTED_BADLY_NAMED:
        method, path, status, code, field = case.values
        error = await refused(client, method, path, {"Params": {}}, status)
        assert error["code"] == code and error.get("parameter") == field, (case.id, error)


# ---- pipelines ------------------------------------------------------------------------------


async def test_the_default_pipeline_always_exists(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_PIPELINES_CONCURRENCY="3", LIVETX_PIPELINES_OUTPUT_PREFIX="jobs/")
    default = await (await client.get("/api/v1/pipelines/default", headers=AUTH)).json()
    assert default == {"Name": "default", "Concurrency": 3, "Paused": False, "OutputPrefix": "jobs/", "NotifyURL": None}
    paused = await put(client, "/api/v1/pipelines/default", {"Paused": True}, 200)  # pausing: the rest is kept
    assert paused == {**default, "Paused": True}
    assert (await client.delete("/api/v1/pipelines/default", headers=AUTH)).status == 409
    listed = await (await client.get("/api/v1/pipelines", headers=AUTH)).json()
    assert listed["Pipelines"] == [paused]


async def test_a_pipeline_is_created_updated_and_deleted(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_NOTIFY_ALLOW_PRIVATE_TARGETS="true")
    body = {"Concurrency": 4, "OutputPrefix": "out/fast/", "NotifyURL": "http://127.0.0.1:9/hook"}
    fast = await put(client, "/api/v1/pipelines/fast", body, 201)
    assert fast == {"Name": "fast", "Concurrency": 4, "Paused": False, "OutputPrefix": "out/fast/", "NotifyURL": "http://127.0.0.1:9/hook"}
    assert await put(client, "/api/v1/pipelines/fast", {"Paused": True, "NotifyURL": ""}, 200) == {
        **fast,
        "Paused": True,
        "NotifyURL": None,
    }
    names = [p["Name"] for p in (await (await client.get("/api/v1/pipelines", headers=AUTH)).json())["Pipelines"]]
    assert names == ["default", "fast"]
    assert (await client.delete("/api/v1/pipelines/fast", headers=AUTH)).status == 204
    assert (await client.get("/api/v1/pipelines/fast", headers=AUTH)).status == 404


BAD_PIPELINES = [
    pytest.param({"Concurrency": 0}, "Concurrency", id="no-concurrency"),
    pytest.param({"Concurrency": 65}, "Concurrency", id="too-much-concurrency"),
    pytest.param({"Concurrency": "2"}, "Concurrency", id="concurrency-as-text"),
    pytest.param({"Paused": 1}, "Paused", id="paused-not-a-boolean"),
    pytest.param({"OutputPrefix": ".jobs/"}, "OutputPrefix", id="hidden-prefix"),
    pytest.param({"OutputPrefix": "a/../b/"}, "OutputPrefix", id="dot-dot-prefix"),
    pytest.param({"OutputPrefix": "movies/a.mp4/default/"}, "OutputPrefix", id="profile-area"),
    pytest.param({"NotifyURL": "http://127.0.0.1/hook"}, "NotifyURL", id="loopback-webhook"),
    pytest.param({"NotifyURL": "http://169.254.169.254/"}, "NotifyURL", id="metadata-webhook"),
    pytest.param({"NotifyURL": "ftp://example.com/"}, "NotifyURL", id="not-http"),
    pytest.param({"Colour": "red"}, "Colour", id="unknown-field"),
]


async def test_bad_pipelines_are_400_naming_the_field(client: TestClient[Any, Any]) -> None:
    for case in BAD_PIPELINES:
        body, field = case.values
        error = await refused(client, "PUT", "/api/v1/pipelines/p1", body)
        assert error["parameter"] == field, (case.id, error)
        assert (await client.get("/api/v1/pipelines/p1", headers=AUTH)).status == 404


# ---- scopes, restarts, S3 -------------------------------------------------------------------


OPERATION_ROUTES = [
    pytest.param("PUT", "/api/v1/templates/t", id="put-template"),
    pytest.param("GET", "/api/v1/templates", id="list-templates"),
    pytest.param("DELETE", "/api/v1/templates/t", id="delete-template"),
    pytest.param("PUT", "/api/v1/pipelines/p", id="put-pipeline"),
    pytest.param("GET", "/api/v1/pipelines/default", id="get-pipeline"),
]


async def test_a_key_without_the_operation_is_refused(client: TestClient[Any, Any]) -> None:
    for case in OPERATION_ROUTES:
        method, path = case.values
        response = await client.request(method, path, json={"Params": {}}, headers={"Authorization": f"Bearer {SCOPED}"})
        assert response.status == 403 and (await response.json())["error"]["code"] == "api_key_scope", case.id
        assert (await client.request(method, path, json={"Params": {}})).status == 401, case.id
    assert (await client.get("/api/v1/templates/t", headers=AUTH)).status == 404  # the scoped key changed nothing


@pytest.fixture(params=["local", "s3"])
def restartable(request: pytest.FixtureRequest, make_client: MakeClient, tmp_path: Path) -> MakeClient:
    """Makes the app on one storage, local or the real S3 server: each call a fresh start."""
    if request.param == "local":
        return make_client
    s3: SeaweedS3 = request.getfixturevalue("s3")
    request.getfixturevalue("s3_env")
    aiohttp_client = request.getfixturevalue("aiohttp_client")
    uri = f"s3://{BUCKET}/{tmp_path.name}"

    async def make(**env: str) -> TestClient[Any, Any]:
        settings = s3_settings(s3, tmp_path, LIVETX_STORAGE_URI=uri, LIVETX_CACHE_LOOKAHEAD="false", **{**KEYS, **env})
        return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]

    return make


async def test_templates_and_pipelines_outlive_a_restart(restartable: MakeClient) -> None:
    first = await restartable()
    await put(first, "/api/v1/templates/base", {"Params": {"crf": 20, "s": "x720"}}, 201)
    await put(first, "/api/v1/templates/small", {"Base": "base", "Params": {"s": "x360"}}, 201)
    await put(first, "/api/v1/templates/gone", {"Params": {}}, 201)
    assert (await first.delete("/api/v1/templates/gone", headers=AUTH)).status == 204
    await put(first, "/api/v1/pipelines/batch", {"Concurrency": 2, "Paused": True}, 201)
    await first.close()
    second = await restartable()
    small = await (await second.get("/api/v1/templates/small", headers=AUTH)).json()
    assert small["Resolved"] == {"crf": 20, "s": "x360"}
    listed = await (await second.get("/api/v1/templates", headers=AUTH)).json()
    assert [t["Name"] for t in listed["Templates"]] == ["base", "small"]
    batch = await (await second.get("/api/v1/pipelines/batch", headers=AUTH)).json()
    assert batch["Concurrency"] == 2 and batch["Paused"] is True


# ---- a playlist request naming a template ---------------------------------------------------


async def test_a_playlist_target_starts_from_its_template(client: TestClient[Any, Any]) -> None:
    await put(client, "/api/v1/templates/small", {"Params": {"s": "x90", "crf": 30, "st": 5000}}, 201)
    target = {"URI": "oss://local/out/small", "Template": "small", "InitialTranscode": 0}
    request = {
        "SourceURI": "oss://local/a.mp4",
        "Targets": [target, {**target, "URI": "oss://local/out/wide", "Video": {"TranscodeVideo": {"Resolution": "x144"}}}],
    }
    response = await client.post("/api/v1/playlists", json=request, headers=AUTH)
    answer = await response.json()
    assert response.status == 200, answer
    assert [p["Resolution"] for p in answer["VideoPlaylist"]] == ["160x90", "256x144"]  # the target's own field wins


AV1 = {"Video": {"TranscodeVideo": {"Codec": "av1"}}, "Container": "fmp4"}
BAD_TEMPLATE_TARGETS = [
    pytest.param({"Template": "absent"}, "Targets[0].Template", id="unknown-template"),
    pytest.param({"Template": "a/b"}, "Targets[0].Template", id="bad-name"),
    pytest.param({"Template": "broken"}, "Targets[0].Template", id="base-gone"),
    pytest.param({"Template": "pro", **AV1}, "Targets[0].Template", id="template-parameter-conflicts"),
    pytest.param({"Template": "av1", "Container": "ts"}, "Targets[0].Container", id="target-field-conflicts"),
]


async def test_a_playlist_naming_a_bad_template_is_400(client: TestClient[Any, Any]) -> None:
    await put(client, "/api/v1/templates/pro", {"Params": {"pixfmt": "yuv422p"}}, 201)  # not what AV1 encodes
    await put(client, "/api/v1/templates/av1", {"Params": {"vcodec": "av1"}}, 201)
    await put(client, "/api/v1/templates/mid", {"Params": {}}, 201)
    await put(client, "/api/v1/templates/broken", {"Base": "mid", "Params": {}}, 201)
    assert (await client.delete("/api/v1/templates/mid", headers=AUTH)).status == 204
    for case in BAD_TEMPLATE_TARGETS:
        target, field = case.values
        request = {"SourceURI": "oss://local/a.mp4", "Targets": [{"URI": "oss://local/out/x", **target}]}
        error = await refused(client, "POST", "/api/v1/playlists", request)
        assert error["parameter"] == field, (case.id, error)


def test_a_request_over_the_target_limit_reads_no_template() -> None:
    """Templates are read before the request is parsed: never more than a request may name."""
    target = {"URI": "oss://local/out/x", "Template": "t"}
    assert template_names({"Targets": [target] * 2}) == ["t", "t"]
    assert template_names({"Targets": [target] * (LimitsSettings().max_renditions + 1)}) == []
    assert template_names({"Targets": "t"}) == [] and template_names([]) == []


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        pytest.param({"LIVETX_PIPELINES_NOTIFY_URL": "http://10.0.0.1/hook"}, "pipelines.notify_url", id="private-webhook"),
        pytest.param({"LIVETX_PIPELINES_OUTPUT_PREFIX": ".jobs/"}, "pipelines.output_prefix", id="hidden-prefix"),
        pytest.param({"LIVETX_PIPELINES_CONCURRENCY": "65"}, "concurrency", id="too-much-concurrency"),
    ],
)
def test_a_bad_default_pipeline_is_a_config_error(tmp_path: Path, env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        PipelineStore(LocalStorage(tmp_path), app_settings(**env))
