"""What a subtitle file's name says: which source it belongs to, and its track's language,
flags and label. Pure: no storage I/O.

A sidecar of source `dir/film.mkv` sits in the same folder and is named after the source's
stem, `dir/film(.<tag>)*.(srt|vtt|ass|ssa)`, or after its whole name, `dir/film.mkv(.<tag>)*.srt`.
Tags come in any order, case-insensitive:

    en, fre, pt-BR, zh-Hant, es-419   the language (a BCP 47-ish tag: 2-3 letters, then
                                       optionally a region or a script); the first one wins
    forced                             forced narrative (FORCED=YES)
    sdh, cc, hi                        for the deaf and hard of hearing
    default                            the default track (DEFAULT=YES)
    anything else                      the rendition's NAME (several are joined by spaces)

`film.srt` is a sidecar with no language (`und` in a playlist). A file named by an API request
(IMM `SourceSubtitles`) may have any name: `request_name` reads what it can from it.
"""

from __future__ import annotations

import re

from livetx.errors import LivetxError
from livetx.storage.base import check_source_key
from livetx.subtitles.sidecar import SidecarName

KINDS = ("srt", "vtt", "ass", "ssa")  # the suffixes of sidecar subtitle files
FORCED = frozenset({"forced"})
HEARING_IMPAIRED = frozenset({"sdh", "cc", "hi"})
DEFAULT = frozenset({"default"})
# a primary language subtag, then optionally a script (Hant), a region (BR) or a UN M.49 area (419)
_LANGUAGE = re.compile(r"([a-z]{2,3})(?:-([a-z]{4}|[a-z]{2}|[0-9]{3}))?", re.IGNORECASE)


def kind_of(key: str) -> str | None:
    """The subtitle format named by the key's suffix (`srt`, `vtt`, `ass`, `ssa`), or None."""
    _, dot, suffix = key.rpartition(".")
    kind = suffix.lower()
    return kind if dot and kind in KINDS else None


def language_tag(tag: str) -> str | None:
    """`tag` as a language (`en`, `fre`, `pt-BR`, `zh-Hant`, `es-419`) in BCP 47's letter case,
    or None when it does not look like one."""
    found = _LANGUAGE.fullmatch(tag)
    if found is None or not tag.isascii():
        return None
    primary, sub = found.group(1).lower(), found.group(2)
    if sub is None:
        return primary
    return f"{primary}-{sub.title() if len(sub) == 4 else sub.upper()}"


def _flag(tag: str) -> str | None:
    lowered = tag.lower()
    for name, words in (("forced", FORCED), ("hearing_impaired", HEARING_IMPAIRED), ("default", DEFAULT)):
        if lowered in words:
            return name
    return None


def _from_tags(tags: list[str], kind: str) -> SidecarName:
    language: str | None = None
    flags: set[str] = set()
    label: list[str] = []
    for tag in tags:
        flag = _flag(tag)
        if flag is not None:
            flags.add(flag)
            continue
        as_language = language_tag(tag) if language is None else None
        if as_language is not None:
            language = as_language
        else:
            label.append(tag)
    return SidecarName(
        language=language,
        forced="forced" in flags,
        hearing_impaired="hearing_impaired" in flags,
        default="default" in flags,
        label=" ".join(label) or None,
        kind=kind,
    )


def _split(key: str) -> tuple[str, str]:
    folder, _, name = key.rpartition("/")
    return folder, name


def parse_sidecar_name(source_key: str, key: str) -> SidecarName | None:
    """What sidecar `key` says of its track, when it is a sidecar of source `source_key`
    (same folder, named after the source, a subtitle suffix); None for any other key, and for
    a key that is not a valid source key (hidden, badly formed)."""
    kind = kind_of(key)
    if kind is None or key == source_key:
        return None
    try:
        check_source_key(key)
    except LivetxError:
        return None
    folder, name = _split(key)
    source_folder, source_name = _split(source_key)
    if folder != source_folder:
        return None
    body = name[: -len(kind) - 1]
    stem = source_name.rsplit(".", 1)[0]
    for prefix in dict.fromkeys((source_name, stem)):  # the whole name first: film.mkv.en.srt
        if body == prefix:
            return SidecarName(language=None, kind=kind)
        if body.startswith(prefix + "."):
            tags = body[len(prefix) + 1 :].split(".")
            if "" in tags:  # film..en.srt: not a name livetx wrote down a grammar for
                return None
            return _from_tags(tags, kind)
    return None


def request_name(source_key: str, key: str) -> SidecarName:
    """What a subtitle file named by an API request says of its track: the sidecar grammar
    against the source when it fits, else the recognised tags at the end of its own name
    (`subs/movie.2010.en.forced.srt`: en, forced; no label), else nothing (language None:
    `und`). The key is a checked source key with a subtitle suffix (`kind_of`)."""
    named = parse_sidecar_name(source_key, key)
    if named is not None:
        return named
    kind = kind_of(key)
    name = _split(key)[1]
    parts = (name[: -len(kind) - 1] if kind else name).split(".")
    tags: list[str] = []
    for tag in reversed(parts[1:]):  # the first part is the file's own stem
        if _flag(tag) is None and (language_tag(tag) is None or any(language_tag(t) for t in tags)):
            break
        tags.append(tag)
    return _from_tags(tags, kind or "srt")


def listing_prefix(source_key: str) -> str:
    """What the keys of every sidecar of `source_key` start with: `dir/film.` for `dir/film.mkv`
    (its stem and a dot; a sidecar named after the whole name, `dir/film.mkv.en.srt`, too)."""
    folder, slash, name = source_key.rpartition("/")
    return f"{folder}{slash}{name.rsplit('.', 1)[0]}."
