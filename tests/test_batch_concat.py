"""Concatenation jobs (livetx/batch/ with livetx/composite.py) against the real server: the
3-clip concatenation of tests/test_composite.py (MP4, Matroska and MPEG-TS clips of different
frame rates, sizes and sample rates) run as a job to MP4 passes the same frame-exact and audio
checks (tests/concat_checks.py) as the composite played on demand; the OSS `video/concat` sample
request of the reference (cloud-api-facts.md section 4), as written, saves its object whole and
notifies its topic's receiver with a valid signature; a clip that cannot be made fails its job
naming the clip's field (`Clips[2].StartTime`, `sur[0].ss`); the planned length is what
`limits.max_job_seconds` judges."""

from __future__ import annotations

import base64
import os
import time
import urllib.parse
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import pytest

from livetx.batch.work import check_planned
from livetx.composite import ClipSource, build_composite_title
from livetx.concat import Clip, concat_params, make_composite
from livetx.errors import LimitExceeded
from livetx.media.probe import probe
from livetx.notify.signing import verify
from livetx.settings import LimitsSettings
from livetx.storage.base import ObjectInfo
from livetx.titles import Title
from tests.checker import TS_OFFSET, decode_video
from tests.concat_checks import CLIPS, check_audio, check_frames
from tests.conftest import ROOT, Server, Source, launch_server
from tests.jobs_support import FAST, SECRET, Receiver, call, finished, job, output_path, serving, wait_state
from tests.support import wait_until

TOPIC = "concat-done"
OSS_NAMES = ("concat/pre.mp4", "concat/source.mkv", "concat/sur.ts")  # the objects the OSS sample names, in play order


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def planned(sources: dict[str, Source], **params: Any) -> Title:
    """The composite's plan (what `POST /api/v1/composites` answers as its Clips), made by the
    planner from the clips' probes: where each clip starts and how long it lasts."""
    clips = [Clip(sources[name].key, ss, t) for name, ss, t in CLIPS]
    found = [ClipSource(ObjectInfo(c.key, 1, "v"), probe(str(sources[name].path))) for c, (name, _, _) in zip(clips, CLIPS, strict=True)]
    return build_composite_title(make_composite(clips, concat_params(params)), ".batch-plan", found)


def clip_times(title: Title) -> list[dict[str, Any]]:
    return [{"Start": float(c.start), "Duration": float(c.stop - c.start)} for c in title.clips]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving(Receiver([])) as state:
        yield state


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source], receiver: Receiver) -> Iterator[Server]:
    """A server whose notify.topics sends TOPIC to the receiver, with the clips under their own
    names and under the names the OSS sample gives them."""
    home = tmp_path_factory.mktemp("concat-home")
    media = home / "media"
    (media / "concat").mkdir(parents=True)
    for (name, _, _), oss_name in zip(CLIPS, OSS_NAMES, strict=True):
        os.link(sources[name].path, media / sources[name].key)
        os.link(sources[name].path, media / oss_name)
    for name in ("video-only", "audio-only"):
        os.link(sources[name].path, media / sources[name].key)
    config = home / "livetx.toml"
    text = (ROOT / "conf" / "livetx.toml").read_text()
    assert text.count("\ntopics = {}\n") == 1
    config.write_text(text.replace("\ntopics = {}\n", f'\ntopics = {{ "{TOPIC}" = "{receiver.url}" }}\n'))
    with launch_server(home, media, LIVETX_CONFIG=str(config), **FAST) as running:
        yield running


def clips_body(sources: dict[str, Source]) -> list[dict[str, Any]]:
    return [{"URI": f"oss://local/{sources[name].key}", "StartTime": ss / 1000, "Duration": t / 1000} for name, ss, t in CLIPS]


def test_three_clips_as_a_job_to_mp4_pass_the_composite_checks(server: Server, sources: dict[str, Source]) -> None:
    body = {"Clips": clips_body(sources), "Output": {"URI": "oss://local/out/three.mp4", "Format": "mp4"}}
    done = finished(server, body)
    path = output_path(server, "out/three.mp4")
    assert done["Outputs"] == [{"URI": "oss://local/out/three.mp4", "Size": path.stat().st_size}]
    title = planned(sources)
    with av.open(str(path)) as joined:
        assert joined.format.name.startswith("mov,mp4")
        check_frames(joined, clip_times(title), sources, Fraction(0), shifted=False)
    with av.open(str(path)) as joined:
        check_audio(joined, clip_times(title), float(title.duration), Fraction(0))


@pytest.mark.parametrize("fmt", ["mov", "mkv", "ts", "m4a"])
def test_every_file_format_keeps_time_running_across_the_joins(server: Server, sources: dict[str, Source], fmt: str) -> None:
    """The same clips (their segments shared with the MP4 job: the file's container is not
    the segments') remuxed into each container: every frame once at its time, the audio's
    frames back to back through both joins. MPEG-TS keeps the segments' clock (TS_OFFSET)."""
    body = {"Clips": clips_body(sources), "Output": {"URI": f"oss://local/out/three.{fmt}", "Format": fmt}}
    finished(server, body)
    path = str(output_path(server, f"out/three.{fmt}"))
    offset = TS_OFFSET if fmt == "ts" else Fraction(0)
    title = planned(sources, vn=1) if fmt == "m4a" else planned(sources)
    if fmt != "m4a":
        with av.open(path) as joined:
            check_frames(joined, clip_times(title), sources, offset, shifted=False)
    with av.open(path) as joined:
        assert not joined.streams.video if fmt == "m4a" else len(joined.streams.video) == 1
        check_audio(joined, clip_times(title), float(title.duration), offset, slack=90 if fmt == "mkv" else 0)


