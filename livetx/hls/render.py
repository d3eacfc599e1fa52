"""Model -> m3u8 text. Pure.

Master playlists go through the m3u8 package. Media playlists are written directly, in the
m3u8 package's exact layout (tests/test_render.py holds the two to the same bytes): a long
title has tens of thousands of segments, and one `m3u8.Segment` per line cost a 44-hour title
half a second per rendering. EXTINF values repeat (initial, regular, last segment), so each
distinct duration is formatted once.
"""

from __future__ import annotations

from fractions import Fraction

import m3u8

from livetx.hls.model import Key, MasterPlaylist, MediaPlaylist

EXTINF_DECIMALS = 6


def extinf(duration: Fraction) -> str:
    """An exact EXTINF value: up to six decimals, no trailing zeros (10.01, 2.002, 10)."""
    text = f"{float(round(duration, EXTINF_DECIMALS)):.{EXTINF_DECIMALS}f}".rstrip("0").rstrip(".")
    return text or "0"


def render_media(playlist: MediaPlaylist) -> str:
    """RFC 8216 4.3.3 VOD playlist: the header tags, `#EXTINF` + URI per segment (4.3.2.1),
    `#EXT-X-ENDLIST` (4.3.3.4); tags in the m3u8 package's order."""
    lines = ["#EXTM3U"]
    if playlist.media_sequence:
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{playlist.media_sequence}")
    if playlist.version:
        lines.append(f"#EXT-X-VERSION:{playlist.version}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if playlist.target_duration:
        lines.append(f"#EXT-X-TARGETDURATION:{playlist.target_duration}")
    lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    if playlist.iframes_only:
        lines.append("#EXT-X-I-FRAMES-ONLY")
    if playlist.map_uri is not None:  # before the first segment, as the m3u8 package writes a segment's init_section
        lines.append(f'#EXT-X-MAP:URI="{playlist.map_uri}"')
    # EXTINF text by duration object: segments share their duration objects (media_text), and
    # an identity lookup costs nothing next to hashing a Fraction; all stay alive meanwhile
    texts: dict[int, str] = {}
    entries = []
    for seg in playlist.segments:
        if not seg.uri:  # as the m3u8 package: a segment without a URI leaves an empty line
            entries.append("")
            continue
        text = texts.get(id(seg.duration))
        if text is None:
            text = texts[id(seg.duration)] = extinf(seg.duration)
        if seg.key is not None:
            entries.append(key_tag(seg.key))
        entries.append(f"#EXTINF:{text},\n{seg.uri}")
    lines.append("\n".join(entries))
    lines.append("#EXT-X-ENDLIST")
    lines.append("")
    return "\n".join(lines)


def key_tag(key: Key) -> str:
    """`#EXT-X-KEY` (RFC 8216 4.3.2.4), attributes in the m3u8 package's order."""
    text = f'#EXT-X-KEY:METHOD={key.method},URI="{key.uri}"'
    if key.keyformat is not None:
        text += f',KEYFORMAT="{key.keyformat}"'
    return text


def _frame_rate(rate: Fraction) -> str:
    return f"{float(rate):.3f}"


def render_master(playlist: MasterPlaylist) -> str:
    doc = m3u8.M3U8()
    doc.is_variant = True
    # 3 covers every tag and attribute written: VIDEO-RANGE needs no version (RFC 8216bis
    # section 8), and clients that predate it ignore it
    doc.version = 3
    doc.is_independent_segments = True
    for m in playlist.media:
        doc.add_media(
            m3u8.Media(
                uri=m.uri,
                type=m.type,
                group_id=m.group_id,
                language=m.language,
                name=m.name,
                default="YES" if m.default else "NO",
                autoselect="YES" if m.autoselect else "NO",
                forced="YES" if m.forced else None,  # (4.3.4.1: only for SUBTITLES; absent means NO)
                characteristics=m.characteristics,
                channels=m.channels,
            )
        )
    for variant in playlist.variants:
        info: dict[str, object] = {"bandwidth": variant.bandwidth, "codecs": variant.codecs}
        if variant.average_bandwidth:
            info["average_bandwidth"] = variant.average_bandwidth
        if variant.resolution:
            info["resolution"] = f"{variant.resolution[0]}x{variant.resolution[1]}"
        if variant.frame_rate:
            info["frame_rate"] = _frame_rate(variant.frame_rate)
        if variant.video_range:
            info["video_range"] = variant.video_range
        if variant.audio:
            info["audio"] = variant.audio
        if variant.subtitles:
            info["subtitles"] = variant.subtitles
        doc.add_playlist(m3u8.Playlist(uri=variant.uri, stream_info=info, media=doc.media, base_uri=None))
    for stream in playlist.iframe_streams:
        iframe_info: dict[str, object] = {"bandwidth": stream.bandwidth, "codecs": stream.codecs}
        if stream.average_bandwidth:
            iframe_info["average_bandwidth"] = stream.average_bandwidth
        iframe_info["resolution"] = f"{stream.resolution[0]}x{stream.resolution[1]}"
        if stream.video_range:
            iframe_info["video_range"] = stream.video_range
        doc.add_iframe_playlist(m3u8.IFramePlaylist(base_uri=None, uri=stream.uri, iframe_stream_info=iframe_info))
    return str(doc.dumps())
