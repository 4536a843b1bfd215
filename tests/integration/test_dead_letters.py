"""The dead-letter store contract on Postgres and SQLite, plus what only one of them can show."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from application.ports.dead_letters import DeadLetterStore
from infrastructure.projections.dead_letters_postgres import (
    LOCK_CLASS,
    MIGRATIONS,
    PostgresDeadLetterStore,
)
from infrastructure.projections.dead_letters_sqlite import SqliteDeadLetterStore
from tests.contract.dead_letter_contract import WAIT, DeadLetterStoreContract, stream_events

pytestmark = pytest.mark.integration

_WAITING_FOR_A_STREAM_LOCK = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class TestPostgresDeadLetterStore(DeadLetterStoreContract):
    @pytest.fixture
    async def store(self, postgres_dsn: str) -> AsyncIterator[DeadLetterStore]:
        store = await PostgresDeadLetterStore.connect(postgres_dsn)
        yield store
        await store.close()

    @pytest.fixture
    async def other_store(self, postgres_dsn: str) -> AsyncIterator[DeadLetterStore]:
        store = await PostgresDeadLetterStore.connect(postgres_dsn)
        yield store
        await store.close()


class TestSqliteDeadLetterStore(DeadLetterStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[DeadLetterStore]:
        store = await SqliteDeadLetterStore.open(tmp_path / "dead_letters.sqlite3")
        yield store
        await store.close()

    @pytest.fixture
    async def other_store(self, tmp_path: Path) -> AsyncIterator[DeadLetterStore]:
        store = await SqliteDeadLetterStore.open(tmp_path / "dead_letters.sqlite3")
        yield store
        await store.close()


# -- Postgres ---------------------------------------------------------------------------------


@pytest.fixture
async def postgres_stores(
    fresh_postgres_dsn: str,
) -> AsyncIterator[tuple[PostgresDeadLetterStore, PostgresDeadLetterStore, asyncpg.Connection]]:
    """The operator's store, a worker's store, and an observer's connection, on a database of
    their own (so every session in it is one of theirs)."""
    operator = await PostgresDeadLetterStore.connect(fresh_postgres_dsn)
    worker = await PostgresDeadLetterStore.connect(fresh_postgres_dsn)
    observer = await asyncpg.connect(fresh_postgres_dsn)
    yield operator, worker, observer
    await observer.close()
    await worker.close()
    await operator.close()


async def test_a_worker_blocked_by_a_retry_sees_the_stream_it_unparked(
    postgres_stores: tuple[PostgresDeadLetterStore, PostgresDeadLetterStore, asyncpg.Connection],
) -> None:
    """The race `hold_back` must win: it found the stream parked, then the retry took the
    lock. It waits on that lock (seen in `pg_locks`, not guessed from timing) and, once the
    retry has un-parked the stream, holds nothing back: the caller applies the event after
    every retried letter."""
    operator, worker, observer = postgres_stores
    stream = str(uuid.uuid4())
    poison, later = stream_events(stream, range(1, 3))
    await operator.park("orders", poison, "boom")

    async with operator.retrying("orders", stream) as retry:
        holding = asyncio.create_task(worker.hold_back("orders", [later]))
        async with asyncio.timeout(WAIT):
            while not await observer.fetchval(_WAITING_FOR_A_STREAM_LOCK, LOCK_CLASS):  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(0.01)
        assert not holding.done()
        retry.settle(1)

    assert await asyncio.wait_for(holding, WAIT) == set()
    assert await operator.parked() == []


async def test_a_running_retry_holds_no_transaction_id(
    postgres_stores: tuple[PostgresDeadLetterStore, PostgresDeadLetterStore, asyncpg.Connection],
) -> None:
    """An open transaction with an id would hold back the event store's read watermark
    (`pg_snapshot_xmin`) cluster-wide for as long as the retry runs."""
    operator, _, observer = postgres_stores
    stream = str(uuid.uuid4())
    await operator.park("orders", stream_events(stream, range(1, 2))[0], "boom")

    async with operator.retrying("orders", stream) as retry:
        sessions = await observer.fetch(
            "SELECT backend_xid FROM pg_stat_activity"
            " WHERE datname = current_database() AND state = 'idle in transaction'"
        )
        assert [row["backend_xid"] for row in sessions] == [None]
        retry.settle(1)


async def test_migrations_are_recorded_and_not_applied_twice(postgres_dsn: str) -> None:
    for _ in range(2):
        await (await PostgresDeadLetterStore.connect(postgres_dsn)).close()
    connection = await asyncpg.connect(postgres_dsn)
    try:
        versions = await connection.fetch(
            "SELECT version FROM mercato_dead_letter_schema_migrations"
        )
    finally:
        await connection.close()
    assert sorted(row["version"] for row in versions) == list(range(1, len(MIGRATIONS) + 1))


# -- SQLite -----------------------------------------------------------------------------------


async def test_a_retry_abandoned_by_a_dead_process_stops_blocking_when_its_lease_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead_letters.sqlite3"
    store = await SqliteDeadLetterStore.open(path)
    stream = str(uuid.uuid4())
    poison, later = stream_events(stream, range(1, 3))
    try:
        await store.park("orders", poison, "boom")
        # What a retry leaves behind when its process dies: a lease nobody will release.
        with sqlite3.connect(path) as dead_process:
            dead_process.execute(
                "UPDATE projection_parked_streams SET retry_owner = 'dead', retry_until = ?",
                (time.time() + 0.5,),
            )
        dead_process.close()

        held = await asyncio.wait_for(store.hold_back("orders", [later]), WAIT)

        assert held == {2}
        async with asyncio.timeout(WAIT), store.retrying("orders", stream) as retry:
            assert len(retry.letters) == 2
    finally:
        await store.close()


async def test_letters_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dead_letters.sqlite3"
    stream = str(uuid.uuid4())
    poison, later = stream_events(stream, range(1, 3))
    store = await SqliteDeadLetterStore.open(path)
    await store.park("orders", poison, "boom")
    await store.hold_back("orders", [later])
    await store.close()

    reopened = await SqliteDeadLetterStore.open(path)
    try:
        assert [letter.event for letter in await reopened.letters("orders", stream)] == [
            poison,
            later,
        ]
    finally:
        await reopened.close()
