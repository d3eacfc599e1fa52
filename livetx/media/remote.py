"""Reading a remote source with ranged GETs, so a segment never downloads the whole file.

`RangedReader` is a seekable binary file over an HTTP(S) URL (a presigned S3 GET, say). It
fetches bounded blocks with `Range: bytes=a-b`, keeps a few in an LRU, and counts what it
fetched. PyAV reads it like a local file; so does the MP4 rotation reader. Blocks grow while
reads run forward (demuxing) and shrink back after a seek (probing headers, a moov at the end).
"""

from __future__ import annotations

import io
import os
import re
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from livetx.storage.base import file_version

MIN_BLOCK = 256 * 1024
MAX_BLOCK = 4 * 1024 * 1024
CACHED_BLOCKS = 8
TIMEOUT = 30.0
ATTEMPTS = 3
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class VersionMismatch(OSError):
    """The source is no longer the version the caller pinned."""


class RangedReader(io.RawIOBase):
    def __init__(self, url: str, timeout: float = TIMEOUT, if_match: str = "") -> None:
        super().__init__()
        self.url = url
        self.timeout = timeout
        self.if_match = if_match  # an ETag: every GET must read that version, or fail with 412
        self.pos = 0
        self.size: int | None = None
        self.fetched = 0  # bytes received from the server
        self.requests = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()  # start offset -> bytes
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
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
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
        self._blocks[start] = data
        while len(self._blocks) > CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return data

    def _block_at(self, pos: int) -> tuple[int, bytes] | None:
        for start, data in reversed(self._blocks.items()):
            if start <= pos < start + len(data):
                self._blocks.move_to_end(start)
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
def open_source(source: str, pin: str = "") -> Iterator[tuple[str | RangedReader, Callable[[], int]]]:
    """What `av.open` should read for `source` (a path stays a path), and a counter of the
    bytes fetched from a remote one. With a `pin` (`ObjectInfo.pin`), reading a version other
    than that one raises VersionMismatch: a remote source is read with If-Match, and a local
    file's version is checked before and after (a file renamed over it mid-read shows then)."""
    if not is_remote(source):
        _check_file(source, pin)
        yield source, lambda: 0
        _check_file(source, pin)
        return
    reader = RangedReader(source, if_match=pin)
    try:
        yield reader, lambda: reader.fetched
    finally:
        reader.close()


def _check_file(path: str, pin: str) -> None:
    if pin and file_version(os.stat(path)) != pin:
        raise VersionMismatch("the source changed since it was planned")
