"""Transcoding parameters in the vocabulary of OSS `hls/m3u8`, validated, and resolved against a source.

Pure: no av import. Each parameter is declared once, in the dataclasses below, with its
default, what it accepts (a livetx.contract spec) and what it means; parsing, error texts and
the OpenAPI schema derive from that. `parse_title_params` and `parse_rendition_params` take
loosely typed mappings (config tables, query strings, API bodies) and either return frozen
dataclasses or raise `ParameterError` naming the parameter and what is allowed. `resolve_video` and
`resolve_audio` turn them, with the header probe of a source, into the concrete encoder
specs a worker runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from livetx.contract import Choice, DurationList, Integer, Invalid, Number, Selection, Size, Spec, Text, param, param_names, parse_params
from livetx.copyplan import copy_codecs
from livetx.errors import ColourUnsupported, LivetxError, ParameterError
from livetx.hls.languages import language_matches, language_tag
from livetx.media.colour import unsupported
from livetx.media.model import AudioSpec, AudioTrack, MediaInfo, VideoInfo, VideoSpec
from livetx.media.watermark import POSITIONS
from livetx.storage.base import check_source_key

SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
PIXEL_FORMATS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le")
CONTAINERS = ("ts", "fmp4")
AUDIO_LAYOUTS = ("auto", "muxed", "all", "default")  # the title's `audio` keywords (else a list of track selectors)
SURROUND_CHANNELS = 6  # the channels of a surround rendition (`surround=1`): AAC 5.1
# the title's `subtitles`: an item is a language (RFC 5646 or ISO 639-2: `en`, `pt-br`, `fre`) or a
# source stream (`s<index>`)
SUBTITLE_SELECTION = Selection(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*|s[0-9]{1,5}", "languages (en, fre, pt-br) and streams (s<index>)")
VIDEO_CODECS = ("h264", "h265", "av1", "copy")  # copy: the source's video packets, untouched (livetx/copyplan.py)
DYNAMIC_RANGES = ("sdr", "hdr")  # a rendition's `dynamicrange`
HDR_PIXEL_FORMAT = "yuv420p10le"  # an HDR rendition's (HEVC Main 10)
ENCRYPTIONS = ("none", "aes-128", "sample-aes")  # a rendition's `encryption` (sample-aes: CMAF cbcs, fMP4 only)
FMP4_ONLY = ("av1", "copy")  # codecs livetx carries in fMP4 only (MPEG-TS has no AV1 mapping players read)
AV1_PIXEL_FORMATS = ("yuv420p", "yuv420p10le")  # what SVT-AV1 encodes (AV1 Main profile)
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
CAP_RULE = Choice((0, 1, 2))  # the `*opt` rules: 0 the target; 1 the source's when lower; 2 an error then
SWITCH = Choice((0, 1))
BITRATE = Integer(10_000, 100_000_000, "bit/s")
SEGMENT_MS = Integer(1000, 15000, "ms")
FPS = Number(1, 120, ratio=True, max_denominator=1001, examples="25, 29.97 or 30000/1001")
WM_TEXT_LENGTH = 100  # characters of a text watermark
WM_MARGIN = Integer(0, 4096, "px")


def _image_key(text: str) -> str:
    """A watermark image's key in the source store, as a source key is checked."""
    try:
        return check_source_key(text)
    except LivetxError:
        raise ValueError(text) from None


def _one_line(text: str) -> str:
    if not text.strip() or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError(text)
    return text


def _colour(text: str) -> str:
    if not re.fullmatch(r"#?[0-9a-f]{6}", text):
        raise ValueError(text)
    return text.lstrip("#")


WM_IMAGE = Text("the key of a PNG, JPEG or WebP image in the source store", 1024, _image_key)
WM_TEXT = Text(f"one line of 1 to {WM_TEXT_LENGTH} characters", WM_TEXT_LENGTH, _one_line)
WM_COLOR = Text("an RGB colour as 6 hex digits (ffffff, #ff8800)", 7, _colour, lower=True)


