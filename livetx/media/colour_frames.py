"""Decoded frames to a rendition's colour, at its size: the worker's side of livetx/media/colour.py
and livetx/media/tonemap.py.

- SDR source, BT.709-like primaries: one swscale pass converts the matrix (the source's, or
  BT.601/BT.709 by size when untagged) and the range (full to limited) while it scales.
- Other primaries, or an HDR source on an SDR rendition: swscale to 16-bit RGB at the output
  size, the title's 3D table through FFmpeg's `lut3d` (tetrahedral), swscale to BT.709 YCbCr.
  The table is the same for every segment of the title, so segments join without a step.
- An HDR rendition (HLG or PQ, 10 bits) of a source of the same kind keeps the signal: the
  matrix stays BT.2020, the range becomes limited.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
from fractions import Fraction
from pathlib import Path

import av.filter
import numpy as np
import numpy.typing as npt
from av.video.format import VideoFormat
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from livetx.errors import TranscodeFailed
from livetx.media import tonemap
from livetx.media.colour import BT709, SWSCALE_MATRICES, ColourInfo, DynamicRange, source_matrix

SCALER = "BICUBIC"  # swscale algorithm, as FFmpeg's scale filter defaults to
SCALER_THREADS = 1  # the encoder's frame threads already keep every core busy
TABLE_FORMAT = "gbrp16le"  # the RGB frames lut3d maps: planar, 16 bits (its fastest here)
RANGE_LIMITED, RANGE_FULL = 1, 2  # AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG


class FrameColour:
    """Scales one segment's decoded frames to the output size in the output's colour. One per
    segment: its swscale contexts are set up once."""

    def __init__(self, source: ColourInfo | None, output: DynamicRange, width: int, height: int) -> None:
        colour = source or ColourInfo()
        self.src_matrix = SWSCALE_MATRICES[source_matrix(colour, width, height)]
        self.src_range = RANGE_FULL if colour.full_range else RANGE_LIMITED
        self.hdr = output != "sdr"
        self.dst_matrix = self.src_matrix if self.hdr else SWSCALE_MATRICES[BT709]
        self.table = None if self.hdr else tonemap.tone_map_for(colour)
        self.scaler = VideoReformatter()
        self.to_yuv = VideoReformatter()

    def scale(self, frame: VideoFrame, width: int, height: int, pix_fmt: str) -> VideoFrame:
        """`frame` at width x height in `pix_fmt`, converted to the output's colour."""
        # from the source's matrix and range, at the output size: straight to the output (the
        # matrix converted too), or to 16-bit RGB for the table
        to = {"format": pix_fmt, "dst_colorspace": self.dst_matrix, "dst_color_range": RANGE_LIMITED}
        scaled = self.scaler.reformat(
            frame,
            width=width,
            height=height,
            src_colorspace=self.src_matrix,
            src_color_range=self.src_range,
            interpolation=SCALER,
            threads=SCALER_THREADS,
            **(to if self.table is None else {"format": TABLE_FORMAT}),
        )
        if self.table is None:
            return scaled
        rgb = scaled
        graph = _graph(self.table, width, height)
        rgb.pts, rgb.time_base = 0, Fraction(1, 90000)
        graph.push(rgb)
        mapped = graph.vpull()
        return self.to_yuv.reformat(
            mapped, format=pix_fmt, dst_colorspace=self.dst_matrix, dst_color_range=RANGE_LIMITED, threads=SCALER_THREADS
        )


def sdr_rgb(frame: VideoFrame, colour: ColourInfo | None) -> npt.NDArray[np.uint8]:
    """A decoded frame as 8-bit BT.709 R'G'B' (height, width, 3), converted as an SDR rendition's
    frames are (a picture of an HLG source is tone mapped like its video)."""
    rgb = FrameColour(colour, "sdr", frame.width, frame.height).scale(frame, frame.width, frame.height, "rgb24")
    return np.asarray(rgb.to_ndarray(format="rgb24"), dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def _graph(table: tonemap.ToneMap, width: int, height: int) -> av.filter.Graph:
    """A `lut3d` graph for frames of this size (kept for the worker's next segments: it holds no
    state between frames)."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format=VideoFormat(TABLE_FORMAT), time_base=Fraction(1, 90000))
    lut = graph.add("lut3d", f"file={_table_file(table)}:interp=tetrahedral")
    sink = graph.add("buffersink")
    source.link_to(lut)
    lut.link_to(sink)
    graph.configure()
    return graph


@functools.lru_cache(maxsize=16)
def _table_file(table: tonemap.ToneMap) -> str:
    """The table's .cube file, written once per worker host into a folder only this user can
    write (a shared temp folder must not let another user swap the file)."""
    folder = Path(tempfile.gettempdir()) / f"livetx-luts-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise TranscodeFailed("the colour table folder is not this user's own")
    path = folder / f"{table.key}.cube"
    if not path.exists():
        partial = folder / f".{table.key}.{os.getpid()}.part"
        partial.write_text(tonemap.cube_text(tonemap.lut(table)))
        os.replace(partial, path)
    # (lut3d parses its `file` option: the name is hex digits in a folder path we chose)
    return str(path)
