"""Attacks through untrusted source files: sources that make FFmpeg read other objects
(playlists, concat lists, redirects), probes that hang, broken sources asked for again and
again, failures whose messages name files, and a listing with a symlink out of the root.

The real `livetx serve` answers the HTTP attacks; the S3 ones run in-process against the real
SeaweedFS. Whatever a hostile source names is a FIFO where that can show a reader: a
writer's non-blocking open of a FIFO succeeds only while something has it open for reading.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import random
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8
import pytest

from livetx.app import create_app
from livetx.errors import ProbeTimeout, SourceUnreadable
from livetx.factories import make_signer
from livetx.layout import probe_key
from livetx.media.pool import ProbePool
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from livetx.settings import load_settings
from livetx.signing import Signer
from livetx.storage.base import file_version
from livetx.urls import signed_url
from livetx.web.keys import CATALOG, SETTINGS
from tests.conftest import MakeClient, Server, Source, Stall, app_settings, launch_server
from tests.security.conftest import api, call, watch
from tests.support import IMM_SAMPLE, hls, readers

SECRET = SampleSpec(seconds=2.0, width=176, height=144, fps=Fraction(25), container="mpegts")  # outside the root


@dataclass
class Attacked:
    server: Server
    signer: Signer
    home: Path
    media: Path
    outside: Path
    fifos: list[Path]

    def get(self, path: str, scope: str | None = None) -> tuple[int, dict[str, Any]]:
        """A signed GET; (status, JSON body). A probe that hung would answer 504 after the probe limit."""
        url, _ = signed_url(self.signer, self.server.base_url, path, 60, scope=scope)
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        return status, (json.loads(body) if body.startswith(b"{") else {"bytes": len(body)})

    def no_paths(self, body: Any) -> None:
        text = json.dumps(body)
        for place in (self.home, self.media, self.outside):
            assert str(place) not in text, f"an error body names a filesystem path: {text}"


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[Attacked]:
    home = tmp_path_factory.mktemp("sources-attack")
    media, outside = home / "media", home / "outside"
    media.mkdir()
    outside.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "ok.mp4")
    write_sample(outside / "secret.ts", SECRET)
    write_sample(media / "inner.ts", SECRET)
    far = outside / "far.ts"  # hls follows media names only
    os.mkfifo(far)
    (media / "clip.m3u8").write_text(hls(str(outside / "secret.ts")))  # the attack
    (media / "fifo.m3u8").write_text(hls(str(far)))
    (media / "concat.mp4").write_text("ffconcat version 1.0\nfile inner.ts\n")  # another object, no playlist name
    (media / "escape.mp4").symlink_to(outside / "secret.ts")  # leaves the root
    (media / "loop.mp4").symlink_to(media / "loop.mp4")  # resolves to nothing
    with launch_server(home, media) as server:
        signer = make_signer(load_settings(environ=server.env))
        try:
            yield Attacked(server, signer, home, media, outside, [far])
        finally:
            readers([far])


def test_playlist_source_naming_a_file_outside_the_root_is_refused_everywhere(attacked: Attacked) -> None:
    """Before: the master playlist was 200 and segment 0 served the outside file's video."""
    scope = "/hls/default/clip.m3u8/"
    with watch(attacked.server):
        for path in ("master.m3u8", "main.m3u8", "main-000000000000-0.ts"):
            status, body = attacked.get(scope + path, scope=scope)
            assert status == 422 and body["error"]["code"] == "source_type_refused", (path, status, body)
            assert "playlist" in body["error"]["message"]
            attacked.no_paths(body)
        status, state = api(attacked.server, "/api/v1/titles/default/clip.m3u8")
        assert status == 422 and state["error"]["code"] == "source_type_refused", state
        imm = {**IMM_SAMPLE, "SourceURI": "oss://local/clip.m3u8", "MasterURI": "oss://local/out/clip/master.m3u8"}
        imm["Targets"] = [{**IMM_SAMPLE["Targets"][0], "URI": "oss://local/out/clip/720p"}]  # type: ignore[index]
        del imm["SourceSubtitles"]  # (the sample's names another bucket: a 400 before the source is looked at)
        status, answer = api(attacked.server, "/api/v1/playlists", imm)
        assert status == 422 and answer["error"]["code"] == "source_type_refused", answer
        status, answer = api(attacked.server, "/api/v1/sign", {"key": "clip.m3u8", "scope": "title"})
        assert status == 422 and answer["error"]["code"] == "source_type_refused", answer
        headers = {"Authorization": f"Bearer {attacked.server.api_key}", "Content-Type": "application/x-www-form-urlencoded"}
        form = b"x-oss-process=hls/m3u8|sys/saveas,o_b3V0L3k,b_bG9jYWw"
        status, _, raw = call(attacked.server, "POST", "/clip.m3u8?x-oss-process", headers=headers, raw=form)
        assert status == 422 and json.loads(raw)["error"]["code"] == "source_type_refused", raw


