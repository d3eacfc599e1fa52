"""Model -> m3u8 text, through the m3u8 package. Pure."""

from __future__ import annotations

from fractions import Fraction

import m3u8

from livetx.hls.model import MasterPlaylist, MediaPlaylist

EXTINF_DECIMALS = 6


def extinf(duration: Fraction) -> str:
    """An exact EXTINF value: up to six decimals, no trailing zeros (10.01, 2.002, 10)."""
    text = f"{float(round(duration, EXTINF_DECIMALS)):.{EXTINF_DECIMALS}f}".rstrip("0").rstrip(".")
    return text or "0"


def render_media(playlist: MediaPlaylist) -> str:
    doc = m3u8.M3U8()
    doc.version = playlist.version
    doc.target_duration = playlist.target_duration
    doc.media_sequence = playlist.media_sequence
    doc.playlist_type = "vod"
    doc.is_independent_segments = True
    doc.is_endlist = True
    for seg in playlist.segments:
        doc.segments.append(m3u8.Segment(uri=seg.uri, duration=extinf(seg.duration)))
    return str(doc.dumps())


def _frame_rate(rate: Fraction) -> str:
    return f"{float(rate):.3f}"


def render_master(playlist: MasterPlaylist) -> str:
    doc = m3u8.M3U8()
    doc.is_variant = True
    doc.version = 3
    doc.is_independent_segments = True
    for variant in playlist.variants:
        info: dict[str, object] = {"bandwidth": variant.bandwidth, "codecs": variant.codecs}
        if variant.average_bandwidth:
            info["average_bandwidth"] = variant.average_bandwidth
        if variant.resolution:
            info["resolution"] = f"{variant.resolution[0]}x{variant.resolution[1]}"
        if variant.frame_rate:
            info["frame_rate"] = _frame_rate(variant.frame_rate)
        doc.add_playlist(m3u8.Playlist(uri=variant.uri, stream_info=info, media=[], base_uri=None))
    return str(doc.dumps())
