"""Makes docs/colour/hlg-before-after.png: the test chart as an HLG source (tests/colour_checks.py),
its code values shown as SDR (what players showed before livetx converted colour), livetx's
tone-mapped SDR rendition of it, and the SDR chart itself. Prints the ΔE2000 of each.

    PYTHONPATH=. .venv/bin/python docs/colour/before_after.py   (needs Debian's ffmpeg)
"""

import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from livetx.media.model import SegmentJob, VideoSpec
from livetx.media.probe import probe
from livetx.media.transcode import transcode_segment
from tests import colour_checks as cc

d = Path(tempfile.mkdtemp())
src = cc.make_hlg(d / "hlg.mp4", audio=False)
info = probe(str(src.path))
before = cc.decode_as_player(src.path, 12)  # the HLG codes shown as SDR: what players showed before
spec = VideoSpec("h264", 320, 180, info.video.fps, crf=18)
job = SegmentJob(
    str(src.path), Fraction(0), Fraction(0), Fraction(1), spec, None, video_stream=info.video.index, source_colour=info.video.colour
)
after = cc.decode_as_player(transcode_segment(job).data, 12)
img = Image.new("RGB", (3 * 320 + 20, 180 + 22), (255, 255, 255))
for n, (label, codes) in enumerate([("before: HLG shown as SDR", before.codes), ("after: livetx SDR (tone mapped)", after.codes)]):
    img.paste(Image.fromarray(np.clip(codes, 0, 255).astype(np.uint8)), (n * 330, 22))
    ImageDraw.Draw(img).text((n * 330 + 4, 4), label, fill=(0, 0, 0))
chart, _ = cc.chart()
img.paste(Image.fromarray(chart), (660, 22))
ImageDraw.Draw(img).text((664, 4), "the chart (SDR original)", fill=(0, 0, 0))
img.save("docs/colour/hlg-before-after.png", optimize=True)
de_b = cc.delta_e(src.ref_codes, cc.patch_codes(before.codes, src.rects))
de_a = cc.delta_e(src.ref_codes, cc.patch_codes(after.codes, src.rects))
print("before mean/max", de_b.mean().round(2), de_b.max().round(2), "after", de_a.mean().round(2), de_a.max().round(2))