def test_the_oss_concat_sample_as_written_saves_its_object_and_notifies(
    server: Server, sources: dict[str, Source], receiver: Receiver
) -> None:
    """cloud-api-facts.md section 4: `video/concat,<transcode params>/pre,o_<b64url>[,ss_ms][,t_ms]
    /sur,o_<b64url>[,ss_ms][,t_ms]|sys/saveas,b_…,o_…/notify,topic_…` on the source object."""
    (_, ss_pre, t_pre), (_, ss_source, t_source), (_, ss_sur, t_sur) = CLIPS
    process = (
        f"video/concat,f_mp4,ss_{ss_source},t_{t_source}/pre,o_{b64(OSS_NAMES[0])},ss_{ss_pre},t_{t_pre}"
        f"/sur,o_{b64(OSS_NAMES[2])},ss_{ss_sur},t_{t_sur}"
        f"|sys/saveas,b_{b64('local')},o_{b64('out/concat/sample.mp4')}/notify,topic_{b64(TOPIC)}"
    )
    form = urllib.parse.urlencode({"x-oss-async-process": process}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, answer = call(server, "POST", f"/{OSS_NAMES[1]}?x-oss-async-process", form, headers)
    assert status == 200, answer
    assert set(answer) == {"RequestId", "TaskId", "EventId"}
    done = wait_state(server, answer["TaskId"], ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    path = output_path(server, "out/concat/sample.mp4")
    assert done["Outputs"] == [{"URI": "oss://local/out/concat/sample.mp4", "Size": path.stat().st_size}]
    with av.open(str(path)) as joined:  # whole: every frame of every clip, in order, once
        check_frames(joined, clip_times(planned(sources)), sources, Fraction(0), shifted=False)
    record = wait_until(lambda: (r := job(server, answer["TaskId"]))["Delivered"] is not None and r, 30, "the topic notified")
    assert record["Delivered"] is True and record["Notify"]["Topic"] == TOPIC
    assert [(d["Attempt"], d["Status"]) for d in record["Deliveries"]] == [(1, 200)]
    got = [(h, raw) for h, raw, _ in receiver.got if answer["TaskId"].encode() in raw]
    assert len(got) == 1
    headers_got, raw = got[0]
    assert verify(headers_got, raw, SECRET.encode(), time.time()) == record["EventId"]


@pytest.mark.parametrize(
    ("oss", "field"),
    [pytest.param(False, "Clips[2].StartTime", id="json"), pytest.param(True, "sur[0].ss", id="oss")],
)
def test_a_clip_that_cannot_be_made_is_refused_at_submission_naming_its_field(
    server: Server, sources: dict[str, Source], oss: bool, field: str
) -> None:
    """A job is planned when it is submitted: a clip starting past its source's end is that
    request's 400 naming the clip's field in the request's own terms, and no job is made."""
    before = call(server, "GET", "/api/v1/jobs")[1]["Jobs"]
    if oss:
        process = f"video/concat,f_mp4/sur,o_{b64(OSS_NAMES[2])},ss_60000|sys/saveas,b_{b64('local')},o_{b64('out/bad-oss.mp4')}"
        form = urllib.parse.urlencode({"x-oss-async-process": process}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, answer = call(server, "POST", f"/{OSS_NAMES[0]}?x-oss-async-process", form, headers)
        output = "out/bad-oss.mp4"
    else:
        clips = clips_body(sources)
        clips[2]["StartTime"] = 60
        body = {"Clips": clips, "Output": {"URI": "oss://local/out/bad.mp4", "Format": "mp4"}}
        status, answer = call(server, "POST", "/api/v1/jobs", body)
        output = "out/bad.mp4"
    assert status == 400 and answer["error"]["parameter"] == field, answer
    assert call(server, "GET", "/api/v1/jobs")[1]["Jobs"] == before  # no job
    assert not output_path(server, output).exists()


@pytest.mark.parametrize(("name", "video", "audio"), [("video-only", 1, 0), ("audio-only", 0, 1)])
def test_a_source_without_audio_or_video_makes_a_file_without_it(
    server: Server, sources: dict[str, Source], name: str, video: int, audio: int
) -> None:
    """A stream no clip has is left out, as a single source's title always did."""
    key = sources[name].key
    body = {"Clips": [{"URI": f"oss://local/{key}"}], "Output": {"URI": f"oss://local/out/{name}.mp4", "Format": "mp4"}}
    finished(server, body)
    with av.open(str(output_path(server, f"out/{name}.mp4"))) as made:
        assert (len(made.streams.video), len(made.streams.audio)) == (video, audio)
        if video:
            assert decode_video(made).indexes == list(range(sources[name].frames))
    # with a clip that has audio, the video-only one is refused, named
    body["Clips"] = [{"URI": f"oss://local/{sources['mp4-30'].key}"}, *body["Clips"]]
    body["Output"]["URI"] = f"oss://local/out/{name}-mixed.mp4"
    status, refused = call(server, "POST", "/api/v1/jobs", body)
    assert status == 400 and refused["error"]["parameter"] == "Clips[1].URI", refused


def test_the_planned_length_of_the_clips_is_what_the_job_limit_judges(sources: dict[str, Source]) -> None:
    title = planned(sources)  # 4 + 3 + 5 s; the last clip's length is known only once planned
    check_planned(title, LimitsSettings(max_job_seconds=12), oss=False)
    with pytest.raises(LimitExceeded) as caught:
        check_planned(title, LimitsSettings(max_job_seconds=11), oss=False)
    assert caught.value.name == "Clips" and "this makes 12.0 s" in caught.value.message
    with pytest.raises(LimitExceeded) as caught:
        check_planned(title, LimitsSettings(max_pixels=320 * 179), oss=True)
    assert caught.value.name == "s"
