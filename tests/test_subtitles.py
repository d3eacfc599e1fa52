"""livetx/subtitles: sidecar parsing (formats, encodings, broken input), cue -> segment
assignment, WebVTT segments and their X-TIMESTAMP-MAP, the subtitle playlist. Pure: tables,
a round trip through the module's own WebVTT reader, and a fuzz test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livetx.errors import LivetxError, SubtitleTooLarge, SubtitleUnreadable
from livetx.hls.plan import SegmentWindow, plan_segments, video_grid
from livetx.media.timeline import MPEG_TS_CLOCK, TS_OFFSET
from livetx.subtitles import sidecar, vtt
from livetx.subtitles.cues import Cue, normalise
from livetx.subtitles.text import MAX_SIDECAR_BYTES, decode
from livetx.subtitles.webvtt import assign, mpegts_offset, playlist_text, render_segment, segment_cues

ROOT = Path(__file__).resolve().parent.parent

SRT = """1
00:00:01,000 --> 00:00:02,500
Élan café, naïve — ça va?

2
00:00:03,000 --> 00:00:04,000
<i>Two</i> <font color="#ff0000">lines</font>
and a second one
"""


def texts(cues: tuple[Cue, ...]) -> list[str]:
    return [cue.text for cue in cues]


# --- encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(SRT.encode("utf-8"), id="utf-8"),
        pytest.param(b"\xef\xbb\xbf" + SRT.replace("\n", "\r\n").encode("utf-8"), id="utf-8-bom-crlf"),
        pytest.param(b"\xff\xfe" + SRT.encode("utf-16-le"), id="utf-16-le-bom"),
        pytest.param(b"\xfe\xff" + SRT.encode("utf-16-be"), id="utf-16-be-bom"),
        pytest.param(SRT.encode("utf-16-le"), id="utf-16-le-no-bom"),
        pytest.param(SRT.replace("—", "-").encode("latin-1"), id="latin-1"),
        pytest.param(SRT.encode("cp1252"), id="cp1252"),
    ],
)
def test_an_srt_in_any_common_encoding_gives_the_same_cues(data: bytes) -> None:
    cues = sidecar.parse(data, "film.fr.srt", "srt")
    assert [(c.start, c.end) for c in cues] == [(1000, 2500), (3000, 4000)]
    assert cues[0].text.replace("-", "—") == "Élan café, naïve — ça va?"
    assert cues[1].text == "<i>Two</i> lines\nand a second one"


def test_latin_1_bytes_that_cp1252_leaves_undefined_still_decode() -> None:
    assert decode(b"caf\xe9 \x81\x8d", "t") == "café \x81\x8d"  # Latin-1; the cue cleaner drops the C1 controls


def test_a_sidecar_over_the_cap_is_refused_naming_the_track() -> None:
    with pytest.raises(SubtitleTooLarge) as caught:
        sidecar.parse(b"x" * (MAX_SIDECAR_BYTES + 1), "dir/film.en.srt")
    assert caught.value.status == 422 and caught.value.code == "subtitle_too_large"
    assert "dir/film.en.srt" in caught.value.message and caught.value.details == {"track": "dir/film.en.srt"}


# --- SRT ----------------------------------------------------------------------------


ONE = "00:00:01,000 --> 00:00:02,000"  # timing lines of the SRT table
TWO = "00:00:02,000 --> 00:00:03,000"


@pytest.mark.parametrize(
    ("srt", "expected"),
    [
        pytest.param(f"1\n{ONE}\na & b < c > d --> e\n", [(1000, 2000, "a &amp; b &lt; c &gt; d --&gt; e")], id="escaped"),
        pytest.param("00:00:01.5 --> 00:00:02.25\nno counter, dots\n", [(1500, 2250, "no counter, dots")], id="lenient-clock"),
        pytest.param(f"1\n00:00:01,000 --> 00:00:00,500\nreversed\n\n2\n{TWO}\nkept\n", [(2000, 3000, "kept")], id="reversed-dropped"),
        pytest.param(f"1\n{ONE}\nbad\n\n2\n00:61:00,000 --> 00:62:00,000\nbad minutes\n", [(1000, 2000, "bad")], id="bad-minutes"),
        pytest.param(f"1\n00:00:01,000 --> nonsense\nx\n\n2\n{TWO}\ny\n", [(2000, 3000, "y")], id="bad-timing-dropped"),
        pytest.param(
            f"2\n00:00:05,000 --> 00:00:06,000\nlater\n\n1\n00:00:01,000 --> 00:00:09,000\nlong\n\n3\n{TWO}\noverlap\n",
            [(1000, 9000, "long"), (2000, 3000, "overlap"), (5000, 6000, "later")],
            id="overlap-kept-sorted",
        ),
        pytest.param(f"1\n{ONE}\nctl\x00\x07\x1b[0m\x7f\x85 ok\t tab\n", [(1000, 2000, "ctl[0m ok tab")], id="controls-removed"),
        pytest.param(f"1\n{ONE}\n{{\\an8}}<b>top</b>\n", [(1000, 2000, "<b>top</b>")], id="ass-tag-in-srt"),
        pytest.param(
            f"1\n{ONE}\n<i>open\n\n2\n{TWO}\nclose</i></b>\n", [(1000, 2000, "<i>open</i>"), (2000, 3000, "close")], id="spans-balanced"
        ),
        pytest.param(f"1\n{ONE}\n<i>\ntext\n</i>\n", [(1000, 2000, "<i>text</i>")], id="span-lines-joined"),
        pytest.param(f"1\n{ONE}\n   \n2\n{TWO}\n<i></i>\n", [], id="no-visible-text"),
    ],
)
def test_srt_cues(srt: str, expected: list[tuple[int, int, str]]) -> None:
    cues = normalise(sidecar.PARSERS["srt"](srt))
    assert [(c.start, c.end, c.text) for c in cues] == expected


def test_an_srt_with_an_ass_alignment_keeps_it_as_a_setting() -> None:
    (cue,) = sidecar.parse(b"1\n00:00:01,000 --> 00:00:02,000\n{\\an8}top\n", "t.srt")
    assert cue.settings == "line:0"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="binary"),
        pytest.param(b"1\n00:00:02,000 --> 00:00:01,000\nonly a reversed cue\n", id="reversed-only"),
        pytest.param(b"just some text\nwithout any timing\n", id="no-timing"),
    ],
)
def test_a_sidecar_without_a_valid_cue_is_unreadable_naming_the_track(data: bytes) -> None:
    with pytest.raises(SubtitleUnreadable) as caught:
        sidecar.parse(data, "SourceSubtitles[0].URI")
    assert caught.value.status == 422 and caught.value.code == "subtitle_unreadable"
    assert "SourceSubtitles[0].URI" in caught.value.message


# --- WebVTT -------------------------------------------------------------------------

VTT = """WEBVTT - a title
Kind: captions
Language: en

