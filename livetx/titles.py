"""A title: one source under one profile, planned into renditions and segments. Pure.

`build_title` takes only facts (the source object's identity, its header probe, the
profile) and returns everything a playlist or a segment request needs: each rendition's
encoder spec, its segment windows, and the short spec id that names its segments. Nothing
here decodes, reads storage, or knows HTTP.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from livetx.copyplan import copy_refusal, cuts_at_keyframes
from livetx.crypto.keys import KeyName, period_of, version_tag
from livetx.errors import ConfigError, EncryptionNotConfigured, ParameterError, SegmentNotFound
from livetx.hls.languages import language_tag
from livetx.hls.plan import Grid, SegmentWindow, audio_grid, plan_segments, video_grid
from livetx.media.colour import unsupported
from livetx.media.model import INIT, AudioSpec, AudioTrack, MediaInfo, SegmentJob, SegmentPart, SubtitleTrack, VideoSpec, is_mp4_family
from livetx.media.params import (
    KNOWN_TITLE,
    RenditionParams,
    TitleParams,
    output_size,
    parse_rendition_params,
    parse_title_params,
    resolve_audio,
    resolve_container,
    resolve_surround_audio,
    resolve_track_audio,
    resolve_video,
    selected_tracks,
)
from livetx.media.watermark import Overlay, WatermarkImage, make_overlay
from livetx.storage.base import ObjectInfo
from livetx.subtitles.cues import Cue
from livetx.subtitles.sidecar import Sidecar
from livetx.subtitles.webvtt import render_segment, segment_cues

PLAN_VERSION = "3"  # bump when the transcoder's output for one spec changes (3: fMP4 in FRAGMENT_SECONDS fragments)
TS_AUDIO_MUX = "2"  # of audio-only MPEG-TS segments (media/transcode.py TS_AUDIO_OPTIONS): in their spec ids


# title parameters a rendition may set for itself
PER_RENDITION = ("st", "initial_segments", "initd", "ta", "encryption", "key_rotation")
AUDIO_LAYOUT = ("audio", "surround")  # title parameters of the whole title's audio: a profile's, never a rendition's


@dataclass(frozen=True)
class RenditionTemplate:
    """One rendition of a profile: its encoder parameters and its own segmenting (the
    profile's, unless the rendition sets `st`, `initial_segments`, `initd` or `ta` itself, as
    IMM Targets do). Renditions with equal segmenting have identical boundaries."""

    name: str
    params: RenditionParams
    title: TitleParams
    object_prefix: str | None = None  # output key prefix of its objects (API-made playlists)


@dataclass(frozen=True)
class Profile:
    """A named template: title parameters plus an ordered set of renditions."""

    name: str
    title: TitleParams
    renditions: tuple[RenditionTemplate, ...]
    source_key: str | None = None  # API-made profiles belong to one source
    master_key: str | None = None  # where an API-made master playlist is written
    track_prefix: str | None = None  # API-made with a master: its audio and subtitle renditions' object prefix, before their name
    mpd_key: str | None = None  # API-made (a segmented job, Output.Segment dash): its DASH manifest, written with its playlists


def parse_profile(name: str, table: Mapping[str, Any]) -> Profile:
    """A profile from a config table `[profiles.NAME]` with `[profiles.NAME.renditions.R]` tables."""
    unknown = set(table) - KNOWN_TITLE - {"renditions"}
    if unknown:
        raise ConfigError(f"profile {name!r}: unknown key {sorted(unknown)[0]!r}")
    try:
        base = {k: v for k, v in table.items() if k in KNOWN_TITLE}
        title = parse_title_params(base)
        renditions_table = table.get("renditions") or {"main": {}}
        renditions = []
        for r, p in renditions_table.items():
            misplaced = sorted(set(dict(p)) & set(AUDIO_LAYOUT))
            if misplaced:
                raise ConfigError(f"profile {name!r}: {misplaced[0]!r} is the profile's, not rendition {r!r}'s (the title's audio layout)")
            own = {k: v for k, v in dict(p).items() if k in PER_RENDITION}
            rparams = parse_rendition_params({k: v for k, v in dict(p).items() if k not in PER_RENDITION})
            tparams = parse_title_params({**base, **own}) if own else title
            check_encryption(tparams, resolve_container(rparams), rparams.vcodec)
            renditions.append(RenditionTemplate(str(r), rparams, tparams))
    except ParameterError as exc:
        raise ConfigError(f"profile {name!r}: {exc.message}") from None
    for rendition in renditions:
        if not rendition.name.replace("_", "").isalnum():
            raise ConfigError(f"profile {name!r}: rendition names are letters, digits and '_'")
    return Profile(name=name, title=title, renditions=tuple(renditions))


def watermark_keys(profile: Profile) -> tuple[str, ...]:
    """The watermark images (`wm_image`) the profile's renditions draw, each key once."""
    return tuple(dict.fromkeys(r.params.wm_image for r in profile.renditions if r.params.wm_image is not None))


def is_watermarked(profile: Profile) -> bool:
    """Whether a rendition of the profile draws a watermark (its plan renders overlays)."""
    return any(r.params.wm_image is not None or r.params.wm_text is not None for r in profile.renditions)


