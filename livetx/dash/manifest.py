"""A title's DASH manifest: a static MPD over the very same init and media segments the HLS
playlists name, so one cache (and one CDN object) serves both protocols. Pure: metadata in,
text out.

The segments are muxed (video and audio in one fMP4 fragment), so each rendition is one
multiplexed Representation whose `codecs` lists both, in one AdaptationSet of its kind: video
renditions in a video set (audio riding in the same segments), audio-only renditions in an
audio set. No `ContentComponent` elements: dash.js refuses an AdaptationSet that lists more
than one as "multiplexed", while a Representation whose codecs name both plays in Shaka and
dash.js alike (tests/test_players.py), Chromium's MSE taking both tracks in one SourceBuffer.
(dash.js 5.2.1 needs `streaming.capabilities.useMediaCapabilitiesApi: false`: it hands
MediaCapabilities the two-codec list unquoted, which Chromium cannot parse.) A title with separate
audio renditions (issue 16, `audio`) has demuxed segments: one video AdaptationSet of video-only
Representations, and one audio AdaptationSet per language, role and channel count. Subtitle
renditions are HLS only (no text AdaptationSet yet).

Segment URLs are the HLS playlists' names, relative to the MPD, which sits in the same
folder. `$Number$` numbers them from 0 as the HLS names do, and the SegmentTimeline gives each
segment's exact start and length: the opening segments are shorter.

For viewers the MPD is rendered once per title version (`rendered_mpd`) with each URL's query
left open, as the playlists are (livetx/playlists.py): a request fills in one query for every
URL (web/playlists.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

from livetx.dash.model import AdaptationSet, Mpd, Representation, S, SegmentTemplate
from livetx.dash.render import render_mpd
from livetx.errors import NotDash
from livetx.hls.languages import language_tag
from livetx.layout import segment_name, stored_segment_name
from livetx.media.model import INIT, SegmentPart
from livetx.playlists import DESCRIPTION_ROLES, BandwidthFor, Rendered, estimated, plain, variant_order
from livetx.titles import Rendition, Title

MPD_NAME = "manifest.mpd"
MPD_TYPE = "application/dash+xml"
VIDEO_TIMESCALE = 90000  # the fMP4 video track's (media/transcode.py MPEG_TS_CLOCK), so $Time$ would equal tfdt
NUMBER = "$Number$"  # 23009-1 5.3.9.4.4: replaced by the segment's number
_INDEX = 987654321  # a segment index no title has, replaced by NUMBER in the media template

UriFor = Callable[[str], str]
NameFor = Callable[[Rendition, SegmentPart], str]  # a segment's name: as served (segment_name), or as stored (stored_segment_name)


def _media(title: Title) -> list[Rendition]:
    """The renditions an MPD holds: not the subtitle renditions. DASH text is out of scope for
    now: segmented raw WebVTT plays in Shaka only, dash.js wants it in fMP4 (wvtt or stpp).
    Nor the I-frame rendition (HLS trick play; DASH players scrub on the video itself), nor an
    HDR rendition: an MPD has no VIDEO-RANGE a player filters on, and dash.js or Shaka on an SDR
    screen would pick it by bandwidth and show HLG or PQ as if it were SDR."""
    return [r for r in title.renditions if r.subtitle is None and not r.iframes_only and not (r.video and r.video.dynamic_range != "sdr")]


def check_dash(title: Title) -> None:
    ts = [r.name for r in _media(title) if r.container != "fmp4"]
    if ts:
        raise NotDash(
            f"no DASH manifest for profile {title.profile.name!r}: rendition {ts[0]!r} is MPEG-TS;"
            " DASH is served for titles whose renditions are all container=fmp4"
        )
    encrypted = [r.name for r in _media(title) if r.encryption is not None]
    if encrypted:
        raise NotDash(f"no DASH manifest for profile {title.profile.name!r}: rendition {encrypted[0]!r} is encrypted (HLS only)")


def timescale(rendition: Rendition) -> int:
    """Ticks per second in which every segment boundary is a whole number: the video clock
    (90 kHz) or the audio sample rate, times what a frame rate such as 60000/1001 needs."""
    if rendition.video is not None:
        base = VIDEO_TIMESCALE
    else:
        assert rendition.audio is not None, "a rendition has video or audio"
        base = rendition.audio.sample_rate
    units = {w.unit.denominator for w in rendition.windows}
    return math.lcm(base, *units)


def timeline(rendition: Rendition, scale: int) -> tuple[S, ...]:
    """Each segment's start and length in ticks; runs of equal lengths fold into one `S`."""
    out: list[S] = []
    for w in rendition.windows:
        t, d = int(w.start * scale), int(w.duration * scale)
        last = out[-1] if out else None
        if last is not None and last.d == d and last.t + (last.r + 1) * last.d == t:
            out[-1] = S(last.t, last.d, last.r + 1)
        else:
            out.append(S(t, d))
    return tuple(out)


def _media_template(rendition: Rendition, uri_for: UriFor, name_for: NameFor) -> str:
    """The media URL with `$Number$` where the segment number goes (uri_for sees a segment
    name, so it quotes it as it quotes the HLS names; `$` itself would be quoted)."""
    head, tail = uri_for(name_for(rendition, _INDEX)).rsplit(str(_INDEX), 1)  # the last: the number
    return head + NUMBER + tail


