"""The saga store contract on SQLite, plus what only SQLite can show."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from application.ports.saga_store import SagaStore
from infrastructure.sagas.sqlite import SqliteSagaStore
from tests.contract.saga_store_contract import SagaStoreContract

pytestmark = pytest.mark.integration


class TestSqliteSagaStore(SagaStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SagaStore]:
        store = await SqliteSagaStore.open(tmp_path / "sagas.sqlite3")
        yield store
        await store.close()

    @pytest.fixture
    async def other_store(self, tmp_path: Path) -> AsyncIterator[SagaStore]:
        store = await SqliteSagaStore.open(tmp_path / "sagas.sqlite3")
        yield store
        await store.close()


async def test_a_leader_that_stops_renewing_is_replaced_when_its_lease_ends(
    tmp_path: Path,
) -> None:
    first = await SqliteSagaStore.open(tmp_path / "sagas.sqlite3")
    second = await SqliteSagaStore.open(tmp_path / "sagas.sqlite3")
    group, lease = f"group-{uuid.uuid4()}", timedelta(milliseconds=100)
    try:
        assert await first.try_lead(group, "a", lease=lease)
        assert not await second.try_lead(group, "b", lease=lease)
        await asyncio.sleep(0.15)

        assert await second.try_lead(group, "b", lease=lease)
        assert not await first.try_lead(group, "a", lease=timedelta(seconds=30))
    finally:
        await first.close()
        await second.close()


async def test_checkpoints_and_timers_survive_reopening_the_file(tmp_path: Path) -> None:
    from tests.contract.saga_store_contract import LEASE, NOW, a_timer

    store = await SqliteSagaStore.open(tmp_path / "sagas.sqlite3")
    timer = a_timer("g")
    await store.save_checkpoint("g", 12)
    await store.schedule(timer)
    await store.close()

    reopened = await SqliteSagaStore.open(tmp_path / "sagas.sqlite3")
    try:
        assert await reopened.checkpoint("g") == 12
        assert await reopened.claim_due("g", now=NOW, owner="a", limit=1, lease=LEASE) == [timer]
    finally:
        await reopened.close()
