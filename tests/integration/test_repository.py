from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate

from application.errors import AggregateNotFoundError
from application.ports.event_store import (
    NO_STREAM,
    ConcurrencyError,
    EventMetadata,
    EventStore,
    Idempotency,
    RecordedEvent,
)
from application.repository import Repository
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.eventstore.sqlite import SqliteEventStore
from tests.versioned_track import Track, v1_track_created

pytestmark = pytest.mark.integration


class Playlist(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name


class CountingStore:
    """Wraps any event store and counts the events the repository reads, to prove a snapshot
    shortened the replay."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.events_read = 0

    async def read_stream(self, stream_id: str, **bounds: Any) -> list[RecordedEvent]:
        events = await self.inner.read_stream(stream_id, **bounds)
        self.events_read += len(events)
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_dsn: str
) -> AsyncIterator[CountingStore]:
    """The repository's behaviour on both event stores (the Postgres one on this run's DB)."""
    inner: EventStore
    if request.param == "sqlite":
        inner = await SqliteEventStore.open(tmp_path / "events.sqlite3")
    else:
        inner = await PostgresEventStore.connect(postgres_dsn, min_size=1, max_size=4)
    yield CountingStore(inner)
    await inner.close()


@pytest.fixture
def repository(store: CountingStore) -> Repository:
    return Repository(cast(EventStore, store), snapshot_intervals={Track: 3})


@pytest.fixture
def metadata() -> EventMetadata:
    return EventMetadata(tenant_id=f"tenant-{uuid4()}", correlation_id=uuid4())


def a_track() -> Track:
    return Track(title="Loops", price_cents=900, currency="USD")


async def snapshot_version(store: CountingStore, aggregate: Aggregate) -> int | None:
    snapshot = await store.latest_snapshot(str(aggregate.id))
    return None if snapshot is None else snapshot.stream_version


async def test_a_saved_aggregate_loads_back_equal(
    repository: Repository, metadata: EventMetadata
) -> None:
    track = a_track()
    track.reprice(price_cents=1200)
    await repository.save(track, metadata=metadata)

    loaded = await repository.get(Track, track.id, tenant_id=metadata.tenant_id)

    assert loaded == track
    assert loaded.version == 2


async def test_saved_events_carry_the_metadata_and_their_class_version(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track = a_track()
    track.reprice(price_cents=1200)

    [result] = await repository.save(track, metadata=metadata)

    recorded = await store.read_stream(str(track.id))
    assert result.stream_version == 2
    assert [e.schema_version for e in recorded] == [2, 1]
    assert {(e.tenant_id, e.correlation_id) for e in recorded} == {
        (metadata.tenant_id, metadata.correlation_id)
    }


async def test_a_new_aggregate_is_appended_expecting_no_stream(
    repository: Repository, metadata: EventMetadata
) -> None:
    track = a_track()
    same_id_created_twice = copy.deepcopy(track)
    await repository.save(track, metadata=metadata)

    with pytest.raises(ConcurrencyError) as refused:
        await repository.save(same_id_created_twice, metadata=metadata)

    assert (refused.value.expected, refused.value.actual) == (NO_STREAM, 1)


async def test_a_second_save_appends_only_the_new_events(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track = a_track()
    await repository.save(track, metadata=metadata)
    track.reprice(price_cents=1000)

    [result] = await repository.save(track, metadata=metadata)

    assert (result.stream_version, len(result.positions)) == (2, 1)
    assert await store.stream_version(str(track.id)) == 2


async def test_saving_an_unchanged_aggregate_appends_nothing(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track = a_track()
    await repository.save(track, metadata=metadata)
    head = await store.head_position()

    assert await repository.save(track, metadata=metadata) == []
    assert await store.head_position() == head


async def test_two_loads_then_two_saves_the_second_raises_concurrency_error(
    repository: Repository, metadata: EventMetadata
) -> None:
    track = a_track()
    await repository.save(track, metadata=metadata)
    first = await repository.get(Track, track.id, tenant_id=metadata.tenant_id)
    second = await repository.get(Track, track.id, tenant_id=metadata.tenant_id)
    first.reprice(price_cents=1000)
    second.reprice(price_cents=1100)
    await repository.save(first, metadata=metadata)

    with pytest.raises(ConcurrencyError) as refused:
        await repository.save(second, metadata=metadata)

    assert (refused.value.expected, refused.value.actual) == (1, 2)


async def test_snapshots_are_taken_at_the_interval_and_shorten_the_replay(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track = a_track()
    await repository.save(track, metadata=metadata)
    snapshot_versions = [await snapshot_version(store, track)]
    for price in range(1, 7):
        track.reprice(price_cents=price)
        await repository.save(track, metadata=metadata)
        snapshot_versions.append(await snapshot_version(store, track))

    store.events_read = 0
    loaded = await repository.get(Track, track.id, tenant_id=metadata.tenant_id)

    assert snapshot_versions == [None, None, 3, 3, 3, 6, 6]
    assert (loaded.version, loaded.price_cents) == (7, 6)
    assert store.events_read == 1


async def test_a_save_of_several_events_crossing_the_interval_takes_a_snapshot(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track = a_track()
    for price in range(1, 5):
        track.reprice(price_cents=price)

    await repository.save(track, metadata=metadata)

    snapshot = await store.latest_snapshot(str(track.id))
    assert snapshot is not None and snapshot.stream_version == 5


async def test_an_aggregate_type_without_an_interval_is_never_snapshotted(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    playlist = Playlist(name="Night drive")
    await repository.save(playlist, metadata=metadata)

    assert await store.latest_snapshot(str(playlist.id)) is None


async def test_an_old_v1_event_stored_raw_is_upcast_into_the_v2_class(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track_id = uuid4()
    await store.append(str(track_id), [v1_track_created()], NO_STREAM, metadata=metadata)

    track = await repository.get(Track, track_id, tenant_id=metadata.tenant_id)

    assert (track.title, track.price_cents, track.currency) == ("Loops", 900, "EUR")


async def test_an_aggregate_of_another_tenant_is_not_found(
    repository: Repository, metadata: EventMetadata
) -> None:
    track = a_track()
    await repository.save(track, metadata=metadata)

    with pytest.raises(AggregateNotFoundError):
        await repository.get(Track, track.id, tenant_id="another-tenant")
    with pytest.raises(AggregateNotFoundError):
        await repository.get_as_of(Track, track.id, tenant_id="another-tenant", as_of_position=1)


async def test_a_snapshotted_aggregate_of_another_tenant_is_not_found(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track = a_track()
    for price in range(1, 4):
        track.reprice(price_cents=price)
    await repository.save(track, metadata=metadata)
    assert await store.latest_snapshot(str(track.id)) is not None

    with pytest.raises(AggregateNotFoundError):
        await repository.get(Track, track.id, tenant_id="another-tenant")


async def test_a_missing_aggregate_is_not_found(
    repository: Repository, metadata: EventMetadata
) -> None:
    with pytest.raises(AggregateNotFoundError):
        await repository.get(Track, uuid4(), tenant_id=metadata.tenant_id)


async def test_an_aggregate_asked_for_as_another_type_is_not_found(
    repository: Repository, metadata: EventMetadata
) -> None:
    playlist = Playlist(name="Night drive")
    await repository.save(playlist, metadata=metadata)

    with pytest.raises(AggregateNotFoundError):
        await repository.get(Track, playlist.id, tenant_id=metadata.tenant_id)


async def test_get_as_of_a_position_returns_the_aggregate_as_it_was(
    repository: Repository, metadata: EventMetadata
) -> None:
    track = a_track()
    [then] = await repository.save(track, metadata=metadata)
    track.reprice(price_cents=1500)
    await repository.save(track, metadata=metadata)

    past = await repository.get_as_of(
        Track, track.id, tenant_id=metadata.tenant_id, as_of_position=then.position
    )

    assert (past.version, past.price_cents) == (1, 900)


async def test_get_as_of_a_time_returns_the_aggregate_as_it_was(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    track = a_track()
    await repository.save(track, metadata=metadata)
    [created] = await store.read_stream(str(track.id))
    await asyncio.sleep(0.01)  # a clear gap between the recorded times of the two saves
    track.reprice(price_cents=1500)
    await repository.save(track, metadata=metadata)

    past = await repository.get_as_of(
        Track, track.id, tenant_id=metadata.tenant_id, as_of_time=created.recorded_at
    )

    assert (past.version, past.price_cents) == (1, 900)


async def test_a_retried_idempotent_save_returns_the_first_result_and_appends_nothing(
    repository: Repository, store: CountingStore, metadata: EventMetadata
) -> None:
    key = Idempotency("list-track-1", fingerprint="sha256-of-the-command")
    [first] = await repository.save(a_track(), metadata=metadata, idempotency=key)
    head = await store.head_position()

    [retried] = await repository.save(a_track(), metadata=metadata, idempotency=key)

    assert retried.replayed
    assert (retried.stream_id, retried.positions) == (first.stream_id, first.positions)
    assert await store.head_position() == head


async def test_an_idempotent_save_needs_the_commands_fingerprint(
    repository: Repository, metadata: EventMetadata
) -> None:
    with pytest.raises(ValueError):
        await repository.save(a_track(), metadata=metadata, idempotency=Idempotency("key"))


async def test_get_as_of_needs_a_position_or_a_time(
    repository: Repository, metadata: EventMetadata
) -> None:
    with pytest.raises(ValueError):
        await repository.get_as_of(Track, uuid4(), tenant_id=metadata.tenant_id)