@dataclass(frozen=True)
class SubtitleRef:
    """What a subtitle rendition is made from: an embedded text track of the source (made by
    the pool, from the subtitle decoder alone) or a sidecar file's cues (rendered in-process).
    `container` is the video's ("ts" or "fmp4"): its segments' X-TIMESTAMP-MAP follows it."""

    track: SubtitleTrack | Sidecar
    container: str
    skip: int = 0  # ms of a sidecar before title time 0 (the title's `ss`): taken off its cue times
    # whether the source's default flag is an author's choice: MP4's muxers set it (tkhd
    # "enabled") on the first track of each kind by themselves, so there it says nothing
    default_flag_meant: bool = True

    @property
    def sidecar(self) -> Sidecar | None:
        return self.track if isinstance(self.track, Sidecar) else None

    @property
    def language(self) -> str | None:
        """The language as the container or the sidecar's name writes it."""
        return self.track.name.language if isinstance(self.track, Sidecar) else self.track.language

    @property
    def label(self) -> str | None:
        """The track's own name: the container's title tag, or the sidecar name's label."""
        return self.track.name.label if isinstance(self.track, Sidecar) else self.track.title

    @property
    def default(self) -> bool:
        """Shown before a viewer picks (DEFAULT=YES): a sidecar named `.default.`, or an
        embedded track its container flags default where that flag is the author's."""
        if isinstance(self.track, Sidecar):
            return self.track.name.default
        return self.track.default and self.default_flag_meant

    @property
    def forced(self) -> bool:
        return self.track.name.forced if isinstance(self.track, Sidecar) else self.track.forced

    @property
    def hearing_impaired(self) -> bool:
        if isinstance(self.track, Sidecar):
            return self.track.name.hearing_impaired
        return "hearing_impaired" in self.track.roles


@dataclass(frozen=True)
class Encryption:
    """How a rendition's media segments are encrypted (livetx/crypto/): `method` aes-128 or
    sample-aes, a new content key every `rotation` segments (0: one), derived from master key
    `kid` for title version `version` (`crypto.keys.version_tag`)."""

    method: str
    rotation: int
    kid: str
    version: str

    def key_name(self, index: int) -> KeyName:
        """The content key of segment `index` (the init segment's is period 0's)."""
        return KeyName(self.kid, self.version, period_of(index, self.rotation))

    @property
    def tag_method(self) -> str:
        """EXT-X-KEY's METHOD."""
        return "AES-128" if self.method == "aes-128" else "SAMPLE-AES"

    @property
    def keyformat(self) -> str | None:
        """EXT-X-KEY's KEYFORMAT: absent (identity, the key's 16 bytes at the URI) for AES-128."""
        return None if self.method == "aes-128" else "identity"


@dataclass(frozen=True)
class Rendition:
    name: str
    spec_id: str
    video: VideoSpec | None
    audio: AudioSpec | None
    windows: tuple[SegmentWindow, ...]
    bandwidth: int  # peak estimate, bit/s
    average_bandwidth: int
    codecs: str
    initd: int = 0  # ms pre-transcoded when the playlist is created
    ta: int = 12  # segments made ahead when playback starts
    object_prefix: str | None = None  # output key prefix of its objects, when an API chose it
    container: str = "ts"  # "ts", or "fmp4" (an init segment, then fragments; B-frames on)
    subtitle: SubtitleRef | None = None  # a WebVTT subtitle rendition (EXT-X-MEDIA, container "vtt"): what it shows
    track: AudioTrack | None = None  # separate audio: the source audio track this audio rendition (EXT-X-MEDIA) plays
    encryption: Encryption | None = None  # its media segments' encryption; None: clear
    clear_spec_id: str = ""  # the spec id without the encryption (it names the segments of a clear rendition)
    overlay: Overlay | None = None  # the watermark drawn over its video (`wm_*` parameters)
    # an I-frame rendition (EXT-X-I-FRAME-STREAM-INF): segment n holds one IDR frame, the one at
    # its window's start; the window (about a second) is the entry's EXTINF
    iframes_only: bool = False

    def window(self, index: int) -> SegmentWindow:
        if not 0 <= index < len(self.windows):
            raise SegmentNotFound(f"segment {index} is past the title's {len(self.windows)} segments")
        return self.windows[index]


@dataclass(frozen=True)
class ClipPlan:
    """One clip of a composite title (livetx/composite.py): the source it reads, where title
    time 0 is in it (`origin`, source seconds; negative when the clip plays later in the title
    than in its source), the title time [start, stop) it plays, its segments [first, end), and
    its own video spec (the rendition's encoder, with this clip's rotation and picture)."""

    source: ObjectInfo
    info: MediaInfo
    origin: Fraction
    start: Fraction
    stop: Fraction
    first: int  # its first segment's index
    end: int  # past its last segment's index
    video: VideoSpec | None
    last: bool = False  # the title's last clip (its audio runs to the title's end)


