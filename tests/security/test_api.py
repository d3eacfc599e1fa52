"""Attacks by an API-key holder on the real `livetx serve` (issue 13): overwriting what belongs
to others, leaving junk job records, escaping a key's scope, unbounded jobs, and signing
URLs that are too broad, too long-lived, or that point at a forged Host."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from livetx.layout import MASTER_NAME, title_folder
from livetx.settings import parse_keys
from livetx.signing import Signer
from tests.conftest import Server, Source, launch_server
from tests.security.conftest import api, call, watch
from tests.support import wait_until

SCOPED_KEY = "scoped-" + "s" * 40  # operations sign+playlists, reads movies/, writes out/scoped/
MAX_RENDITIONS = 2  # the server's limits.max_renditions here


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("api-attacks")
    media = home / "media"
    (media / "movies").mkdir(parents=True)
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    shutil.copy(sources["mp4-30"].path, media / "movies" / "b.mp4")
    key_file = home / "api.key"
    key_file.write_text(f"scoped:{SCOPED_KEY}\n")
    env = {
        "LIVETX_API_KEY_FILE": str(key_file),  # next to the full-access key "tests"
        "LIVETX_API_SCOPES_SCOPED_OPERATIONS": "sign,playlists",
        "LIVETX_API_SCOPES_SCOPED_READ": "movies/",
        "LIVETX_API_SCOPES_SCOPED_WRITE": "out/scoped/",
        "LIVETX_LIMITS_MAX_RENDITIONS": str(MAX_RENDITIONS),
        "LIVETX_CACHE_LOOKAHEAD": "false",
    }
    with launch_server(home, media, **env) as server:
        yield server


def output(server: Server) -> Path:
    return server.media / ".livetx"


def records(server: Server) -> list[str]:
    return sorted(p.name for p in (output(server) / ".jobs").glob("*.json"))


def imm(source: str, master: str | None, *targets: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"SourceURI": f"oss://local/{source}", "Targets": list(targets)}
    if master is not None:
        body["MasterURI"] = f"oss://local/{master}"
    return body


def target(uri: str, **video: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"URI": f"oss://local/{uri}", "InitialTranscode": 0}
    if video:
        out["Video"] = {"TranscodeVideo": video}
    return out


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def oss(server: Server, key: str, process: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = call(server, "POST", f"/{key}?x-oss-process", raw=f"x-oss-process={process}".encode(), headers=headers)
    return status, json.loads(body)


def error(answer: Any) -> dict[str, Any]:
    assert isinstance(answer, dict) and "error" in answer, answer
    return answer["error"]  # type: ignore[no-any-return]


# ---- 1. nothing of others is overwritten -------------------------------------------------


def test_a_job_cannot_overwrite_a_profiles_playlists(live: Server) -> None:
    status, signed = api(live, "/api/v1/sign", {"key": "a.mp4"})
    assert status == 200
    parts = urlsplit(signed["url"])
    assert call(live, "GET", f"{parts.path}?{parts.query}")[0] == 200  # publishes a.mp4/default/*.m3u8
    master = output(live) / (title_folder("a.mp4", "default") + MASTER_NAME)
    wait_until(master.exists, 10, "the master playlist, written in the background")
    before = master.read_bytes()
    hostile = imm("a.mp4", "a.mp4/default/master.m3u8", target("a.mp4/default/main", Resolution="64x64", ScaleType="stretch"))
    with watch(live):
        status, answer = api(live, "/api/v1/playlists", hostile)
    assert status == 422 and error(answer)["code"] == "output_reserved" and error(answer)["parameter"] == "MasterURI"
    assert master.read_bytes() == before
    for uri, field in (("a.mp4/default/x", "Targets[0].URI"), (".jobs/x", "Targets[0].URI")):
        status, answer = api(live, "/api/v1/playlists", imm("a.mp4", None, target(uri)))
        assert status == 422 and error(answer)["parameter"] == field, answer


def test_a_job_cannot_take_another_jobs_outputs_and_repeats_are_idempotent(live: Server) -> None:
    mine = imm("a.mp4", "jobs/mine/master.m3u8", target("jobs/mine/v0", CRF=30))
    status, first = api(live, "/api/v1/playlists", mine)
    assert status == 200, first
    stored = (output(live) / "jobs" / "mine" / "v0.m3u8").read_bytes()
    status, again = api(live, "/api/v1/playlists", mine)
    assert status == 200 and again["Token"] == first["Token"]
    theirs = imm("a.mp4", "jobs/mine/master.m3u8", target("jobs/theirs/v0", CRF=20))
    status, answer = api(live, "/api/v1/playlists", theirs)
    assert status == 409 and error(answer)["code"] == "output_claimed" and error(answer)["parameter"] == "MasterURI"
    other_target = imm("a.mp4", None, target("jobs/mine/v0", CRF=20))
    status, answer = api(live, "/api/v1/playlists", other_target)
    assert status == 409 and error(answer)["parameter"] == "Targets[0].URI"
    assert (output(live) / "jobs" / "mine" / "v0.m3u8").read_bytes() == stored
    assert not (output(live) / "jobs" / "theirs").exists()


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(lambda s: api(s, "/api/v1/playlists", imm("none.mp4", None, target("junk/a"))), id="imm-missing-source"),
        pytest.param(lambda s: oss(s, "none.mp4", f"hls/m3u8,initd_0|sys/saveas,o_{b64('junk/b')},b_{b64('local')}"), id="oss-missing"),
        pytest.param(
            lambda s: oss(s, "a.mp4", f"hls/m3u8,ss_60000,initd_0|sys/saveas,o_{b64('junk/c')},b_{b64('local')}"), id="ss-past-end"
        ),
        pytest.param(lambda s: api(s, "/api/v1/playlists", imm("a.mp4", "a.mp4/default/m.m3u8", target("junk/d"))), id="reserved"),
    ],
)
def test_a_failed_request_leaves_no_job_record(live: Server, attempt: Any) -> None:
    before = records(live)
    status, answer = attempt(live)
    assert status >= 400, answer
    assert records(live) == before
    assert not (output(live) / "junk").exists()


# ---- 1. API key scopes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "refused"),
    [
        pytest.param("POST", "/api/v1/sign", {"key": "a.mp4"}, "read", id="sign-outside-read"),
        pytest.param("POST", "/api/v1/sign", {"key": "movies/b.mp4", "profile": "default", "scope": "/hls/default/"}, None, id="sign-wide"),
        pytest.param("GET", "/api/v1/sources", None, "operation", id="sources-operation"),
        pytest.param("GET", "/api/v1/titles/default/movies/b.mp4", None, "operation", id="titles-operation"),
        pytest.param("POST", "/api/v1/playlists", imm("a.mp4", None, target("out/scoped/a")), "read", id="imm-read"),
        pytest.param("POST", "/api/v1/playlists", imm("movies/b.mp4", None, target("out/other/b")), "write", id="imm-write"),
        pytest.param(
            "POST", "/api/v1/playlists", imm("movies/b.mp4", "out/elsewhere.m3u8", target("out/scoped/b")), "write", id="imm-master"
        ),
    ],
)
def test_a_scoped_key_stays_in_its_scope(live: Server, method: str, path: str, body: Any, refused: str | None) -> None:
    status, answer = api(live, path, body, key=SCOPED_KEY)
    if refused is None:  # refused for its breadth (every title of a profile), whatever the key
        assert status == 400 and error(answer)["parameter"] == "scope", answer
        return
    assert status == 403 and error(answer)["code"] == "api_key_scope", answer
    assert error(answer).get("operation" if refused == "operation" else "refused") is not None
    assert SCOPED_KEY not in str(answer)


def test_a_scoped_key_does_what_its_scope_allows(live: Server) -> None:
    status, signed = api(live, "/api/v1/sign", {"key": "movies/b.mp4", "scope": "/hls/default/movies/"}, key=SCOPED_KEY)
    assert status == 200 and signed["scope"] == "/hls/default/movies/"
    status, made = api(live, "/api/v1/playlists", imm("movies/b.mp4", "out/scoped/m.m3u8", target("out/scoped/b")), key=SCOPED_KEY)
    assert status == 200, made
    assert (output(live) / "out" / "scoped" / "b.m3u8").exists()


# ---- 2. limits on jobs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(imm("a.mp4", None, target("lim/fps", FrameRate=120)), "Targets[0].Video.TranscodeVideo.FrameRate", id="fps"),
        pytest.param(imm("a.mp4", None, {**target("lim/initd"), "InitialTranscode": -1}), "Targets[0].InitialTranscode", id="whole-title"),
        pytest.param(imm("a.mp4", None, {**target("lim/long"), "InitialTranscode": 3600}), "Targets[0].InitialTranscode", id="initd"),
        pytest.param(imm("a.mp4", None, *[target(f"lim/r{i}") for i in range(MAX_RENDITIONS + 1)]), "Targets", id="renditions"),
        pytest.param(
            imm("a.mp4", None, target("lim/big", Resolution="4096x4096")), "Targets[0].Video.TranscodeVideo.Resolution", id="pixels"
        ),
    ],
)
def test_imm_jobs_are_bounded(live: Server, body: dict[str, Any], field: str) -> None:
    before = records(live)
    status, answer = api(live, "/api/v1/playlists", body)
    assert status == 400 and error(answer)["code"] == "limit_exceeded" and error(answer)["parameter"] == field, answer
    assert records(live) == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param("s_4096x4096,sopt_0", "s", id="upscale-4096"),
        pytest.param("fps_120", "fps", id="fps-120"),
        pytest.param("vcodec_h265,preset_veryslow", "preset", id="veryslow-h265"),
        pytest.param("initd_-1", "initd", id="whole-title"),
    ],
)
def test_oss_jobs_are_bounded(live: Server, params: str, field: str) -> None:
    status, answer = oss(live, "a.mp4", f"hls/m3u8,{params}|sys/saveas,o_{b64('lim/' + field)},b_{b64('local')}")
    assert status == 400 and error(answer)["code"] == "limit_exceeded" and error(answer)["parameter"] == field, answer


# ---- 3. signing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"path": "/hls/default/a.mp4/master.m3u8", "scope": "/"}, "scope", id="scope-root"),
        pytest.param({"path": "/hls/default/a.mp4/master.m3u8", "scope": "/hls/"}, "scope", id="scope-hls"),
        pytest.param({"path": "/hls/default/a.mp4/master.m3u8", "scope": "/hls/default/"}, "scope", id="scope-profile"),
        pytest.param({"path": "/metrics"}, "path", id="not-hls"),
        pytest.param({"path": "/hls/nosuch/a.mp4/master.m3u8"}, "path", id="unknown-profile"),
        pytest.param({"path": "/hls/default/master.m3u8"}, "path", id="no-title"),
        pytest.param({"key": "a.mp4", "ttl": 604801}, "ttl", id="ttl-over-7-days"),
    ],
)
def test_sign_refuses_what_covers_no_single_title_or_lasts_too_long(live: Server, body: dict[str, Any], field: str) -> None:
    status, answer = api(live, "/api/v1/sign", body)
    assert status == 400 and error(answer)["parameter"] == field, answer


def test_a_token_beyond_max_ttl_does_not_verify(live: Server) -> None:
    [key] = parse_keys(Path(live.env["LIVETX_SIGNING_KEY_FILE"]).read_text(), "test")
    path = "/hls/default/a.mp4/master.m3u8"
    token = Signer([key], key).sign_path(path, int(time.time()) + 30 * 24 * 3600)
    status, _, body = call(live, "GET", f"{path}?{token.query_string()}")
    assert status == 403 and b"token_not_yet_valid" in body
    fine = Signer([key], key).sign_path(path, int(time.time()) + 6 * 24 * 3600)
    assert call(live, "GET", f"{path}?{fine.query_string()}")[0] == 200


def test_signed_urls_ignore_a_forged_host(live: Server) -> None:
    headers = {"Authorization": f"Bearer {live.api_key}", "Content-Type": "application/json", "Host": "evil.example"}
    status, _, body = call(live, "POST", "/api/v1/sign", {"key": "a.mp4"}, headers)
    assert status == 200 and body.decode().count("evil.example") == 0
    assert json.loads(body)["url"].startswith(live.base_url + "/hls/")
    request = imm("a.mp4", None, target("host/v0"))
    status, _, body = call(live, "POST", "/api/v1/playlists", request, headers)
    assert status == 200 and json.loads(body)["PlaybackURL"].startswith(live.base_url + "/hls/j-")


def test_the_cli_signs_only_what_the_api_would(live: Server) -> None:
    """`livetx sign` and `livetx url` run the same checks as POST /api/v1/sign."""
    for args in (["sign", "/metrics"], ["url", "a.mp4", "--scope", "/hls/default/"], ["url", "a.mp4", "--ttl", "604801"]):
        done = subprocess.run([sys.executable, "-m", "livetx", *args], env=live.env, capture_output=True, text=True)
        assert done.returncode == 2 and "invalid" in done.stderr and not done.stdout, (args, done.stderr)
