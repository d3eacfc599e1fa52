"""Budgets of background work: token buckets per title and per client, and the lookahead
they bound, against the real app."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.cache.budget import Budget, PrefetchBudgets
from livetx.factories import make_signer
from livetx.signing import Signer
from livetx.urls import title_prefix, with_token
from livetx.web.keys import CATALOG, SEGMENTS, SETTINGS
from tests.conftest import Source, app_settings
from tests.support import Clock


def test_a_bucket_refills_at_its_rate_up_to_its_size() -> None:
    clock = Clock(1000.0)
    budget = Budget(per_minute=6, clock=clock)
    for _ in range(6):
        assert budget.available("a")
        budget.take("a")
    assert not budget.available("a") and budget.available("b")  # keys are separate
    clock.now += 10  # 6 a minute: one token every 10 s
    assert budget.available("a")
    budget.take("a")
    assert not budget.available("a")
    clock.now += 3600
    for _ in range(6):
        budget.take("a")
    assert not budget.available("a")  # never more than its size, however long it waited


def test_both_budgets_are_spent_together_and_refusals_counted() -> None:
    budgets = PrefetchBudgets(per_title=3, per_client=2, clock=Clock(1000.0))
    assert budgets.take("t", "c1") and budgets.take("t", "c1")
    assert not budgets.take("t", "c1") and budgets.refused == {"title": 0, "client": 1}
    assert budgets.take("t", "c2")  # another client, same title: the title's third
    assert not budgets.take("t", "c3") and budgets.refused == {"title": 1, "client": 1}
    budgets.give_back("t", "c3")  # a prefetch that found its segment cached costs nothing
    assert budgets.take("t", "c3")


async def test_one_viewer_cannot_set_off_unbounded_transcodes(aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]) -> None:
    """Asking for cached segment 0 over and over, then seeking everywhere: the lookahead it
    buys is bounded by the client's budget, and other viewers keep their own."""
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_PROFILES_DEFAULT_INITD="0",
        LIVETX_PROFILES_DEFAULT_INITIAL_SEGMENTS="1000,1000,1000,1000,1000,1000",
        LIVETX_PROFILES_DEFAULT_ST="5000",
        LIVETX_CACHE_PREFETCH_PER_CLIENT="3",
        LIVETX_CACHE_PREFETCH_PER_TITLE="100",
        LIVETX_TRANSCODE_WORKERS="2",
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    app = client.server.app
    service = app[SEGMENTS]
    title = await app[CATALOG].title("default", "a.mp4")
    r = title.renditions[0]
    assert len(r.windows) == 7  # seven 1 s segments
    signer: Signer = make_signer(app[SETTINGS])

    def url(exp: int, index: int) -> str:
        token = signer.sign_prefix(title_prefix("default", "a.mp4"), exp)
        return with_token(f"/hls/default/a.mp4/{r.name}-{r.spec_id}-{index}.ts", token)

    viewer = int(time.time()) + 3600
    assert (await client.get(url(viewer, 0))).status == 200  # a miss, then `ta` ahead: 3 of them
    await service.wait_idle()
    made = service.stats.transcodes
    assert made == 1 + 3 and service.budgets.refused["client"] >= 1
    for _ in range(20):  # the same cached segment again and again: nothing new
        assert (await client.get(url(viewer, 0))).status == 200
    for index in (6, 5, 6, 5):  # seeking back and forth, to segments made for the request itself
        assert (await client.get(url(viewer, index))).status == 200
    await service.wait_idle()
    assert service.stats.transcodes == made + 2  # segments 6 and 5 themselves; no lookahead beyond the budget
    assert (await client.get(url(viewer + 1, 4))).status == 200  # another viewer (other claims) has its own budget
    await service.wait_idle()
    assert service.stats.transcodes == made + 2 + 1  # 4 is the last uncached one (5, 6 made)
    metrics = await (await client.get("/metrics")).text()
    assert 'livetx_prefetch_refused_total{budget="client"}' in metrics
