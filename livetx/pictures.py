"""Pictures of a title: the snapshot parameters, the fit arithmetic, and the storyboard's grid and cues.

A snapshot is one frame at a title time, scaled as `scaletype` says (the IMM/OSS meanings):
  fit      scaled to fit inside w x h, aspect kept, no padding (one side may come out smaller)
  fill     scaled to fit inside w x h, then centred on black to exactly w x h
  crop     scaled to cover w x h, then the middle cut out: exactly w x h
  stretch  scaled to exactly w x h, aspect not kept
With only `w` (or only `h`) the other side follows the display aspect, whatever `scaletype`;
with neither, the picture has the source's display size (square pixels, turned upright).

A storyboard is a WebVTT track whose cues tile the title with no gap and no overlap, one cue per
`interval`, each pointing (`#xywh=`) at one tile of a sprite sheet; each sheet holds
`columns x rows` tiles, so it covers one time range and is made on its own. Tile k shows the
frame at its cue's start. The interval is the configured one, or longer for a long title:
at most `max_tiles` tiles, the interval rounded up to a whole second.

Pure: no aiohttp, no av, no storage. The request handlers and the worker both use it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction

from livetx.contract import Choice, Integer, param

PICTURE_VERSION = 2  # bump when the same parameters make different pictures (names change with it)
MIN_SIDE, MAX_SIDE = 16, 4096  # pixels: a picture's width or height
SCALETYPES = ("fit", "fill", "crop", "stretch")
MODES = ("exact", "key")
FORMATS = {"jpg": "JPEG", "webp": "WEBP", "png": "PNG"}  # URL suffix -> Pillow's format name
CONTENT_TYPES = {"jpg": "image/jpeg", "webp": "image/webp", "png": "image/png"}
DEFAULT_QUALITY = 85
POSTER_AUTO = -1  # `pictures.poster_ms` meaning "pick a frame that is not black"
# where the poster heuristic looks, as fractions of the duration, in order
POSTER_CANDIDATES = (Fraction(1, 10), Fraction(1, 5), Fraction(3, 10), Fraction(1, 2), Fraction(0))
POSTER_MIN_LUMA = 32  # mean luma (0-255) of a frame that is not black ...
POSTER_MIN_SPREAD = 10  # ... and its standard deviation: not one flat colour


@dataclass(frozen=True)
class SnapshotParams:
    """The query of a snapshot URL (`snapshot.<jpg|webp|png>`); a poster takes w, h, scaletype and q."""

    t: int = param(Integer(0, None, "ms"), 0, "title time of the frame, in ms")
    w: int | None = param(Integer(MIN_SIDE, MAX_SIDE, "pixels"), None, "width; absent: from h and the aspect (neither: the source's)")
    h: int | None = param(Integer(MIN_SIDE, MAX_SIDE, "pixels"), None, "height; absent: from w and the aspect (neither: the source's)")
    scaletype: str = param(Choice(SCALETYPES), "fit", "with both w and h: fit, fill (pad black), crop (cover, cut) or stretch")
    q: int = param(Integer(1, 100), DEFAULT_QUALITY, "JPEG and WebP quality; PNG is lossless and ignores it")
    mode: str = param(Choice(MODES), "exact", "exact: the frame shown at t; key: the keyframe at or before t (cheaper)")

    def normalised(self, fmt: str) -> tuple[object, ...]:
        """What the picture depends on: `q` only where the format uses it, `scaletype` only with both sides."""
        return (
            self.t,
            self.w,
            self.h,
            self.scaletype if self.w and self.h else "fit",
            self.q if fmt != "png" else 0,
            self.mode,
            fmt,
        )


@dataclass(frozen=True)
class Fit:
    """The picture scaled to `picture` and centred on a `canvas` (black where it does not reach;
    cut where it overflows). Both (width, height)."""

    picture: tuple[int, int]
    canvas: tuple[int, int]


def _side(value: Fraction) -> int:
    return max(2, round(value))


def fit(display: tuple[Fraction, Fraction], w: int | None, h: int | None, scaletype: str) -> Fit:
    """How a frame of display size `display` becomes a picture of at most `w` x `h` (see the
    module docstring)."""
    dw, dh = display
    if w is None and h is None:
        size = (_side(dw), _side(dh))
        return Fit(size, size)
    if h is None:
        assert w is not None
        size = (w, _side(w * dh / dw))
        return Fit(size, size)
    if w is None:
        size = (_side(h * dw / dh), h)
        return Fit(size, size)
    if scaletype == "stretch":
        return Fit((w, h), (w, h))
    wider = dw * h > dh * w  # the source is wider than the box
    if scaletype == "crop":
        pic = (_side(h * dw / dh), h) if wider else (w, _side(w * dh / dw))
        return Fit(pic, (w, h))
    pic = (w, _side(w * dh / dw)) if wider else (_side(h * dw / dh), h)
    return Fit(pic, (w, h) if scaletype == "fill" else pic)


def picture_id(*facts: object) -> str:
    """16 hex digits naming a picture: the source's identity and the normalised parameters."""
    return hashlib.sha256(repr((PICTURE_VERSION, *facts)).encode()).hexdigest()[:16]