@dataclass(frozen=True)
class Title:
    source: ObjectInfo
    info: MediaInfo
    profile: Profile
    origin: Fraction  # source seconds of title time 0
    duration: Fraction
    renditions: tuple[Rendition, ...]
    muxed_track: AudioTrack | None = None  # the track muxed into the variants when not the first audio stream
    sidecars: tuple[Sidecar, ...] = ()  # every sidecar found, readable or not (the unreadable ones play no rendition)
    # a composite title's clips in play order (livetx/composite.py); () for a title of one source.
    # Its `source` is then the first clip's key with an ETag made of every clip's version.
    clips: tuple[ClipPlan, ...] = ()
    # renditions of the profile not in this title, each with why (a copy rendition of a source
    # that cannot be copied)
    left_out: tuple[tuple[str, str], ...] = ()

    def clip_of(self, index: int) -> ClipPlan | None:
        """The clip whose source segment `index` reads (a composite title's), else None."""
        for clip in self.clips:
            if clip.first <= index < clip.end:
                return clip
        return None

    def source_key_of(self, index: SegmentPart) -> str:
        """The key of the source object segment `index` reads."""
        clip = self.clip_of(index) if index != INIT else None
        return clip.source.key if clip is not None else self.source.key

    @property
    def variants(self) -> tuple[Rendition, ...]:
        """The renditions a master lists as variant streams (all but the audio, subtitle and I-frame renditions)."""
        return tuple(r for r in self.renditions if r.track is None and r.subtitle is None and not r.iframes_only)

    @property
    def iframe_renditions(self) -> tuple[Rendition, ...]:
        """The I-frame rendition (EXT-X-I-FRAME-STREAM-INF), if the title has one."""
        return tuple(r for r in self.renditions if r.iframes_only)

    @property
    def audio_renditions(self) -> tuple[Rendition, ...]:
        """Separate audio: one stereo rendition per selected source audio track, in stream
        order, each followed by its 6-channel one (surround=1, a track of 3 or more channels); else none."""
        return tuple(r for r in self.renditions if r.track is not None)

    @property
    def default_audio_stream(self) -> int | None:
        """The source stream of the audio renditions' default track (DEFAULT=YES, DASH Role
        main): the first the container flags default, else the first; None without them."""
        tracks = [r.track for r in self.audio_renditions if r.track is not None]
        return next((t.index for t in tracks if t.default), tracks[0].index if tracks else None)

    @property
    def subtitle_renditions(self) -> tuple[Rendition, ...]:
        """One WebVTT rendition per selected embedded text track (stream order), then per
        readable sidecar; none for a title without video, or made through the APIs without a master."""
        return tuple(r for r in self.renditions if r.subtitle is not None)

    def rendition(self, name: str) -> Rendition:
        for rendition in self.renditions:
            if rendition.name == name:
                return rendition
        raise SegmentNotFound(f"no rendition {name!r} in profile {self.profile.name!r}")

    def rendition_of_spec(self, name: str, spec_id: str, kids: Sequence[str]) -> Rendition:
        """Rendition `name` as its segments with spec id `spec_id` were made: the current one,
        or, for an encrypted rendition, the same encrypted with another master key of `kids`
        (a playlist from before a master key rotation keeps playing while its key is configured)."""
        rendition = self.rendition(name)
        if spec_id == rendition.spec_id:
            return rendition
        if rendition.encryption is not None:
            for kid in kids:
                older = encrypted(rendition, replace(rendition.encryption, kid=kid))
                if older.spec_id == spec_id:
                    return older
        raise SegmentNotFound("segment belongs to an older version of this title; reload the playlist")

    def job(self, rendition: Rendition, index: SegmentPart, media_url: str) -> SegmentJob:
        """The pool job of one segment. An embedded subtitle track's is the window's cues, from
        the source's subtitle stream alone, mapped for the video's container (a sidecar's
        segments are rendered by `sidecar_segment`, never by the pool)."""
        ref = rendition.subtitle
        if ref is not None and (ref.sidecar is not None or index == INIT):
            raise ValueError("a pool job makes an embedded subtitle track's media segments only (sidecar_segment renders a sidecar's)")
        if index == INIT:
            copied = rendition.video is not None and rendition.video.copies and self.info.video is not None
            return SegmentJob(
                media_url if copied else "",
                self.origin if copied else Fraction(0),
                Fraction(0),
                Fraction(0),
                rendition.video,
                rendition.audio,
                video_stream=self.info.video.index if copied and self.info.video else None,
                source_pin=self.source.pin if copied else "",
                container=rendition.container,
                init=True,
                intra_only=rendition.iframes_only,
            )
        window = rendition.window(index)
        if rendition.iframes_only:  # one frame: the window's first (the entry's EXTINF spans the whole window)
            window = replace(window, end=window.first + 1)
        clip = self.clip_of(index)
        if clip is not None:
            return self._clip_job(clip, rendition, window, media_url)
        job = SegmentJob(
            source=media_url,
            origin=self.origin,
            start=window.start,
            stop=window.stop,
            video=rendition.video,
            audio=rendition.audio,
            video_stream=self.info.video.index if self.info.video and rendition.video else None,
            audio_stream=self._audio_stream(rendition),
            source_pin=self.source.pin,
            container=rendition.container,
            overlay=rendition.overlay,
            intra_only=rendition.iframes_only,
            source_colour=self.info.video.colour if self.info.video and rendition.video else None,
        )
        if ref is None:
            return job
        assert isinstance(ref.track, SubtitleTrack)
        return replace(job, container=ref.container, subtitle_stream=ref.track.index)  # (no video or audio in it)

    def _clip_job(self, clip: ClipPlan, rendition: Rendition, window: SegmentWindow, media_url: str) -> SegmentJob:
        """A composite's segment: one clip's source, with its origin, video spec and audio span."""
        info = clip.info
        return SegmentJob(
            source=media_url,
            origin=clip.origin,
            start=window.start,
            stop=window.stop,
            video=clip.video if rendition.video is not None else None,
            audio=rendition.audio,
            video_stream=info.video.index if info.video is not None and rendition.video is not None else None,
            audio_stream=info.audio.index if info.audio is not None and rendition.audio is not None else None,
            source_pin=clip.source.pin,
            container=rendition.container,
            audio_span=(clip.start, None if clip.last else clip.stop),
            overlay=rendition.overlay if rendition.video is not None else None,
            intra_only=rendition.iframes_only,
            source_colour=info.video.colour if info.video is not None and rendition.video is not None else None,
        )

    def _audio_stream(self, rendition: Rendition) -> int | None:
        if rendition.track is not None:
            return rendition.track.index
        if self.info.audio is None or rendition.audio is None:
            return None
        return self.muxed_track.index if self.muxed_track is not None else self.info.audio.index


def audio_rendition_name(track: AudioTrack, channels: int = 2) -> str:
    """`a<source stream index>`, stable while other tracks come and go; `a<index>c6` for its
    6-channel rendition."""
    return f"a{track.index}" if channels <= 2 else f"a{track.index}c{channels}"