# ---- the title's `audio`: a layout keyword, or the tracks to play --------------------------

# a source stream index, or a language range (but not the keyword `all`), in any case: a JSON
# Schema pattern too (ECMA-262, which has no flags)
_SELECTOR = r"(?![Aa][Ll][Ll](?:[,.]|$))(?:[Ii][0-9]{1,3}|[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*)"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" for c in word)


@dataclass(frozen=True)
class AudioSelection(Spec):
    """The title's `audio`: one of AUDIO_LAYOUTS, or the audio tracks to play, each as a rendition
    of its own: selectors separated by `,` or `.` (or a list of them), each `i<stream index>` or a
    language (ISO 639-1 or -2 code, or an RFC 5646 tag, matched as a range: `en` takes `en-US`).
    Case does not matter. Normal form: lower case, the selectors joined by `,`, each once."""

    max_items: int = 16
    max_length: int = 256

    def parse(self, raw: Any) -> str:
        if isinstance(raw, str) and raw.lower() in AUDIO_LAYOUTS:
            return raw.lower()
        if isinstance(raw, str) and len(raw) <= self.max_length:
            items = re.split("[,.]", raw)
        elif isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
            items = list(raw)  # (selectors only: a keyword is text)
        else:
            raise Invalid()
        if not 0 < len(items) <= self.max_items:
            raise Invalid()
        for item in items:
            if not re.fullmatch(_SELECTOR, item):
                alone = "; keywords stand alone" if item.lower() in AUDIO_LAYOUTS else ""
                raise Invalid(f"{self.allowed} ({item!r} is not a selector{alone})")
        return ",".join(dict.fromkeys(item.lower() for item in items))

    @property
    def allowed(self) -> str:
        return (
            f"one of {', '.join(AUDIO_LAYOUTS)}, or up to {self.max_items} track selectors separated by ',' or '.',"
            " each i<stream index> or a language (en, fra, pt-BR)"
        )

    def schema(self) -> dict[str, Any]:
        keywords = "|".join(_any_case(k) for k in AUDIO_LAYOUTS)
        text = f"^({keywords}|{_SELECTOR}([,.]{_SELECTOR}){{0,{self.max_items - 1}}})$"
        items = {"type": "string", "pattern": f"^{_SELECTOR}$"}
        return {
            "oneOf": [
                {"type": "string", "maxLength": self.max_length, "pattern": text},
                {"type": "array", "minItems": 1, "maxItems": self.max_items, "items": items},
            ]
        }


def selected_tracks(selection: str, info: MediaInfo) -> tuple[AudioTrack, ...]:
    """The source's audio tracks an `audio` value selects, in stream order: every track for
    `auto`, `muxed` and `all`, the default one for `default`, else those a selector matches.
    A selector that matches no track is a ParameterError naming it."""
    tracks = info.audio_tracks
    if selection == "default":
        default = info.default_audio_track
        return (default,) if default is not None else ()
    if selection in AUDIO_LAYOUTS:
        return tracks
    chosen: set[int] = set()
    for selector in selection.split(","):
        matched = {t.index for t in tracks if _selects(selector, t)}
        if not matched:
            have = ", ".join(f"i{t.index} {language_tag(t.language)}" for t in tracks) or "none"
            raise ParameterError("audio", f"selectors that each match an audio track of the source ({have}): {selector!r} matches none")
        chosen |= matched
    return tuple(t for t in tracks if t.index in chosen)


def _selects(selector: str, track: AudioTrack) -> bool:
    if selector[0] == "i" and selector[1:].isdigit():
        return track.index == int(selector[1:])
    return language_matches(selector, track.language)


