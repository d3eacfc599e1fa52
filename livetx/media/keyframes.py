"""The presentation times of a source's video keyframes, from the container's own index: no packet scan.

A copy ("remux") rendition can cut a segment only where the source has a keyframe, so the
planner needs every keyframe time before any segment is made, and reading them must cost
about what the header probe costs. Which containers hold such an index, and how it is read:

- MP4/MOV (not fragmented): FFmpeg builds one index entry per sample from the sample table at
  open (`stss` says which are keyframes). The entries carry the *decode* time. With B-frames
  the keyframe is shown later than it is decoded, so its presentation time is the entry's time
  plus the sample's composition offset (`ctts`), plus the shift FFmpeg applies to every
  decode time when some offsets are negative (`ctts` version 1). The offsets are read from the
  moov payload the probe already holds; without it, a track with composition offsets gives None.
  Keyframes FFmpeg marks discarded (before the start of the edit list: decoded, never shown)
  are left out; an edit list that rebuilt the index (entries no longer one per sample) gives None.
- Matroska/WebM: the Cues give the keyframe times (block times are presentation times), but
  FFmpeg reads them only on the first seek. A seek to the start loads them; on a file without
  Cues it reads on only to the next keyframe.
- Fragmented MP4 (offsets in each fragment's `trun`), MPEG-TS, and every other container: None.

An index that plainly misses the tail (the last keyframe far before the end, as when Matroska
has no Cues) gives None too: copy planning must not trust half an index.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from fractions import Fraction
from typing import Any

import av

from livetx.media.model import is_mp4_family
from livetx.media.orientation import _boxes

# The last keyframe may sit this far before the end of a complete index (and twice the widest
# gap between keyframes): more means the index stopped early.
TAIL_SLACK = Fraction(10)


def keyframe_times(container: Any, stream: Any, moov: bytes | None = None, limit: int | None = None) -> tuple[Fraction, ...] | None:
    """Source seconds (presentation time) of every keyframe of video `stream`, ascending, from
    the container's index; None when the container has no such index or it looks incomplete.

    `moov`: the MP4/MOV moov payload (`orientation.read_moov`), needed to turn a B-frame
    track's decode times into presentation times. `limit`: None as soon as there are more
    keyframes than this (an intra-only source has one per frame: no use reading them all).
    A Matroska container is left positioned at the start."""
    names = container.format.name.split(",")
    if is_mp4_family(container.format.name):
        ticks = _mp4_ticks(stream, moov, limit)
    elif "matroska" in names or "webm" in names:
        ticks = _matroska_ticks(container, stream, limit)
    else:
        return None
    if not ticks:
        return None
    times = tuple(sorted(set(tick * stream.time_base for tick in ticks)))
    return None if _incomplete(times, _end(container)) else times


def _end(container: Any) -> Fraction | None:
    """Where the container says its streams end, in seconds (None: it does not say)."""
    if not container.duration:
        return None
    return Fraction(container.start_time or 0, 1_000_000) + Fraction(container.duration, 1_000_000)


def _incomplete(times: tuple[Fraction, ...], end: Fraction | None) -> bool:
    """Whether the index stops well before the end: the tail after the last keyframe is longer
    than both TAIL_SLACK and twice the widest gap between the keyframes listed."""
    if end is None:
        return False
    widest = max((b - a for a, b in itertools.pairwise(times)), default=Fraction(0))
    return end - times[-1] > max(TAIL_SLACK, 2 * widest)


def _matroska_ticks(container: Any, stream: Any, limit: int | None) -> list[int] | None:
    """The Cues' keyframe times (stream ticks), loaded by one seek to the start."""
    try:
        container.seek(0, stream=stream, backward=True)
    except (av.FFmpegError, OSError):
        return None
    keyframes = _keyframe_entries(stream.index_entries, limit)
    return None if keyframes is None else [timestamp for _, timestamp in keyframes]


