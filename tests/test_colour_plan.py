"""Planning with colour (pure: no decoding): which renditions an HDR or SDR source gets, what
their specs and the master say, and which colours are refused rather than shown wrong."""

from __future__ import annotations

from fractions import Fraction

import m3u8
import pytest

from livetx.errors import ColourUnsupported, ParameterError
from livetx.media.colour import BT2020, TRANSFER_HLG, TRANSFER_PQ, ColourInfo, ContentLight, DolbyVision, MasteringDisplay
from livetx.media.model import MediaInfo, VideoInfo
from livetx.media.params import parse_rendition_params
from livetx.playlists import master_text
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile

MASTERING = MasteringDisplay((34000, 16000), (13250, 34500), (7500, 3000), (15635, 16450), 10_000_000, 50)
HLG = ColourInfo(BT2020, TRANSFER_HLG, BT2020, False)
PQ = ColourInfo(BT2020, TRANSFER_PQ, BT2020, False, MASTERING, ContentLight(1000, 400))
SDR = ColourInfo(1, 1, 1, False)
PROFILE = {
    "renditions": {
        "sdr": {"s": "x720", "container": "fmp4"},
        "hdr": {"vcodec": "h265", "dynamicrange": "hdr", "s": "x1080"},
    }
}


def _title(colour: ColourInfo, profile: dict[str, object] = PROFILE):  # type: ignore[no-untyped-def]
    video = VideoInfo(0, "hevc", 1920, 1080, Fraction(30), "yuv420p10le", Fraction(0), colour=colour)
    return build_title(ObjectInfo("k.mp4", 1, "e"), MediaInfo("mp4", Fraction(12), Fraction(0), video, None), parse_profile("p", profile))


@pytest.mark.parametrize(("colour", "dynamic_range", "video_range"), [(HLG, "hlg", "HLG"), (PQ, "pq", "PQ")])
def test_an_hdr_source_gets_an_sdr_rendition_and_an_hdr_one(colour: ColourInfo, dynamic_range: str, video_range: str) -> None:
    title = _title(colour)
    sdr, hdr = (r.video for r in title.variants)
    assert sdr is not None and hdr is not None
    assert (sdr.dynamic_range, sdr.pix_fmt, sdr.codec) == ("sdr", "yuv420p", "h264")
    assert (hdr.dynamic_range, hdr.pix_fmt, hdr.codec) == (dynamic_range, "yuv420p10le", "h265")
    master = m3u8.loads(master_text(title))
    assert [p.stream_info.video_range for p in master.playlists] == ["SDR", video_range]
    assert master.playlists[1].stream_info.codecs.startswith("hvc1.2.4.")


def test_a_pq_rendition_carries_the_sources_metadata_and_an_hlg_one_none() -> None:
    pq = _title(PQ).variants[1].video
    assert pq is not None and pq.mastering == MASTERING and pq.content_light == ContentLight(1000, 400)
    hlg = _title(HLG).variants[1].video
    assert hlg is not None and hlg.mastering is None and hlg.content_light is None


def test_an_sdr_source_leaves_the_hdr_rendition_out() -> None:
    title = _title(SDR)
    assert [r.name for r in title.variants] == ["sdr"]


def test_a_profile_of_hdr_renditions_only_is_refused_for_an_sdr_source() -> None:
    with pytest.raises(ParameterError) as raised:
        _title(SDR, {"renditions": {"hdr": {"vcodec": "h265", "dynamicrange": "hdr"}}})
    assert raised.value.name == "dynamicrange"


@pytest.mark.parametrize(
    "params", [{"dynamicrange": "hdr"}, {"dynamicrange": "hdr", "vcodec": "h265", "container": "ts"}], ids=["h264", "ts"]
)
def test_hdr_needs_hevc_in_fmp4(params: dict[str, str]) -> None:
    with pytest.raises(ParameterError) as raised:
        parse_rendition_params(params)
    assert raised.value.name == "dynamicrange"


def test_dolby_vision_profile_5_is_refused_rather_than_shown_in_the_wrong_colours() -> None:
    with pytest.raises(ColourUnsupported) as raised:
        _title(ColourInfo(2, 2, 2, None, dolby_vision=DolbyVision(5, 6, 0)))
    assert raised.value.status == 422 and "profile 5" in str(raised.value)


@pytest.mark.parametrize("profile", [8.1, 8.4])
def test_dolby_vision_8_plays_as_its_compatible_base_layer(profile: float) -> None:
    compat = round(profile % 1 * 10)
    transfer = TRANSFER_HLG if compat == 4 else TRANSFER_PQ
    colour = ColourInfo(BT2020, transfer, BT2020, False, dolby_vision=DolbyVision(8, 6, compat))
    hdr = _title(colour).variants[1].video
    assert hdr is not None and hdr.dynamic_range == ("hlg" if compat == 4 else "pq")


def test_the_spec_changes_with_the_rendition_s_range_so_segments_are_not_shared() -> None:
    sdr, hdr = _title(HLG).variants
    assert sdr.spec_id != hdr.spec_id