def subtitle_rendition_name(track: SubtitleTrack | Sidecar) -> str:
    """`s<source stream index>` for an embedded track; `x<8 hex digits of sha256(key)>` for a
    sidecar, stable when sibling sidecars appear or go."""
    if isinstance(track, Sidecar):
        return "x" + hashlib.sha256(track.key.encode()).hexdigest()[:8]
    return f"s{track.index}"


def sidecar_segment(rendition: Rendition, index: int) -> bytes:
    """Segment `index` of a sidecar's rendition, WebVTT from its parsed cues (no pool, no
    storage: a scan of the cues). Cue times are title time: a sidecar's, less the title's `ss`;
    a cue that began before title time 0 starts at 0."""
    ref = rendition.subtitle
    sidecar = ref.sidecar if ref is not None else None
    if ref is None or sidecar is None:
        raise ValueError(f"rendition {rendition.name!r} plays no sidecar")
    window = rendition.window(index)
    cues: Sequence[Cue] = sidecar.cues
    if ref.skip:
        cues = [replace(c, start=max(0, c.start - ref.skip), end=c.end - ref.skip) for c in cues if c.end > ref.skip]
    return render_segment(segment_cues(cues, window), ref.container).encode()


# ---- CODECS and bandwidth -----------------------------------------------------------------

# H.264 Table A-1: (level_idc, MaxMBPS, MaxFS)
_H264_LEVELS = (
    (10, 1485, 99), (11, 3000, 396), (12, 6000, 396), (13, 11880, 396), (20, 11880, 396),
    (21, 19800, 792), (22, 20250, 1620), (30, 40500, 1620), (31, 108000, 3600), (32, 216000, 5120),
    (40, 245760, 8192), (42, 522240, 8704), (50, 589824, 22080), (51, 983040, 36864),
    (52, 2073600, 36864), (60, 4177920, 139264), (61, 8355840, 139264), (62, 16711680, 139264),
)  # fmt: skip

# H.265 Table A-8: (level_idc, MaxLumaPs, MaxLumaSr)
_H265_LEVELS = (
    (30, 36864, 552960), (60, 122880, 3686400), (63, 245760, 7372800), (90, 552960, 16588800),
    (93, 983040, 33177600), (120, 2228224, 66846720), (123, 2228224, 133693440),
    (150, 8912896, 267386880), (153, 8912896, 534773760), (156, 8912896, 1069547520),
    (180, 35651584, 1069547520), (183, 35651584, 2139095040), (186, 35651584, 4278190080),
)  # fmt: skip

# AV1 Annex A.3: (seq_level_idx, MaxPicSize, MaxHSize, MaxVSize, MaxDisplayRate); the index
# counts levels 2.0, 2.1, 2.2, ... (4 per major), of which these are defined
_AV1_LEVELS = (
    (0, 147456, 2048, 1152, 4423680), (1, 278784, 2816, 1584, 8363520),
    (4, 665856, 4352, 2448, 19975680), (5, 1065024, 5504, 3096, 31950720),
    (8, 2359296, 6144, 3456, 77856768), (9, 2359296, 6144, 3456, 155713536),
    (12, 8912896, 8192, 4352, 273715200), (13, 8912896, 8192, 4352, 547430400),
    (14, 8912896, 8192, 4352, 1094860800), (15, 8912896, 8192, 4352, 1176502272),
    (16, 35651584, 16384, 8704, 1176502272), (17, 35651584, 16384, 8704, 2189721600),
    (18, 35651584, 16384, 8704, 4379443200), (19, 35651584, 16384, 8704, 4706009088),
)  # fmt: skip
AV1_LEVEL_MAX = 31  # "no level constraints"


def h264_level(width: int, height: int, fps: Fraction) -> int:
    """The lowest level whose frame size and macroblock rate hold the picture (what x264 signals)."""
    mbs = math.ceil(width / 16) * math.ceil(height / 16)
    for level, max_mbps, max_fs in _H264_LEVELS:
        side_ok = max(math.ceil(width / 16), math.ceil(height / 16)) ** 2 <= 8 * max_fs
        if mbs <= max_fs and side_ok and mbs * fps <= max_mbps:
            return level
    return 62


def h265_level(width: int, height: int, fps: Fraction) -> int:
    samples = width * height
    for level, max_ps, max_sr in _H265_LEVELS:
        side_ok = max(width, height) ** 2 <= 8 * max_ps
        if samples <= max_ps and side_ok and samples * fps <= max_sr:
            return level
    return 186


def av1_level(width: int, height: int, fps: Fraction) -> int:
    """seq_level_idx: the lowest level whose picture size, sides and display rate hold the
    output (what SVT-AV1 writes into the sequence header)."""
    samples = width * height
    for level, max_pic, max_w, max_h, max_rate in _AV1_LEVELS:
        if samples <= max_pic and width <= max_w and height <= max_h and samples * fps <= max_rate:
            return level
    return AV1_LEVEL_MAX


# RFC 6381 profile parts by output pixel format. H.264: profile_idc and constraint flags
# (High, High 10, High 4:2:2, High 4:4:4 Predictive). H.265: profile and its compatibility
# flags written in reverse bit order (Main, Main 10, Range Extensions).
_H264_PROFILES = {
    "yuv420p": "6400",
    "yuv420p10le": "6e00",
    "yuv422p": "7a00",
    "yuv422p10le": "7a00",
    "yuv444p": "f400",
    "yuv444p10le": "f400",
}
# x265 picks the lowest conforming profile, so 8-bit 4:2:2 is Main 4:2:2 10; the constraint
# bytes after the level carry the progressive/frame-only flags and the RExt depth/chroma limits.
_H265_PROFILES = {
    "yuv420p": ("1.6", "90"),
    "yuv420p10le": ("2.4", "90"),
    "yuv422p": ("4.10", "9D.08"),
    "yuv422p10le": ("4.10", "9D.08"),
    "yuv444p": ("4.10", "9E.08"),
    "yuv444p10le": ("4.10", "9C.08"),
}


