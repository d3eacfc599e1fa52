"""Every object key livetx writes to output storage, in one place.

A configured profile's output of one source sits in the title's folder, `<source key>/<profile>/`:
  `<rendition>-<spec id>-<n>.ts`   segment n (the spec id hashes the source's identity and the
                                   full transcode spec, so changed parameters or a replaced source
                                   never meet a stale segment)
  `<rendition>-<spec id>-<n>.m4s`  segment n of an fMP4 rendition (a CMAF fragment), and
  `<rendition>-<spec id>-init.mp4` its init segment
  `<rendition>-<spec id>-<n>.vtt`  segment n of a WebVTT subtitle rendition (`s<stream index>`, an
                                   embedded text track; a sidecar's `x<hash>` segments are made
                                   per request and never stored)
  `<rendition>.m3u8`               media playlist, naming its segments as above (`s2.m3u8`: subtitles)
  `master.m3u8`                    master playlist, naming the media playlists as above
  `snap-<picture id>.<jpg|webp|png>`  a snapshot (the id: 16 hex digits hashing the source's
                                   identity and the normalised parameters)
  `poster-<picture id>.jpg`        the title's poster
  `storyboard-<spec>-<n>.jpg`      storyboard sheet n (the spec: 12 hex digits hashing the grid
                                   and the source's identity); the WebVTT track is never stored
  `key-<kid>-<version>-<period>.key`  a content key of an encrypted rendition (a URL only, never
                                   stored: derived from master key <kid> for title version
                                   <version>, livetx/crypto/keys.py)
Next to the source's folders, one record per probed source version:
  `<source key>/probe-<version>.json`   (version: sha256 of the source's ETag, 16 hex digits)
A rendition made through the playlist APIs names its own prefix, as those APIs do:
  `<prefix>-<spec id>-<n>.ts` (or `.m4s`, and `-init.mp4`) next to `<prefix>.m3u8` (its segments
  are named `<last part of prefix>-<spec id>-<n>.ts` inside it), and the master where the request says.
  Its audio and subtitle renditions (`a1`, `a4c6`, `s5`, `x<hash>`) take the prefix
  `<master key minus .m3u8>-a1`, next to the master (`-s5-<spec id>-<n>.vtt`; a sidecar's
  `-x<hash>-...vtt` segments are made per request, never stored).
livetx's own records are hidden keys (a part starting with "."), which no job may claim:
  `.jobs/<id>.json`                  a playlist job's record
  `.jobs/claims/<sha256 of key>.json`  which job claimed an output key
  `.jobs/templates/<name>.json`      a template (livetx/batch/templates.py)
  `.jobs/pipelines/<name>.json`      a pipeline (livetx/batch/pipelines.py)
  `.jobs/composites/c-<id>.json`     a composite title's record (livetx/composite.py)
  `.jobs/batch/<id>.json`            a background job's record (livetx/batch/)
  `.jobs/batch/open/<id>`            a background job still to run or to notify (what runners list)
  `.jobs/batch/cancel/<id>`          a cancel request for a running background job
  `.jobs/batch/keys/<sha256>.json`   an Idempotency-Key (of one API key) -> its job
A background job's segments are a title's like any other, under a hidden profile folder
(`<first clip's source key>/.batch-<hash of its clips and parameters>/...`, livetx/batch/work.py):
shared by every job of those clips and parameters (whatever the file's container), never
listed, never claimed by a playlist job.

tests/test_layout.py holds a table of every shape: a change of layout is one deliberate diff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from livetx.crypto.keys import KeyName
from livetx.media.model import INIT, SegmentPart
from livetx.pictures import FORMATS
from livetx.titles import Rendition, Title

SEGMENT_SUFFIX = ".ts"
PLAYLIST_SUFFIX = ".m3u8"
MPD_SUFFIX = ".mpd"  # a segmented job's DASH manifest (target_mpd_key)
FRAGMENT_SUFFIX = ".m4s"  # an fMP4 rendition's media segments
INIT_SUFFIX = ".mp4"  # an fMP4 rendition's init segment, named `...-init.mp4`
SUBTITLE_SUFFIX = ".vtt"  # a subtitle rendition's WebVTT segments
KEY_SUFFIX = ".key"  # a content key's URL (never an object)
SEGMENT_SUFFIXES = (SEGMENT_SUFFIX, FRAGMENT_SUFFIX, INIT_SUFFIX, SUBTITLE_SUFFIX)
PICTURE_SUFFIXES = tuple(f".{ext}" for ext in FORMATS)  # snapshots, the poster, storyboard sheets
CONTENT_TYPES = {  # by suffix, as served and as stored
    SEGMENT_SUFFIX: "video/mp2t",
    FRAGMENT_SUFFIX: "video/iso.segment",  # CMAF media segment (RFC 8216bis 3.1.2)
    INIT_SUFFIX: "video/mp4",
    SUBTITLE_SUFFIX: "text/vtt; charset=utf-8",  # RFC 8216 3.5
    PLAYLIST_SUFFIX: "application/vnd.apple.mpegurl",
    ".json": "application/json",
}
MASTER_NAME = "master" + PLAYLIST_SUFFIX
JOBS_PREFIX = ".jobs/"
CLAIMS_PREFIX = JOBS_PREFIX + "claims/"
TEMPLATES_PREFIX = JOBS_PREFIX + "templates/"
PIPELINES_PREFIX = JOBS_PREFIX + "pipelines/"
RECORD_SUFFIX = ".json"
COMPOSITES_PREFIX = JOBS_PREFIX + "composites/"
BATCH_PREFIX = JOBS_PREFIX + "batch/"
BATCH_OPEN_PREFIX = BATCH_PREFIX + "open/"
BATCH_CANCEL_PREFIX = BATCH_PREFIX + "cancel/"
BATCH_KEYS_PREFIX = BATCH_PREFIX + "keys/"
BATCH_PROFILE_PREFIX = ".batch-"  # a background job's profile name: a hidden folder next to the source's


# ---- a title's output: segments and playlists -------------------------------------------


def title_folder(source_key: str, profile: str) -> str:
    """Where a configured profile's output of one source goes: `<source key>/<profile>/`."""
    return f"{source_key}/{profile}/"