def test_playlist_naming_a_fifo_outside_the_root_opens_nothing(attacked: Attacked) -> None:
    """Before: the probe thread blocked for good, reading the FIFO outside the root."""
    status, body = attacked.get("/hls/default/fifo.m3u8/master.m3u8")
    assert status == 422, body  # not a 504: no probe hung on the FIFO
    assert readers(attacked.fifos) == []


def test_concat_list_named_mp4_is_refused_by_its_format(attacked: Attacked) -> None:
    """No playlist name: the container format allow-list refuses it. Before: 200, the title
    was another file's."""
    status, body = attacked.get("/hls/default/concat.mp4/master.m3u8")
    assert status == 422 and body["error"]["code"] == "source_type_refused", body
    assert "concat" in body["error"]["message"]
    attacked.no_paths(body)


def test_a_real_source_still_plays(attacked: Attacked) -> None:
    status, body = attacked.get("/hls/default/ok.mp4/master.m3u8")
    assert status == 200, body


def test_failed_transcode_names_no_path(attacked: Attacked) -> None:
    """A source that probed well once (its record says so) and now is garbage. Before: the 502
    carried the file's absolute path."""
    garbage = attacked.media / "garbage.mp4"
    garbage.write_bytes(random.Random(13).randbytes(200_000))
    record = probe(str(attacked.media / "ok.mp4")).to_record()
    place = attacked.media / ".livetx" / probe_key("garbage.mp4", file_version(garbage.stat()))
    place.parent.mkdir(parents=True)
    place.write_text(json.dumps(record))
    scope = "/hls/default/garbage.mp4/"
    status, body = attacked.get(scope + "main.m3u8", scope=scope)
    assert status == 200
    url, _ = signed_url(attacked.signer, "", scope + "main.m3u8", 60, scope=scope)
    text = urllib.request.urlopen(attacked.server.base_url + url, timeout=15).read().decode()
    first = m3u8.loads(text).segments[0].uri.split("?")[0]
    status, body = attacked.get(scope + first, scope=scope)
    assert status == 502 and body["error"]["code"] == "transcode_failed", body
    attacked.no_paths(body)
    assert "/" not in body["error"]["message"], body


def test_listing_skips_a_symlink_out_of_the_root(attacked: Attacked) -> None:
    """Before: one such entry made the whole listing 400."""
    status, listing = api(attacked.server, "/api/v1/sources")
    assert status == 200, listing
    keys = {s["key"] for s in listing["sources"]}
    assert "ok.mp4" in keys and "escape.mp4" not in keys and "loop.mp4" not in keys
    assert "skipped an entry" in attacked.server.log.read_text()


# ---- in-process: the probe's time limit and its negative cache ----------------------------------


async def test_a_probe_that_hangs_is_killed_at_its_limit_and_its_worker_replaced(stalling: str, sources: dict[str, Source]) -> None:
    """Before: probes ran in a thread nothing could stop (no ProbePool)."""
    pool = ProbePool(1, timeout=1.0, origin=stalling)
    try:
        began = time.perf_counter()
        await pool.probe(str(sources["mp4-30"].path))  # starts the worker
        [first] = pool.worker_pids()
        with pytest.raises(ProbeTimeout):
            began = time.perf_counter()
            await pool.probe(f"{stalling}/source.mp4")
        assert time.perf_counter() - began < 5
        assert pool.restarts == 1 and pool.worker_pids() != [first]
        assert (await pool.probe(str(sources["mp4-30"].path))).video is not None  # the fresh worker serves
    finally:
        await pool.close()