@dataclass(frozen=True)
class TitleParams:
    """Parameters shared by every rendition of a title: the window and the segmenting."""

    ss: int = param(Integer(0, None, "ms"), 0, "ms into the source where the title starts")
    t: int = param(Integer(0, None, "ms"), 0, "ms of source in the title; 0: to the end")
    st: int = param(Integer(5000, 15000, "ms"), 10000, "ms per regular segment")
    initial_segments: tuple[int, ...] = param(
        DurationList(SEGMENT_MS, 20), (2000, 2000, 2000), "ms of each of the first, shorter segments (fast start)"
    )
    initd: int = param(Integer(None, None, "ms"), 30000, "ms pre-transcoded when the playlist is made")
    ta: int = param(Integer(10, 30), 12, "segments made ahead when playback starts")
    audio: str = param(
        AudioSelection(),
        "auto",
        "how the source's audio tracks reach the player. muxed: its first audio track inside each video rendition."
        " all: video renditions carry no audio, and every audio track of the source is its own stereo AAC rendition"
        " a<stream index> (EXT-X-MEDIA group aac) on the video's segment windows. default: the same, for the one track"
        " the container flags default (else the first). A list of selectors separated by ',' or '.', each i<stream"
        " index> or a language (en, fra, pt-BR: a range, so en takes en-US): the same, for the tracks they match, in"
        " stream order (a selector matching none is an error). auto: all when the source has video and more than one"
        " audio track, else muxed. Without video, or without a master playlist (an API target without MasterURI),"
        " audio stays muxed: the first track for auto, else the selection's default track",
    )
    surround: int = param(
        SWITCH,
        0,
        "1: a source track of 3 or more channels also gets a 6-channel AAC rendition a<index>c6 (EXT-X-MEDIA group"
        " aac-6ch; its stereo one stays), at three times the stereo bitrate (384000 bit/s by default, 3 x ab when ab is"
        " set), and each video variant is listed once per group. Separate audio renditions only",
    )
    encryption: str = param(
        Choice(ENCRYPTIONS),
        "none",
        "segment encryption. aes-128: every media segment encrypted whole with AES-128-CBC (EXT-X-KEY METHOD=AES-128,"
        " MPEG-TS and fMP4). sample-aes: the samples of fMP4 segments encrypted as CMAF cbcs (EXT-X-KEY"
        " METHOD=SAMPLE-AES; players with EME). The key is fetched from a key URL under the title, signed like its"
        " playlists. A rendition may set it for itself; separate audio renditions follow the first rendition, subtitles"
        " stay clear. Needs an encryption master key (encryption.key_file)",
    )
    key_rotation: int = param(
        Integer(0, 100000),
        0,
        "segments per content key: a new key (and EXT-X-KEY tag) every key_rotation segments; 0: one key for the title",
    )
    iframes: int = param(
        SWITCH,
        1,
        "1: an I-frame rendition `iframe` (EXT-X-I-FRAME-STREAM-INF, EXT-X-I-FRAMES-ONLY) for scrubbing and fast-forward in"
        " native players: one entry per second, each a segment of one IDR frame (the frame shown at that second), in the"
        " codec, pixel format and container of the lowest H.264 rendition (H.265 for an HEVC-only title), scaled to iframe_height. Made"
        " when a player asks, never ahead. None for titles without video, encrypted titles, or playlists made through the API",
    )
    iframe_height: int = param(
        Integer(64, 1080, "px"), 360, "the I-frame rendition's height at most (the lowest rendition's picture scaled down to fit)"
    )
    subtitles: str = param(
        SUBTITLE_SELECTION,
        "all",
        "the subtitle tracks played as WebVTT renditions (EXT-X-MEDIA TYPE=SUBTITLES) on the video's segment windows:"
        " all (every embedded text track and readable sidecar file), none, or a comma-separated list of languages"
        " (en, fre, pt-br) and embedded streams (s<index>); bitmap tracks are never converted. Playlists made through"
        " the API: the source's embedded tracks only (SourceSubtitles always play), and none without a master playlist",
    )


