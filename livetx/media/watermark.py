"""Watermarks: what a rendition's `wm_*` parameters draw, as an RGBA overlay for one output size.

Two kinds, as MPS has them: an image (a PNG, JPEG or WebP in the source store, `wm_image`)
scaled to a fraction of the output width, or a line of text (`wm_text`) rendered with the
FreeType font Pillow ships (`ImageFont.load_default`). Either is placed by `place` (a pure
function: corner, margins, sizes -> the even-aligned top-left corner) and made into an
`Overlay`: its rectangle in the output frame and its straight-alpha RGBA pixels with the
opacity applied. The catalog decodes an image once per version (`decode_image`, bounded,
in a thread) and the planner (livetx/titles.py) makes the overlay per output size
(`make_overlay`); the worker composites it (livetx/media/overlay.py). No av import.
"""

from __future__ import annotations

import hashlib
import io
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image, ImageColor, ImageDraw, ImageFont

from livetx.errors import WatermarkUnreadable

MAX_IMAGE_BYTES = 1024 * 1024  # a watermark image's file, at most
MAX_IMAGE_SIDE = 4096  # pixels per side of a watermark image, at most
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")  # what Pillow may open a watermark image as
POSITIONS = ("tl", "tr", "bl", "br", "c")  # MPS ReferPos TopLeft, TopRight, BottomLeft, BottomRight; and the centre
TEXT_HEIGHT = 0.05  # a text watermark's font size, as a fraction of the output height, unless wm_size says
MIN_FONT = 8  # pixels


class WatermarkParams(Protocol):
    """The `wm_*` rendition parameters (livetx/media/params.py RenditionParams)."""

    @property
    def wm_image(self) -> str | None: ...
    @property
    def wm_text(self) -> str | None: ...
    @property
    def wm_pos(self) -> str: ...
    @property
    def wm_dx(self) -> int: ...
    @property
    def wm_dy(self) -> int: ...
    @property
    def wm_width(self) -> float | None: ...
    @property
    def wm_alpha(self) -> float: ...
    @property
    def wm_size(self) -> int | None: ...
    @property
    def wm_color(self) -> str: ...


@dataclass(frozen=True)
class WatermarkImage:
    """A decoded watermark image: one version (key, ETag) of a storage object, as RGBA."""

    key: str
    etag: str
    width: int
    height: int
    rgba: bytes = field(repr=False)


@dataclass(frozen=True)
class Overlay:
    """What a worker draws over each output frame: straight-alpha RGBA pixels (opacity applied,
    zlib-compressed: a logo is mostly flat) at (x, y), even, inside the frame. `identity` is a
    digest of the pixels and the rectangle; it is what the rendition's spec id holds."""

    x: int
    y: int
    width: int
    height: int
    identity: str
    packed: bytes = field(repr=False)

    def rgba(self) -> bytes:
        return zlib.decompress(self.packed)

    @classmethod
    def of(cls, image: Image.Image, x: int, y: int) -> Overlay:
        raw = image.convert("RGBA").tobytes()
        digest = hashlib.sha256(repr((x, y, image.width, image.height)).encode() + raw).hexdigest()[:16]
        return cls(x, y, image.width, image.height, digest, zlib.compress(raw, 1))


def place(pos: str, dx: int, dy: int, frame_w: int, frame_h: int, width: int, height: int) -> tuple[int, int]:
    """The top-left corner of a `width` x `height` overlay in a `frame_w` x `frame_h` frame:
    at corner `pos` (one of POSITIONS), `dx` pixels from its side edge and `dy` from its top or
    bottom edge (the centre ignores them), kept inside the frame and on even coordinates (so
    its chroma samples of 4:2:0 are its own)."""
    if pos not in POSITIONS:
        raise ValueError(f"position {pos!r}")
    if pos == "c":
        x, y = (frame_w - width) // 2, (frame_h - height) // 2
    else:
        x = dx if pos[1] == "l" else frame_w - width - dx
        y = dy if pos[0] == "t" else frame_h - height - dy
    x = min(max(0, x), max(0, frame_w - width))
    y = min(max(0, y), max(0, frame_h - height))
    return x // 2 * 2, y // 2 * 2


