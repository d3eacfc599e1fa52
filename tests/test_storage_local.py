from __future__ import annotations

import os
from pathlib import Path

import pytest

from livetx.errors import InvalidPath
from livetx.storage.base import check_source_key
from livetx.storage.local import LocalStorage


async def test_write_is_atomic_and_stat_follows_content(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    await store.write("a/b/seg.ts", b"x" * 10)
    first = await store.stat("a/b/seg.ts")
    assert first is not None and first.size == 10
    await store.write("a/b/seg.ts", b"y" * 11)  # another size: another version, whatever the mtime's grain
    second = await store.stat("a/b/seg.ts")
    assert second is not None and second.etag != first.etag
    assert await store.read("a/b/seg.ts") == b"y" * 11
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["seg.ts"]  # no temp file left


async def test_missing_and_directories_are_absent(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    (tmp_path / "dir").mkdir()
    assert await store.stat("nope.mp4") is None
    assert await store.stat("dir") is None


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs", "a//b", "a\\b", "", ".livetx/x.ts", "a/.hidden"])
def test_source_keys_refused(key: str) -> None:
    with pytest.raises(InvalidPath):
        check_source_key(key)


def test_symlink_out_of_root_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(InvalidPath):
        LocalStorage(root).local_path("link/file.mp4")


async def test_written_objects_are_readable_by_a_web_server(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    await store.write("a/b.ts", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a" / "b.ts").stat().st_mode & 0o777 == 0o644 & ~mask  # not mkstemp's 0600
