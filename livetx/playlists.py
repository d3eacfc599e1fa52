"""A title's playlists as m3u8 text, with URIs from a caller's function.

The web handlers pass a function that signs each URI; publishing to storage passes one that
leaves them plain (relative names next to the playlist). Pure: metadata in, text out.

A playlist served to viewers is rendered once per title version as a `Rendered`: the text
with each URI's query string left open. A request then only fills in its token: the same
query on every URI (a title-scoped token, handed on), one signature per URI (a path token),
or none (a CDN's origin pull). The bytes are those `media_text`/`master_text` give with the
same URI function (tests/test_playlist_cache.py).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from urllib.parse import quote

from livetx.hls.languages import language_name, language_tag
from livetx.hls.model import IFrameStream, Key, MasterPlaylist, MediaPlaylist, MediaRendition, MediaSegment, VariantStream
from livetx.hls.plan import SegmentWindow, target_duration
from livetx.hls.render import render_master, render_media
from livetx.layout import key_file_name, master_playlist_key, media_playlist_key, media_playlist_name, segment_name, stored_segment_name
from livetx.media.model import INIT, VideoSpec
from livetx.signing import plain_name
from livetx.titles import Rendition, Title

MAP_VERSION = 6  # RFC 8216 section 7: EXT-X-MAP outside an I-frame playlist needs version 6
KEYFORMAT_VERSION = 5  # RFC 8216 section 7: KEYFORMAT needs version 5
IFRAMES_VERSION = 4  # RFC 8216 section 7: EXT-X-I-FRAMES-ONLY needs version 4
IFRAMES_MAP_VERSION = 5  # RFC 8216 section 7: EXT-X-MAP in an I-frame playlist needs version 5

UriFor = Callable[[str], str]  # file name next to the playlist -> the URI to write
BandwidthFor = Callable[[Rendition], tuple[int, int]]  # -> (BANDWIDTH, AVERAGE-BANDWIDTH)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~/-]*")  # what quote() leaves as it is


def _quote(name: str) -> str:
    """quote(name), without its cost for the names livetx makes (already unreserved)."""
    return name if _UNRESERVED.fullmatch(name) else quote(name)


def plain(name: str) -> str:
    return _quote(name)


def estimated(rendition: Rendition) -> tuple[int, int]:
    return rendition.bandwidth, rendition.average_bandwidth


VIDEO_RANGES = {"sdr": "SDR", "hlg": "HLG", "pq": "PQ"}  # VIDEO-RANGE (RFC 8216bis 4.4.6.2) by a rendition's dynamic range


def video_range(video: VideoSpec) -> str:
    """VIDEO-RANGE of a video rendition: SDR (BT.709, converted and tone mapped from any source),
    or the HLG or PQ an HDR rendition keeps."""
    return VIDEO_RANGES[video.dynamic_range]


def variant_order(title: Title, bandwidth_for: BandwidthFor = estimated) -> list[Rendition]:
    """A first variant every player can start on, then the others from the highest bandwidth
    down. Players that start on the first variant (Safari among them) start there, and then
    pick among the variants whose CODECS they decode (Safari takes HEVC, others H.264): so the
    first is the profile's first rendition, unless that is HEVC or AV1 and the profile has an
    H.264 rendition, whose first one then leads. A copy ("remux") rendition never leads while
    the title has a transcoded one: it is the source as it is, at whatever bitrate that has (a
    film's 40 Mbit/s), which no player should have to start on before measuring its bandwidth."""
    variants = title.variants
    first = variants[0]
    if first.video is not None and first.video.codec != "h264":
        transcoded = [r for r in variants if r.video is None or not r.video.copies]
        h264 = (r for r in transcoded if r.video is not None and r.video.codec == "h264")
        first = next(h264, transcoded[0] if transcoded else first)
    others = [r for r in variants if r is not first]
    return [first, *sorted(others, key=lambda r: -bandwidth_for(r)[0])]


AUDIO_GROUP = "aac"  # GROUP-ID of a title's stereo AAC audio renditions (separate audio)
SURROUND_GROUP = "aac-6ch"  # GROUP-ID of its 6-channel group (surround=1)
DESCRIBES_VIDEO = "public.accessibility.describes-video"  # CHARACTERISTICS of audio description (RFC 8216 4.3.4.1)
DESCRIPTION_ROLES = ("visual_impaired", "descriptions")


def audio_groups(title: Title) -> dict[str, tuple[Rendition, ...]]:
    """GROUP-ID -> its audio renditions, in track order. `aac`: every selected track in stereo
    (mono stays mono). With 6-channel renditions (surround=1), also `aac-6ch`: each track's
    6-channel rendition, or its stereo one where the track has none, so that both groups offer
    the same tracks under the same NAMEs (Apple's authoring spec: a player switching between
    the variants of two groups keeps its track)."""
    stereo = tuple(r for r in title.audio_renditions if r.audio is not None and r.audio.channels <= 2)
    surround = {r.track.index: r for r in title.audio_renditions if r.track is not None and r not in stereo}
    if not surround:
        return {AUDIO_GROUP: stereo} if stereo else {}
    six = tuple(surround.get(r.track.index, r) if r.track is not None else r for r in stereo)
    return {AUDIO_GROUP: stereo, SURROUND_GROUP: six}


def audio_media(title: Title, uri_for: UriFor = plain) -> tuple[MediaRendition, ...]:
    """One `EXT-X-MEDIA:TYPE=AUDIO` per audio rendition of each group. DEFAULT=YES on exactly one
    per group: the track the container flags default, else the first. NAME: the title tag, else
    the language's name, else "Track N", made unique in the group (" 2", " 3"), a track's the
    same in every group. Commentary is not chosen by language (AUTOSELECT=NO; HLS has no characteristic for it);
    audio description says so in CHARACTERISTICS."""
    groups = audio_groups(title)
    tracks = [r.track for r in groups.get(AUDIO_GROUP, ()) if r.track is not None]
    default = title.default_audio_stream
    names: dict[int, str] = {}
    for n, track in enumerate(tracks, 1):
        base = _quotable(track.title or language_name(language_tag(track.language)) or f"Track {n}")
        name, k = base, 1
        while name in names.values():
            k += 1
            name = f"{base} {k}"
        names[track.index] = name
    out: list[MediaRendition] = []
    for group, renditions in groups.items():
        for r in renditions:
            assert r.track is not None and r.audio is not None, "an audio rendition plays one source track"
            roles = r.track.roles
            out.append(
                MediaRendition(
                    type="AUDIO",
                    group_id=group,
                    name=names[r.track.index],
                    uri=uri_for(media_playlist_name(r)),
                    language=language_tag(r.track.language),
                    default=r.track.index == default,
                    autoselect=r.track.index == default or "comment" not in roles,
                    characteristics=DESCRIBES_VIDEO if any(role in roles for role in DESCRIPTION_ROLES) else None,
                    channels=str(r.audio.channels),
                )
            )
    return tuple(out)


SUBTITLE_GROUP = "subs"  # GROUP-ID of a title's WebVTT subtitle renditions
# CHARACTERISTICS of subtitles for the deaf and hard of hearing (SDH), as the HLS authoring spec writes them
TRANSCRIBES = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"


def subtitle_media(title: Title, uri_for: UriFor = plain) -> tuple[MediaRendition, ...]:
    """One `EXT-X-MEDIA:TYPE=SUBTITLES` per subtitle rendition. DEFAULT=YES only on the first
    track flagged default (none when none is: players then show no subtitles until asked);
    FORCED=YES on forced tracks; AUTOSELECT=YES on all (a player may pick any by language).
    NAME: the title tag or sidecar label, else the language's name (with "(forced)" or
    "(SDH)" when so), else "Subtitles N", made unique in the group. Hearing-impaired tracks
    carry the SDH characteristics."""
    renditions = title.subtitle_renditions
    default = next((r for r in renditions if r.subtitle is not None and r.subtitle.default), None)
    out: list[MediaRendition] = []
    names: set[str] = set()
    for n, r in enumerate(renditions, 1):
        ref = r.subtitle
        assert ref is not None, "a subtitle rendition shows one track"
        language = language_tag(ref.language)
        base = ref.label
        if base is None and (base := language_name(language)) is not None:
            base += " (forced)" if ref.forced else " (SDH)" if ref.hearing_impaired else ""
        name = _unique(_quotable(base or f"Subtitles {n}"), names)
        out.append(
            MediaRendition(
                type="SUBTITLES",
                group_id=SUBTITLE_GROUP,
                name=name,
                uri=uri_for(media_playlist_name(r)),
                language=language,
                default=r is default,
                autoselect=True,
                forced=ref.forced,
                characteristics=TRANSCRIBES if ref.hearing_impaired else None,
            )
        )
    return tuple(out)


def _unique(base: str, names: set[str]) -> str:
    """`base`, or `base 2`, `base 3`, ...: a NAME no other rendition of the group has (RFC 8216 4.3.4.1.1)."""
    name, k = base, 1
    while name in names:
        k += 1
        name = f"{base} {k}"
    names.add(name)
    return name


def _quotable(text: str) -> str:
    """A quoted-string holds no double quote, CR or LF (RFC 8216 4.2)."""
    return " ".join(text.replace('"', "'").split()) or "Track"


def master_text(title: Title, uri_for: UriFor = plain, bandwidth_for: BandwidthFor = estimated) -> str:
    """The master playlist. Subtitle renditions go with the variants of the container their
    X-TIMESTAMP-MAP is written for (the first video rendition's): a variant in the other
    container (a profile mixing MPEG-TS and fMP4) carries a timeline 1.4 s away, and plays
    without them rather than with every cue off by that much."""
    media = audio_media(title, uri_for) + subtitle_media(title, uri_for)
    subtitles = title.subtitle_renditions
    subtitle_container = subtitles[0].subtitle.container if subtitles and subtitles[0].subtitle else None
    groups: list[tuple[str | None, tuple[Rendition, ...]]] = [*audio_groups(title).items()] or [(None, ())]
    variants = []
    for group, audio in groups:  # every variant once per audio group (Apple's authoring spec)
        # a variant plays with any rendition of its group: its bandwidth counts the group's highest
        extra_peak = max((bandwidth_for(a)[0] for a in audio), default=0)
        extra_average = max((bandwidth_for(a)[1] for a in audio), default=0)
        for r in variant_order(title, bandwidth_for):
            peak, average = bandwidth_for(r)
            variants.append(
                VariantStream(
                    uri=uri_for(media_playlist_name(r)),
                    bandwidth=peak + extra_peak,
                    average_bandwidth=average + extra_average if average else average,
                    codecs=f"{r.codecs},{audio[0].codecs}" if audio else r.codecs,
                    resolution=(r.video.width, r.video.height) if r.video else None,
                    frame_rate=r.video.fps if r.video else None,
                    video_range=video_range(r.video) if r.video else None,
                    audio=group,
                    subtitles=SUBTITLE_GROUP if r.container == subtitle_container else None,
                )
            )
    iframes = []
    for r in title.iframe_renditions:
        assert r.video is not None, "an I-frame rendition has video"
        peak, average = bandwidth_for(r)
        iframes.append(
            IFrameStream(
                uri=uri_for(media_playlist_name(r)),
                bandwidth=peak,
                average_bandwidth=average or None,
                codecs=r.codecs,
                resolution=(r.video.width, r.video.height),
                video_range=video_range(r.video),
            )
        )
    return render_master(MasterPlaylist(tuple(variants), media, tuple(iframes)))


def media_text(rendition: Rendition, uri_for: UriFor = plain, stored: bool = False, key_uri_for: UriFor | None = None) -> str:
    """A rendition's media playlist; a subtitle rendition's has its video's EXTINFs (the same
    windows) and `.vtt` URIs. An encrypted rendition's EXT-X-KEY URIs come from `key_uri_for`
    (a key's file name -> its URI), else from `uri_for` as the segments' do."""
    key_uri = key_uri_for or uri_for
    name = stored_segment_name if stored else segment_name
    # fMP4: the init segment first (so its URI is the first one a Rendered holds)
    map_uri = uri_for(name(rendition, INIT)) if rendition.container == "fmp4" else None
    # a rendition's windows share one grid (plan_segments), so a window's length in grid
    # steps fixes its duration: each distinct duration is computed once, not per segment
    durations: dict[int, Fraction] = {}
    lengths: dict[int, SegmentWindow] = {}
    segments = []
    encryption = rendition.encryption
    key: Key | None = None
    for w in rendition.windows:
        steps = w.end - w.first
        duration = durations.get(steps)
        if duration is None:
            duration = durations[steps] = w.duration
            lengths[steps] = w
        if encryption is not None and (key is None or (encryption.rotation and w.index % encryption.rotation == 0)):
            # the key's URI before the segment's: a Rendered holds URIs in the text's order
            key = Key(encryption.tag_method, key_uri(key_file_name(encryption.key_name(w.index))), keyformat=encryption.keyformat)
            segments.append(MediaSegment(uri=uri_for(name(rendition, w.index)), duration=duration, key=key))
            continue
        segments.append(MediaSegment(uri=uri_for(name(rendition, w.index)), duration=duration))
    target = target_duration(list(lengths.values()))
    version = MAP_VERSION if map_uri is not None else MediaPlaylist.version
    if rendition.iframes_only:
        version = IFRAMES_MAP_VERSION if map_uri is not None else IFRAMES_VERSION
    if encryption is not None and encryption.keyformat is not None:
        version = max(version, KEYFORMAT_VERSION)
    playlist = MediaPlaylist(
        segments=tuple(segments), target_duration=target, version=version, map_uri=map_uri, iframes_only=rendition.iframes_only
    )
    return render_media(playlist)


# ---- rendered once, filled per request -----------------------------------------------------

_OPEN = "\x00"  # where a URI's query goes while rendering (quote() escapes it in any name)


@dataclass(frozen=True)
class Rendered:
    """A playlist's bytes with every URI's query string left open: URI i is the quoted file
    name `names[i]`, at the end of `parts[i]`; `parts[i + 1]` follows its query."""

    parts: tuple[bytes, ...]
    names: tuple[str, ...]
    length: int  # bytes, without the queries
    plain_names: bool  # every name is one a path signer takes without further checks (signing.plain_name)
    longest: str  # the longest name

    @property
    def size(self) -> int:
        """Memory held, about."""
        return self.length + 64 * len(self.parts)

    def piece(self, start: int, stop: int, queries: Sequence[bytes]) -> bytes:
        """URIs start..stop-1 with their queries and the text after each: the whole playlist
        is `parts[0]` and then the pieces of consecutive ranges."""
        if len(queries) != stop - start:
            raise ValueError("one query per URI")
        pieces = [b""] * (2 * len(queries))
        pieces[0::2] = queries
        pieces[1::2] = self.parts[start + 1 : stop + 1]
        return b"".join(pieces)

    def piece_with_query(self, start: int, stop: int, query: bytes) -> bytes:
        """`piece` with the same query (or none: b"") on every URI."""
        return query + query.join(self.parts[start + 1 : stop + 1]) if stop > start else b""


def _left_open(render: Callable[[UriFor], str]) -> Rendered:
    names: list[str] = []

    def uri_for(name: str) -> str:
        names.append(name)
        return _quote(name) + _OPEN

    parts = render(uri_for).split(_OPEN)
    if len(parts) != len(names) + 1:
        raise ValueError("a playlist's text holds the open-query marker")
    encoded = tuple(p.encode() for p in parts)
    plain = all(map(plain_name, names))
    return Rendered(encoded, tuple(names), sum(len(p) for p in encoded), plain, max(names, key=len, default=""))


def rendered_media(rendition: Rendition) -> Rendered:
    return _left_open(lambda uri_for: media_text(rendition, uri_for))


def rendered_master(title: Title, bandwidth_for: BandwidthFor = estimated) -> Rendered:
    return _left_open(lambda uri_for: master_text(title, uri_for, bandwidth_for))


def playlist_objects(title: Title, title_url: str) -> dict[str, str]:
    """Object key -> m3u8 text of every playlist of `title`, as written to output storage next
    to its segments (livetx/layout.py): `<source>/<profile>/master.m3u8` and
    `<source>/<profile>/<rendition>.m3u8`, or, for API-made playlists, `<target URI>.m3u8` and
    the requested master. URIs inside are
    relative, so the objects play from wherever storage is served, as far as the segments they
    name have been made there: a sidecar's subtitle segments are rendered per request and
    never stored, so only a server (or a CDN in front of one) plays those.

    Nor does an encrypted rendition play from storage alone. Its segments are stored
    encrypted, but its keys are never stored (they are derived per request), and a key URL
    answers only with a viewer token. So its stored media playlist names each key by its URL
    on the origin, `title_url` (the title's URL prefix there, `{server.public_url}/hls/<profile>/
    <source key>/`) plus the key's name, without a token: it says truthfully which segments
    are encrypted under which key, and where that key is, and a player that has it from storage
    gets 401 at the key. A player needs a signed playlist of the title from the origin (the
    playlist APIs' PlaybackURL, `POST /api/v1/sign`), which hands its token on to the keys."""
    absolute = partial(_absolute_key_uri, title_url)
    objects = {media_playlist_key(title, r): media_text(r, stored=True, key_uri_for=absolute) for r in title.renditions}
    master_key = master_playlist_key(title)
    if master_key is not None:
        folder = posixpath.dirname(master_key)
        by_name = {media_playlist_name(r): posixpath.relpath(media_playlist_key(title, r), folder or ".") for r in title.renditions}
        objects[master_key] = master_text(title, lambda name: quote(by_name[name], safe="/"))
    return objects


def _absolute_key_uri(title_url: str, name: str) -> str:
    return title_url + _quote(name)
