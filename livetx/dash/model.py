"""DASH concepts as small frozen dataclasses named after the MPD elements they model
(ISO/IEC 23009-1, section numbers in the comments). No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class S:
    """One `S` of a SegmentTimeline (5.3.9.6): `r + 1` segments of `d` ticks from tick `t`."""

    t: int
    d: int
    r: int = 0


@dataclass(frozen=True)
class SegmentTemplate:
    """`SegmentTemplate` (5.3.9.4) with a `SegmentTimeline` (5.3.9.6): `$Number$` counts from
    `start_number`; `initialization` and `media` are URLs relative to the MPD."""

    timescale: int
    initialization: str
    media: str
    timeline: tuple[S, ...]
    start_number: int = 0


@dataclass(frozen=True)
class Representation:
    """`Representation` (5.3.5): one encoding, its segments described by its own template."""

    id: str
    bandwidth: int  # bit/s (5.3.5.2: with minBufferTime, what a client must sustain)
    codecs: str  # RFC 6381, every component's (a multiplexed Representation lists each)
    template: SegmentTemplate
    width: int | None = None
    height: int | None = None
    frame_rate: Fraction | None = None
    audio_sampling_rate: int | None = None
    audio_channels: int | None = None  # AudioChannelConfiguration (5.8.4.7, 23003-3 scheme)


@dataclass(frozen=True)
class AdaptationSet:
    """`AdaptationSet` (5.3.3): interchangeable Representations of one content type, segment
    boundaries aligned (`segmentAlignment`), each segment opening on a SAP of type 1."""

    id: int
    content_type: str  # "video" or "audio"
    mime_type: str
    representations: tuple[Representation, ...]
    segment_alignment: bool = True
    start_with_sap: int = 1
    lang: str | None = None  # @lang (5.3.3.2): RFC 5646
    role: str | None = None  # Role (5.8.5.5, urn:mpeg:dash:role:2011): main, alternate, commentary
    describes_video: bool = False  # Accessibility: audio description (TV-Anytime AudioPurposeCS 1)


@dataclass(frozen=True)
class Mpd:
    """A static MPD (5.3.1) of one Period from 0, in the ISO base media file format live profile
    (8.4: SegmentTemplate addressing)."""

    duration: Fraction  # mediaPresentationDuration, seconds
    min_buffer_time: Fraction  # seconds
    adaptation_sets: tuple[AdaptationSet, ...]
    profiles: str = "urn:mpeg:dash:profile:isoff-live:2011"
