"""The storage interface: sources are read from it, segments and playlists written back to it.

Keys are "/"-separated relative names. `check_key` refuses any key with more than one
spelling or a way out of its root before a backend sees it.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from livetx.errors import InvalidPath, SourceTypeRefused

MAX_KEY_BYTES = 1024


def check_key(key: str) -> str:
    """A storage key: relative, NFC, no empty/'.'/'..' segments, no backslash or control character."""
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidPath("key must be 1 to 1024 bytes")
    if key.startswith("/") or "\\" in key or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidPath("key must be relative, without backslashes or control characters")
    if unicodedata.normalize("NFC", key) != key:
        raise InvalidPath("key is not NFC-normalised")
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        raise InvalidPath("key has an empty, '.' or '..' segment")
    return key


# Playlists, reference lists and session descriptions: FFmpeg's demuxers for these (hls,
# concat, dash, sdp/rtp, ...) open the objects named inside, anywhere. A source is one object.
REFUSED_SOURCE_SUFFIXES = frozenset(
    (".m3u8", ".m3u", ".ffconcat", ".concat", ".sdp", ".mpd", ".f4m", ".ism", ".ismc", ".pls", ".xspf", ".asx", ".wpl", ".smil")
)


def is_hidden(key: str) -> bool:
    """A key with a part starting with '.': where livetx keeps its own (output inside the source
    store, job records); never listed, never a source, never claimed by a job."""
    return any(part.startswith(".") for part in key.split("/"))


@functools.lru_cache(maxsize=4096)  # keys of titles being played pass once; a refusal raises (not kept)
def check_source_key(key: str) -> str:
    """A source key: a storage key none of whose segments is hidden (where livetx keeps its
    output), not named as a playlist or reference list (422 `source_type_refused`)."""
    check_key(key)
    if is_hidden(key):
        raise InvalidPath("source key segments must not start with '.'")
    suffix = os.path.splitext(key)[1].lower()
    if suffix in REFUSED_SOURCE_SUFFIXES:
        raise SourceTypeRefused(f"a source named *{suffix} is a playlist or reference list: livetx opens single media files only")
    return key


def split_prefix(prefix: str) -> tuple[str, str]:
    """A listing prefix -> (its folder, checked as a key, or "" for the root; the start of the
    names listed in it, without backslash or control character)."""
    folder, slash, start = prefix.rpartition("/")
    if slash and not folder:
        raise InvalidPath("a listing prefix must be relative")
    if folder:
        check_key(folder)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in start) or "\\" in start:
        raise InvalidPath("a listing prefix must not hold backslashes or control characters")
    return folder, start


def check_record_folder(folder: str) -> str:
    """A folder of livetx's own records: a hidden key ending in "/" (what `list_records` lists)."""
    if not folder.endswith("/") or not is_hidden(folder):
        raise InvalidPath("a record folder is a hidden folder ending in '/'")
    check_key(folder.rstrip("/"))
    return folder


def url_origin(url: str) -> str:
    """`scheme://host[:port]` of an HTTP(S) URL, lower case ("" for anything else: a path)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


URI_SCHEMES = ("oss", "s3")
LOCAL_BUCKET = "local"  # the bucket name API requests use for a local-directory store


def split_uri(uri: str, field: str) -> tuple[str, str]:
    """`oss://bucket/key` or `s3://bucket/key` -> (bucket, key), as the playlist APIs write them."""
    from livetx.errors import ParameterError

    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme not in URI_SCHEMES or not bucket or not key:
        raise ParameterError(field, "an object URI such as oss://bucket/path/name")
    return bucket, key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # changes whenever the content does
    pin: str = ""  # what a reader checks to be sure it reads this very version ("": no check)


def file_version(st: os.stat_result) -> str:
    """A local file's version: its size and mtime, which change whenever it is rewritten."""
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"


class Storage(Protocol):
    """What livetx needs of a store. Backends: `local.LocalStorage` and `s3.S3Storage`."""

    async def stat(self, key: str) -> ObjectInfo | None: ...

    async def read(self, key: str) -> bytes: ...

    async def write(self, key: str, data: bytes) -> None:
        """Atomic: readers see the whole object or none of it."""

    async def write_file(self, key: str, path: Path) -> None:
        """The bytes of the local file `path` as object `key`, atomic as `write`, and never held
        whole in memory (a job's output file: local, a copy then a rename; S3, one PUT, or a
        multipart upload whose object appears only when it completes)."""

    async def delete(self, key: str) -> None: ...

    async def list_prefix(self, prefix: str, limit: int) -> list[ObjectInfo]:
        """Up to `limit` objects, by key, whose keys start with `prefix` and that sit directly in
        its folder (`dir/film.` lists `dir/film.en.srt`, not `dir/film.x/a.srt`), hidden ones
        skipped. One request (S3: one ListObjectsV2 page; local: one directory scan)."""

    async def list_records(self, folder: str, limit: int) -> list[ObjectInfo]:
        """Up to `limit` of livetx's own records, by key, directly in the hidden folder `folder`
        (`.jobs/batch/open/`, `.jobs/templates/`, ending in "/"; its part names may start with
        '.'; the names listed don't: temp files). One request, as `list_prefix`."""

    async def list(self, limit: int) -> list[ObjectInfo]:
        """Up to `limit` objects, by key, skipping hidden ones (a segment of the key starting with '.')."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for the object, when the backend has one (for sendfile)."""

    async def media_url(self, key: str) -> str:
        """What a transcode worker opens to read the object (a path, or a URL read with ranged GETs)."""

    def key_for_uri(self, uri: str, field: str) -> str:
        """The key in this store of an API's object URI; ParameterError naming `field` when the
        URI is not in this store."""


MEDIA_ORIGIN_KEY = ".livetx/origin"  # any key: only the scheme and host of its URL are used


async def media_origin(storage: Storage) -> str:
    """Where the URLs `storage.media_url` hands to workers point (`scheme://host[:port]`), or
    "" for a store whose workers read paths. Workers read remote sources from there only."""
    return url_origin(await storage.media_url(MEDIA_ORIGIN_KEY))