def codecs(video: VideoSpec | None, audio: AudioSpec | None) -> str:
    parts = []
    if video is not None:
        if video.copies:
            parts.append(video.copy_codecs)
        elif video.codec == "h264":
            # x264's ultrafast turns off CABAC, 8x8 transforms and B-frames: Constrained Baseline
            # for 8-bit 4:2:0; other formats and presets keep their High profile.
            profile = _H264_PROFILES[video.pix_fmt]
            if video.preset == "ultrafast" and video.pix_fmt == "yuv420p":
                profile = "42c0"
            parts.append(f"avc1.{profile}{h264_level(video.width, video.height, video.fps):02x}")
        elif video.codec == "av1":
            # av01.<profile>.<level><tier>.<bit depth>: Main profile (4:2:0), Main tier
            depth = 10 if video.pix_fmt.endswith("10le") else 8
            parts.append(f"av01.0.{av1_level(video.width, video.height, video.fps):02d}M.{depth:02d}")
        else:
            profile, constraints = _H265_PROFILES[video.pix_fmt]
            parts.append(f"hvc1.{profile}.L{h265_level(video.width, video.height, video.fps)}.{constraints}")
    if audio is not None:
        parts.append("mp4a.40.2")
    return ",".join(parts)


def estimate_bandwidth(video: VideoSpec | None, audio: AudioSpec | None) -> tuple[int, int]:
    """(peak, average) bit/s before any segment is measured.

    Bitrate mode: the target (+10 % peak). CRF mode: 0.1 bit per pixel at crf 23 for H.264
    (half that for H.265 and AV1), doubling every 6 crf steps down, peak 1.5 x average. Plus audio and
    about 5 % of MPEG-TS overhead.
    """
    avg = 0.0
    peak = 0.0
    if video is not None:
        if video.copies:  # the source's own: its average, and room for its peaks
            avg = float(video.bitrate or 0.1 * video.width * video.height * float(video.fps))
            peak = avg * 1.5
        elif video.bitrate:
            avg, peak = video.bitrate, video.bitrate * 1.1
        else:
            bpp = 0.1 * 2 ** ((23 - (video.crf if video.crf is not None else 23)) / 6)
            if video.codec in ("h265", "av1"):
                bpp /= 2
            avg = bpp * video.width * video.height * float(video.fps)
            peak = avg * 1.5
            if video.maxrate:
                avg, peak = min(avg, video.maxrate), min(peak, video.maxrate)
    if audio is not None:
        avg += audio.bitrate
        peak += audio.bitrate
    return int(peak * 1.05), int(avg * 1.05)


# ---- the title ----------------------------------------------------------------------------


def _spec_id(
    source: ObjectInfo, origin: Fraction, grid: Grid, rendition: Rendition, separate: bool = False, muxed: AudioTrack | None = None
) -> str:
    video = replace(rendition.video, threads=0) if rendition.video is not None else None  # threads change no output
    facts: tuple[object, ...] = (PLAN_VERSION, source.key, source.etag, origin, grid, video, rendition.audio, rendition.windows)
    if rendition.container != "ts":  # (MPEG-TS titles keep the ids, and so the cached segments, they had before fMP4)
        facts += (rendition.container,)
    elif rendition.video is None:  # audio-only MPEG-TS: muxed with fewer bytes since issue 16
        facts += ("ts audio mux", TS_AUDIO_MUX)
    if separate:  # separate audio (muxed titles keep the ids they had before it)
        facts += ("audio=all", rendition.track.index if rendition.track is not None else None)
    elif muxed is not None and rendition.audio is not None:  # muxing another track than the first
        facts += ("audio track", muxed.index)
    if rendition.overlay is not None:  # a watermark: its pixels and rectangle (titles without one keep their ids)
        facts += ("watermark", rendition.overlay.identity)
    if rendition.iframes_only:  # (its windows' frames differ: one each)
        facts += ("iframes only",)
    text = repr(facts)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def encrypted(rendition: Rendition, encryption: Encryption | None) -> Rendition:
    """The rendition with its segments encrypted as `encryption` says: a spec id of its own (the
    bytes differ), made from the clear one's."""
    clear = rendition.clear_spec_id or rendition.spec_id
    if encryption is None:
        return replace(rendition, spec_id=clear, clear_spec_id=clear, encryption=None)
    facts = (clear, "encryption", encryption.method, encryption.rotation, encryption.kid)
    spec_id = hashlib.sha256(repr(facts).encode()).hexdigest()[:12]
    return replace(rendition, spec_id=spec_id, clear_spec_id=clear, encryption=encryption)


def check_encryption(params: TitleParams, container: str, vcodec: str | None = None) -> None:
    """The rendition's `encryption` fits its container, codec and key rotation (a profile's is
    checked as it is loaded, an API request's as it is parsed)."""
    if params.encryption != "sample-aes":
        return
    if container != "fmp4":
        raise ParameterError("encryption", "aes-128 or none with container=ts (sample-aes protects the samples of fMP4 segments)")
    if vcodec == "av1":
        raise ParameterError("encryption", "aes-128 or none with vcodec=av1 (cbcs of AV1 follows its tile layout: not supported)")
    if params.key_rotation:
        # one init segment names one default_KID (tenc); a key per period would need the key id
        # of each fragment in sample groups ('seig'), which players' support makes a poor bet
        raise ParameterError("key_rotation", "0 with encryption=sample-aes (its init segment names one key id)")


