"""Segment identity -> object key in the output store.

The key carries the source key, the profile, the rendition and the spec id (a hash of the
source's identity and the full transcode spec), so changed parameters or a replaced source
never meet a stale segment: `<source key>/<profile>/<rendition>-<spec id>-<n>.ts`. A
rendition made through the playlist APIs names its own prefix, as those APIs do:
`<prefix>-<spec id>-<n>.ts`, next to `<prefix>.m3u8`.
"""

from __future__ import annotations

from livetx.titles import Rendition, Title


def segment_name(rendition: Rendition, index: int) -> str:
    """The segment's file name, as it appears in the media playlist and in storage."""
    return f"{rendition.name}-{rendition.spec_id}-{index}.ts"


def segment_key(title: Title, rendition: Rendition, index: int) -> str:
    if rendition.object_prefix is not None:
        return f"{rendition.object_prefix}-{rendition.spec_id}-{index}.ts"
    return f"{title.source.key}/{title.profile.name}/{segment_name(rendition, index)}"


def stored_segment_name(rendition: Rendition, index: int) -> str:
    """The segment's name as written in a playlist stored next to it."""
    if rendition.object_prefix is not None:
        return f"{rendition.object_prefix.rsplit('/', 1)[-1]}-{rendition.spec_id}-{index}.ts"
    return segment_name(rendition, index)


def strong_etag(spec_id: str, index: int) -> str:
    """A segment's strong ETag: the spec id and the number name its bytes, which never change."""
    return f'"{spec_id}-{index}"'