@dataclass(frozen=True)
class RenditionParams:
    vcodec: str = param(
        Choice(VIDEO_CODECS),
        "h264",
        "video codec (av1: fMP4 only, yuv420p or yuv420p10le; copy: the source's H.264 or HEVC as it is, fMP4 only,"
        " when it qualifies, else the rendition is left out)",
    )
    container: str | None = param(
        Choice(CONTAINERS),
        None,
        "segment container: ts (MPEG-TS, no B-frames) or fmp4 (CMAF fragments, B-frames on); default: fmp4 for h265 and av1, else ts",
    )
    fps: Fraction | None = param(FPS, None, "frame rate")
    fpsopt: int = param(CAP_RULE, 1, "a higher fps than the source's: 0 as asked, 1 the source's, 2 an error")
    s: str | None = param(Size(64, 4096), None, "output size box: WxH, Wx or xH")
    sopt: int = param(CAP_RULE, 1, "a larger box than the source: 0 as asked, 1 the source's area, 2 an error")
    scaletype: str = param(Choice(("stretch", "crop", "fill", "fit")), "stretch", "how the picture fits a WxH box")
    arotate: int = param(SWITCH, 0, "1: an explicit WxH box turns with a source shown at 90 or 270 degrees")
    pixfmt: str = param(Choice(PIXEL_FORMATS), "yuv420p", "pixel format (yuv420p: what HLS players decode everywhere)")
    dynamicrange: str = param(
        Choice(DYNAMIC_RANGES),
        "sdr",
        "sdr: BT.709, tone mapped from an HDR source; hdr: keep an HLG or PQ source's signal (h265, fMP4, 10 bits;"
        " left out for an SDR source)",
    )
    crf: float | None = param(Number(0, 51), None, "constant quality (23 unless vb is given)")
    vb: int | None = param(BITRATE, None, "video bitrate, bit/s")
    vbopt: int = param(CAP_RULE, 1, "a higher vb than the source's: 0 as asked, 1 the source's, 2 an error")
    maxrate: int | None = param(BITRATE, None, "peak bitrate in crf mode, bit/s")
    bufsize: int | None = param(Integer(10_000, 200_000_000, "bit"), None, "VBV buffer in crf mode, bit")
    g: int | None = param(Integer(1, 100000), None, "GOP length in frames; default: one keyframe per segment")
    preset: str = param(Choice(PRESETS), "veryfast", "x264/x265 preset (av1: the SVT-AV1 preset of the same speed rank)")
    an: int = param(SWITCH, 0, "1: no audio")
    acodec: str = param(Choice(("aac",)), "aac", "audio codec")
    ar: int | None = param(Choice(SAMPLE_RATES), None, "audio sample rate, Hz; default: the source's")
    ac: int | None = param(Integer(1, 8), None, "audio channels; default: the source's, at most 2")
    ab: int | None = param(Integer(1000, 10_000_000, "bit/s"), None, "audio bitrate, bit/s")
    abopt: int = param(CAP_RULE, 1, "a higher ab than the source's: 0 as asked, 1 the source's, 2 an error")
    aq: int | None = param(Integer(0, 100), None, "audio quality 0-100 (instead of ab)")
    # a watermark (MPS Watermark: Type Image or Text, ReferPos, Dx/Dy, Width, Content, FontSize,
    # FontColor, FontAlpha): drawn over every frame after scaling (livetx/media/watermark.py)
    wm_image: str | None = param(
        WM_IMAGE,
        None,
        "image watermark: the key of a PNG, JPEG or WebP (at most 1 MiB and 4096 px a side) in the source store;"
        " a change of the image makes new segments",
    )
    wm_text: str | None = param(WM_TEXT, None, "text watermark: one line, drawn in the font Pillow ships")
    wm_pos: str = param(Choice(POSITIONS), "tr", "watermark corner: tl, tr, bl, br, or c (the centre)")
    wm_dx: int = param(WM_MARGIN, 0, "watermark margin from the left or right edge, px")
    wm_dy: int = param(WM_MARGIN, 0, "watermark margin from the top or bottom edge, px")
    wm_width: float | None = param(
        Number(0.01, 1),
        None,
        "image watermark width as a fraction of the output width (0.01-1); default: the image's own."
        " The wm_* parameters but wm_image and wm_text place a watermark and change nothing without one",
    )
    wm_alpha: float = param(Number(0, 1), 1.0, "watermark opacity, 0 (invisible) to 1")
    wm_size: int | None = param(Integer(8, 512, "px"), None, "text watermark font size, px; default: 5 % of the output height")
    wm_color: str = param(WM_COLOR, "ffffff", "text watermark colour, RGB hex")


