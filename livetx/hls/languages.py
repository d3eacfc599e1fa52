"""Language tags and names for EXT-X-MEDIA (RFC 8216 4.3.4.1: LANGUAGE is an RFC 5646 tag). Pure.

Containers write ISO 639-2 codes (`eng`, `fre` or `fra`); RFC 5646 wants the ISO 639-1 code
where one exists (`en`, `fr`), else the three letters as written. A rendition without a title
tag is named after its language, in English, from a small table of common languages; other
codes name themselves.
"""

from __future__ import annotations

UNDETERMINED = "und"

# ISO 639-2 (bibliographic and terminology codes) -> (ISO 639-1, English name)
_LANGUAGES = {
    "ara": ("ar", "Arabic"), "ces": ("cs", "Czech"), "cze": ("cs", "Czech"), "chi": ("zh", "Chinese"),
    "zho": ("zh", "Chinese"), "dan": ("da", "Danish"), "deu": ("de", "German"), "ger": ("de", "German"),
    "dut": ("nl", "Dutch"), "nld": ("nl", "Dutch"), "ell": ("el", "Greek"), "gre": ("el", "Greek"),
    "eng": ("en", "English"), "fin": ("fi", "Finnish"), "fra": ("fr", "French"), "fre": ("fr", "French"),
    "heb": ("he", "Hebrew"), "hin": ("hi", "Hindi"), "hun": ("hu", "Hungarian"), "ita": ("it", "Italian"),
    "jpn": ("ja", "Japanese"), "kor": ("ko", "Korean"), "nor": ("no", "Norwegian"), "pol": ("pl", "Polish"),
    "por": ("pt", "Portuguese"), "rus": ("ru", "Russian"), "spa": ("es", "Spanish"), "swe": ("sv", "Swedish"),
    "tur": ("tr", "Turkish"), "ukr": ("uk", "Ukrainian"),
}  # fmt: skip
_NAMES = {short: name for short, name in _LANGUAGES.values()}


def language_tag(code: str | None) -> str:
    """The RFC 5646 tag of a container's language code; `und` when there is none."""
    if not code or code.lower() == UNDETERMINED:
        return UNDETERMINED
    code = code.lower()
    return _LANGUAGES[code][0] if code in _LANGUAGES else code


def language_name(tag: str) -> str | None:
    """A readable English name for an RFC 5646 tag (its primary subtag), if the table has one."""
    return _NAMES.get(tag.split("-")[0])


def normal_tag(code: str) -> str:
    """`code` lower-cased, its primary subtag as `language_tag` writes it: `fre-CA` is `fr-ca`."""
    primary, sep, rest = code.lower().partition("-")
    return language_tag(primary) + sep + rest


def language_matches(wanted: str, code: str | None) -> bool:
    """Whether a track whose container says `code` is in the language range `wanted` (RFC 4647
    3.3.1 basic filtering, both normalised first): `fr`, `fra` and `fre` each match `fre`;
    `en` matches `en-US`, but `en-US` not `eng`; `und` matches a track with no language."""
    want, have = normal_tag(wanted), normal_tag(code or UNDETERMINED)
    return have == want or have.startswith(want + "-")
