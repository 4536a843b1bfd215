"""The event store contract in memory, plus what the in-memory store adds: an injected clock and
a turn of the event loop per call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from application.ports.clock import ManualClock
from application.ports.event_store import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    EventMetadata,
    EventStore,
    EventStoreUnavailableError,
    ExpectedVersion,
    Idempotency,
    LogFilter,
)
from infrastructure.eventstore.memory import InMemoryEventStore
from tests.contract.event_store_contract import (
    EventStoreContract,
    Subscriber,
    new_event,
    new_events,
    unique,
)

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        store = InMemoryEventStore()
        yield store
        await store.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def store(clock: ManualClock) -> AsyncIterator[InMemoryEventStore]:
    store = InMemoryEventStore(clock)
    yield store
    await store.close()


@pytest.fixture
def metadata() -> EventMetadata:
    return EventMetadata(tenant_id=unique("tenant"))


async def test_events_are_recorded_at_the_time_of_the_injected_clock(
    store: InMemoryEventStore, clock: ManualClock, metadata: EventMetadata
) -> None:
    await store.append("order-1", new_events(2), NO_STREAM, metadata=metadata)
    clock.advance(timedelta(hours=1))
    await store.append("order-1", [new_event()], 2, metadata=metadata)

    recorded = await store.read_stream("order-1")
    as_of_start = await store.read_stream("order-1", as_of_time=START)

    assert [event.recorded_at for event in recorded] == [START, START, START + timedelta(hours=1)]
    assert [event.stream_version for event in as_of_start] == [1, 2]
    assert await store.position_before_time(START + timedelta(minutes=1)) == 2


async def test_recorded_times_never_go_back_when_the_clock_does(
    store: InMemoryEventStore, clock: ManualClock, metadata: EventMetadata
) -> None:
    await store.append("order-1", [new_event()], NO_STREAM, metadata=metadata)
    clock.set(START - timedelta(minutes=5))
    await store.append("order-1", [new_event()], 1, metadata=metadata)

    recorded = await store.read_stream("order-1")

    assert [event.recorded_at for event in recorded] == [START, START]


async def test_a_clock_in_another_time_zone_is_recorded_in_utc(metadata: EventMetadata) -> None:
    paris = timezone(timedelta(hours=1))
    store = InMemoryEventStore(ManualClock(START.astimezone(paris)))
    await store.append("order-1", [new_event()], NO_STREAM, metadata=metadata)

    [recorded] = await store.read_stream("order-1")

    assert recorded.recorded_at == START
    assert recorded.recorded_at.utcoffset() == timedelta(0)


async def test_positions_count_up_from_one_without_gaps_across_concurrent_writers(
    store: InMemoryEventStore, metadata: EventMetadata
) -> None:
    async def write(stream: str) -> None:
        for version in range(200):
            await store.append(stream, [new_event()], version, metadata=metadata)

    await asyncio.gather(write("left"), write("right"))

    log = await store.read_all(limit=1000)
    assert [event.position for event in log] == list(range(1, 401))
    assert {event.stream_id for event in log[:10]} == {"left", "right"}
    for stream in ("left", "right"):
        versions = [event.stream_version for event in log if event.stream_id == stream]
        assert versions == list(range(1, 201))


async def test_two_handlers_racing_on_one_stream_meet_a_concurrency_error(
    store: InMemoryEventStore, metadata: EventMetadata
) -> None:
    await store.append("order-1", [new_event()], NO_STREAM, metadata=metadata)

    async def load_then_save() -> None:
        version = await store.stream_version("order-1")
        await store.append("order-1", [new_event()], version, metadata=metadata)

    outcomes = await asyncio.gather(load_then_save(), load_then_save(), return_exceptions=True)

    assert sum(isinstance(outcome, ConcurrencyError) for outcome in outcomes) == 1
    assert await store.stream_version("order-1") == 2


async def test_a_subscriber_wakes_within_50_ms_of_an_append(
    store: InMemoryEventStore, metadata: EventMetadata
) -> None:
    subscriber = Subscriber(store, 0, LogFilter(tenant_id=metadata.tenant_id))
    try:
        await asyncio.sleep(0.01)  # let it reach its wait for new events
        for _ in range(5):
            started = time.perf_counter()
            await store.append(unique("stream"), [new_event()], NO_STREAM, metadata=metadata)
            await subscriber.receive(1)
            assert time.perf_counter() - started < 0.05
    finally:
        await subscriber.stop()


async def test_a_subscriber_sees_events_appended_while_it_held_its_last_batch(
    store: InMemoryEventStore, metadata: EventMetadata
) -> None:
    await store.append("order-1", [new_event()], NO_STREAM, metadata=metadata)
    received: list[int] = []

    async with asyncio.timeout(1.0):
        async for batch in store.subscribe(0, batch_size=10):
            received.extend(event.stream_version for event in batch)
            if len(received) == 3:
                break
            await store.append("order-1", [new_event()], len(received), metadata=metadata)

    assert received == [1, 2, 3]


async def test_a_closed_store_refuses_further_work(metadata: EventMetadata) -> None:
    store = InMemoryEventStore()
    await store.close()

    with pytest.raises(EventStoreUnavailableError):
        await store.append("order-1", [new_event()], ANY, metadata=metadata)
    with pytest.raises(EventStoreUnavailableError):
        await store.read_stream("order-1")


async def test_closing_the_store_ends_its_subscriptions(metadata: EventMetadata) -> None:
    store = InMemoryEventStore()

    async def follow() -> None:
        async for _ in store.subscribe():
            pass

    following = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    await store.close()

    with pytest.raises(EventStoreUnavailableError):
        async with asyncio.timeout(1.0):
            await following


@pytest.mark.parametrize(
    ("stream", "expected", "key"),
    [
        pytest.param("", ANY, None, id="empty stream id"),
        pytest.param("order-1", -1, None, id="negative expected version"),
        pytest.param("order-1", ANY, Idempotency(""), id="empty idempotency key"),
    ],
)
async def test_an_append_with_invalid_arguments_is_rejected_and_stores_nothing(
    store: InMemoryEventStore,
    metadata: EventMetadata,
    stream: str,
    expected: ExpectedVersion,
    key: Idempotency | None,
) -> None:
    with pytest.raises(ValueError):
        await store.append(stream, [new_event()], expected, metadata=metadata, idempotency=key)

    assert await store.head_position() == 0


async def test_times_without_a_time_zone_are_rejected(store: InMemoryEventStore) -> None:
    naive = datetime(2026, 3, 1, 9, 30)

    with pytest.raises(ValueError):
        await store.read_stream("order-1", as_of_time=naive)
    with pytest.raises(ValueError):
        await store.position_before_time(naive)


async def test_a_subscription_needs_a_positive_batch_size(store: InMemoryEventStore) -> None:
    with pytest.raises(ValueError):
        await anext(store.subscribe(batch_size=0))