def decode_image(key: str, etag: str, data: bytes) -> WatermarkImage:
    """A watermark image from its file's bytes: PNG, JPEG or WebP, at most MAX_IMAGE_BYTES and
    MAX_IMAGE_SIDE pixels per side, its size checked from the header before a pixel is decoded
    (no decompression bomb gets further). WatermarkUnreadable (422) otherwise. CPU-bound: the
    catalog calls it in a thread."""
    if len(data) > MAX_IMAGE_BYTES:
        raise WatermarkUnreadable.of(key, f"larger than {MAX_IMAGE_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _decode_bounded(key, data)
    except WatermarkUnreadable:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise WatermarkUnreadable.of(key, f"not an image in one of {', '.join(IMAGE_FORMATS)}") from None
    return WatermarkImage(key, etag, image.width, image.height, image.tobytes())


def _decode_bounded(key: str, data: bytes) -> Image.Image:
    """The image as RGBA; its size, read from the header, is checked before it is decoded."""
    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as opened:
        if max(opened.size) > MAX_IMAGE_SIDE or min(opened.size) < 1:
            raise WatermarkUnreadable.of(key, f"{opened.width}x{opened.height}: at most {MAX_IMAGE_SIDE} pixels per side")
        return opened.convert("RGBA")


def _with_alpha(image: Image.Image, alpha: float) -> Image.Image:
    if alpha >= 1:
        return image
    a = image.getchannel("A").point(lambda v: round(v * alpha))
    image.putalpha(a)
    return image


def image_overlay(mark: WatermarkImage, params: WatermarkParams, frame_w: int, frame_h: int) -> Overlay:
    """The overlay of an image watermark for a `frame_w` x `frame_h` output: `wm_width` of the
    frame's width wide (else its own width), its aspect kept, never larger than the frame."""
    image = Image.frombytes("RGBA", (mark.width, mark.height), mark.rgba)
    width = round(frame_w * params.wm_width) if params.wm_width is not None else mark.width
    height = round(mark.height * width / mark.width)
    fit = min(1.0, frame_w / max(1, width), frame_h / max(1, height))
    width, height = max(1, int(width * fit)), max(1, int(height * fit))
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    x, y = place(params.wm_pos, params.wm_dx, params.wm_dy, frame_w, frame_h, width, height)
    return Overlay.of(_with_alpha(image, params.wm_alpha), x, y)


def text_overlay(params: WatermarkParams, frame_w: int, frame_h: int) -> Overlay:
    """The overlay of a text watermark: `wm_text` in colour `wm_color` at `wm_size` pixels
    (else TEXT_HEIGHT of the frame's height), in the font Pillow ships, cut to the frame."""
    assert params.wm_text is not None
    size = params.wm_size or max(MIN_FONT, round(frame_h * TEXT_HEIGHT))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = (int(v) for v in font.getbbox(params.wm_text))
    width, height = min(frame_w, max(1, right - left)), min(frame_h, max(1, bottom - top))
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    colour = ImageColor.getrgb("#" + params.wm_color)
    ImageDraw.Draw(image).text((-left, -top), params.wm_text, font=font, fill=(*colour[:3], 255))
    x, y = place(params.wm_pos, params.wm_dx, params.wm_dy, frame_w, frame_h, width, height)
    return Overlay.of(_with_alpha(image, params.wm_alpha), x, y)


def make_overlay(params: WatermarkParams, frame_w: int, frame_h: int, images: Mapping[str, WatermarkImage]) -> Overlay | None:
    """The overlay a rendition's `wm_*` parameters ask for at this output size, None without
    one. `images`: the decoded watermark images by key (the catalog read them)."""
    if params.wm_image is not None:
        return image_overlay(images[params.wm_image], params, frame_w, frame_h)
    if params.wm_text is not None:
        return text_overlay(params, frame_w, frame_h)
    return None