_SUFFIXES = {"fmp4": FRAGMENT_SUFFIX, "vtt": SUBTITLE_SUFFIX}


def segment_suffix(rendition: Rendition) -> str:
    """What the names of the rendition's media segments end with: `.ts`, `.m4s` (fMP4) or `.vtt` (subtitles)."""
    return _SUFFIXES.get(rendition.container, SEGMENT_SUFFIX)


def _part_name(rendition: Rendition, index: SegmentPart) -> str:
    """`<n>.ts`, `<n>.m4s`, `<n>.vtt` or `init.mp4`: what follows the stem."""
    return f"{INIT}{INIT_SUFFIX}" if index == INIT else f"{index}{segment_suffix(rendition)}"


def segment_name(rendition: Rendition, index: SegmentPart) -> str:
    """The segment's file name, as it appears in the media playlist and in storage."""
    return f"{rendition.name}-{rendition.spec_id}-{_part_name(rendition, index)}"


def segment_stem(title: Title, rendition: Rendition) -> str:
    """The key of the rendition's segment n is `segment_stem + f"{n}.ts"` (`.m4s` for fMP4, `.vtt` for subtitles)."""
    if rendition.object_prefix is not None:
        return f"{rendition.object_prefix}-{rendition.spec_id}-"
    return f"{title_folder(title.source.key, title.profile.name)}{rendition.name}-{rendition.spec_id}-"


def segment_key(title: Title, rendition: Rendition, index: SegmentPart) -> str:
    return f"{segment_stem(title, rendition)}{_part_name(rendition, index)}"


def segment_index(key: str, stem: str, suffix: str = SEGMENT_SUFFIX) -> int | None:
    """n for a media segment key (or file name) `stem<n><suffix>`, else None."""
    if key.startswith(stem) and key.endswith(suffix):
        digits = key[len(stem) : -len(suffix)]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return None


def stored_segment_name(rendition: Rendition, index: SegmentPart) -> str:
    """The segment's name as written in a playlist stored next to it."""
    if rendition.object_prefix is not None:
        return f"{rendition.object_prefix.rsplit('/', 1)[-1]}-{rendition.spec_id}-{_part_name(rendition, index)}"
    return segment_name(rendition, index)


def key_file_name(name: KeyName) -> str:
    """A content key's file name next to the media playlists (and in the title's URLs)."""
    return f"key-{name.kid}-{name.version}-{name.period}{KEY_SUFFIX}"


def media_playlist_name(rendition: Rendition) -> str:
    """The media playlist's name next to the master playlist (and in the title's URLs)."""
    return rendition.name + PLAYLIST_SUFFIX


def media_playlist_key(title: Title, rendition: Rendition) -> str:
    if rendition.object_prefix is not None:
        return target_playlist_key(rendition.object_prefix)
    return title_folder(title.source.key, title.profile.name) + media_playlist_name(rendition)


def master_playlist_key(title: Title) -> str | None:
    """Where the title's master playlist is written: the one an API request named, else the
    title's folder; None for an API-made profile whose request named no master."""
    if title.profile.master_key is not None:
        return title.profile.master_key
    if title.profile.source_key is None:
        return title_folder(title.source.key, title.profile.name) + MASTER_NAME
    return None


# ---- playlist API targets ----------------------------------------------------------------