# ---- parsing ----------------------------------------------------------------------------

KNOWN_TITLE = frozenset(param_names(TitleParams))
KNOWN_RENDITION = frozenset(param_names(RenditionParams))
WATERMARK_PARAMS = tuple(name for name in param_names(RenditionParams) if name.startswith("wm_"))  # what draws a watermark
EXCLUSIVE = (  # (parameter named in the error, what is refused)
    ("crf", "crf and vb are mutually exclusive"),
    ("maxrate", "maxrate and bufsize apply in crf mode only"),
    ("aq", "aq and ab are mutually exclusive"),
    ("container", "fmp4 with vcodec=av1 or copy (AV1 and copies are carried in fMP4 only)"),
    ("pixfmt", f"one of {', '.join(AV1_PIXEL_FORMATS)} with vcodec=av1 (what SVT-AV1 encodes)"),
    ("wm_text", "no wm_text with wm_image (one watermark per rendition)"),
    ("dynamicrange", "hdr with vcodec=h265 in fmp4 only (HEVC Main 10, as Apple's players take HDR)"),
    ("vcodec", "no watermark with vcodec=copy (a copy's frames are the source's)"),
)


def parse_title_params(params: Mapping[str, Any]) -> TitleParams:
    return TitleParams(**parse_params(TitleParams, params))


def parse_rendition_params(params: Mapping[str, Any]) -> RenditionParams:
    unknown = set(params) - KNOWN_RENDITION - KNOWN_TITLE - {"name"}
    if unknown:
        raise ParameterError(sorted(unknown)[0], "a known parameter (unknown name)")
    return RenditionParams(**settle_rendition(parse_params(RenditionParams, params)))


def settle_rendition(values: dict[str, Any]) -> dict[str, Any]:
    """The parsed fields of a RenditionParams (or of a subclass: livetx/concat.py's ConcatParams)
    checked against each other (EXCLUSIVE), with crf's default filled in when vb is unset."""
    refused = (
        values["crf"] is not None and values["vb"] is not None,
        values["vb"] is not None and (values["maxrate"] is not None or values["bufsize"] is not None),
        values["ab"] is not None and values["aq"] is not None,
        values["vcodec"] in FMP4_ONLY and values["container"] == "ts",
        values["vcodec"] == "av1" and values["pixfmt"] not in AV1_PIXEL_FORMATS,
        values["wm_image"] is not None and values["wm_text"] is not None,
        values["dynamicrange"] == "hdr" and (values["vcodec"] != "h265" or values["container"] == "ts"),
        values["vcodec"] == "copy" and (values["wm_image"] is not None or values["wm_text"] is not None),
    )
    for (name, message), bad in zip(EXCLUSIVE, refused, strict=True):
        if bad:
            raise ParameterError(name, message)
    if values["vb"] is None and values["crf"] is None:
        values["crf"] = 23.0
    return values


