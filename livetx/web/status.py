"""The title status view (`GET /api/v1/titles/<profile>/<key>`, polled by the demo page):
each rendition's segments and what they are doing.

A long title has tens of thousands of segments, so the JSON of what never changes (each
segment's number, start and duration) is made once per rendition, in a thread, and each call
only adds the states. The ETag is a hash of what the answer says, computed before the answer
is built: a poll that finds nothing changed gets a 304 and costs no JSON at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import operator
from dataclasses import dataclass
from typing import Any

from livetx.cache.service import SegmentService
from livetx.lru import Lru
from livetx.playlists import video_range
from livetx.titles import Rendition, Title

TIMELINE_SEGMENTS = 200_000  # segments whose JSON is kept, over all renditions (~30 MB)
BODIES = 16  # titles whose last answer is kept (every poller of an unchanged title shares it)

_STATE_END = {state: json.dumps(state)[1:] + "}" for state in ("none", "transcoding", "cached")}


@dataclass(frozen=True)
class StatusView:
    etag: str
    body: bytes | None  # None when the caller already holds this version (If-None-Match)


def _timeline(rendition: Rendition) -> tuple[str, ...]:
    """Each segment's JSON object up to its state's value: `{"n": 0, "start": 0.0, ...`."""
    out = []
    for w in rendition.windows:
        num, den = w.unit.numerator, w.unit.denominator
        # int / int is correctly rounded: the same float as float(w.start), without Fractions
        start, duration = w.first * num / den, (w.end - w.first) * num / den
        out.append(f'{{"n": {w.index}, "start": {json.dumps(start)}, "duration": {json.dumps(duration)}, "state": "')
    return tuple(out)


class TitleStatus:
    def __init__(self) -> None:
        self._timelines: Lru[str, tuple[str, ...]] = Lru(TIMELINE_SEGMENTS, weigh=len)  # spec id -> each segment's JSON
        self._bodies: Lru[tuple[str, str, str], tuple[str, bytes]] = Lru(BODIES)  # title -> (etag, body)

    async def _timeline(self, rendition: Rendition) -> tuple[str, ...]:
        found = self._timelines.get(rendition.spec_id)
        if found is None:
            found = await asyncio.to_thread(_timeline, rendition)
            if self._timelines.get(rendition.spec_id) is None:  # (another call may have made it meanwhile)
                self._timelines.put(rendition.spec_id, found)  # the newest is kept, however long
        return found

    async def view(
        self,
        title: Title,
        service: SegmentService,
        resolution: dict[str, str],
        if_none_match: str | None,
        subtitles: list[dict[str, Any]] | None = None,
        pictures: dict[str, str] | None = None,
    ) -> StatusView:
        """`subtitles`: the title's subtitle tracks as the API lists them (facts of the plan).
        Segment states are those of the media renditions (a subtitle segment is made when
        asked for, in a moment, or never stored at all: a sidecar's), not the I-frame rendition's
        (a second each: made where a player scrubs to, they say nothing of playback)."""
        renditions = [r for r in title.renditions if r.subtitle is None and not r.iframes_only]
        facts = []
        states = []
        for r in renditions:
            peak, average = service.bandwidth(r)
            fact = {"name": r.name, "resolution": resolution[r.name], "bandwidth": peak, "average_bandwidth": average}
            if r.video is not None:
                fact["video_range"] = video_range(r.video)
            facts.append(fact)
            states.append(await service.states(title, r))
        head: dict[str, Any] = {"profile": title.profile.name, "key": title.source.key, "duration": float(title.duration)}
        if title.info.video is not None:
            head["colour"] = title.info.video.colour.to_json()  # what the headers say the source is
        if title.left_out:  # the profile's renditions this title has not, and why
            head["left_out"] = [{"name": name, "reason": reason} for name, reason in title.left_out]
        if subtitles is not None:
            head["subtitles"] = subtitles
        if pictures is not None:
            head["pictures"] = pictures
        digest = hashlib.sha256(json.dumps([head, facts, [r.spec_id for r in title.renditions]]).encode())
        for rendition_states in states:
            digest.update("\n".join(rendition_states).encode() + b"\n\n")
        etag = f'"{digest.hexdigest()[:32]}"'
        if if_none_match is not None and etag in [tag.strip() for tag in if_none_match.split(",")]:
            return StatusView(etag, None)
        version = (title.profile.name, title.source.key, title.source.etag)
        last = self._bodies.peek(version)
        if last is not None and last[0] == etag:
            return StatusView(etag, last[1])
        parts = []
        for r, fact, rendition_states in zip(renditions, facts, states, strict=True):
            timeline = await self._timeline(r)
            segments = ", ".join(map(operator.add, timeline, [_STATE_END[s] for s in rendition_states]))
            parts.append(json.dumps(fact)[:-1] + f', "segments": [{segments}]}}')
        body = (json.dumps(head)[:-1] + f', "renditions": [{", ".join(parts)}]}}').encode()
        self._bodies.put(version, (etag, body))
        return StatusView(etag, body)