def _encryption(
    params: TitleParams, container: str, video: VideoSpec | None, source: ObjectInfo, profile: Profile, master_kid: str | None
) -> Encryption | None:
    """A rendition's encryption from its title parameters (`encryption`, `key_rotation`)."""
    if params.encryption == "none":
        return None
    check_encryption(params, container, video.codec if video is not None else None)
    if master_kid is None and profile.source_key is not None:  # an API request asked: it names the field
        raise ParameterError("encryption", "none: no encryption master key is configured on this server (encryption.key_file)")
    if master_kid is None:
        # a configured profile: the server's configuration, not the request, is at fault (a 500 its operator sees logged)
        raise EncryptionNotConfigured(
            f"profile {profile.name!r} encrypts its segments (encryption = {params.encryption!r}) and no encryption master"
            " key is configured: set encryption.key_file or LIVETX_ENCRYPTION_KEYS (`livetx keygen` writes a key file)",
            parameter="encryption",
        )
    version = version_tag(profile.name, source.key, source.etag)
    return Encryption(params.encryption, params.key_rotation, master_kid, version)


def _copies(profile: Profile, info: MediaInfo, origin: Fraction, duration: Fraction) -> tuple[dict[str, str], tuple[Fraction, ...]]:
    """The profile's copy renditions that this source cannot have, with why; and, when one can,
    the title times where every rendition's segments are cut: at the source's keyframes, so the
    copies' segments open on one and players switch between renditions at the same frames (the
    transcoded ones open on an IDR there anyway). Planned with the first copy rendition's
    segment lengths."""
    left_out: dict[str, str] = {}
    cuts: tuple[Fraction, ...] = ()
    for template in profile.renditions:
        if template.params.vcodec != "copy":
            continue
        video = info.video
        cap = template.params.maxrate or template.params.vb
        reason = "the source has no video" if video is None else copy_refusal(video, template.title.st, cap, info.format)
        if reason is None and video is not None and (colour := unsupported(video.colour)) is not None:
            reason = f"its colour ({colour})"
        if reason is not None or video is None:
            left_out[template.name] = reason or "the source has no video"
            continue
        if not cuts:
            total = video_grid(duration, video.fps).steps
            cuts = cuts_at_keyframes(video, origin, video.fps, total, template.title.st, template.title.initial_segments)
    return left_out, cuts


def _cut(grid: Grid, cuts: Sequence[Fraction]) -> tuple[SegmentWindow, ...]:
    """Windows of `grid` between the cut times (each on the grid step nearest to it); a cut that
    lands on the step of the one before is dropped."""
    steps = sorted({min(grid.steps, round(t / grid.unit)) for t in cuts} | {0, grid.steps})
    return tuple(SegmentWindow(n, first, end, grid.unit) for n, (first, end) in enumerate(itertools.pairwise(steps)))


def _rung(video: VideoSpec) -> tuple[str, int, int]:
    """What makes a ladder rung another choice for a player: its codec, dynamic range and size."""
    return f"{video.codec}/{video.dynamic_range}", video.width, video.height


def _capped_duplicate(params: RenditionParams, info: MediaInfo, video: VideoSpec, sizes: set[tuple[str, int, int]]) -> bool:
    """No upscaling in a ladder: a rendition that `sopt` capped to the source (its box was
    larger) and that lands on a size another rendition of its codec already has is dropped (an
    HEVC rung next to an H.264 one of the same size is another choice for the player)."""
    if params.sopt != 1 or params.s is None or _rung(video) not in sizes or info.video is None:
        return False
    display_w, display_h = info.video.display_size
    uncapped = output_size(replace(params, sopt=0), float(display_w), float(display_h))[:2]
    return uncapped != (video.width, video.height)


_First = tuple[Rendition, Grid, RenditionParams]  # the first video rendition, its grid and parameters


def _separate_audio(profile: Profile, info: MediaInfo, tracks: tuple[AudioTrack, ...]) -> bool:
    """Whether the selected audio tracks are renditions of their own: not for `muxed`, nor for
    `auto` unless the source has more than one audio track. A source without video plays as
    muxed (there is nothing to separate), and so does an API-made title without a master
    playlist: its renditions are played alone."""
    mode = profile.title.audio
    if mode == "muxed" or (mode == "auto" and len(info.audio_tracks) < 2):
        return False
    alone = profile.source_key is not None and profile.master_key is None
    return info.video is not None and bool(tracks) and not alone


def _muxed_track(profile: Profile, info: MediaInfo, tracks: tuple[AudioTrack, ...]) -> AudioTrack | None:
    """The track muxed into the renditions when it is not the first audio stream: a selection
    (not `auto` or `muxed`) plays its default track, the one the container flags, else its first."""
    if profile.title.audio in ("auto", "muxed") or not tracks:
        return None
    track = next((t for t in tracks if t.default), tracks[0])
    return None if info.audio is not None and track.index == info.audio.index else track


def _audio_renditions(
    source: ObjectInfo, origin: Fraction, profile: Profile, tracks: tuple[AudioTrack, ...], first: _First, taken: set[str]
) -> list[Rendition]:
    """Separate audio: each selected track as a stereo AAC rendition (a surround track
    downmixed) and, with surround=1, a track of 3 or more channels also as a 6-channel one, on
    the first video rendition's windows (so their boundaries align), in its container, with its
    segmenting and its audio parameters (ar, ab, aq, abopt). An API-made title's go next to its
    master playlist."""
    video, grid, params = first
    out = []
    for track in tracks:
        specs = [resolve_track_audio(params, track)]
        if profile.title.surround and track.channels >= 3:
            specs.append(resolve_surround_audio(params, track))
        for audio in specs:
            name = audio_rendition_name(track, audio.channels)
            if name in taken:
                raise ParameterError("audio", f"separate audio with no rendition named {name!r} (the name of audio track {track.index})")
            peak, average = estimate_bandwidth(None, audio)
            draft = Rendition(
                name, "", None, audio, video.windows, peak, average, codecs(None, audio), container=video.container, track=track
            )
            spec_id = _spec_id(source, origin, grid, draft, separate=True)
            prefix = profile.track_prefix + name if profile.track_prefix is not None else None
            out.append(replace(draft, spec_id=spec_id, initd=video.initd, ta=video.ta, object_prefix=prefix))
    return out


