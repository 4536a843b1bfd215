"""The event store contract on Postgres (asyncpg), plus what only Postgres can show."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from application.ports.event_store import (
    NO_STREAM,
    EventMetadata,
    EventStore,
    EventStoreUnavailableError,
    NewEvent,
)
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.eventstore.postgres_migrations import MIGRATIONS
from tests.contract.event_store_contract import EventStoreContract

pytestmark = pytest.mark.integration


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self, postgres_dsn: str) -> AsyncIterator[EventStore]:
        store = await PostgresEventStore.connect(postgres_dsn, min_size=1, max_size=6)
        # One database for the whole class; empty it so whole-log assertions hold.
        connection = await asyncpg.connect(postgres_dsn)
        try:
            await connection.execute(
                "TRUNCATE mercato_events, mercato_idempotency_keys, mercato_snapshots"
            )
        finally:
            await connection.close()
        yield store
        await store.close()


async def test_migrations_are_recorded_and_not_applied_twice(postgres_dsn: str) -> None:
    first = await PostgresEventStore.connect(postgres_dsn, min_size=1, max_size=2)
    second = await PostgresEventStore.connect(postgres_dsn, min_size=1, max_size=2)
    await first.close()
    await second.close()
    connection = await asyncpg.connect(postgres_dsn)
    try:
        versions = await connection.fetch("SELECT version FROM mercato_schema_migrations")
    finally:
        await connection.close()
    assert sorted(row["version"] for row in versions) == list(range(1, len(MIGRATIONS) + 1))


async def test_an_unreachable_server_is_reported_after_bounded_retries() -> None:
    with pytest.raises(EventStoreUnavailableError, match=r"unreachable after 0\.5s"):
        await PostgresEventStore.connect(
            "postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=0.5
        )


async def test_an_unknown_database_fails_at_once_naming_it(postgres_admin_dsn: str) -> None:
    dsn = postgres_admin_dsn.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(EventStoreUnavailableError, match="no_such_database_here"):
        await PostgresEventStore.connect(dsn, connect_timeout=30)


async def test_a_cancelled_append_does_not_fail_the_others_of_its_batch(
    postgres_dsn: str,
) -> None:
    store = await PostgresEventStore.connect(postgres_dsn, min_size=1, max_size=4, writers=1)
    metadata = EventMetadata(tenant_id="cancelled-append")
    try:
        appends = [
            asyncio.create_task(
                store.append(
                    f"cancel-{uuid.uuid4()}", [NewEvent("E", b"{}")], NO_STREAM, metadata=metadata
                )
            )
            for _ in range(20)
        ]
        await asyncio.sleep(0.001)  # the writer has taken a batch and is waiting on Postgres
        appends[0].cancel()
        results = await asyncio.gather(*appends[1:])
        assert all(result.stream_version == 1 for result in results)
    finally:
        await store.close()
