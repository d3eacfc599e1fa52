"""A title's playlists as m3u8 text, with URIs from a caller's function.

The web handlers pass a function that signs each URI; publishing to storage passes one that
leaves them plain (relative names next to the playlist). Pure: metadata in, text out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from urllib.parse import quote

from livetx.cache.keys import segment_name, stored_segment_name
from livetx.hls.model import MasterPlaylist, MediaPlaylist, MediaSegment, VariantStream
from livetx.hls.plan import target_duration
from livetx.hls.render import render_master, render_media
from livetx.titles import Rendition, Title

UriFor = Callable[[str], str]  # file name next to the playlist -> the URI to write
BandwidthFor = Callable[[Rendition], tuple[int, int]]  # -> (BANDWIDTH, AVERAGE-BANDWIDTH)


def plain(name: str) -> str:
    return quote(name)


def estimated(rendition: Rendition) -> tuple[int, int]:
    return rendition.bandwidth, rendition.average_bandwidth


def variant_order(title: Title, bandwidth_for: BandwidthFor = estimated) -> list[Rendition]:
    """The profile's first rendition first (players that start on the first variant, Safari
    among them, start there), then the others from the highest bandwidth down."""
    first, *others = title.renditions
    return [first, *sorted(others, key=lambda r: -bandwidth_for(r)[0])]


def master_text(title: Title, uri_for: UriFor = plain, bandwidth_for: BandwidthFor = estimated) -> str:
    variants = []
    for r in variant_order(title, bandwidth_for):
        peak, average = bandwidth_for(r)
        variants.append(
            VariantStream(
                uri=uri_for(f"{r.name}.m3u8"),
                bandwidth=peak,
                average_bandwidth=average,
                codecs=r.codecs,
                resolution=(r.video.width, r.video.height) if r.video else None,
                frame_rate=r.video.fps if r.video else None,
            )
        )
    return render_master(MasterPlaylist(tuple(variants)))


def media_text(rendition: Rendition, uri_for: UriFor = plain, stored: bool = False) -> str:
    name = stored_segment_name if stored else segment_name
    segments = tuple(MediaSegment(uri=uri_for(name(rendition, w.index)), duration=w.duration) for w in rendition.windows)
    return render_media(MediaPlaylist(segments=segments, target_duration=target_duration(rendition.windows)))


def _media_key(title: Title, rendition: Rendition) -> str:
    if rendition.object_prefix is not None:
        return f"{rendition.object_prefix}.m3u8"
    return f"{title.source.key}/{title.profile.name}/{rendition.name}.m3u8"


def playlist_objects(title: Title) -> dict[str, str]:
    """Object key -> m3u8 text of every playlist of `title`, as written to output storage next
    to its segments: `<source>/<profile>/master.m3u8` and `<source>/<profile>/<rendition>.m3u8`,
    or, for API-made playlists, `<target URI>.m3u8` and the requested master. URIs inside are
    relative, so the objects play from wherever storage is served."""
    objects = {_media_key(title, r): media_text(r, stored=True) for r in title.renditions}
    master_key = title.profile.master_key
    if master_key is None and title.profile.source_key is None:
        master_key = f"{title.source.key}/{title.profile.name}/master.m3u8"
    if master_key is not None:
        folder = posixpath.dirname(master_key)
        by_name = {f"{r.name}.m3u8": posixpath.relpath(_media_key(title, r), folder or ".") for r in title.renditions}
        objects[master_key] = master_text(title, lambda name: quote(by_name[name], safe="/"))
    return objects
