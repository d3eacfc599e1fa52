"""The signing API, IP-bound and not-yet-valid tokens, CDN origin pull and the OpenAPI document,
against the app on a loopback port (aiohttp test server, real pool and storage)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import m3u8
import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from yarl import URL

from livetx.app import create_app
from livetx.scopes import OPERATIONS
from livetx.web.auth import API_ROUTE_PREFIX, ROUTE_OPERATIONS
from livetx.web.keys import CATALOG, CLOCK, SETTINGS
from livetx.web.openapi import document
from tests.conftest import Source, app_settings
from tests.support import Clock

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
API_KEY = "backend-secret-" + "x" * 32
CDN_SECRET = "cdn-secret-" + "y" * 32
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def make_client(aiohttp_client: ClientFactory, tmp_path: Path, sources: dict[str, Source]) -> MakeClient:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")

    async def make(clock: Clock | None = None, **env: str) -> TestClient[Any, Any]:
        settings = app_settings(
            **{
                "LIVETX_STORAGE_URI": str(media),
                "LIVETX_SIGNING_KEYS": "old:" + "ab" * 32 + ",new:" + "cd" * 32,
                "LIVETX_SIGNING_ACTIVE_KID": "new",
                "LIVETX_API_KEYS": f"backend:{API_KEY}",
                "LIVETX_CDN_ORIGIN_SECRET": CDN_SECRET,
                **env,
            }
        )
        app = create_app(settings)
        if clock is not None:
            app[CLOCK] = clock
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()


async def sign(client: TestClient[Any, Any], **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/sign", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    return await response.json()  # type: ignore[no-any-return]


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def error_of(response: Any) -> dict[str, Any]:
    body = await response.json()
    assert body["request_id"]
    return body["error"]  # type: ignore[no-any-return]


# ---- the API key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        pytest.param({}, 401, "api_key_missing", id="none"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "api_key_missing", id="other-scheme"),
        pytest.param({"Authorization": "Bearer wrong"}, 403, "api_key_invalid", id="wrong"),
        pytest.param({"Authorization": "Bearer " + "ab" * 32}, 403, "api_key_invalid", id="a-signing-key"),
    ],
)
async def test_sign_needs_an_api_key(client: TestClient[Any, Any], headers: dict[str, str], status: int, code: str) -> None:
    response = await client.post("/api/v1/sign", json={"key": "a.mp4"}, headers=headers)
    assert response.status == status and (await error_of(response))["code"] == code
    assert API_KEY not in await response.text()


# ---- what it signs --------------------------------------------------------------------


async def test_signed_master_plays_through_to_a_segment(client: TestClient[Any, Any]) -> None:
    before = int(time.time())
    answer = await sign(client, key="a.mp4", ttl=600)
    assert answer["path"] == "/hls/default/a.mp4/master.m3u8" and answer["kid"] == "new"
    assert before + 600 <= answer["expires"] <= int(time.time()) + 600
    assert answer["expires_at"].endswith("Z") and answer["scope"] is None
    master = await client.get(local(answer["url"]))
    assert master.status == 200
    variant = m3u8.loads(await master.text()).playlists[0].uri
    media = await client.get("/hls/default/a.mp4/" + variant)
    assert media.status == 200
    segment = m3u8.loads(await media.text()).segments[0].uri
    assert parse_qs(urlsplit(segment).query)["exp"] == [str(answer["expires"])]
    response = await client.get("/hls/default/a.mp4/" + segment)
    assert response.status == 200 and response.content_type == "video/mp2t"


async def test_title_scope_hands_one_token_to_every_url(client: TestClient[Any, Any]) -> None:
    answer = await sign(client, key="a.mp4", scope="title")
    assert answer["scope"] == "/hls/default/a.mp4/"
    query = urlsplit(answer["url"]).query
    master = m3u8.loads(await (await client.get(local(answer["url"]))).text())
    media_uri = master.playlists[0].uri
    assert urlsplit(media_uri).query == query
    media = m3u8.loads(await (await client.get("/hls/default/a.mp4/" + media_uri)).text())
    assert {urlsplit(s.uri).query for s in media.segments} == {query}


async def test_path_form_and_old_key_still_verify(make_client: MakeClient) -> None:
    old = await make_client(LIVETX_SIGNING_ACTIVE_KID="old")
    answer = await sign(old, path="/hls/default/a.mp4/master.m3u8")
    assert answer["kid"] == "old"
    rotated = await make_client()  # "new" signs; "old" still verifies
    assert (await rotated.get(local(answer["url"]))).status == 200
    retired = await make_client(LIVETX_SIGNING_KEYS="new:" + "cd" * 32)
    response = await retired.get(local(answer["url"]))
    assert response.status == 403 and (await error_of(response))["code"] == "token_unknown_key"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "path", id="neither"),
        pytest.param({"key": "a.mp4", "path": "/hls/default/a.mp4/master.m3u8"}, "path", id="both"),
        pytest.param({"key": "a.mp4", "bogus": 1}, "bogus", id="unknown-field"),
        pytest.param({"key": "a.mp4", "profile": "nosuch"}, "profile", id="unknown-profile"),
        pytest.param({"key": "../etc/passwd"}, "key", id="key-traversal"),
        pytest.param({"key": ".livetx/x"}, "key", id="hidden-key"),
        pytest.param({"key": 7}, "key", id="key-not-string"),
        pytest.param({"path": "hls/relative"}, "path", id="relative-path"),
        pytest.param({"path": "/hls/default/a.mp4/../b.mp4/master.m3u8"}, "path", id="dot-dot-path"),
        pytest.param({"key": "a.mp4", "ttl": 0}, "ttl", id="ttl-zero"),
        pytest.param({"key": "a.mp4", "ttl": "60"}, "ttl", id="ttl-string"),
        pytest.param({"key": "a.mp4", "ttl": True}, "ttl", id="ttl-bool"),
        pytest.param({"key": "a.mp4", "ttl": 10**10}, "ttl", id="ttl-huge"),
        pytest.param({"key": "a.mp4", "ip": "300.1.1.1"}, "ip", id="ip-invalid"),
        pytest.param({"key": "a.mp4", "nbf": -1}, "nbf", id="nbf-negative"),
        pytest.param({"key": "a.mp4", "ttl": 60, "nbf": 4_000_000_000}, "nbf", id="nbf-after-exp"),
        pytest.param({"key": "a.mp4", "scope": "/hls/default/b.mp4/"}, "scope", id="scope-elsewhere"),
        pytest.param({"key": "a.mp4", "scope": "/hls/default"}, "scope", id="scope-no-slash"),
        pytest.param([1, 2], "body", id="array"),
        pytest.param({"key": "a.mp4", "ttl": 604801}, "ttl", id="ttl-over-max-ttl"),
        pytest.param({"key": "a.mp4", "scope": "/"}, "scope", id="scope-root"),
        pytest.param({"key": "a.mp4", "scope": "/hls/"}, "scope", id="scope-all-profiles"),
        pytest.param({"key": "a.mp4", "scope": "/hls/default/"}, "scope", id="scope-all-titles"),
        pytest.param({"path": "/metrics"}, "path", id="path-not-hls"),
        pytest.param({"path": "/api/v1/sources"}, "path", id="path-api"),
        pytest.param({"path": "/hls/nosuch/a.mp4/master.m3u8"}, "path", id="path-unknown-profile"),
        pytest.param({"path": "/hls/default/master.m3u8"}, "path", id="path-no-source-key"),
        pytest.param({"path": "/hls/default/a.mp4/"}, "path", id="path-no-file"),
        pytest.param({"path": "/hls/default/.livetx/x/master.m3u8"}, "path", id="path-hidden-key"),
        pytest.param({"path": "/hls/j-0123456789abcdeX/a.mp4/master.m3u8"}, "path", id="path-not-a-job-id"),
    ],
)
async def test_invalid_sign_requests_name_the_field(client: TestClient[Any, Any], body: Any, field: str) -> None:
    response = await client.post("/api/v1/sign", json=body, headers=AUTH)
    error = await error_of(response)
    assert response.status == 400 and error["code"] == "invalid_parameter" and error["parameter"] == field


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"x" * 20000], ids=["syntax", "not-utf8", "too-large"])
async def test_unreadable_bodies_are_400_or_413(client: TestClient[Any, Any], raw: bytes) -> None:
    response = await client.post("/api/v1/sign", data=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status == (413 if len(raw) > 16384 else 400) and (await error_of(response))["parameter"] == "body"


# ---- IP binding and nbf through the server -------------------------------------------


async def test_ip_bound_url(client: TestClient[Any, Any]) -> None:
    mine = await sign(client, key="a.mp4", ip="127.0.0.1")
    assert (await client.get(local(mine["url"]))).status == 200
    theirs = await sign(client, key="a.mp4", ip="203.0.113.0/24")
    response = await client.get(local(theirs["url"]))
    assert response.status == 403 and (await error_of(response))["code"] == "token_ip_mismatch"
    spoofed = await client.get(local(theirs["url"]), headers={"X-Real-IP": "203.0.113.9"})
    assert spoofed.status == 403  # the header counts only when configured


async def test_client_ip_header_behind_a_proxy(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_SERVER_CLIENT_IP_HEADER="X-Forwarded-For")
    theirs = await sign(client, key="a.mp4", ip="203.0.113.0/24")
    ok = await client.get(local(theirs["url"]), headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert ok.status == 200  # the last address: the one the trusted proxy saw
    forged = await client.get(local(theirs["url"]), headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
    assert forged.status == 403


async def test_not_yet_valid_url(client: TestClient[Any, Any]) -> None:
    later = await sign(client, key="a.mp4", nbf=int(time.time()) + 3600, ttl=7200)
    response = await client.get(local(later["url"]))
    assert response.status == 403 and (await error_of(response))["code"] == "token_not_yet_valid"


async def test_expired_url(make_client: MakeClient) -> None:
    clock = Clock()
    client = await make_client(LIVETX_SIGNING_CLOCK_SKEW="0", clock=clock)
    brief = await sign(client, key="a.mp4", ttl=1)
    assert (await client.get(local(brief["url"]))).status == 200
    clock.now = brief["expires"] + 1.05  # moved on, not waited out
    response = await client.get(local(brief["url"]))
    assert response.status == 403 and (await error_of(response))["code"] == "token_expired"


# ---- CDN origin pull ------------------------------------------------------------------


async def test_cdn_pulls_without_tokens(client: TestClient[Any, Any]) -> None:
    cdn = {"X-Livetx-Origin-Auth": CDN_SECRET}
    master = await client.get("/hls/default/a.mp4/master.m3u8", headers=cdn)
    assert master.status == 200
    variant = m3u8.loads(await master.text()).playlists[0].uri
    assert "?" not in variant  # the edge signs and checks; the origin emits plain URLs
    media = await client.get("/hls/default/a.mp4/" + variant, headers=cdn)
    segment = m3u8.loads(await media.text()).segments[0].uri
    response = await client.get("/hls/default/a.mp4/" + segment, headers=cdn)
    assert response.status == 200 and "public" in response.headers["Cache-Control"]


@pytest.mark.parametrize("value", ["", "wrong", CDN_SECRET + "x", CDN_SECRET[:-1]])
async def test_wrong_origin_secret_needs_a_token(client: TestClient[Any, Any], value: str) -> None:
    response = await client.get("/hls/default/a.mp4/master.m3u8", headers={"X-Livetx-Origin-Auth": value})
    assert response.status == 401 and (await error_of(response))["code"] == "token_missing"


async def test_origin_pull_is_off_without_a_secret(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_CDN_ORIGIN_SECRET="")
    response = await client.get("/hls/default/a.mp4/master.m3u8", headers={"X-Livetx-Origin-Auth": ""})
    assert response.status == 401


async def test_cdn_forwarding_a_token_gets_signed_children(client: TestClient[Any, Any]) -> None:
    answer = await sign(client, key="a.mp4")
    master = await client.get(local(answer["url"]), headers={"X-Livetx-Origin-Auth": CDN_SECRET})
    assert "sig=" in m3u8.loads(await master.text()).playlists[0].uri
    bad = await client.get(local(answer["url"]).replace("sig=", "sig=x"), headers={"X-Livetx-Origin-Auth": CDN_SECRET})
    assert bad.status == 403  # a forwarded token is still checked


# ---- OpenAPI --------------------------------------------------------------------------


async def test_openapi_document_is_valid_and_lists_every_route(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    served = await response.json()
    assert served == document(client.server.app[SETTINGS])
    validate(served)
    routes = {r.resource.canonical for r in client.server.app.router.routes() if r.resource is not None}  # type: ignore[union-attr]
    assert routes - {"/player", "/"} == set(served["paths"])  # the pages are not part of the API


# ---- encodings over the wire ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_path", "statuses"),
    [
        pytest.param("/hls/default/a%2Emp4/master.m3u8", {200}, id="encoded-dot-same-resource"),
        pytest.param("/hls/default/b.mp4/..%2Fa.mp4/master.m3u8", {400, 403, 404}, id="encoded-slash-dot-dot"),
        pytest.param("/hls/default/%2e%2e/default/a.mp4/master.m3u8", {400, 403, 404}, id="encoded-dot-dot"),
        pytest.param("/hls/default//a.mp4/master.m3u8", {400, 403, 404}, id="double-slash"),
        pytest.param("/hls/default/a.mp4%252Fmaster.m3u8", {400, 403, 404}, id="double-encoded"),
        pytest.param("/hls/default/a.mp4/master.m3u8%00", {400, 403, 404}, id="nul"),
    ],
)
async def test_other_spellings_of_a_signed_path(client: TestClient[Any, Any], raw_path: str, statuses: set[int]) -> None:
    """A token for /hls/default/a.mp4/master.m3u8 opens that resource under any spelling the
    router takes for it, and nothing else."""
    answer = await sign(client, key="a.mp4")
    query = urlsplit(answer["url"]).query
    response = await client.get(URL(f"{raw_path}?{query}", encoded=True))
    assert response.status in statuses
    if response.status != 200:
        assert (await response.json())["error"]["code"]


async def test_sources_and_segment_states(client: TestClient[Any, Any]) -> None:
    listed = await client.get("/api/v1/sources", headers=AUTH)
    size = (Path(client.server.app[CATALOG].sources.root) / "a.mp4").stat().st_size  # type: ignore[attr-defined]
    assert (await listed.json())["sources"] == [{"key": "a.mp4", "size": size}]  # .livetx output is hidden
    assert (await client.get("/api/v1/sources")).status == 401
    states = await (await client.get("/api/v1/titles/default/a.mp4", headers=AUTH)).json()
    [rendition] = states["renditions"]
    assert rendition["resolution"] == "320x180" and {s["state"] for s in rendition["segments"]} <= {"none", "transcoding", "cached"}
    answer = await sign(client, key="a.mp4", scope="title")
    master = m3u8.loads(await (await client.get(local(answer["url"]))).text())
    media = m3u8.loads(await (await client.get("/hls/default/a.mp4/" + master.playlists[0].uri)).text())
    last = await client.get("/hls/default/a.mp4/" + media.segments[-1].uri)
    assert last.status == 200
    await last.read()  # (a cold segment is streamed as it is made: its headers come first)
    after = await (await client.get("/api/v1/titles/default/a.mp4", headers=AUTH)).json()
    assert after["renditions"][0]["segments"][-1]["state"] == "cached"


async def test_openapi_document_states_the_configured_bounds(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_SIGNING_MAX_TTL="86400", LIVETX_LIMITS_MAX_RENDITIONS="3")
    schemas = (await (await client.get("/api/openapi.json")).json())["components"]["schemas"]
    assert schemas["SignRequest"]["properties"]["ttl"]["maximum"] == 86400
    assert schemas["PlaylistRequest"]["properties"]["Targets"]["maxItems"] == 3


async def test_a_job_profile_path_signs_only_when_the_job_exists(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/sign", json={"path": "/hls/j-0123456789abcdef/a.mp4/master.m3u8"}, headers=AUTH)
    assert response.status == 404 and (await error_of(response))["code"] == "profile_not_found"


SCOPED = "scoped-" + "z" * 40


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"key": "movies/b.mp4"}, 200, id="inside"),
        pytest.param({"key": "movies/b.mp4", "scope": "/hls/default/movies/"}, 200, id="folder-scope-inside"),
        pytest.param({"key": "a.mp4"}, 403, id="outside"),
        pytest.param({"path": "/hls/default/movies-private/c.mp4/master.m3u8"}, 403, id="string-prefix-is-not-a-folder"),
        pytest.param({"key": "movies/b.mp4", "profile": "default", "scope": "title"}, 200, id="title-scope"),
    ],
)
async def test_sign_reads_only_what_the_key_may_read(make_client: MakeClient, body: dict[str, Any], status: int) -> None:
    client = await make_client(
        LIVETX_API_KEYS=f"backend:{API_KEY},scoped:{SCOPED}",
        LIVETX_API_SCOPES_SCOPED_OPERATIONS="sign",
        LIVETX_API_SCOPES_SCOPED_READ="movies/",
    )
    response = await client.post("/api/v1/sign", json=body, headers={"Authorization": f"Bearer {SCOPED}"})
    assert response.status == status
    if status == 403:
        error = await error_of(response)
        assert error["code"] == "api_key_scope" and error["refused"] == "read" and SCOPED not in await response.text()


async def test_every_api_route_is_one_operation(client: TestClient[Any, Any]) -> None:
    """Scopes name operations; the route -> operation table covers every route that takes a key."""
    named = {
        r.name for r in client.server.app.router.routes() if r.name and (r.name.startswith(API_ROUTE_PREFIX) or r.name == "oss-process")
    }
    assert named == set(ROUTE_OPERATIONS) and set(ROUTE_OPERATIONS.values()) == set(OPERATIONS)


def test_token_checks_read_the_wall_clock_unless_a_test_sets_its_own(tmp_path: Path) -> None:
    assert create_app(app_settings(LIVETX_STORAGE_URI=str(tmp_path)))[CLOCK] is time.time