async def test_probe_over_the_limit_is_504_json_and_not_probed_again(
    aiohttp_client: Any, tmp_path: Path, stalling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's "bucket" answers HEADs but never a GET: the probe cannot finish, so its
    limit always fires (no race with a real probe). Within probe_failure_ttl the next requests
    get the same answer without a probe. The listing for subtitle files hangs as well: it
    delays no answer past the probe's limit, and is not asked again within stat_ttl."""
    for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    settings = app_settings(
        LIVETX_STORAGE_URI="s3://stalled/media",
        LIVETX_STORAGE_OUTPUT_URI=str(tmp_path / "out"),
        LIVETX_S3_ENDPOINT_URL=stalling,
        LIVETX_S3_REGION="us-east-1",
        LIVETX_S3_ADDRESSING_STYLE="path",
        LIVETX_TRANSCODE_PROBE_TIMEOUT="0.5",
    )
    client = await aiohttp_client(create_app(settings))
    url, _ = signed_url(make_signer(client.server.app[SETTINGS]), "", "/hls/default/a.mp4/master.m3u8", 60)
    for _ in range(3):
        response = await client.get(url)
        body = await response.json()
        assert response.status == 504 and body["error"]["code"] == "probe_timeout", body
    assert client.server.app[CATALOG].probe_count == 1
    # one worker read the source, once; the subtitle files next to it were looked for once (that
    # listing hung too: the title went on without them, within the probe's limit, and kept that)
    assert Stall.requests - Stall.listings == 1 and Stall.listings == 1


async def test_a_broken_source_is_probed_once_for_many_requests(aiohttp_client: Any, tmp_path: Path) -> None:
    """Before: every request probed it again (5 probes)."""
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    client = await aiohttp_client(create_app(app_settings(LIVETX_STORAGE_URI=str(tmp_path))))
    url, _ = signed_url(make_signer(client.server.app[SETTINGS]), "", "/hls/default/broken.mp4/master.m3u8", 60)
    answers = await asyncio.gather(*(client.get(url) for _ in range(3)))
    answers += [await client.get(url) for _ in range(2)]
    for response in answers:
        body = await response.json()
        assert response.status == 422 and body["error"]["code"] == "source_unreadable", body
        assert str(tmp_path) not in json.dumps(body)
    assert client.server.app[CATALOG].probe_count == 1


# ---- remote sources: one origin, no redirects, no nested opens ----------------------------------


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: Any) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_remote_reader_follows_no_redirect_and_reads_one_origin(tmp_path: Path, sources: dict[str, Source]) -> None:
    """Before: the reader followed a redirect to another host and probed what it found there."""
    shutil.copy(sources["mp4-30"].path, tmp_path / "other.mp4")
    files, files_url = _serve(lambda *a: _Files(*a, directory=str(tmp_path)))
    redirect, redirect_url = _serve(_Redirect)
    _Redirect.target = f"{files_url}/other.mp4"
    try:
        with pytest.raises(SourceUnreadable):
            probe(f"{redirect_url}/source.mp4")
        with pytest.raises(SourceUnreadable, match="storage endpoint"):
            probe(f"{files_url}/other.mp4", origin=redirect_url)  # not the storage's endpoint
        for url in (f"file://{tmp_path}/other.mp4", "ftp://127.0.0.1/x.mp4", "data:video/mp4;base64,AAAA"):
            with pytest.raises(SourceUnreadable):
                probe(url, origin="")
        assert probe(f"{files_url}/other.mp4", origin=files_url).video is not None
    finally:
        for server in (files, redirect):
            server.shutdown()
            server.server_close()


async def test_s3_sources_that_name_other_objects_are_refused(
    s3_app: MakeClient, s3_sources: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over S3, a concat list's relative names resolved against the server's working
    directory. Before: a reader on the FIFO there, and a playlist key was only 'unreadable'."""
    work = tmp_path / "cwd"
    work.mkdir()
    fifo = work / "near.ts"
    os.mkfifo(fifo)
    monkeypatch.chdir(work)
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources)
    store = client.server.app[CATALOG].sources
    await store.write("clip.m3u8", hls(str(fifo)).encode())
    await store.write("hls.mp4", hls(str(fifo)).encode())
    await store.write("concat.mp4", b"ffconcat version 1.0\nfile near.ts\n")
    signer = make_signer(client.server.app[SETTINGS])
    try:
        for key, code in (("clip.m3u8", "source_type_refused"), ("hls.mp4", None), ("concat.mp4", "source_type_refused")):
            url, _ = signed_url(signer, "", f"/hls/default/{key}/master.m3u8", 60)
            try:
                response = await asyncio.wait_for(client.get(url), timeout=10)
            except TimeoutError:
                raise AssertionError(f"{key}: no answer; readers {readers([fifo])}") from None
            body = await response.json()
            assert response.status == 422 and (code is None or body["error"]["code"] == code), (key, body)
            assert readers([fifo]) == [], key
        good, _ = signed_url(signer, "", "/hls/default/mp4-30.mp4/master.m3u8", 60)
        assert (await client.get(good)).status == 200
    finally:
        readers([fifo])
