"""Compositing a watermark's overlay (livetx/media/watermark.py) onto output frames.

`overlay_frame` blends an `Overlay` into a scaled video frame in its own YUV pixel format
(4:2:0, 4:2:2 or 4:4:4, 8 or 10 bit), with numpy: out = frame x (1 - alpha) + colour x alpha,
the overlay's colour and alpha converted to the frame's planes once per overlay and format
(`prepare`, cached in the worker), so each frame costs one multiply-add over the overlay's
rectangle. Only that rectangle is written: every other sample stays bit-identical to the
frame given. The chroma of a subsampled plane takes the mean alpha and premultiplied colour of
the luma samples it covers (the rectangle is even-aligned, see `watermark.place`).

`overlay_rgb` does the same to a Pillow image of the output size (snapshots, storyboards).
Colours are converted as BT.601 limited range, as livetx's scaler and test sources do.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from av.video.frame import VideoFrame
from PIL import Image

from livetx.media.watermark import Overlay

# pixel format -> (horizontal, vertical) chroma subsampling, bits per sample
FORMATS = {
    "yuv420p": (2, 2, 8),
    "yuv422p": (2, 1, 8),
    "yuv444p": (1, 1, 8),
    "yuv420p10le": (2, 2, 10),
    "yuv422p10le": (2, 1, 10),
    "yuv444p10le": (1, 1, 10),
}


ONE = 1 << 12  # fixed point: weights in 1/4096 (a 10-bit code times ONE fits 32 bits many times over)


@dataclass(frozen=True)
class Prepared:
    """An overlay in one pixel format's planes: per plane (Y, U, V) its premultiplied colour
    (colour x alpha, in the format's codes) and 1 - alpha, both times ONE as 32-bit integers,
    over the rectangle at (x, y) of the plane (chroma planes: in chroma samples)."""

    planes: tuple[tuple[int, int, np.ndarray, np.ndarray], ...]  # (x, y, colour x alpha x ONE, (1 - alpha) x ONE)
    peak: int  # the largest code (255, 1023)


def _yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range, 8-bit codes (floats), of an RGB array (0-255)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, u, v


def _pool(values: np.ndarray, sx: int, sy: int) -> np.ndarray:
    """The mean of each sx x sy block (the array's sides are multiples of sx and sy)."""
    h, w = values.shape
    pooled: np.ndarray = values.reshape(h // sy, sy, w // sx, sx).mean(axis=(1, 3))
    return pooled


@functools.lru_cache(maxsize=8)
def prepare(overlay: Overlay, pix_fmt: str) -> Prepared:
    """The overlay in `pix_fmt`'s planes (done once per job and overlay, not per frame)."""
    sx, sy, bits = FORMATS[pix_fmt]
    rgba = np.frombuffer(overlay.rgba(), dtype=np.uint8).reshape(overlay.height, overlay.width, 4).astype(np.float32)
    # padded to even sides with transparent samples: each chroma sample covers whole blocks
    h, w = -(-overlay.height // sy) * sy, -(-overlay.width // sx) * sx
    padded = np.zeros((h, w, 4), dtype=np.float32)
    padded[: overlay.height, : overlay.width] = rgba
    alpha = padded[..., 3] / 255
    scale = 1 << (bits - 8)
    y, u, v = (plane * scale for plane in _yuv(padded[..., :3]))
    planes = [(overlay.x, overlay.y, _fixed(y * alpha), _fixed(1 - alpha))]
    for chroma in (u, v):
        planes.append((overlay.x // sx, overlay.y // sy, _fixed(_pool(chroma * alpha, sx, sy)), _fixed(1 - _pool(alpha, sx, sy))))
    return Prepared(tuple(planes), (256 << (bits - 8)) - 1)


def _fixed(values: np.ndarray) -> np.ndarray:
    fixed: np.ndarray = np.rint(values * ONE).astype(np.uint32)
    return fixed


def _planes(frame: VideoFrame) -> list[np.ndarray]:
    """The frame's Y, U and V planes as arrays over its own (writable) buffers."""
    dtype = np.uint16 if FORMATS[frame.format.name][2] > 8 else np.uint8
    size = np.dtype(dtype).itemsize
    out = []
    for plane in frame.planes:
        stride = plane.line_size // size
        data = np.frombuffer(memoryview(plane), dtype=dtype, count=plane.height * stride)
        out.append(data.reshape(plane.height, stride)[:, : plane.width])
    return out


def blend(planes: list[np.ndarray], prepared: Prepared) -> None:
    """Blend the prepared overlay into the planes, in place, inside its rectangle only (cut to
    the planes' sides)."""
    for plane, (x, y, colour, keep) in zip(planes, prepared.planes, strict=True):
        h = min(colour.shape[0], plane.shape[0] - y)
        w = min(colour.shape[1], plane.shape[1] - x)
        if h <= 0 or w <= 0:
            continue
        region = plane[y : y + h, x : x + w]
        mixed = (region * keep[:h, :w] + colour[:h, :w] + ONE // 2) >> 12
        region[:] = np.minimum(mixed, prepared.peak)


def overlay_frame(frame: VideoFrame, overlay: Overlay) -> VideoFrame:
    """`frame` (a scaled output frame, in one of FORMATS) with `overlay` blended in, in place:
    the frame is made writable first (one whose buffers are shared, with a decoder's reference
    pictures say, is copied), and only the overlay's rectangle is written. Returns the frame."""
    frame.make_writable()
    blend(_planes(frame), prepare(overlay, frame.format.name))
    return frame


def overlay_rgb(image: Image.Image, overlay: Overlay) -> Image.Image:
    """`image` (the output size the overlay was made for, any mode Pillow converts to RGB) with
    `overlay` alpha-blended in at its rectangle, as an RGB copy: for pictures made from output
    frames (snapshots, storyboards)."""
    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    pixels = Image.frombytes("RGBA", (overlay.width, overlay.height), overlay.rgba())
    out.paste(pixels, (overlay.x, overlay.y), pixels)
    return out
