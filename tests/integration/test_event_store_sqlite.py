from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from application.ports.event_store import (
    ANY,
    NO_STREAM,
    AppendResult,
    EventMetadata,
    EventStore,
    EventStoreUnavailableError,
    Idempotency,
    LogFilter,
)
from infrastructure.eventstore.sqlite import MIGRATIONS, SqliteEventStore
from tests.contract.event_store_contract import (
    EventStoreContract,
    Subscriber,
    new_event,
    new_events,
    snapshot_of,
    unique,
)

pytestmark = pytest.mark.integration


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[EventStore]:
        store = await SqliteEventStore.open(tmp_path / "events.sqlite3")
        yield store
        await store.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite3"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteEventStore]:
    store = await SqliteEventStore.open(path)
    yield store
    await store.close()


@pytest.fixture
def metadata() -> EventMetadata:
    return EventMetadata(tenant_id=unique("tenant"))


async def test_a_file_reopened_after_close_still_has_events_keys_and_snapshots(
    path: Path, metadata: EventMetadata
) -> None:
    store = await SqliteEventStore.open(path)
    key = Idempotency("place-order-1", fingerprint="command")
    result = await store.append(
        "order-1", new_events(3), NO_STREAM, metadata=metadata, idempotency=key
    )
    await store.save_snapshot(snapshot_of("order-1", metadata.tenant_id, version=3))
    before = await store.read_stream("order-1")
    await store.close()

    reopened = await SqliteEventStore.open(path)
    try:
        assert await reopened.read_stream("order-1") == before
        found = await reopened.find_idempotent_result(metadata.tenant_id, key.key)
        assert found == AppendResult("order-1", 3, result.positions, replayed=True)
        assert await reopened.latest_snapshot("order-1") == snapshot_of(
            "order-1", metadata.tenant_id, version=3
        )
        assert await reopened.head_position() == result.position
    finally:
        await reopened.close()


async def test_migrations_run_once_and_are_recorded(path: Path) -> None:
    for _ in range(2):
        await (await SqliteEventStore.open(path)).close()

    with sqlite3.connect(path) as connection:
        applied = connection.execute("SELECT version FROM schema_migrations").fetchall()

    assert [version for (version,) in applied] == [m.version for m in MIGRATIONS]


def test_migration_versions_count_up_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_the_file_uses_write_ahead_logging(store: SqliteEventStore, path: Path) -> None:
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_two_concurrent_writers_of_200_events_each_leave_a_gap_free_ordered_log(
    store: SqliteEventStore, metadata: EventMetadata
) -> None:
    async def write(stream: str) -> None:
        for version in range(200):
            await store.append(stream, [new_event()], version, metadata=metadata)

    await asyncio.gather(write("left"), write("right"))

    log = await store.read_all(limit=1000)
    assert [event.position for event in log] == list(range(1, 401))
    for stream in ("left", "right"):
        versions = [event.stream_version for event in log if event.stream_id == stream]
        assert versions == list(range(1, 201))


async def test_a_subscriber_in_the_same_process_wakes_within_50_ms_of_an_append(
    store: SqliteEventStore, metadata: EventMetadata
) -> None:
    subscriber = Subscriber(store, 0, LogFilter(tenant_id=metadata.tenant_id))
    try:
        await asyncio.sleep(0.05)  # let it reach its wait for new events
        for _ in range(5):
            started = time.perf_counter()
            await store.append(unique("stream"), [new_event()], NO_STREAM, metadata=metadata)
            await subscriber.receive(1)
            assert time.perf_counter() - started < 0.05
    finally:
        await subscriber.stop()


async def test_a_subscriber_sees_appends_made_through_another_connection_by_polling(
    store: SqliteEventStore, path: Path, metadata: EventMetadata
) -> None:
    subscriber = Subscriber(store, 0, LogFilter(tenant_id=metadata.tenant_id))
    other_process = await SqliteEventStore.open(path)
    try:
        await other_process.append(unique("stream"), new_events(2), ANY, metadata=metadata)

        received = await subscriber.receive(2, within=2.0)

        assert [event.stream_version for event in received] == [1, 2]
    finally:
        await subscriber.stop()
        await other_process.close()


async def test_a_closed_store_refuses_further_work(path: Path, metadata: EventMetadata) -> None:
    store = await SqliteEventStore.open(path)
    await store.close()

    with pytest.raises(EventStoreUnavailableError):
        await store.append(str(uuid.uuid4()), [new_event()], ANY, metadata=metadata)
