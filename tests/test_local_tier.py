"""The local LRU tier: bounded in bytes, least recently used evicted first, rebuilt at start."""

from __future__ import annotations

import os
from pathlib import Path

from livetx.cache.local_tier import LocalTier


async def test_evicts_least_recently_used_beyond_its_bytes(tmp_path: Path) -> None:
    tier = LocalTier(tmp_path, max_bytes=3000)
    for name in ("a", "b", "c"):
        await tier.put(f"t/{name}.ts", name.encode() * 1000)
    assert tier.path("t/a.ts") is not None  # a is now the most recent
    await tier.put("t/d.ts", b"d" * 1000)
    assert tier.path("t/b.ts") is None and not (tmp_path / "t" / "b.ts").exists()
    assert {k for k in ("a", "c", "d") if tier.path(f"t/{k}.ts")} == {"a", "c", "d"}
    assert tier.bytes == 3000 and tier.evictions == 1


async def test_too_large_is_not_kept(tmp_path: Path) -> None:
    tier = LocalTier(tmp_path, max_bytes=100)
    assert await tier.put("big.ts", b"x" * 101) is None and tier.bytes == 0


async def test_index_rebuilt_from_disk_and_leftovers_removed(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    for i, name in enumerate(("old", "new")):
        path = tmp_path / "t" / f"{name}.ts"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + i, 1000 + i))
    (tmp_path / "t" / ".tmp-abc.ts").write_bytes(b"half")
    tier = LocalTier(tmp_path, max_bytes=1500)
    tier.scan()
    assert tier.path("t/old.ts") is None and tier.path("t/new.ts") is not None  # the older went
    assert not (tmp_path / "t" / ".tmp-abc.ts").exists() and tier.bytes == 1000


async def test_a_file_deleted_behind_its_back_is_a_miss(tmp_path: Path) -> None:
    tier = LocalTier(tmp_path, max_bytes=10_000)
    path = await tier.put("x.ts", b"abc")
    assert path is not None
    path.unlink()
    assert tier.path("x.ts") is None and tier.bytes == 0