STYLE
::cue { color: yellow }

NOTE a comment
spanning --> two lines

REGION
id:r1 width:40%

intro
00:00:00.500 --> 00:00:02.000 align:left region:r1 line:0 bogus:1 size:50%
<v Bob>Hello</v> &amp; <c.yellow>welcome</c> &lt;3 <00:00:01.000><i>now</i>

00:01.000 --> 00:03.000
short clock &nbsp;form

NOTE trailing
"""


def test_a_webvtt_sidecar_skips_header_note_style_region_and_keeps_settings() -> None:
    cues = sidecar.parse(VTT.encode(), "film.en.vtt", "vtt")
    assert [(c.start, c.end, c.text, c.settings) for c in cues] == [
        (500, 2000, "Hello &amp; welcome &lt;3 <i>now</i>", "align:left line:0 size:50%"),
        (1000, 3000, "short clock \u00a0form", ""),
    ]


def test_the_format_is_sniffed_when_the_name_does_not_say() -> None:
    assert [c.start for c in sidecar.parse(VTT.encode(), "subs.txt")] == [500, 1000]
    assert [c.start for c in sidecar.parse(ASS.encode(), "subs.txt")] == [1500, 3000, 4000]


# --- ASS / SSA ----------------------------------------------------------------------

ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 640

[V4+ Styles]
Format: Name, Fontname, Fontsize
Style: Default,Arial,20

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Comment: 0,0:00:00.00,0:00:09.00,Default,,0,0,0,,not shown
Dialogue: 0,0:00:04.00,0:00:05.00,Default,,0,0,0,,{\\an7\\fs30}top left, {\\pos(10,20)\\c&H00FF00&}with commas
Dialogue: 0,0:00:01.50,0:00:03.25,Default,Bob,0,0,0,,{\\i1}Hello{\\i0}\\Nsecond{\\b1} bold{\\r} plain <not a tag>
Dialogue: 1,0:00:03.00,0:00:04.00,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100{\\p0}{\\an5}after drawing\\hx
Dialogue: 0,0:00:xx.00,0:00:04.00,Default,,0,0,0,,bad time
"""


