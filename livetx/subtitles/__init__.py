"""Subtitles as WebVTT renditions. Pure: no aiohttp, av or storage import.

- `cues`: the Cue model, cue text made safe for WebVTT, and the cleaning every track goes through.
- `text`: sidecar bytes -> text (size cap, BOM, UTF-8, cp1252/Latin-1).
- `srt`, `vtt`, `ass`: the sidecar parsers; `ass.dialogue_text` also serves embedded tracks,
  which FFmpeg decodes to ASS dialogue whatever their codec.
- `sidecar`: bytes of a sidecar -> cleaned cues, or SubtitleUnreadable naming the track.
- `webvtt`: cues -> segments on the video's windows, segment text and subtitle media playlist.
"""