def target_prefix(key: str) -> str:
    """A target's object prefix from the key its request named (`<prefix>` or `<prefix>.m3u8`)."""
    return key.removesuffix(PLAYLIST_SUFFIX)


def target_playlist_key(prefix: str) -> str:
    return prefix + PLAYLIST_SUFFIX


def target_mpd_key(prefix: str) -> str:
    """A segmented job's DASH manifest, `<prefix>.mpd`, next to its `<prefix>.m3u8`."""
    return prefix + MPD_SUFFIX


def track_prefix(master_key: str) -> str:
    """What the object prefix of an API-made title's audio or subtitle rendition starts with,
    its name (`a1`, `a4c6`, `s5`, `x<hash>`) following: `<master key minus .m3u8>-`, next to the master
    (`Profile.track_prefix`; titles.py appends the name, as a target's URI is its prefix)."""
    return f"{target_prefix(master_key)}-"


def target_segments_prefix(playlist_key: str) -> str:
    """What every segment key of the target whose playlist is `playlist_key` starts with."""
    return target_prefix(playlist_key) + "-"


# ---- a title's pictures (livetx/pictures.py) ----------------------------------------------


def snapshot_key(title: Title, picture: str, ext: str) -> str:
    """A snapshot: `<title folder>snap-<picture id>.<jpg|webp|png>` (the id hashes the source's
    identity and the normalised parameters: `livetx.pictures.picture_id`)."""
    return f"{title_folder(title.source.key, title.profile.name)}snap-{picture}.{ext}"


def poster_key(title: Title, picture: str) -> str:
    """The title's poster: `<title folder>poster-<picture id>.jpg`."""
    return f"{title_folder(title.source.key, title.profile.name)}poster-{picture}.jpg"


def storyboard_sheet_key(title: Title, name: str) -> str:
    """A storyboard sheet, under its URL name (`storyboard-<spec>-<n>.jpg`, `livetx.pictures.sheet_name`)."""
    return f"{title_folder(title.source.key, title.profile.name)}{name}"


# ---- records -------------------------------------------------------------------------------


def probe_key(source_key: str, etag: str) -> str:
    """Where the probe of this source version is recorded."""
    version = hashlib.sha256(etag.encode()).hexdigest()[:16]
    return f"{source_key}/probe-{version}.json"


def record_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}{RECORD_SUFFIX}"


def template_key(name: str) -> str:
    """Where template `name` (checked by livetx/batch/templates.py) is kept."""
    return f"{TEMPLATES_PREFIX}{name}{RECORD_SUFFIX}"


def pipeline_key(name: str) -> str:
    """Where pipeline `name` (checked by livetx/batch/pipelines.py) is kept."""
    return f"{PIPELINES_PREFIX}{name}{RECORD_SUFFIX}"


def record_name(key: str, prefix: str) -> str | None:
    """The name of the record `key` listed under `prefix` (a template's, a pipeline's), else None."""
    if key.startswith(prefix) and key.endswith(RECORD_SUFFIX):
        return key[len(prefix) : -len(RECORD_SUFFIX)]
    return None


def composite_key(profile: str) -> str:
    """Where a composite title's record is kept (profile `c-<id>`, livetx/composite.py)."""
    return f"{COMPOSITES_PREFIX}{profile}{RECORD_SUFFIX}"


def batch_record_key(job_id: str) -> str:
    """A background job's record."""
    return f"{BATCH_PREFIX}{job_id}{RECORD_SUFFIX}"


def batch_open_key(job_id: str) -> str:
    """The marker of a background job some runner still has to run or notify."""
    return f"{BATCH_OPEN_PREFIX}{job_id}"


def batch_cancel_key(job_id: str) -> str:
    return f"{BATCH_CANCEL_PREFIX}{job_id}"


def batch_idempotency_key(api_key: str, idempotency_key: str) -> str:
    """Where the job an API key submitted with an `Idempotency-Key` is recorded."""
    digest = hashlib.sha256(f"{api_key}\n{idempotency_key}".encode()).hexdigest()
    return f"{BATCH_KEYS_PREFIX}{digest}{RECORD_SUFFIX}"


def batch_profile_name(meaning: str) -> str:
    """The (hidden) profile name of a background job's title: one per set of parameters."""
    return BATCH_PROFILE_PREFIX + hashlib.sha256(meaning.encode()).hexdigest()[:12]


def claim_key(key: str) -> str:
    """Where the claim on output key `key` is recorded (any origin sees it)."""
    return CLAIMS_PREFIX + hashlib.sha256(key.encode()).hexdigest() + ".json"


def profile_area(key: str, profile_names: Iterable[str]) -> str | None:
    """The configured profile whose output area `<source key>/<profile>/...` holds `key`, if
    any. A source key has at least one part, so a profile folder is any folder after the first."""
    names = set(profile_names)
    return next((part for part in key.split("/")[1:-1] if part in names), None)