# ---- resolving against a source ----------------------------------------------------


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def output_size(params: RenditionParams, width: float, height: float) -> tuple[int, int, int, int]:
    """(frame width, frame height, picture width, picture height) for a source of display size WxH.

    The `s` box is capped at the source's area by `sopt`, then `scaletype` fits the picture to it:
    stretch fills the box exactly; fit scales to fit inside and the frame is the picture; fill
    scales to fit inside and pads the box with black; crop scales to cover and cuts the middle.
    """
    if params.s is None:
        return _even(width), _even(height), _even(width), _even(height)
    w_text, _, h_text = params.s.partition("x")
    if w_text and h_text:
        box_w, box_h = int(w_text), int(h_text)
    elif w_text:
        box_w = int(w_text)
        box_h = _even(height * box_w / width)
    else:
        box_h = int(h_text)
        box_w = _even(width * box_h / height)
    if box_w * box_h > width * height:
        if params.sopt == 2:
            raise ParameterError("s", f"at most the source's {round(width)}x{round(height)} (sopt=2)")
        if params.sopt == 1:
            scale = math.sqrt(width * height / (box_w * box_h))
            box_w, box_h = _even(box_w * scale), _even(box_h * scale)
    if not (w_text and h_text) or params.scaletype == "stretch":
        return box_w, box_h, box_w, box_h
    fit = min(box_w / width, box_h / height)
    cover = max(box_w / width, box_h / height)
    if params.scaletype == "fit":
        return _even(width * fit), _even(height * fit), _even(width * fit), _even(height * fit)
    if params.scaletype == "fill":
        return box_w, box_h, min(box_w, _even(width * fit)), min(box_h, _even(height * fit))
    return box_w, box_h, max(box_w, _even(width * cover)), max(box_h, _even(height * cover))  # crop


def resolve_video(params: RenditionParams, info: MediaInfo, threads: int = 0) -> VideoSpec | None:
    if info.video is None:
        return None
    src = info.video
    if params.vcodec == "copy":
        return _copy_spec(src, threads)
    fps = src.fps
    if params.fps is not None:
        if src.fps < params.fps and params.fpsopt == 2:
            raise ParameterError("fps", f"at most the source's {float(src.fps):g} fps (fpsopt=2)")
        fps = min(params.fps, src.fps) if params.fpsopt == 1 else params.fps
    bitrate = _capped(params.vb, src.bit_rate, params.vbopt, "vb")
    # plan in display size (square pixels, rotation applied); frames are encoded upright
    display_w, display_h = src.display_size
    if params.arotate and src.rotation in (90, 270) and params.s and "x" in params.s.strip("x"):
        box_w, _, box_h = params.s.partition("x")
        params = replace(params, s=f"{box_h}x{box_w}")
    width, height, pic_w, pic_h = output_size(params, float(display_w), float(display_h))
    colour = src.colour
    if (reason := unsupported(colour)) is not None:
        raise ColourUnsupported(f"cannot convert this video's colour: {reason} is not supported")
    hdr = params.dynamicrange == "hdr" and colour.dynamic_range != "sdr"  # (an SDR source: an SDR spec, left out by the title)
    return VideoSpec(
        codec=params.vcodec,
        width=width,
        height=height,
        picture=(pic_w, pic_h) if (pic_w, pic_h) != (width, height) else None,
        fps=fps,
        crf=params.crf if params.vb is None else None,
        bitrate=bitrate,
        maxrate=params.maxrate,
        bufsize=params.bufsize,
        gop=params.g,
        preset=params.preset,
        pix_fmt=HDR_PIXEL_FORMAT if hdr else params.pixfmt,
        rotation=src.rotation,
        threads=threads,
        dynamic_range=colour.dynamic_range if hdr else "sdr",
        mastering=colour.mastering if hdr and colour.dynamic_range == "pq" else None,
        content_light=colour.content_light if hdr and colour.dynamic_range == "pq" else None,
    )