def test_ass_dialogue_becomes_text_spans_and_alignment() -> None:
    cues = sidecar.parse(ASS.encode(), "film.ass", "ass")
    assert [(c.start, c.end, c.text, c.settings) for c in cues] == [
        (1500, 3250, "<i>Hello</i>\nsecond<b> bold</b> plain &lt;not a tag&gt;", ""),
        (3000, 4000, "after drawing\u00a0x", "line:50%,center"),
        (4000, 5000, "top left, with commas", "line:0 align:left"),
    ]


def test_dialogue_fields_follow_the_format_line() -> None:
    ssa = "[Events]\nFormat: Marked, Start, End, Style, Name, Text\nDialogue: Marked=0,0:00:02.00,0:00:03.00,Default,,a, b {\\a6}c\n"
    (cue,) = sidecar.parse(ssa.encode(), "film.ssa", "ssa")
    assert (cue.start, cue.end, cue.text, cue.settings) == (2000, 3000, "a, b c", "line:0")


# --- segments -----------------------------------------------------------------------


def windows(*stops: str) -> tuple[SegmentWindow, ...]:
    """Contiguous windows on a 1/1000 s grid ending at `stops` (seconds)."""
    unit = Fraction(1, 1000)
    ends = [round(Fraction(s) / unit) for s in stops]
    return tuple(SegmentWindow(i, first, end, unit) for i, (first, end) in enumerate(zip([0, *ends], ends, strict=False)))


@pytest.mark.parametrize(
    ("cue", "expected"),
    [
        pytest.param(Cue(0, 1000, "a"), [0], id="inside-first"),
        pytest.param(Cue(1000, 2000, "a"), [0], id="ends-on-boundary"),
        pytest.param(Cue(2000, 2500, "a"), [1], id="starts-on-boundary"),
        pytest.param(Cue(1999, 2001, "a"), [0, 1], id="spans-boundary"),
        pytest.param(Cue(500, 5500, "a"), [0, 1, 2], id="spans-three"),
        pytest.param(Cue(5999, 9000, "a"), [2], id="runs-past-the-end"),
        pytest.param(Cue(6000, 9000, "a"), [], id="after-the-end"),
    ],
)
def test_a_cue_is_in_every_segment_it_overlaps(cue: Cue, expected: list[int]) -> None:
    segs = windows("2", "4", "6")
    assigned = assign([cue], segs)
    assert [i for i, cues in enumerate(assigned) if cues] == expected
    assert all(cues == [cue] for cues in assigned if cues)  # times unchanged
    assert [i for i, w in enumerate(segs) if segment_cues([cue], w)] == expected