def source_time(origin: Fraction, ms: int) -> Fraction:
    """Source seconds of title time `ms`."""
    return origin + Fraction(ms, 1000)


# ---- storyboards ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoryboardCue:
    start: Fraction  # title seconds
    end: Fraction
    sheet: int
    x: int
    y: int


@dataclass(frozen=True)
class Storyboard:
    duration: Fraction  # title seconds
    interval: Fraction  # seconds per tile
    tile: tuple[int, int]  # width, height
    columns: int
    rows: int

    @property
    def tiles(self) -> int:
        return max(1, math.ceil(self.duration / self.interval))

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        return math.ceil(self.tiles / self.per_sheet)

    def sheet_tiles(self, sheet: int) -> range:
        """The tile numbers sheet `sheet` holds."""
        first = sheet * self.per_sheet
        return range(first, min(self.tiles, first + self.per_sheet))

    def sheet_size(self, sheet: int) -> tuple[int, int]:
        """A sheet's pixels: full rows only as many as its tiles need (the last sheet may be shorter)."""
        count = len(self.sheet_tiles(sheet))
        columns = min(self.columns, count)
        return columns * self.tile[0], math.ceil(count / self.columns) * self.tile[1]

    def tile_time(self, tile: int) -> Fraction:
        """Title time of the frame tile `tile` shows: its cue's start."""
        return tile * self.interval

    def cue(self, tile: int) -> StoryboardCue:
        sheet, place = divmod(tile, self.per_sheet)
        row, column = divmod(place, self.columns)
        end = min(self.duration, (tile + 1) * self.interval)
        return StoryboardCue(self.tile_time(tile), end, sheet, column * self.tile[0], row * self.tile[1])

    def cues(self) -> list[StoryboardCue]:
        return [self.cue(tile) for tile in range(self.tiles)]


def storyboard(
    duration: Fraction, display: tuple[Fraction, Fraction], tile_width: int, columns: int, rows: int, interval_ms: int, max_tiles: int
) -> Storyboard:
    """A title's storyboard grid: `interval_ms`, or for a long title the whole seconds that keep
    it within `max_tiles` tiles."""
    interval = Fraction(interval_ms, 1000)
    if duration / interval > max_tiles:
        interval = Fraction(math.ceil(duration / max_tiles))
    dw, dh = display
    tile = (tile_width, _side(tile_width * dh / dw))
    return Storyboard(duration, interval, tile, columns, rows)


def storyboard_spec(board: Storyboard, quality: int, *identity: object) -> str:
    """12 hex digits naming the sheets of `board` made from the source `identity`."""
    return picture_id(board.interval, board.tile, board.columns, board.rows, quality, *identity)[:12]


def sheet_name(spec: str, sheet: int) -> str:
    return f"storyboard-{spec}-{sheet}.jpg"


def _vtt_time(t: Fraction) -> str:
    ms = round(t * 1000)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"


def storyboard_vtt(board: Storyboard, spec: str, query: str = "") -> str:
    """The WebVTT track: one cue per tile, `storyboard-<spec>-<n>.jpg<query>#xywh=x,y,w,h`
    (relative to the track's URL; `query` carries the viewer's token, "?..." or "")."""
    lines = ["WEBVTT", ""]
    w, h = board.tile
    for cue in board.cues():
        lines += [
            f"{_vtt_time(cue.start)} --> {_vtt_time(cue.end)}",
            f"{sheet_name(spec, cue.sheet)}{query}#xywh={cue.x},{cue.y},{w},{h}",
            "",
        ]
    return "\n".join(lines)