def _subtitle_spec_id(source: ObjectInfo, origin: Fraction, windows: tuple[SegmentWindow, ...], ref: SubtitleRef) -> str:
    """A subtitle rendition's segments depend on the source version (an embedded track) or the
    sidecar's version, the title's window, the video's windows and the timestamp map."""
    track = ref.track
    made_of = ("sidecar", track.key, track.etag) if isinstance(track, Sidecar) else ("stream", track.index)
    facts = (PLAN_VERSION, "vtt", source.key, source.etag, origin, windows, made_of, ref.container)
    return hashlib.sha256(repr(facts).encode()).hexdigest()[:12]


def _selected(selection: str, name: str, language: str | None) -> bool:
    """Whether the `subtitles` parameter (normal form, see media/params.py) takes a track:
    by its stream name (`s2`) or by language (`en` takes `eng` and `en-US`; `fre` takes `fr`)."""
    if selection in ("all", "none"):
        return selection == "all"
    tag = language_tag(language)
    for item in selection.split(","):
        wanted = language_tag(item)
        if item == name or tag == wanted or tag.startswith(wanted + "-"):
            return True
    return False


def _subtitle_renditions(
    source: ObjectInfo,
    info: MediaInfo,
    profile: Profile,
    origin: Fraction,
    video: Rendition,
    sidecars: Sequence[Sidecar],
    taken: set[str],
) -> list[Rendition]:
    """A WebVTT rendition per selected embedded text track (bitmap tracks are never
    converted), then per selected readable sidecar, on the first video rendition's windows:
    segment i of every rendition covers the same time, with the same EXTINF.

    An API-made title's sidecars are the files its request named (IMM `SourceSubtitles`): each
    plays, whatever `subtitles` selects (that selects its embedded tracks), and all go next to
    its master, as its audio renditions do. Without a master it has none: each target plays
    alone, and a media playlist cannot carry renditions."""
    params = profile.title
    api = profile.source_key is not None
    if info.video is None or (api and profile.track_prefix is None):
        return []  # nothing to show them over, or no master playlist to list them
    tracks: list[SubtitleTrack | Sidecar] = [t for t in info.subtitle_tracks if not t.bitmap]
    tracks += [s for s in sidecars if s.error is None and s.cues]
    out = []
    for track in tracks:
        name = subtitle_rendition_name(track)
        ref = SubtitleRef(track, video.container, params.ss if isinstance(track, Sidecar) else 0, not is_mp4_family(info.format))
        named = api and isinstance(track, Sidecar)  # a request named it
        if not named and not _selected(params.subtitles, name, ref.language):
            continue
        if name in taken:
            raise ParameterError("subtitles", f"none, or no rendition named {name!r} (the name of a subtitle track)")
        taken.add(name)
        prefix = profile.track_prefix + name if profile.track_prefix is not None else None
        draft = Rendition(
            name, "", None, None, video.windows, 0, 0, "", initd=0, ta=video.ta, object_prefix=prefix, container="vtt", subtitle=ref
        )
        out.append(replace(draft, spec_id=_subtitle_spec_id(source, origin, video.windows, ref)))
    return out


IFRAME_RENDITION = "iframe"  # the name of a title's I-frame rendition
IFRAME_CRF = 28.0  # its frames' quality: small thumbnails for scrubbing, not for watching
IFRAME_INTERVAL_MS = 1000  # one I-frame entry per this much of the title (the last shorter)
IFRAME_CODECS = ("h264", "h265")  # what native players decode in I-frame playlists (AV1 titles get none)
IFRAME_BITS_PER_PIXEL = 1.0  # an intra frame at IFRAME_CRF, about: the peak estimate before any is measured


def _iframe_renditions(
    source: ObjectInfo,
    origin: Fraction,
    profile: Profile,
    duration: Fraction,
    renditions: Sequence[Rendition],
    watermarks: Mapping[str, WatermarkImage] | None = None,
) -> list[Rendition]:
    """The I-frame rendition (`iframes=1`): entries every IFRAME_INTERVAL_MS on the grid of the
    lowest-bandwidth H.264 video rendition (H.265 when the title has no H.264), each a whole
    segment of one IDR frame (the one shown at the entry's time, picked as that rendition picks
    it), in its codec, pixel format, frame rate and container, scaled down to `iframe_height`,
    no audio.

    Whole segments, not byte ranges into the regular segments: those are made just in time, so
    their byte offsets are unknown when the playlist is written. None for API-made titles (their
    jobs make every rendition's segments), titles without video, or encrypted ones (clear
    I-frames would show what the encrypted renditions hide). The base rendition's watermark is
    drawn on its frames too, made for their size."""
    params = profile.title
    video_renditions = [
        r
        for r in renditions
        if r.video is not None and r.video.codec in IFRAME_CODECS and r.video.dynamic_range == "sdr" and r.track is None
    ]
    if not params.iframes or profile.source_key is not None or not video_renditions:
        return []
    if any(r.encryption is not None for r in renditions) or IFRAME_RENDITION in {r.name for r in renditions}:
        return []
    # H.264 where the title has it (every player decodes it), else HEVC; the lowest rung of it
    base = min(video_renditions, key=lambda r: (r.video is None or r.video.codec != "h264", r.bandwidth))
    assert base.video is not None
    video = _iframe_video(base.video, params.iframe_height)
    grid = video_grid(duration, video.fps)
    windows = plan_segments(grid, IFRAME_INTERVAL_MS)
    pixels = video.width * video.height
    peak = int(IFRAME_BITS_PER_PIXEL * pixels * 1.05 / float(windows[0].duration))  # one frame per entry
    marked = next((t.params for t in profile.renditions if t.name == base.name), None)
    overlay = make_overlay(marked, video.width, video.height, watermarks or {}) if marked is not None else None
    draft = Rendition(
        IFRAME_RENDITION,
        "",
        video,
        None,
        windows,
        peak,
        peak // 2,
        codecs(video, None),
        container=base.container,
        iframes_only=True,
        overlay=overlay,
    )
    return [replace(draft, spec_id=_spec_id(source, origin, grid, draft), initd=0, ta=base.ta)]


