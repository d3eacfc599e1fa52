"""Transcoding parameters in the vocabulary of OSS `hls/m3u8`, validated, and resolved against a source.

Pure: no av import. `parse_title_params` and `parse_rendition_params` take loosely typed
mappings (config tables, query strings, API bodies) and either return frozen dataclasses or
raise `ParameterError` naming the parameter and what is allowed. `resolve_video` and
`resolve_audio` turn them, with the header probe of a source, into the concrete encoder
specs a worker runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from livetx import numbers
from livetx.errors import ParameterError
from livetx.media.model import AudioSpec, MediaInfo, VideoSpec

SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
PIXEL_FORMATS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_SIZE = re.compile(r"([0-9]{0,5})x([0-9]{0,5})")  # ASCII digits only (\d takes any script's)


@dataclass(frozen=True)
class TitleParams:
    """Parameters shared by every rendition of a title: the window and the segmenting."""

    ss: int = 0  # ms into the source
    t: int = 0  # ms of source; 0: to the end
    st: int = 10000  # ms per regular segment
    initial_segments: tuple[int, ...] = (2000, 2000, 2000)  # ms
    initd: int = 30000  # ms pre-transcoded when the playlist is made
    ta: int = 12  # segments made ahead when playback starts


@dataclass(frozen=True)
class RenditionParams:
    vcodec: str = "h264"
    fps: Fraction | None = None
    fpsopt: int = 1
    s: str | None = None
    sopt: int = 1
    scaletype: str = "stretch"
    arotate: int = 0  # 1: an explicit WxH box turns with a source shown at 90 or 270 degrees
    pixfmt: str = "yuv420p"  # what HLS players decode everywhere; 10-bit sources come down to 8 bits
    crf: float | None = None
    vb: int | None = None
    vbopt: int = 1
    maxrate: int | None = None
    bufsize: int | None = None
    g: int | None = None
    preset: str = "veryfast"
    an: int = 0
    acodec: str = "aac"
    ar: int | None = None
    ac: int | None = None
    ab: int | None = None
    abopt: int = 1
    aq: int | None = None


# ---- parsing ----------------------------------------------------------------------------


def _int(params: Mapping[str, Any], name: str, default: int | None, lo: int | None, hi: int | None, allowed: str) -> Any:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = numbers.integer(raw)  # a strict pattern first: nothing huge or odd reaches int()
    except ValueError:
        raise ParameterError(name, allowed) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ParameterError(name, allowed)
    return value


def _choice(params: Mapping[str, Any], name: str, default: Any, choices: Sequence[Any]) -> Any:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    for choice in choices:
        if str(raw) == str(choice):
            return choice
    raise ParameterError(name, "one of " + ", ".join(str(c) for c in choices))


def _ms_list(params: Mapping[str, Any], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = params.get(name)
    if raw is None:
        return default
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)) or len(items) > 20:
        raise ParameterError(name, "a list of at most 20 durations in ms, each 1000 to 15000")
    out = []
    for item in items:
        try:
            value = numbers.integer(item.strip() if isinstance(item, str) else item)
        except ValueError:
            raise ParameterError(name, "a list of durations in ms, each 1000 to 15000") from None
        if not 1000 <= value <= 15000:
            raise ParameterError(name, "a list of durations in ms, each 1000 to 15000")
        out.append(value)
    return tuple(out)


KNOWN_TITLE = {"ss", "t", "st", "initial_segments", "initd", "ta"}
KNOWN_RENDITION = {f for f in RenditionParams.__dataclass_fields__}


def parse_title_params(params: Mapping[str, Any]) -> TitleParams:
    return TitleParams(
        ss=_int(params, "ss", 0, 0, None, "an integer >= 0 (ms)"),
        t=_int(params, "t", 0, 0, None, "an integer >= 0 (ms)"),
        st=_int(params, "st", 10000, 5000, 15000, "an integer from 5000 to 15000 (ms)"),
        initial_segments=_ms_list(params, "initial_segments", (2000, 2000, 2000)),
        initd=_int(params, "initd", 30000, None, None, "an integer (ms)"),
        ta=_int(params, "ta", 12, 10, 30, "an integer from 10 to 30"),
    )


def parse_rendition_params(params: Mapping[str, Any]) -> RenditionParams:
    unknown = set(params) - KNOWN_RENDITION - KNOWN_TITLE - {"name"}
    if unknown:
        name = sorted(unknown)[0]
        raise ParameterError(name, "a known parameter (unknown name)")
    fps = None
    if params.get("fps") not in (None, ""):
        try:
            fps = numbers.decimal(params["fps"], ratio=True).limit_denominator(1001)
        except ValueError:
            raise ParameterError("fps", "a number from 1 to 120, such as 25, 29.97 or 30000/1001") from None
        if not 1 <= fps <= 120:
            raise ParameterError("fps", "a number from 1 to 120")
    size = params.get("s")
    if size not in (None, ""):
        size = str(size)
        match = _SIZE.fullmatch(size)
        if not match or not (match.group(1) or match.group(2)):
            raise ParameterError("s", "WxH, Wx or xH with even sides from 64 to 4096")
        for side in (match.group(1), match.group(2)):
            if side and (int(side) % 2 or not 64 <= int(side) <= 4096):
                raise ParameterError("s", "WxH, Wx or xH with even sides from 64 to 4096")
    else:
        size = None
    crf = params.get("crf")
    if crf not in (None, ""):
        try:
            crf = float(numbers.decimal(crf))
        except ValueError:
            raise ParameterError("crf", "a number from 0 to 51") from None
        if not 0 <= crf <= 51:
            raise ParameterError("crf", "a number from 0 to 51")
    else:
        crf = None
    vb = _int(params, "vb", None, 10_000, 100_000_000, "an integer from 10000 to 100000000 (bit/s)")
    if vb is not None and crf is not None:
        raise ParameterError("crf", "crf and vb are mutually exclusive")
    maxrate = _int(params, "maxrate", None, 10_000, 100_000_000, "an integer from 10000 to 100000000 (bit/s)")
    bufsize = _int(params, "bufsize", None, 10_000, 200_000_000, "an integer from 10000 to 200000000 (bit)")
    if (maxrate is not None or bufsize is not None) and vb is not None:
        raise ParameterError("maxrate", "maxrate and bufsize apply in crf mode only")
    scaletype = _choice(params, "scaletype", "stretch", ("stretch", "crop", "fill", "fit"))
    ab = _int(params, "ab", None, 1000, 10_000_000, "an integer from 1000 to 10000000 (bit/s)")
    aq = _int(params, "aq", None, 0, 100, "an integer from 0 to 100")
    if ab is not None and aq is not None:
        raise ParameterError("aq", "aq and ab are mutually exclusive")
    return RenditionParams(
        vcodec=_choice(params, "vcodec", "h264", ("h264", "h265")),
        fps=fps,
        fpsopt=_choice(params, "fpsopt", 1, (0, 1, 2)),
        s=size,
        sopt=_choice(params, "sopt", 1, (0, 1, 2)),
        scaletype=scaletype,
        arotate=_choice(params, "arotate", 0, (0, 1)),
        pixfmt=_choice(params, "pixfmt", "yuv420p", PIXEL_FORMATS),
        crf=crf if crf is not None or vb is not None else 23.0,
        vb=vb,
        vbopt=_choice(params, "vbopt", 1, (0, 1, 2)),
        maxrate=maxrate,
        bufsize=bufsize,
        g=_int(params, "g", None, 1, 100000, "an integer from 1 to 100000"),
        preset=_choice(params, "preset", "veryfast", PRESETS),
        an=_choice(params, "an", 0, (0, 1)),
        acodec=_choice(params, "acodec", "aac", ("aac",)),
        ar=_choice(params, "ar", None, SAMPLE_RATES),
        ac=_int(params, "ac", None, 1, 8, "an integer from 1 to 8"),
        ab=ab,
        abopt=_choice(params, "abopt", 1, (0, 1, 2)),
        aq=aq,
    )


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
        pix_fmt=params.pixfmt,
        rotation=src.rotation,
        threads=threads,
    )


def resolve_audio(params: RenditionParams, info: MediaInfo) -> AudioSpec | None:
    if info.audio is None or params.an:
        return None
    src = info.audio
    rate = params.ar or (src.sample_rate if src.sample_rate in SAMPLE_RATES else 48000)
    channels = params.ac or min(src.channels, 2)
    bitrate = _capped(params.ab, src.bit_rate, params.abopt, "ab") or aq_bitrate(params.aq, channels)
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