def _keyframe_entries(entries: Any, limit: int | None) -> list[tuple[int, int]] | None:
    """(position, timestamp) of each keyframe entry of FFmpeg's index, in index order, not
    discarded. Jumps from keyframe to keyframe with FFmpeg's own search (a binary search, then a
    walk to the next keyframe, in C) rather than wrapping every entry in a Python object: an MP4
    index has one entry per frame, 1.5 us each through PyAV (0.3 s for two hours at 24 fps).
    None: more than `limit` of them."""
    count = len(entries)
    found: list[tuple[int, int]] = []
    at = 0
    while at < count:
        ahead = entries.search_timestamp(entries[at].timestamp, backward=False)
        if ahead < 0:
            break  # no keyframe from here on
        at = max(at, ahead)  # an equal timestamp before `at` sends the search back: step on from `at`
        entry = entries[at]
        if entry.is_keyframe and not entry.is_discard:
            found.append((at, entry.timestamp))
            if limit is not None and len(found) > limit:
                return None
        at += 1
    return found


def _mp4_ticks(stream: Any, moov: bytes | None, limit: int | None) -> list[int] | None:
    """Keyframe presentation times (stream ticks) from FFmpeg's sample index and the track's
    composition offsets. None: a fragmented file, or offsets that cannot be matched to samples."""
    entries = stream.index_entries
    offsets = _composition_offsets(moov, stream.id) if moov is not None else None
    if offsets is None:
        if moov is None and _may_reorder(stream):
            return None  # B-frames, and no table to find their offsets in
        offsets = ([], 0)
    runs, count = offsets
    if count == -1:
        return None  # fragmented: the offsets are in the fragments, not in the moov
    keyframes = _keyframe_entries(entries, limit)
    if keyframes is None:
        return None
    if not runs:
        return [timestamp for _, timestamp in keyframes]
    if count != len(entries):
        return None  # an edit list rebuilt the index: its entries are no longer the table's samples
    shift = max(0, -min(offset for _, offset in runs))
    starts = list(itertools.accumulate((n for n, _ in runs), initial=0))  # the first sample of each run
    if starts[-1] < len(entries):
        return None  # the table does not cover every sample
    return [timestamp + shift + runs[bisect.bisect_right(starts, at) - 1][1] for at, timestamp in keyframes]


def _may_reorder(stream: Any) -> bool:
    """Whether the decoder says frames come out in another order than they go in (B-frames)."""
    return bool(getattr(stream.codec_context, "has_b_frames", 0))


def _composition_offsets(moov: bytes, track_id: int) -> tuple[list[tuple[int, int]], int] | None:
    """The (sample count, offset) runs of track `track_id`'s `ctts` and its sample count (from
    `stsz`/`stz2`; -1 when the file is fragmented). None: no such track. Offsets are signed,
    as FFmpeg reads them in either box version."""
    fragmented = any(kind == b"mvex" for kind, _, _ in _boxes(moov))
    for kind, lo, hi in _boxes(moov):
        if kind != b"trak" or _track_id(moov, lo, hi) != track_id:
            continue
        stbl = _descend(moov, lo, hi, (b"mdia", b"minf", b"stbl"))
        if stbl is None:
            return None
        runs: list[tuple[int, int]] = []
        count = 0
        for leaf, l_lo, l_hi in _boxes(moov, *stbl):
            body = moov[l_lo:l_hi]
            if leaf == b"ctts" and len(body) >= 8:
                (entries,) = struct.unpack_from(">I", body, 4)
                entries = min(entries, (len(body) - 8) // 8)
                runs = [struct.unpack_from(">Ii", body, 8 + 8 * n) for n in range(entries)]
            elif leaf == b"stsz" and len(body) >= 12:
                (count,) = struct.unpack_from(">I", body, 8)
            elif leaf == b"stz2" and len(body) >= 12:
                (count,) = struct.unpack_from(">I", body, 8)
        return runs, -1 if fragmented else count
    return None


def _track_id(moov: bytes, lo: int, hi: int) -> int | None:
    """The track_ID in the tkhd of the trak box moov[lo:hi]."""
    for kind, t_lo, t_hi in _boxes(moov, lo, hi):
        if kind == b"tkhd" and t_hi - t_lo >= 24:
            at = t_lo + (20 if moov[t_lo] == 1 else 12)  # fullbox header, then creation/modification times
            return int(struct.unpack_from(">I", moov, at)[0])
    return None


def _descend(data: bytes, lo: int, hi: int, kinds: tuple[bytes, ...]) -> tuple[int, int] | None:
    """The payload span of the box reached by following `kinds` down from data[lo:hi]."""
    for kind in kinds:
        found = next(((c_lo, c_hi) for c, c_lo, c_hi in _boxes(data, lo, hi) if c == kind), None)
        if found is None:
            return None
        lo, hi = found
    return lo, hi