def _copy_spec(src: VideoInfo, threads: int) -> VideoSpec:
    """A copy rendition's spec: the source's own size, rate, format, bitrate and signal (whether
    it can be copied at all is the title's to decide: livetx/copyplan.py)."""
    colour = src.colour
    return VideoSpec(
        codec="copy",
        width=src.width,
        height=src.height,
        fps=src.fps,
        crf=None,
        bitrate=src.bit_rate,
        pix_fmt=src.pix_fmt or "yuv420p",
        threads=threads,
        dynamic_range=colour.dynamic_range,
        copy_codecs=copy_codecs(src) if src.codec in ("h264", "hevc") and src.profile is not None else "",
    )


def resolve_container(params: RenditionParams) -> str:
    """The segment container: as asked, else fMP4 for HEVC (Apple's players take HEVC only in
    fMP4, tagged hvc1) and AV1 (fMP4 only), and MPEG-TS for everything else."""
    if params.container is not None:
        return params.container
    return "fmp4" if params.vcodec == "h265" or params.vcodec in FMP4_ONLY else "ts"


def resolve_audio(params: RenditionParams, info: MediaInfo, track: AudioTrack | None = None) -> AudioSpec | None:
    """The audio muxed into a rendition: the source's first audio stream, or `track`."""
    if info.audio is None or params.an:
        return None
    if track is not None:
        return _audio_spec(params, track.sample_rate, params.ac or min(track.channels, 2), track.bit_rate)
    return _audio_spec(params, info.audio.sample_rate, params.ac or min(info.audio.channels, 2), info.audio.bit_rate)


def resolve_track_audio(params: RenditionParams, track: AudioTrack) -> AudioSpec:
    """The stereo AAC rendition of one source audio track (`audio=all`): a surround track is
    downmixed to two channels, a mono one stays mono."""
    return _audio_spec(params, track.sample_rate, min(params.ac or track.channels, track.channels, 2), track.bit_rate)


def resolve_surround_audio(params: RenditionParams, track: AudioTrack) -> AudioSpec:
    """The 6-channel AAC rendition of a surround track (`surround=1`), at three times the stereo
    rendition's bitrate (the same bits per channel pair): 3 x ab, capped by abopt against the
    source's bitrate; else 3 x what aq gives two channels (384 kbit/s when aq is unset too)."""
    pairs = SURROUND_CHANNELS // 2
    rate = params.ar or (track.sample_rate if track.sample_rate in SAMPLE_RATES else 48000)
    target = params.ab * pairs if params.ab is not None else None
    bitrate = _capped(target, track.bit_rate, params.abopt, "ab") or pairs * aq_bitrate(params.aq, 2)
    return AudioSpec(sample_rate=rate, channels=SURROUND_CHANNELS, bitrate=bitrate)


def _audio_spec(params: RenditionParams, sample_rate: int, channels: int, source_bit_rate: int | None) -> AudioSpec:
    rate = params.ar or (sample_rate if sample_rate in SAMPLE_RATES else 48000)
    bitrate = _capped(params.ab, source_bit_rate, params.abopt, "ab") or aq_bitrate(params.aq, channels)
    return AudioSpec(sample_rate=rate, channels=channels, bitrate=bitrate)


def aq_bitrate(aq: int | None, channels: int) -> int:
    """Audio quality 0-100 as an AAC bitrate: 32 to 320 kbit/s per two channels (64 kbit/s each
    when unset). FFmpeg's AAC encoder barely varies its VBR output, so quality maps to rate."""
    if aq is None:
        return 64000 * min(channels, 2)
    per_pair = 32000 + (320000 - 32000) * aq // 100
    return max(16000, per_pair * channels // 2)


def _capped(target: int | None, source: int | None, opt: int, name: str) -> int | None:
    """A bitrate under its `*opt` rule: 0 always the target; 1 the source's when lower; 2 an error then."""
    if target is None or source is None or source >= target or opt == 0:
        return target
    if opt == 2:
        raise ParameterError(name, f"at most the source's {source} bit/s ({name}opt=2)")
    return source
