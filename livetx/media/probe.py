"""Header probe: what a source holds, read from its container headers without decoding a frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, BinaryIO

import av

from livetx.errors import SourceTooLarge, SourceUnreadable
from livetx.media.colour import TRANSFER_HLG, TRANSFER_PQ, UNSPECIFIED, ColourInfo
from livetx.media.hdr_headers import HdrMetadata, TrackColour, access_unit_sei, entry_colour, extradata_sei
from livetx.media.keyframes import keyframe_times
from livetx.media.model import ROLES, AudioInfo, AudioTrack, MediaInfo, SubtitleTrack, VideoInfo
from livetx.media.orientation import moov_rotation, read_moov
from livetx.media.remote import describe_error, open_container, open_source


@dataclass(frozen=True)
class ProbeJob:
    """Probe `source` (what `Storage.media_url` gave) in a pool worker (`livetx.media.pool.ProbePool`)."""

    source: str


def _seconds(value: int | None, time_base: Fraction | None) -> Fraction | None:
    if value is None or time_base is None:
        return None
    return value * time_base


TAIL_SECONDS = 3  # how far before the declared end the tail probe starts reading packets
TAIL_PACKETS = 5000  # and how many packets it reads at most


def _sar(stream: Any) -> Fraction | None:
    ratio = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not ratio or ratio == 1:
        return None
    return Fraction(ratio)


MAX_DIMENSION = 8192  # px, either side (8K); FFmpeg itself refuses 16384x16384
MAX_DURATION = 48 * 3600  # seconds of title


def _tail_ends(container: Any, streams: list[Any], more: Sequence[Any] = (), read: Sequence[Any] = ()) -> dict[int, Fraction]:
    """End time of each stream's last packet, read from the last seconds of the file.

    Headers often disagree with the packets (FLV and ASF give an end time where a duration is
    due, MKV rounds to milliseconds): the packets are the truth. Demux only, no decoding.
    `more`: streams whose ends are wanted too, read in the same pass; only the packets of
    `streams` count towards TAIL_PACKETS, so their ends do not depend on how many others a
    source carries. `read`: packets already demuxed (the colour probe's), counted as seen: a
    source too short for the seek reads on after them.
    """
    if not container.duration:
        return {}
    anchor = streams[0]
    declared_end = Fraction(container.start_time or 0, 1_000_000) + Fraction(container.duration, 1_000_000)
    target = declared_end - TAIL_SECONDS
    ends: dict[int, Fraction] = {}
    for packet in read:
        _note_end(ends, packet)
    try:
        if target > 0:
            container.seek(int(target / anchor.time_base), stream=anchor, backward=True, any_frame=True)
        counted = {s.index for s in streams}
        count = 0
        for packet in container.demux([*streams, *more]):
            counts = packet.stream.index in counted
            if counts and count >= TAIL_PACKETS:
                break
            count += counts
            _note_end(ends, packet)
    except (av.FFmpegError, OSError):
        return {}
    return ends


def _note_end(ends: dict[int, Fraction], packet: Any) -> None:
    """Keep the latest end time of the packet's stream (a packet without a duration lasts
    one frame of its video stream's rate)."""
    if packet.pts is None:
        return
    length = packet.duration or 0
    if not length and packet.stream.type == "video" and packet.stream.average_rate:
        length = round(1 / (packet.stream.average_rate * packet.time_base))
    end = (packet.pts + length) * packet.time_base
    index = packet.stream.index
    ends[index] = max(ends.get(index, end), end)


def _moov(target: BinaryIO, format_name: str) -> bytes | None:
    """The moov payload of an MP4/MOV-family file (the only containers whose rotation FFmpeg
    applies, and whose sample entry boxes say more of the colour than PyAV shows), read once."""
    if "mov" not in format_name.split(","):
        return None
    at = target.tell()  # the container reads on from here: put it back
    try:
        return read_moov(target)
    finally:
        target.seek(at)


FULL_RANGE_PIX_FMTS = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p"})  # JPEG range by their name


def _code_point(value: Any, boxed: int | None) -> int:
    """The codec context's code point, or the container box's where the context says unspecified."""
    value = int(value or UNSPECIFIED)
    return boxed if value == UNSPECIFIED and boxed is not None else value


def _full_range(ctx: Any, boxed: bool | None) -> bool | None:
    """Full range by the codec context (2: JPEG), limited (1: MPEG), else the box, else a yuvj
    pixel format says full; None: unspecified."""
    value = int(ctx.color_range or 0)
    if value in (1, 2):
        return value == 2
    if boxed is not None:
        return boxed
    return True if ctx.pix_fmt in FULL_RANGE_PIX_FMTS else None


def _colour(container: Any, vs: Any, track: TrackColour | None) -> tuple[ColourInfo, Any]:
    """The video's ColourInfo: code points from the codec context (the VUI, or Matroska's Colour
    element), the MP4 boxes where it says unspecified; mastering and content light from the
    boxes, else HEVC's SEI in the extradata, else (HDR HEVC only) in the first packet, which is
    returned for the tail probe to count (None: no packet read)."""
    ctx = vs.codec_context
    track = track or TrackColour()
    colour = ColourInfo(
        primaries=_code_point(ctx.color_primaries, track.primaries),
        transfer=_code_point(ctx.color_trc, track.transfer),
        matrix=_code_point(ctx.colorspace, track.matrix),
        full_range=_full_range(ctx, track.full_range),
        dolby_vision=track.dolby_vision,
    )
    hdr, packet = track.hdr, None
    if ctx.name == "hevc" and not (hdr.mastering and hdr.content_light):
        from_extradata, length_size = extradata_sei(bytes(ctx.extradata or b""))
        hdr = hdr.over(from_extradata)
        if colour.transfer in (TRANSFER_PQ, TRANSFER_HLG) and not (hdr.mastering and hdr.content_light):
            hdr, packet = _packet_sei(container, vs, hdr, track.nal_length_size or length_size)
    return replace(colour, mastering=hdr.mastering, content_light=hdr.content_light), packet


def _packet_sei(container: Any, vs: Any, hdr: HdrMetadata, length_size: int | None) -> tuple[HdrMetadata, Any]:
    """`hdr` with what the first video packet's prefix SEI adds, and that packet (None: none read)."""
    try:
        packet = next(iter(container.demux(vs)), None)
    except (av.FFmpegError, OSError):
        return hdr, None
    if packet is None or packet.size == 0:
        return hdr, None
    return hdr.over(access_unit_sei(bytes(packet), length_size)), packet


def probe(source: str, origin: str | None = None) -> MediaInfo:
    """Open `source` (a path, or an HTTP(S) URL on `origin` read with ranged GETs; see
    `open_source`), read its headers and the timestamps of its last packets. Error messages
    name the problem, never the path or URL."""
    try:
        with open_source(source, origin=origin) as (target, _):
            return _probe(target)
    except FileNotFoundError:
        raise SourceUnreadable("cannot read source: it is gone") from None
    except OSError as exc:
        raise SourceUnreadable(f"cannot read source: {type(exc).__name__}") from None


def _probe(target: BinaryIO) -> MediaInfo:
    try:
        container: Any = open_container(target)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise SourceUnreadable(f"cannot open source: {describe_error(exc)} (not media livetx can read)") from None
    with container:
        video = audio = None
        read: list[Any] = []
        if container.streams.video:
            vs = container.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            if vs.codec_context.width and rate:
                moov = _moov(target, container.format.name)
                video = VideoInfo(
                    index=vs.index,
                    codec=vs.codec_context.name,
                    width=vs.codec_context.width,
                    height=vs.codec_context.height,
                    fps=Fraction(rate).limit_denominator(1001 * 1000),
                    pix_fmt=vs.codec_context.pix_fmt,
                    start=_seconds(vs.start_time, vs.time_base),
                    sar=_sar(vs),
                    bit_rate=vs.codec_context.bit_rate or vs.bit_rate or None,
                    rotation=moov_rotation(moov) if moov is not None else 0,
                    profile=vs.codec_context.profile or None,
                    level=_level(vs.codec_context.level),
                )
                colour, packet = _colour(container, vs, entry_colour(moov) if moov is not None else None)
                video = replace(video, colour=colour, keyframes=keyframe_times(container, vs, moov, limit=MAX_KEYFRAMES))
                read = [packet] if packet is not None else []
        if container.streams.audio:
            aud = container.streams.audio[0]
            if aud.codec_context.sample_rate:
                audio = AudioInfo(
                    index=aud.index,
                    codec=aud.codec_context.name,
                    sample_rate=aud.codec_context.sample_rate,
                    channels=aud.codec_context.channels,
                    start=_seconds(aud.start_time, aud.time_base),
                    bit_rate=aud.codec_context.bit_rate or aud.bit_rate or None,
                )
        if video is None and audio is None:
            raise SourceUnreadable("source has no decodable video or audio stream")
        if not container.duration or container.duration <= 0:
            raise SourceUnreadable("source duration is unknown")
        start = Fraction(container.start_time or 0, 1_000_000)
        wanted = [container.streams[i.index] for i in (video, audio) if i is not None]
        tracks = [_audio_track(s) for s in container.streams.audio if s.codec_context.sample_rate and s.codec_context.channels]
        subtitles = [_subtitle_track(s) for s in container.streams.subtitles]
        more = [container.streams[t.index] for t in tracks if audio is None or t.index != audio.index]
        ends = _tail_ends(container, wanted, more, read)
        if video is not None:
            video = replace(video, end=ends.get(video.index))
        if audio is not None:
            audio = replace(audio, end=ends.get(audio.index))
        info = MediaInfo(
            format=container.format.name,
            duration=Fraction(container.duration, 1_000_000),
            start=start,
            video=video,
            audio=audio,
            audio_tracks=tuple(replace(t, end=ends.get(t.index)) for t in tracks),
            subtitle_tracks=tuple(subtitles),
        )
        _check_limits(info)
        return info


MAX_KEYFRAMES = 100_000  # more keyframes than this are not kept in the probe record (about 55 h of 2 s GOPs)


def _level(level: Any) -> int | None:
    """The codec context's level, None when FFmpeg does not know it (or it is nonsense)."""
    return int(level) if level is not None and int(level) > 0 else None


def _language(stream: Any) -> str | None:
    """The stream's language tag as written (ISO 639-2 in Matroska and MP4), lower case; None
    when there is none or it says "undetermined" (MP4 writes `und` when unset)."""
    tag = str(stream.metadata.get("language") or "").strip().lower()
    return tag if tag and tag != "und" else None


def _title(stream: Any) -> str | None:
    """The stream's title: Matroska's `title`, or MP4's `name` (the `udta` name box FFmpeg writes a
    title to). Never MP4's `handler_name`: muxers fill it with `SoundHandler` and the like."""
    for key in ("title", "name"):
        value = str(stream.metadata.get(key) or "").strip()
        if value:
            return value
    return None


def _flags(stream: Any) -> tuple[bool, bool, tuple[str, ...]]:
    """Default, forced and the role flags (of ROLES) of the stream's disposition."""
    disposition = stream.disposition
    names = {flag.name for flag in type(disposition) if flag in disposition}
    return "default" in names, "forced" in names, tuple(role for role in ROLES if role in names)


def _audio_track(stream: Any) -> AudioTrack:
    ctx = stream.codec_context
    default, forced, roles = _flags(stream)
    return AudioTrack(
        index=stream.index,
        codec=ctx.name,
        channels=ctx.channels,
        layout=ctx.layout.name or None,
        sample_rate=ctx.sample_rate,
        bit_rate=ctx.bit_rate or stream.bit_rate or None,
        language=_language(stream),
        title=_title(stream),
        default=default,
        forced=forced,
        roles=roles,
        start=_seconds(stream.start_time, stream.time_base),
    )


# Picture subtitles, for when FFmpeg has no decoder to say so (its codec descriptor's property)
BITMAP_SUBTITLES = frozenset({"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle", "xsub"})


def is_bitmap_subtitle(codec: str) -> bool:
    """Whether subtitles of `codec` (FFmpeg's name) are pictures rather than text."""
    try:
        return bool(av.Codec(codec, "r").bitmap_sub)
    except (av.FFmpegError, ValueError):  # no decoder for it in this FFmpeg
        return codec in BITMAP_SUBTITLES


def _subtitle_track(stream: Any) -> SubtitleTrack:
    name = stream.codec_context.name if stream.codec_context is not None else "unknown"
    default, forced, roles = _flags(stream)
    return SubtitleTrack(
        index=stream.index,
        codec=name,
        bitmap=is_bitmap_subtitle(name),
        language=_language(stream),
        title=_title(stream),
        default=default,
        forced=forced,
        roles=roles,
    )


def _check_limits(info: MediaInfo) -> None:
    """Refuse what no rendition should ever decode: absurd frame sizes and durations (a header
    can claim anything; the tail packets are what counts for the duration)."""
    if info.video is not None and max(info.video.width, info.video.height) > MAX_DIMENSION:
        raise SourceTooLarge(f"source frame size {info.video.width}x{info.video.height} is over the {MAX_DIMENSION} px limit")
    if info.end - info.start > MAX_DURATION:
        hours = float(info.end - info.start) / 3600
        raise SourceTooLarge(f"source lasts {hours:.0f} h, over the {MAX_DURATION // 3600} h limit")
