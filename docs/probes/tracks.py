"""Issue 16 design probe: what PyAV 18.1 writes and reads back about audio and subtitle tracks.

Writes tiny MKV and MP4 sources (2 s of 320x180 noise, three tones in three languages with
dispositions, a 5.1 track, SRT/ASS/WebVTT in MKV, mov_text in MP4, each cue's text carrying
its start time) into a temp dir, then prints per stream what the header probe can see, the
cues a subtitle-only demux decodes, and the bytes read with and without `discard`.

Run from the worktree: /work/main/.venv/bin/python docs/probes/tracks.py  (about 1 s of CPU)
"""

from __future__ import annotations

import io
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.stream import Discard, Disposition
from av.subtitles.subtitle import SubtitleSet

RATE, SECONDS, FPS = 48000, 2, 25
ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    b"[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)
CUES = [(Fraction(1, 2), Fraction(3, 2)), (Fraction(6, 5), Fraction(19, 10))]  # overlapping on purpose (0.5-1.5, 1.2-1.9)


def _audio(out, freq, language, title, disposition, channels=2):
    s = out.add_stream("aac", rate=RATE)
    s.layout = {2: "stereo", 6: "5.1"}[channels]
    s.metadata["language"] = language
    if title:
        s.metadata["title"] = title
    s.disposition = disposition
    return s, freq, channels


def _subtitle(out, codec, language, title, disposition, header=ASS_HEADER):
    s = out.add_stream(codec)
    s.metadata["language"] = language
    if title:
        s.metadata["title"] = title
    s.disposition = disposition
    s.codec_context.subtitle_header = header
    s.time_base = Fraction(1, 1000)
    return s


def write(path: Path, fmt: str) -> None:
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = 320, 180, "yuv420p"
        v.options = {"preset": "ultrafast"}
        tracks = [
            _audio(out, 440, "eng", None, Disposition.default),
            _audio(out, 660, "fra", "Français", Disposition(0)),
            _audio(out, 880, "eng", "Director's commentary", Disposition.comment),
        ]
        if fmt == "matroska":
            tracks.append(_audio(out, 330, "deu", "Deutsch 5.1", Disposition.visual_impaired, channels=6))
            subs = [
                _subtitle(out, "subrip", "eng", None, Disposition.default),
                _subtitle(out, "ass", "fra", "Forcés", Disposition.forced),
                _subtitle(out, "webvtt", "spa", "SDH", Disposition.hearing_impaired),
            ]
        else:
            subs = [_subtitle(out, "mov_text", "eng", "English", Disposition.default)]
        packets = []
        rng = np.random.default_rng(1)
        for i in range(SECONDS * FPS):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            packets += v.encode(frame)
        packets += v.encode(None)
        for s, freq, ch in tracks:
            t = np.arange(SECONDS * RATE) / RATE
            wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
            for at in range(0, len(wave), 1024):
                frame = av.AudioFrame.from_ndarray(np.tile(wave[at : at + 1024], (ch, 1)), format="fltp", layout=s.layout.name)
                frame.sample_rate, frame.pts = RATE, at
                packets += s.encode(frame)
            packets += s.encode(None)
        for s in subs:
            for start, end in CUES:
                text = f"0,0,Default,,0,0,0,,t={float(start):.3f}".encode()
                sub = SubtitleSet.create(text, 0, int((end - start) * 1000), int(start * 1_000_000))
                pkt = s.codec_context.encode_subtitle(sub)
                pkt.stream = s
                pkt.time_base = s.time_base
                pkt.pts = pkt.dts = int(start * 1000)
                pkt.duration = int((end - start) * 1000)
                packets.append(pkt)
        packets.sort(key=lambda p: p.dts * p.time_base if p.dts is not None else -1)
        for p in packets:
            if p.size:
                out.mux(p)


class Counting(io.FileIO):
    read_bytes = 0

    def read(self, size: int = -1) -> bytes:  # PyAV reads through read()
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def show(path: Path) -> None:
    print(f"== {path.name} ({path.stat().st_size} bytes)")
    with av.open(str(path)) as c:
        print("  format:", c.format.name, "container metadata:", dict(c.metadata))
        for s in c.streams:
            cc = s.codec_context
            extra = ""
            if s.type == "audio":
                extra = f"channels={cc.channels} layout={cc.layout.name} rate={cc.sample_rate}"
            if s.type == "subtitle":
                header = (cc.subtitle_header or b"")[:40]
                extra = f"extradata={cc.extradata_size}B subtitle_header={header!r}"
            flags = [f.name for f in Disposition if f in s.disposition]
            print(f"  #{s.index} {s.type:8} {cc.name:8} tb={s.time_base} metadata={dict(s.metadata)} disposition={flags} {extra}")
            if s.type == "subtitle":
                print(f"     index_entries={len(s.index_entries)}")
    subs = _subs(path)
    for index in subs:
        with Counting(str(path)) as f, av.open(f) as c:
            for s in c.streams:
                if s.index != index:
                    s.discard = Discard.all
            sub = c.streams[index]
            for packet in c.demux(sub):
                if packet.pts is None:
                    continue
                text = [r.dialogue.decode() if r.type == b"ass" else r.type for r in (sub.decode(packet) or [])]
                when = f"pts={packet.pts * packet.time_base} dur={packet.duration * packet.time_base}"
                print(f"     #{index} {when} bytes={bytes(packet)[:40]!r} -> {text}")
            print(f"     #{index} demux with discard=all on others read {f.read_bytes} of {path.stat().st_size} bytes")
        with Counting(str(path)) as f, av.open(f) as c:
            for _ in c.demux(c.streams[index]):
                pass
            print(f"     #{index} demux without discard read {f.read_bytes} bytes")


def _subs(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [s.index for s in c.streams.subtitles]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt in (("tracks.mkv", "matroska"), ("tracks.mp4", "mp4")):
            path = Path(tmp) / name
            try:
                write(path, fmt)
            except Exception as exc:  # noqa: BLE001 - a probe: report what failed
                print(f"== {name}: writing failed: {exc!r}", file=sys.stderr)
                continue
            show(path)


if __name__ == "__main__":
    main()
