"""Opening a source: one object, read through a Python file, in an allowed container format.

Security model. A source is untrusted. FFmpeg has demuxers that open further objects named
inside a file (hls and dash playlists, concat lists, image2 patterns, MOV data references,
...), with whatever protocol the name asks for. livetx never lets FFmpeg open anything:

- `open_source` opens the object itself, a local file (one descriptor, checked to be a regular
  file) or a `RangedReader` over the storage's HTTP(S) URL, and FFmpeg reads that file object;
- `open_container` passes FFmpeg an `io_open` that refuses every further open, a protocol
  allow-list (`file` for local sources, none for remote ones), and `format_whitelist` (checked
  by avformat_open_input right after probing, before a demuxer reads its header), from
  CONTAINER_FORMATS, the one list of what livetx reads.

`RangedReader` is a seekable binary file over an HTTP(S) URL (a presigned S3 GET, say). It
fetches bounded blocks with `Range: bytes=a-b`, keeps a few in an LRU, and counts what it
fetched. It talks HTTP(S) only, to one origin (the storage endpoint), and follows no
redirect. Blocks grow while reads run forward (demuxing) and shrink back after a seek
(probing headers, a moov at the end).
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import stat
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, Protocol

import av
import av.logging
from av.container import InputContainer

from livetx.errors import SourceChanged, SourceTypeRefused, SourceUnreadable, TranscodeFailed
from livetx.lru import Lru
from livetx.storage.base import file_version, url_origin

MIN_BLOCK = 256 * 1024
MAX_BLOCK = 4 * 1024 * 1024
CACHED_BLOCKS = 8
TIMEOUT = 30.0
ATTEMPTS = 3
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


# The demuxers livetx opens sources with (FFmpeg names; a demuxer named "a,b" matches either).
# None of them reads another object than the one it is given. Not here, on purpose: hls, dash,
# concat, image2 and the *_pipe image demuxers, sdp/rtp/rtsp, tee, data, subfile, ...
CONTAINER_FORMATS = (
    "mov",  # mov,mp4,m4a,3gp,3g2,mj2 (data references are never followed: see io_open)
    "matroska",  # matroska,webm
    "avi",
    "flv",
    "mpegts",
    "mpeg",  # MPEG-PS (.mpg, .vob)
    "asf",  # ASF, WMV, WMA
    "mp3",
    "aac",  # ADTS
    "wav",
    "flac",
    "ogg",
)
CONTAINER_NAMES = "MP4, MOV, MKV, WebM, AVI, FLV, MPEG-TS, MPEG-PS, ASF/WMV, MP3, AAC, WAV, FLAC, Ogg"
LOCAL_PROTOCOLS = "file"
REMOTE_PROTOCOLS = ""  # a remote source is a Python file object: FFmpeg opens no protocol at all


class VersionMismatch(OSError):
    """The source is no longer the version the caller pinned."""


class NestedOpenRefused(OSError):
    """FFmpeg asked to open another object than the source (a reference inside the file)."""


def _refuse_nested(url: str, flags: int, options: dict[str, str]) -> Any:
    raise NestedOpenRefused("the source refers to another object")


def _origin_error() -> SourceUnreadable:
    return SourceUnreadable("the source URL is not on the configured storage endpoint")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an error (HTTPError): the reader talks to its one origin only


# HTTP(S) only: no file:, ftp: or data: handler, no redirects
_OPENER = urllib.request.OpenerDirector()
for _handler in (
    urllib.request.HTTPHandler(),
    urllib.request.HTTPSHandler(),
    urllib.request.HTTPDefaultErrorHandler(),
    urllib.request.HTTPErrorProcessor(),
    _NoRedirect(),
):
    _OPENER.add_handler(_handler)


class RangedReader(io.RawIOBase):
    def __init__(self, url: str, timeout: float = TIMEOUT, if_match: str = "", origin: str | None = None) -> None:
        """`origin`: the only `scheme://host[:port]` this reader may talk to (None: the URL's own)."""
        super().__init__()
        own = url_origin(url)
        if not own or (origin is not None and own != origin):
            raise _origin_error()
        self.url = url
        self.timeout = timeout
        self.if_match = if_match  # an ETag: every GET must read that version, or fail with 412
        self.pos = 0
        self.size: int | None = None
        self.fetched = 0  # bytes received from the server
        self.requests = 0
        self._blocks: Lru[int, bytes] = Lru(CACHED_BLOCKS)  # start offset -> bytes
        self._block = MIN_BLOCK
        self._last_end = -1
        self._fetch(0, MIN_BLOCK)  # learns the size; most probes need the first block anyway

    def __repr__(self) -> str:  # the URL carries a signature: never shown
        return f"RangedReader(size={self.size}, fetched={self.fetched})"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        assert self.size is not None
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def _fetch(self, start: int, length: int) -> bytes:
        end = start + length - 1
        if self.size is not None:
            end = min(end, self.size - 1)
        headers = {"Range": f"bytes={start}-{end}"}
        if self.if_match:
            headers["If-Match"] = self.if_match
        request = urllib.request.Request(self.url, headers=headers)
        for attempt in range(ATTEMPTS):
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    data: bytes = response.read()
                    header = response.headers.get("Content-Range", "")
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 416:  # past the end
                    return b""
                if exc.code == 412:
                    raise VersionMismatch("the source changed since it was planned") from None
                if exc.code < 500 or attempt == ATTEMPTS - 1:
                    raise OSError(f"source read failed: HTTP {exc.code}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise OSError(f"source read failed: {type(exc).__name__}") from None
        self.requests += 1
        self.fetched += len(data)
        match = _CONTENT_RANGE.match(header)
        if match and match.group(3) != "*":
            self.size = int(match.group(3))
        elif self.size is None:  # a server that ignored Range sent everything
            self.size = len(data)
            if start:
                data = data[start:]
        self._blocks.put(start, data)
        return data

    def _block_at(self, pos: int) -> tuple[int, bytes] | None:
        for start, data in reversed(self._blocks.items()):  # most recent first
            if start <= pos < start + len(data):
                self._blocks.get(start)  # now the most recent
                return start, data
        return None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        assert self.size is not None
        if self.pos >= self.size or not len(buffer):
            return 0
        found = self._block_at(self.pos)
        if found is None:
            # forward reads double the block (to MAX_BLOCK); a jump starts small again
            self._block = min(self._block * 2, MAX_BLOCK) if self.pos == self._last_end else MIN_BLOCK
            data = self._fetch(self.pos, self._block)
            if not data:
                return 0
            found = self.pos, data
        start, data = found
        offset = self.pos - start
        n = min(len(buffer), len(data) - offset)
        buffer[:n] = data[offset : offset + n]
        self.pos += n
        self._last_end = start + len(data)
        return n


def is_remote(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@contextmanager
def open_source(source: str, pin: str = "", origin: str | None = None) -> Iterator[tuple[BinaryIO, Callable[[], int]]]:
    """The source as a binary file for `open_container`, and a counter of the bytes fetched
    from a remote one. A local `source` is a path; a remote one an HTTP(S) URL, read only if it
    points at `origin` (the storage endpoint; None: trust the URL, for callers that made it).
    With a `pin` (`ObjectInfo.pin`), reading a version other than that one raises
    VersionMismatch: a remote source is read with If-Match, and a local file's version is
    checked on the open descriptor before and after reading."""
    if not is_remote(source):  # a path, whatever it looks like (no "file:" or other scheme is parsed)
        with _open_local(source) as file:
            _check_file(file, pin)
            yield file, lambda: 0
            _check_file(file, pin)
        return
    if origin is not None and not origin:
        raise _origin_error()  # a local store's workers never read URLs
    reader = RangedReader(source, if_match=pin, origin=origin)
    try:
        yield reader, lambda: reader.fetched  # type: ignore[misc]
    finally:
        reader.close()


class SourceJob(Protocol):
    """What a worker's job says of its source (a `SegmentJob`, a `PictureJob`)."""

    @property
    def source(self) -> str: ...

    @property
    def source_pin(self) -> str: ...

    @property
    def open_options(self) -> dict[str, str]: ...


@contextmanager
def open_job_source(job: SourceJob, origin: str | None) -> Iterator[tuple[InputContainer, Callable[[], int]]]:
    """A worker's job source (a segment's or a picture's), opened (`open_source` with the job's pin, then `open_container`
    with its options), and the counter of bytes fetched. Failures inside the block as the client
    sees them: a changed source is SourceChanged, an av or OS error TranscodeFailed (worded by
    `describe_error`); livetx's own errors pass as they are."""
    try:
        with open_source(job.source, job.source_pin, origin) as (target, counter), open_container(target, extra=job.open_options) as src:
            yield src, counter
    except VersionMismatch as exc:
        raise SourceChanged(f"{exc}; reload the playlist") from None
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeFailed(f"transcode failed: {describe_error(exc)}") from None


@contextmanager
def _open_local(path: str) -> Iterator[BinaryIO]:
    """One descriptor on a regular file (non-blocking open: a FIFO swapped in must not hang)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceUnreadable("the source is not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        raw = io.FileIO(fd, "r", closefd=False)
        raw.name = os.path.basename(path)  # FFmpeg's probe hint; never the path
        with io.BufferedReader(raw) as file:
            yield file
    finally:
        os.close(fd)


def _check_file(file: BinaryIO, pin: str) -> None:
    if pin and file_version(os.fstat(file.fileno())) != pin:
        raise VersionMismatch("the source changed since it was planned")


def describe_error(exc: BaseException) -> str:
    """An av or OS error in words fit for a client: its kind and reason, never the file name or
    URL that FFmpeg and the OS put in the message."""
    reason = getattr(exc, "strerror", None)
    if reason is None and type(exc) in (OSError, VersionMismatch, NestedOpenRefused) and exc.args:
        reason = str(exc.args[0])  # raised by livetx itself, worded without names
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def open_container(file: BinaryIO, timeout: float = TIMEOUT, extra: dict[str, str] | None = None) -> Any:
    """`av.open` on a file from `open_source`, safely: FFmpeg may open nothing further, and only
    a demuxer of CONTAINER_FORMATS may read the file. A refused format is SourceTypeRefused;
    other failures to open are av/OS errors for the caller to word (`describe_error`)."""
    options = {
        **(extra or {}),
        "format_whitelist": ",".join(CONTAINER_FORMATS),
        "protocol_whitelist": REMOTE_PROTOCOLS if isinstance(file, RangedReader) else LOCAL_PROTOCOLS,
    }
    with _ffmpeg_errors() as logs:
        try:
            return av.open(file, options=options, io_open=_refuse_nested, timeout=timeout)
        except (av.FFmpegError, NestedOpenRefused) as exc:
            refusal = _refusal(exc, logs)
            if refusal is None:
                raise
            raise refusal from exc


@contextmanager
def _ffmpeg_errors() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's error messages logged in the block, as (level, name, text)."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # to learn which format was refused
    try:
        with av.logging.Capture(local=True) as logs:
            yield logs
    finally:
        av.logging.set_level(level)


def _refusal(exc: BaseException, logs: list[tuple[int, str, str]]) -> SourceTypeRefused | None:
    """The error for a source `av.open` failed on because livetx refused it (None: another failure)."""
    refused = [name for _, name, text in logs if "not on whitelist" in text]
    if refused:
        return SourceTypeRefused(f"the source's container format ({refused[0]}) is not one livetx reads: {CONTAINER_NAMES}")
    if isinstance(exc, NestedOpenRefused):
        return SourceTypeRefused("the source refers to other objects: livetx reads single media files only")
    return None
