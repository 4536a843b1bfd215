"""The saga store contract on Postgres, plus what only Postgres can show."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from application.ports.saga_store import SagaStore
from infrastructure.sagas.postgres import LOCK_CLASS, MIGRATIONS, PostgresSagaStore
from tests.contract.saga_store_contract import SagaStoreContract

pytestmark = pytest.mark.integration


class TestPostgresSagaStore(SagaStoreContract):
    @pytest.fixture
    async def store(self, postgres_dsn: str) -> AsyncIterator[SagaStore]:
        store = await PostgresSagaStore.connect(postgres_dsn)
        yield store
        await store.close()

    @pytest.fixture
    async def other_store(self, postgres_dsn: str) -> AsyncIterator[SagaStore]:
        store = await PostgresSagaStore.connect(postgres_dsn)
        yield store
        await store.close()


async def test_the_lead_passes_on_when_the_leaders_connection_dies(postgres_dsn: str) -> None:
    first = await PostgresSagaStore.connect(postgres_dsn)
    second = await PostgresSagaStore.connect(postgres_dsn)
    group, lease = f"group-{uuid.uuid4()}", timedelta(seconds=30)
    try:
        assert await first.try_lead(group, "a", lease=lease)
        assert not await second.try_lead(group, "b", lease=lease)

        await first.close()  # the process dies: its session, and the lock with it, ends

        assert await second.try_lead(group, "b", lease=lease)
    finally:
        await second.close()


async def test_a_leader_whose_session_was_killed_learns_it_lost_the_lead(postgres_dsn: str) -> None:
    store = await PostgresSagaStore.connect(postgres_dsn)
    group, lease = f"group-{uuid.uuid4()}", timedelta(seconds=30)
    admin = await asyncpg.connect(postgres_dsn)
    try:
        assert await store.try_lead(group, "a", lease=lease)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND classid = $1"
            " AND objid = (hashtext($2)::bigint & 4294967295)::oid",
            LOCK_CLASS,
            group,
        )

        assert not await store.try_lead(group, "a", lease=lease)
        assert await store.try_lead(group, "a", lease=lease)
    finally:
        await admin.close()
        await store.close()


async def test_migrations_are_recorded_and_not_applied_twice(postgres_dsn: str) -> None:
    for _ in range(2):
        await (await PostgresSagaStore.connect(postgres_dsn)).close()
    connection = await asyncpg.connect(postgres_dsn)
    try:
        versions = await connection.fetch("SELECT version FROM mercato_saga_schema_migrations")
    finally:
        await connection.close()
    assert sorted(row["version"] for row in versions) == list(range(1, len(MIGRATIONS) + 1))
