"""The timestamps segments carry, as pure constants: the worker writes them (media/transcode.py)
and the WebVTT subtitle segments point at them (subtitles/webvtt.py), so both read them here.

No av import: planning and rendering modules may use these.
"""

from __future__ import annotations

from fractions import Fraction

TS_OFFSET = Fraction(7, 5)  # seconds added to every MPEG-TS timestamp (title time 0 = 1.4 s, as FFmpeg's HLS output)
MPEG_TS_CLOCK = 90000  # the video clock, in MPEG-TS and in fMP4 (`video_track_timescale`)
