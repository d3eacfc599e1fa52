"""A segment's strong ETag. Its object key, like every key in output storage, is in
livetx/layout.py."""

from __future__ import annotations

from livetx.media.model import SegmentPart


def strong_etag(spec_id: str, index: SegmentPart) -> str:
    """A segment's strong ETag: the spec id and the number name its bytes, which never change."""
    return f'"{spec_id}-{index}"'