def _even(value: Fraction) -> int:
    return max(2, 2 * round(value / 2))


def _iframe_video(base: VideoSpec, max_height: int) -> VideoSpec:
    """The I-frame rendition's encoder: the base rendition's, scaled to `max_height` at most (its
    picture with it, for crop and fill), in CRF mode at IFRAME_CRF."""
    scale = min(Fraction(1), Fraction(max_height, base.height))
    width, height = _even(base.width * scale), _even(base.height * scale)
    picture = None
    if base.picture is not None:
        picture = (_even(base.picture[0] * scale), _even(base.picture[1] * scale))
    return replace(base, width=width, height=height, picture=picture, crf=IFRAME_CRF, bitrate=None, maxrate=None, bufsize=None, gop=None)


def build_title(
    source: ObjectInfo,
    info: MediaInfo,
    profile: Profile,
    threads: int = 0,
    sidecars: Sequence[Sidecar] = (),
    master_kid: str | None = None,
    watermarks: Mapping[str, WatermarkImage] | None = None,
) -> Title:
    """The title of `source` under `profile`. `sidecars`: the subtitle files found next to the
    source (livetx/subtitles/sidecar.py), each read already; they are part of its identity.
    `master_kid`: the encryption master key that encrypts its encrypted renditions (none
    configured: a rendition asking for encryption is an error). `watermarks`: the decoded
    images the renditions' `wm_image` name, by key (the catalog read them); a rendition's
    watermark is made into an overlay for its output size here (CPU work: the catalog plans a
    watermarked title in a thread)."""
    params = profile.title
    # Title time 0 is where the video starts (its frames then fall on the output grid), or the
    # container's start for audio-only sources; the other stream keeps its offset from it.
    base = info.video.start if info.video is not None and info.video.start is not None else info.start
    available = info.end - base
    skip = Fraction(params.ss, 1000)
    if skip and skip >= available:
        raise ParameterError("ss", f"less than the source's duration ({float(available):.3f} s)")
    origin = base + skip
    duration = available - skip
    if params.t:
        duration = min(duration, Fraction(params.t, 1000))
    tracks = selected_tracks(params.audio, info)
    separate = _separate_audio(profile, info, tracks)
    muxed = None if separate else _muxed_track(profile, info, tracks)
    renditions: list[Rendition] = []
    sizes: set[tuple[str, int, int]] = set()
    first: _First | None = None
    left_out, cuts = _copies(profile, info, origin, duration)
    for template in profile.renditions:
        rparams, tparams = template.params, template.title
        if template.name in left_out:
            continue
        video = resolve_video(rparams, info, threads=threads)
        audio = None if separate else resolve_audio(rparams, info, muxed)
        if video is None and audio is None:
            raise ParameterError("an", "a rendition needs video or audio")
        if video is not None and rparams.dynamicrange == "hdr" and video.dynamic_range == "sdr":
            continue  # an HDR rendition of an SDR source: left out (its SDR renditions play)
        if video is not None and _capped_duplicate(rparams, info, video, sizes):
            continue  # above the source: capped to a size another rendition already has
        if video is not None:
            sizes.add(_rung(video))
        grid = video_grid(duration, video.fps) if video is not None else audio_grid(duration, audio.sample_rate)  # type: ignore[union-attr]
        windows = _cut(grid, cuts) if cuts else plan_segments(grid, tparams.st, tparams.initial_segments)
        peak, average = estimate_bandwidth(video, audio)
        container = resolve_container(rparams)
        overlay = make_overlay(rparams, video.width, video.height, watermarks or {}) if video is not None else None
        draft = Rendition(
            template.name, "", video, audio, windows, peak, average, codecs(video, audio), container=container, overlay=overlay
        )
        rendition = replace(
            draft,
            spec_id=_spec_id(source, origin, grid, draft, separate, muxed),
            initd=tparams.initd,
            ta=tparams.ta,
            object_prefix=template.object_prefix,
        )
        rendition = encrypted(rendition, _encryption(tparams, container, video, source, profile, master_kid))
        renditions.append(rendition)
        first = first or (rendition, grid, rparams)
    if first is None and any(t.params.dynamicrange == "hdr" for t in profile.renditions):
        raise ParameterError("dynamicrange", "an HLG or PQ source for hdr (this source is SDR)")
    if separate and first is not None:
        audio_renditions = _audio_renditions(source, origin, profile, tracks, first, taken={r.name for r in renditions})
        renditions += [encrypted(r, first[0].encryption) for r in audio_renditions]  # as the first rendition
    if first is not None:
        renditions += _subtitle_renditions(source, info, profile, origin, first[0], sidecars, {r.name for r in renditions})
        renditions += _iframe_renditions(source, origin, profile, duration, renditions, watermarks)  # last: the others keep their places
    return Title(
        source=source,
        info=info,
        profile=profile,
        origin=origin,
        duration=duration,
        renditions=tuple(renditions),
        muxed_track=muxed,
        sidecars=tuple(sidecars),
        left_out=tuple(left_out.items()),
    )
