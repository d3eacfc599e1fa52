"""Local-filesystem storage, the embedded default. Writes go through a temp file and a rename."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path

from livetx.errors import InvalidPath, LivetxError, ParameterError
from livetx.storage.base import LOCAL_BUCKET, ObjectInfo, check_key, check_record_folder, file_version, is_hidden, split_prefix, split_uri

FILE_MODE = 0o644
COPY_CHUNK = 1024 * 1024  # bytes a copied file is read and written in (`write_file`)

log = logging.getLogger(__name__)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        # belt and braces after check_key: the resolved path must stay under the root
        if os.path.commonpath([self.root, path.resolve()]) != str(self.root):
            raise InvalidPath("key leaves the storage root")
        return path

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def media_url(self, key: str) -> str:
        return str(self._path(key))

    def key_for_uri(self, uri: str, field: str) -> str:
        bucket, key = split_uri(uri, field)
        if bucket != LOCAL_BUCKET:
            raise ParameterError(field, f"an object URI in bucket {LOCAL_BUCKET!r} (this store is a local directory)")
        try:
            return check_key(key)
        except LivetxError as exc:
            raise ParameterError(field, f"an object URI with a valid key ({exc.message})") from None

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self._path(key)):
            return None
        version = file_version(st)
        return ObjectInfo(key=key, size=st.st_size, etag=version, pin=version)

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat, key)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    def _write(self, key: str, data: bytes | Path) -> None:
        """A temp file next to the object, then a rename: readers see the whole object or none.
        `data`: the bytes, or a local file to copy them from."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            os.fchmod(fd, FILE_MODE & ~_UMASK)  # mkstemp makes 0600; a web server may serve these files
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, Path):
                    with data.open("rb") as src:
                        shutil.copyfileobj(src, fh, COPY_CHUNK)
                else:
                    fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    async def write(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, key, data)

    async def write_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._write, key, path)

    def _list_prefix(self, prefix: str, limit: int) -> list[ObjectInfo]:
        folder, start = split_prefix(prefix)
        if is_hidden(folder):
            return []
        try:
            # the folder through `_path`: a folder that is a symlink out of the root is refused
            with os.scandir(self._path(folder) if folder else self.root) as entries:
                names = sorted(e.name for e in entries if e.name.startswith(start) and not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found: list[ObjectInfo] = []
        for name in names:
            key = f"{folder}/{name}" if folder else name
            try:
                info = self._stat(key)  # through `_path`: a symlink out of the root, or a name that is no key, is skipped
            except (InvalidPath, OSError, RuntimeError):
                log.warning("prefix listing skipped an entry that leaves the storage root", extra={"event": "list_skipped", "key": key})
                continue
            if info is not None:  # a file: folders are not listed
                found.append(info)
            if len(found) >= limit:
                break
        return found

    async def list_prefix(self, prefix: str, limit: int) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list_prefix, prefix, limit)

    def _list_records(self, folder: str, limit: int) -> list[ObjectInfo]:
        check_record_folder(folder)
        try:
            with os.scandir(self._path(folder.rstrip("/"))) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith("."))  # (".tmp-" files of writes on their way)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found: list[ObjectInfo] = []
        for name in names:
            info = self._stat(folder + name)
            if info is not None:  # a file: folders are not listed
                found.append(info)
            if len(found) >= limit:
                break
        return found

    async def list_records(self, folder: str, limit: int) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list_records, folder, limit)

    def _list(self, limit: int) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                key = (Path(folder) / name).relative_to(self.root).as_posix()
                try:
                    info = self._stat(key)
                except (InvalidPath, OSError, RuntimeError):  # a symlink out of the root or in a loop: the rest still are
                    log.warning("source listing skipped an entry that leaves the storage root", extra={"event": "list_skipped", "key": key})
                    continue
                if info is not None:
                    found.append(info)
                if len(found) >= limit:
                    return found
        return found

    async def list(self, limit: int) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list, limit)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)