def test_assignment_on_ntsc_frame_windows_is_exact() -> None:
    segs = plan_segments(video_grid(Fraction(10), Fraction(30000, 1001)), 2000)
    assert segs[0].stop == Fraction(2002, 1000)  # 60 frames of 1001/30000 s
    assigned = assign([Cue(2001, 2002, "before"), Cue(2002, 2003, "after")], segs)
    assert [[c.text for c in cues] for cues in assigned[:2]] == [["before"], ["after"]]


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    spans=st.lists(st.tuples(st.integers(0, 12_000), st.integers(1, 5_000)), max_size=30),
    fps=st.sampled_from([Fraction(25), Fraction(30000, 1001), Fraction(24000, 1001)]),
    segment_ms=st.sampled_from([1000, 2000, 3000]),
)
def test_assignment_matches_the_overlap_rule(spans: list[tuple[int, int]], fps: Fraction, segment_ms: int) -> None:
    cues = normalise(Cue(start, start + length, "c") for start, length in spans)
    segs = plan_segments(video_grid(Fraction(10), fps), segment_ms, [1000])
    rule = [[c for c in cues if Fraction(c.start, 1000) < w.stop and Fraction(c.end, 1000) > w.start] for w in segs]
    assert assign(cues, segs) == rule
    assert [segment_cues(cues, w) for w in segs] == rule


# --- WebVTT output ------------------------------------------------------------------


def test_the_timestamp_map_derives_from_ts_offset() -> None:
    assert mpegts_offset("ts") == TS_OFFSET * MPEG_TS_CLOCK == 126000
    assert mpegts_offset("fmp4") == 0
    assert render_segment([], "ts").splitlines()[:2] == ["WEBVTT", "X-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000"]
    assert render_segment([], "fmp4").splitlines()[:2] == ["WEBVTT", "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000"]


def media_times(segment: str) -> list[tuple[Fraction, Fraction, str]]:
    """What a player computes: cue times mapped through the header onto the 90 kHz media clock."""
    match = re.search(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:00:00:00\.000", segment)
    assert match is not None
    base = Fraction(int(match.group(1)), MPEG_TS_CLOCK)
    return [(base + Fraction(c.start, 1000), base + Fraction(c.end, 1000), c.text) for c in vtt.parse(segment)]


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_segments_read_back_place_every_cue_on_the_media_timeline(container: str) -> None:
    source = ASS.encode()
    cues = sidecar.parse(source, "film.ass")
    segs = windows("2", "3.5", "6")
    offset = TS_OFFSET if container == "ts" else Fraction(0)
    seen: set[tuple[Fraction, Fraction, str]] = set()
    for assigned in assign(cues, segs):
        text = render_segment(assigned, container)
        read = vtt.parse(text)
        assert read == assigned  # the module's own reader gives the same cues, text and settings
        seen.update(media_times(text))
    assert sorted(seen) == sorted((offset + Fraction(c.start, 1000), offset + Fraction(c.end, 1000), c.text) for c in cues)


def test_hostile_text_cannot_end_a_cue_or_forge_a_timing_line() -> None:
    srt = "1\n00:00:01,000 --> 00:00:02,000\nsee 00:00:05.000 --> 00:00:09.000 forged\n \t\nx --> y\n"
    cues = sidecar.parse(srt.encode(), "t.srt")
    assert [c.text for c in cues] == ["see 00:00:05.000 --&gt; 00:00:09.000 forged"]
    assert vtt.parse(render_segment(cues, "ts")) == list(cues)
    # cue text from elsewhere (embedded tracks) goes through the same assembly
    (cue,) = sidecar.parse(b"[Events]\nDialogue: 0,0:00:01.00,0:00:02.00,S,,0,0,0,,a\\N\\N\\N00:00:05.000 --> 00:00:09.000\\Nb\n", "t.ass")
    assert cue.text == "a\n00:00:05.000 --&gt; 00:00:09.000\nb"
    assert vtt.parse(render_segment([cue], "ts")) == [cue]


def test_hours_past_99_are_written_and_read_back() -> None:
    cue = Cue(100 * 3600 * 1000 + 1, 100 * 3600 * 1000 + 2500, "late")
    text = render_segment([cue], "fmp4")
    assert "100:00:00.001 --> 100:00:02.500" in text
    assert vtt.parse(text) == [cue]


def test_the_playlist_has_the_video_extinfs_and_named_segments() -> None:
    segs = plan_segments(video_grid(Fraction(7), Fraction(30000, 1001)), 2000)
    text = playlist_text(segs, lambda w: f"s2-{w.index}.vtt")
    assert "#EXT-X-TARGETDURATION:2\n" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    expected = [("2.002", "s2-0.vtt"), ("2.002", "s2-1.vtt"), ("2.002", "s2-2.vtt"), ("0.967633", "s2-3.vtt")]
    assert re.findall(r"#EXTINF:([\d.]+),\n(\S+)", text) == expected


# --- purity and fuzz ----------------------------------------------------------------


def test_the_subtitle_package_is_pure() -> None:
    code = (
        "import sys, livetx.subtitles.sidecar, livetx.subtitles.webvtt;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('av', 'aiohttp', 'aiobotocore', 'botocore')"
        " or m.startswith(('livetx.storage', 'livetx.web', 'livetx.media.transcode'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60)
    assert loaded.stdout.strip() == "[]"


EXAMPLES = int(os.environ.get("LIVETX_FUZZ_EXAMPLES", "300"))
FUZZ = settings(  # as tests/test_fuzz.py: the same cases every default run, fresh ones in `make fuzz`
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize="LIVETX_FUZZ_EXAMPLES" not in os.environ,
)
LINES = st.sampled_from(
    [
        "WEBVTT",
        "[Events]",
        "Format: Layer, Start, End, Text",
        "Dialogue: 0,0:00:01.00,0:00:02.00,{\\i1\\an8\\p1}x{\\p0}\\N<b>y",
        "00:00:01,000 --> 00:00:02,000",
        "99999:59:59.999 --> 00:00:00.000 line:0",
        "NOTE",
        "<i>&amp;</i></b>{",
        "",
    ]
)
SIDECAR_BYTES = (
    st.binary(max_size=2000)
    | st.lists(st.one_of(LINES, st.text(max_size=30)), max_size=40).map(lambda lines: "\n".join(lines).encode("utf-8"))
    | st.tuples(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]), st.binary(max_size=500)).map(b"".join)
)


