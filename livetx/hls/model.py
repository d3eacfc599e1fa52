"""HLS concepts as small frozen dataclasses named after the tags they model. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Key:
    """One `#EXT-X-KEY` (RFC 8216 4.3.2.4): how the media segments after it are encrypted. No IV
    attribute: a segment's IV is its media sequence number (5.2)."""

    method: str  # AES-128 or SAMPLE-AES
    uri: str
    keyformat: str | None = None  # KEYFORMAT (needs version 5); absent: "identity", the key's bytes at URI


@dataclass(frozen=True)
class MediaSegment:
    """One `#EXTINF` entry (RFC 8216 4.3.2.1): its exact duration and its URI, after the
    `#EXT-X-KEY` that starts applying at it, if one does."""

    uri: str
    duration: Fraction
    key: Key | None = None


@dataclass(frozen=True)
class MediaPlaylist:
    """A VOD media playlist (RFC 8216 4.3.3): `#EXT-X-PLAYLIST-TYPE:VOD` and `#EXT-X-ENDLIST`."""

    segments: tuple[MediaSegment, ...]
    target_duration: int  # #EXT-X-TARGETDURATION (4.3.3.1)
    media_sequence: int = 0  # #EXT-X-MEDIA-SEQUENCE (4.3.3.2)
    version: int = 3  # #EXT-X-VERSION (4.3.1.2): decimal EXTINF needs 3; EXT-X-MAP needs 6 (section 7)
    map_uri: str | None = None  # #EXT-X-MAP (4.3.2.5): the init segment of every segment (fMP4)
    iframes_only: bool = False  # #EXT-X-I-FRAMES-ONLY (4.3.3.6): each segment is one I-frame; needs version 4


@dataclass(frozen=True)
class VariantStream:
    """One `#EXT-X-STREAM-INF` (RFC 8216 4.3.4.2) and its URI."""

    uri: str
    bandwidth: int
    average_bandwidth: int | None
    codecs: str
    resolution: tuple[int, int] | None
    frame_rate: Fraction | None
    video_range: str | None = None  # VIDEO-RANGE (RFC 8216bis 4.4.6.2): SDR for every video variant livetx makes
    audio: str | None = None  # AUDIO: the GROUP-ID of its audio renditions, when they are separate
    subtitles: str | None = None  # SUBTITLES: the GROUP-ID of the subtitle renditions it plays with


@dataclass(frozen=True)
class IFrameStream:
    """One `#EXT-X-I-FRAME-STREAM-INF` (RFC 8216 4.3.4.3): an I-frame playlist, for trick play."""

    uri: str
    bandwidth: int  # the peak segment bit rate of its I-frame segments
    average_bandwidth: int | None
    codecs: str
    resolution: tuple[int, int]
    video_range: str | None = None


@dataclass(frozen=True)
class MediaRendition:
    """One `#EXT-X-MEDIA` (RFC 8216 4.3.4.1): an alternative rendition in a group."""

    type: str  # AUDIO or SUBTITLES
    group_id: str
    name: str  # unique in its group
    uri: str
    language: str | None = None  # RFC 5646
    default: bool = False
    autoselect: bool = True  # must be YES when DEFAULT is YES (or FORCED is)
    forced: bool = False  # FORCED=YES: shown whatever the viewer chose (SUBTITLES only)
    characteristics: str | None = None  # UTIs, comma-separated (4.3.4.1)
    channels: str | None = None  # CHANNELS: the audio channel count

    def __post_init__(self) -> None:
        if self.forced and self.type != "SUBTITLES":
            raise ValueError("FORCED is for SUBTITLES renditions only (RFC 8216 4.3.4.1)")
        if (self.default or self.forced) and not self.autoselect:
            raise ValueError("AUTOSELECT must be YES when DEFAULT is (RFC 8216 4.3.4.1) or FORCED is (HLS authoring spec)")


@dataclass(frozen=True)
class MasterPlaylist:
    """A master playlist (RFC 8216 4.3.4) with `#EXT-X-INDEPENDENT-SEGMENTS` (4.3.5.1)."""

    variants: tuple[VariantStream, ...]
    media: tuple[MediaRendition, ...] = ()  # EXT-X-MEDIA tags, before the variants
    iframe_streams: tuple[IFrameStream, ...] = ()  # EXT-X-I-FRAME-STREAM-INF tags, after the variants
