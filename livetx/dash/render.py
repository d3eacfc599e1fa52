"""Model -> MPD text (ISO/IEC 23009-1 XML). Pure.

Written directly, as the media playlists are (livetx/hls/render.py): a SegmentTimeline folds
a title's equal segments into one `S` with a repeat count, so the text stays a few hundred
bytes per Representation however long the title is. Attribute values are XML-escaped here;
a URL handed in is written as it is given (escaped, never re-quoted).
"""

from __future__ import annotations

from fractions import Fraction
from xml.sax.saxutils import quoteattr

from livetx.dash.model import AdaptationSet, Mpd, Representation, SegmentTemplate

MPD_NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
AUDIO_CHANNELS_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"  # 23009-1 5.8.5.4
ROLE_SCHEME = "urn:mpeg:dash:role:2011"  # 23009-1 5.8.5.5
AUDIO_PURPOSE_SCHEME = "urn:tva:metadata:cs:AudioPurposeCS:2007"  # DASH-IF IOP: value 1, for the visually impaired
MICROSECOND = Fraction(1, 10**6)


def xs_duration(seconds: Fraction) -> str:
    """An xs:duration of whole microseconds, rounded down (never past the media's end):
    `PT7.007S`, `PT10S`."""
    micros = seconds // MICROSECOND
    whole, fraction = divmod(micros, 10**6)
    text = f"{whole}.{fraction:06d}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def frame_rate(rate: Fraction) -> str:
    """FrameRateType (5.3.12.2): `25`, or `30000/1001`."""
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _attrs(pairs: list[tuple[str, object]]) -> str:
    return "".join(f" {name}={quoteattr(str(value))}" for name, value in pairs if value is not None)


def _template(template: SegmentTemplate, indent: str) -> list[str]:
    head = _attrs(
        [
            ("timescale", template.timescale),
            ("initialization", template.initialization),
            ("media", template.media),
            ("startNumber", template.start_number),
        ]
    )
    lines = [f"{indent}<SegmentTemplate{head}>", f"{indent}  <SegmentTimeline>"]
    for s in template.timeline:
        lines.append(f"{indent}    <S{_attrs([('t', s.t), ('d', s.d), ('r', s.r or None)])}/>")
    lines += [f"{indent}  </SegmentTimeline>", f"{indent}</SegmentTemplate>"]
    return lines


def _representation(rep: Representation, indent: str) -> list[str]:
    head = _attrs(
        [
            ("id", rep.id),
            ("bandwidth", rep.bandwidth),
            ("codecs", rep.codecs),
            ("width", rep.width),
            ("height", rep.height),
            ("frameRate", frame_rate(rep.frame_rate) if rep.frame_rate is not None else None),
            ("audioSamplingRate", rep.audio_sampling_rate),
        ]
    )
    lines = [f"{indent}<Representation{head}>"]
    if rep.audio_channels is not None:
        channels = _attrs([("schemeIdUri", AUDIO_CHANNELS_SCHEME), ("value", rep.audio_channels)])
        lines.append(f"{indent}  <AudioChannelConfiguration{channels}/>")
    lines += _template(rep.template, indent + "  ")
    lines.append(f"{indent}</Representation>")
    return lines


def _adaptation_set(aset: AdaptationSet, indent: str) -> list[str]:
    head = _attrs(
        [
            ("id", aset.id),
            ("contentType", aset.content_type),
            ("mimeType", aset.mime_type),
            ("lang", aset.lang),
            ("segmentAlignment", "true" if aset.segment_alignment else None),
            ("startWithSAP", aset.start_with_sap),
        ]
    )
    lines = [f"{indent}<AdaptationSet{head}>"]
    if aset.describes_video:  # Accessibility before Role (the schema's order)
        lines.append(f"{indent}  <Accessibility{_attrs([('schemeIdUri', AUDIO_PURPOSE_SCHEME), ('value', 1)])}/>")
    if aset.role is not None:
        lines.append(f"{indent}  <Role{_attrs([('schemeIdUri', ROLE_SCHEME), ('value', aset.role)])}/>")
    for rep in aset.representations:
        lines += _representation(rep, indent + "  ")
    lines.append(f"{indent}</AdaptationSet>")
    return lines


def render_mpd(mpd: Mpd) -> str:
    """A static MPD (5.3.1.2) with one Period from time 0 (5.3.2)."""
    head = _attrs(
        [
            ("xmlns", MPD_NAMESPACE),
            ("profiles", mpd.profiles),
            ("type", "static"),
            ("mediaPresentationDuration", xs_duration(mpd.duration)),
            ("minBufferTime", xs_duration(mpd.min_buffer_time)),
        ]
    )
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<MPD{head}>", '  <Period id="0" start="PT0S">']
    for aset in mpd.adaptation_sets:
        lines += _adaptation_set(aset, "    ")
    lines += ["  </Period>", "</MPD>", ""]
    return "\n".join(lines)