@FUZZ
@given(data=SIDECAR_BYTES, kind=st.sampled_from([None, "srt", "vtt", "ass", "ssa", "bogus"]))
def test_any_bytes_give_cues_or_subtitle_unreadable(data: bytes, kind: str | None) -> None:
    began = time.monotonic()
    try:
        cues = sidecar.parse(data, "fuzz.srt", kind)
    except SubtitleUnreadable:
        cues = ()
    except LivetxError as exc:  # pragma: no cover - the assertion explains
        raise AssertionError(f"{type(exc).__name__} is not SubtitleUnreadable") from exc
    assert time.monotonic() - began < 1
    for window_cues in assign(cues, windows("2", "4")):
        text = render_segment(window_cues, "ts")
        assert vtt.parse(text) == window_cues  # whatever was parsed renders to valid, re-readable WebVTT


def test_a_capped_sidecar_of_hostile_text_parses_quickly() -> None:
    line = "00:00:01,000 --> 00:00:02,000 " + "<" * 200 + "{\\" * 200
    data = ("\n".join([line, "x" * 100] * 100_000)).encode()[:MAX_SIDECAR_BYTES]
    began = time.monotonic()
    for kind in ("srt", "vtt", "ass"):
        try:
            sidecar.parse(data, "big.srt", kind)
        except SubtitleUnreadable:
            pass
    assert time.monotonic() - began < 10


@pytest.mark.parametrize("tag", ["{\\an\u00b2}", "{\\p" + "9" * 5000 + "}", "{\\b\u0663}"])
def test_ass_override_arguments_are_ascii_numbers_or_ignored(tag: str) -> None:
    """str.isdigit() takes '²' and 5000 digits, which int() then refuses with a plain ValueError."""
    data = (
        "[Script Info]\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        f"Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,{tag}x\n"
    ).encode()
    [cue] = sidecar.parse(data, "t", "ass")
    assert "x" in cue.text