def representation(rendition: Rendition, uri_for: UriFor, bandwidth: int, name_for: NameFor = segment_name) -> Representation:
    scale = timescale(rendition)
    template = SegmentTemplate(
        timescale=scale,
        initialization=uri_for(name_for(rendition, INIT)),
        media=_media_template(rendition, uri_for, name_for),
        timeline=timeline(rendition, scale),
    )
    video, audio = rendition.video, rendition.audio
    return Representation(
        id=rendition.name,
        bandwidth=bandwidth,
        codecs=rendition.codecs,
        template=template,
        width=video.width if video else None,
        height=video.height if video else None,
        frame_rate=video.fps if video else None,
        audio_sampling_rate=audio.sample_rate if audio else None,
        audio_channels=audio.channels if audio else None,
    )


def mpd(title: Title, uri_for: UriFor = plain, bandwidth_for: BandwidthFor = estimated, name_for: NameFor = segment_name) -> Mpd:
    check_dash(title)
    held = set(map(id, _media(title)))
    ordered = [r for r in variant_order(title, bandwidth_for) if id(r) in held]
    sets: list[AdaptationSet] = []
    if title.audio_renditions:
        return _mpd(title, [*_separate_sets(title, ordered, uri_for, bandwidth_for, name_for)])
    for content_type, members in (
        ("video", [r for r in ordered if r.video is not None]),
        ("audio", [r for r in ordered if r.video is None]),
    ):
        if members:
            reps = tuple(representation(r, uri_for, bandwidth_for(r)[0], name_for) for r in members)
            sets.append(AdaptationSet(id=len(sets), content_type=content_type, mime_type=f"{content_type}/mp4", representations=reps))
    return _mpd(title, sets)


def _separate_sets(
    title: Title, ordered: list[Rendition], uri_for: UriFor, bandwidth_for: BandwidthFor, name_for: NameFor
) -> list[AdaptationSet]:
    """Separate audio: one video AdaptationSet of the video-only renditions, then one audio
    AdaptationSet per (language, role, description, channel count), in track order: the
    default track's sets are `main`, commentary `commentary`, the others `alternate`; so a
    6-channel rendition (surround=1) has a set of its own, with AudioChannelConfiguration 6."""
    reps = tuple(representation(r, uri_for, bandwidth_for(r)[0], name_for) for r in ordered)
    sets = [AdaptationSet(id=0, content_type="video", mime_type="video/mp4", representations=reps)]
    default = title.default_audio_stream
    groups: dict[tuple[str, str, bool, int], list[Rendition]] = {}
    for r in title.audio_renditions:
        assert r.track is not None and r.audio is not None, "an audio rendition plays one source track"
        roles = r.track.roles
        role = "commentary" if "comment" in roles else "main" if r.track.index == default else "alternate"
        describes = any(role in roles for role in DESCRIPTION_ROLES)
        groups.setdefault((language_tag(r.track.language), role, describes, r.audio.channels), []).append(r)
    for (lang, role, describes, _), members in groups.items():
        reps = tuple(representation(r, uri_for, bandwidth_for(r)[0], name_for) for r in members)
        sets.append(
            AdaptationSet(
                id=len(sets),
                content_type="audio",
                mime_type="audio/mp4",
                representations=reps,
                lang=lang,
                role=role,
                describes_video=describes,
            )
        )
    return sets


def _mpd(title: Title, sets: list[AdaptationSet]) -> Mpd:
    # the shortest rendition's end: no player waits at the end for media a rendition lacks
    duration = min(r.windows[-1].stop for r in _media(title))
    longest = max(w.duration for r in _media(title) for w in r.windows)
    return Mpd(duration=duration, min_buffer_time=Fraction(math.ceil(longest)), adaptation_sets=tuple(sets))


def mpd_text(title: Title, uri_for: UriFor = plain, bandwidth_for: BandwidthFor = estimated, name_for: NameFor = segment_name) -> str:
    return render_mpd(mpd(title, uri_for, bandwidth_for, name_for))


def stored_mpd_text(title: Title) -> str:
    """The MPD written to storage next to an API-made title's playlists (a segmented job's
    `<prefix>.mpd`, Profile.mpd_key): its URLs are the stored segments' names relative to it,
    as the stored media playlists name them (layout.stored_segment_name), with no query: the
    stored objects are the output, and play from wherever storage is served."""
    return mpd_text(title, name_for=stored_segment_name)


_OPEN = "\x00"  # where a URL's query goes while rendering (never in an XML text)


def rendered_mpd(title: Title, bandwidth_for: BandwidthFor = estimated) -> Rendered:
    """The MPD with each URL's query left open: `parts` joined by one query fill it in."""
    names: list[str] = []

    def uri_for(name: str) -> str:
        names.append(name)
        return plain(name) + _OPEN

    parts = mpd_text(title, uri_for, bandwidth_for).split(_OPEN)
    if len(parts) != len(names) + 1:
        raise ValueError("an MPD's text holds the open-query marker")
    encoded = tuple(p.encode() for p in parts)
    return Rendered(encoded, tuple(names), sum(map(len, encoded)), False, max(names, key=len, default=""))
