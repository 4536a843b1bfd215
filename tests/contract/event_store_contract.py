"""The contract every `EventStore` adapter honours.

An adapter's test module subclasses `EventStoreContract` in a class named `Test…` and overrides
the `store` fixture to yield a fresh, empty, started store (closed afterwards). Streams and
tenants are unique per test as well, so the assertions hold even on a shared store, except for
those about the whole log (`head_position`, unfiltered `read_all` from 0), which need it empty.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from application.ports.event_store import (
    ANY,
    NO_STREAM,
    AppendResult,
    ConcurrencyError,
    EventMetadata,
    EventStore,
    Idempotency,
    IdempotencyKeyReusedError,
    LogFilter,
    NewEvent,
    RecordedEvent,
    Snapshot,
)
from application.sagas.cancellation import cancel_and_wait

PROMPTLY = 1.0
"""Seconds a subscriber may take to see an append made through the same store."""


def new_event(type: str = "ThingHappened", data: str = "") -> NewEvent:
    return NewEvent(type=type, payload=f'{{"data": "{data or uuid.uuid4()}"}}'.encode())


def new_events(count: int, type: str = "ThingHappened") -> list[NewEvent]:
    return [new_event(type, f"event {number}") for number in range(1, count + 1)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


class Subscriber:
    """Runs `store.subscribe(...)` in a task and collects what it yields."""

    def __init__(self, store: EventStore, from_position: int, log_filter: LogFilter) -> None:
        self.batches: list[list[RecordedEvent]] = []
        self._received = asyncio.Queue[RecordedEvent]()
        self._task = asyncio.create_task(self._run(store, from_position, log_filter))

    async def _run(self, store: EventStore, from_position: int, log_filter: LogFilter) -> None:
        async for batch in store.subscribe(from_position, log_filter, batch_size=3):
            self.batches.append(batch)
            for event in batch:
                self._received.put_nowait(event)

    async def receive(self, count: int, within: float = PROMPTLY) -> list[RecordedEvent]:
        """The next `count` events, failing unless they arrive `within` seconds."""
        async with asyncio.timeout(within):
            return [await self._received.get() for _ in range(count)]

    def has_nothing_more(self) -> bool:
        return self._received.empty()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


class EventStoreContract:
    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        """A fresh, empty, started store: each adapter's test class overrides this fixture."""
        raise NotImplementedError("override the store fixture in the adapter's test class")
        yield  # pragma: no cover

    @pytest.fixture
    def tenant(self) -> str:
        return unique("tenant")

    @pytest.fixture
    def stream(self) -> str:
        return unique("stream")

    @pytest.fixture
    def metadata(self, tenant: str) -> EventMetadata:
        return EventMetadata(tenant_id=tenant)

    @pytest.fixture
    async def subscribers(self) -> AsyncIterator[list[Subscriber]]:
        started: list[Subscriber] = []
        yield started
        for subscriber in started:
            await subscriber.stop()

    # -- append and read back ------------------------------------------------------------

    async def test_an_appended_event_is_read_back_with_every_field(
        self, store: EventStore, stream: str, tenant: str
    ) -> None:
        metadata = EventMetadata(
            tenant_id=tenant,
            correlation_id=uuid.uuid4(),
            causation_id=uuid.uuid4(),
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        event = NewEvent("OrderPlaced", b'{"total": 1250}', schema_version=3, event_id=uuid.uuid4())
        before = datetime.now(UTC)
        result = await store.append(stream, [event], NO_STREAM, metadata=metadata)
        after = datetime.now(UTC)

        [recorded] = await store.read_stream(stream)

        assert recorded.event_id == event.event_id
        assert (recorded.stream_id, recorded.stream_version) == (stream, 1)
        assert recorded.position == result.position
        assert (recorded.type, recorded.schema_version) == ("OrderPlaced", 3)
        assert recorded.payload == b'{"total": 1250}'
        assert recorded.tenant_id == tenant
        assert recorded.correlation_id == metadata.correlation_id
        assert recorded.causation_id == metadata.causation_id
        assert recorded.traceparent == metadata.traceparent
        # The store may take the time from its own (database server) clock.
        assert before - timedelta(seconds=1) <= recorded.recorded_at <= after + timedelta(seconds=1)
        assert recorded.recorded_at.utcoffset() == timedelta(0)

    async def test_optional_metadata_is_read_back_as_none(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, [new_event()], NO_STREAM, metadata=metadata)

        [recorded] = await store.read_stream(stream)

        assert (recorded.correlation_id, recorded.causation_id, recorded.traceparent) == (
            None,
            None,
            None,
        )

    async def test_the_store_gives_each_event_without_an_id_a_distinct_one(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(3), NO_STREAM, metadata=metadata)

        recorded = await store.read_stream(stream)

        assert len({event.event_id for event in recorded}) == 3

    async def test_stream_versions_run_from_one_to_n_across_appends(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        first = await store.append(stream, new_events(2), NO_STREAM, metadata=metadata)
        second = await store.append(stream, new_events(3), 2, metadata=metadata)

        recorded = await store.read_stream(stream)

        assert [event.stream_version for event in recorded] == [1, 2, 3, 4, 5]
        assert (first.stream_version, second.stream_version) == (2, 5)
        assert await store.stream_version(stream) == 5

    async def test_a_result_lists_the_position_of_each_appended_event_in_order(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        result = await store.append(stream, new_events(3), NO_STREAM, metadata=metadata)

        recorded = await store.read_stream(stream)

        assert result.positions == tuple(event.position for event in recorded)
        assert result.position == recorded[-1].position
        assert (result.stream_id, result.replayed) == (stream, False)

    async def test_a_missing_stream_reads_as_empty_at_version_zero(
        self, store: EventStore, stream: str
    ) -> None:
        assert await store.read_stream(stream) == []
        assert await store.stream_version(stream) == 0

    async def test_an_empty_list_of_events_is_rejected(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        with pytest.raises(ValueError):
            await store.append(stream, [], ANY, metadata=metadata)

    # -- expected versions ---------------------------------------------------------------

    async def test_an_append_expecting_any_version_is_accepted_whatever_the_stream_holds(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, [new_event()], ANY, metadata=metadata)
        result = await store.append(stream, [new_event()], ANY, metadata=metadata)

        assert result.stream_version == 2

    async def test_an_append_expecting_no_stream_is_refused_once_the_stream_exists(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(2), NO_STREAM, metadata=metadata)

        with pytest.raises(ConcurrencyError) as refused:
            await store.append(stream, [new_event()], NO_STREAM, metadata=metadata)

        assert (refused.value.stream_id, refused.value.expected, refused.value.actual) == (
            stream,
            NO_STREAM,
            2,
        )

    async def test_expecting_version_zero_is_the_same_as_expecting_no_stream(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, [new_event()], 0, metadata=metadata)

        with pytest.raises(ConcurrencyError) as refused:
            await store.append(stream, [new_event()], 0, metadata=metadata)

        assert (refused.value.expected, refused.value.actual) == (0, 1)

    async def test_an_append_expecting_the_current_version_is_accepted(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(3), NO_STREAM, metadata=metadata)

        result = await store.append(stream, [new_event()], 3, metadata=metadata)

        assert result.stream_version == 4

    async def test_an_append_with_a_stale_version_is_refused_naming_both_versions(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(3), NO_STREAM, metadata=metadata)

        with pytest.raises(ConcurrencyError) as refused:
            await store.append(stream, [new_event()], 2, metadata=metadata)

        assert (refused.value.stream_id, refused.value.expected, refused.value.actual) == (
            stream,
            2,
            3,
        )
        assert "2" in str(refused.value) and "3" in str(refused.value)

    async def test_an_append_expecting_a_version_of_a_missing_stream_is_refused(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        with pytest.raises(ConcurrencyError) as refused:
            await store.append(stream, [new_event()], 4, metadata=metadata)

        assert (refused.value.expected, refused.value.actual) == (4, 0)

    async def test_a_refused_append_stores_none_of_its_events(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, [new_event()], NO_STREAM, metadata=metadata)
        head = await store.head_position()

        with pytest.raises(ConcurrencyError):
            await store.append(stream, new_events(3), NO_STREAM, metadata=metadata)

        assert len(await store.read_stream(stream)) == 1
        assert await store.head_position() == head

    # -- idempotency ---------------------------------------------------------------------

    async def test_a_retried_append_returns_the_first_result_and_stores_nothing(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        key = Idempotency(unique("key"))
        events = new_events(2)
        first = await store.append(stream, events, NO_STREAM, metadata=metadata, idempotency=key)

        retried = await store.append(stream, events, NO_STREAM, metadata=metadata, idempotency=key)

        assert retried == AppendResult(stream, 2, first.positions, replayed=True)
        assert len(await store.read_stream(stream)) == 2

    async def test_an_idempotency_key_reused_for_other_events_is_refused(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        key = Idempotency(unique("key"))
        await store.append(stream, [new_event()], ANY, metadata=metadata, idempotency=key)

        with pytest.raises(IdempotencyKeyReusedError) as refused:
            await store.append(stream, [new_event()], ANY, metadata=metadata, idempotency=key)

        assert refused.value.key == key.key
        assert len(await store.read_stream(stream)) == 1

    async def test_an_idempotency_key_reused_for_another_stream_is_refused(
        self, store: EventStore, metadata: EventMetadata
    ) -> None:
        key = Idempotency(unique("key"))
        events = [new_event()]
        await store.append(unique("stream"), events, ANY, metadata=metadata, idempotency=key)

        with pytest.raises(IdempotencyKeyReusedError):
            await store.append(unique("stream"), events, ANY, metadata=metadata, idempotency=key)

    async def test_a_given_fingerprint_identifies_the_request_instead_of_its_events(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        key = unique("key")
        same = Idempotency(key, fingerprint="command-1")
        first = await store.append(stream, [new_event()], ANY, metadata=metadata, idempotency=same)

        retried = await store.append(
            stream, [new_event()], ANY, metadata=metadata, idempotency=same
        )

        assert retried.replayed and retried.positions == first.positions
        with pytest.raises(IdempotencyKeyReusedError):
            other = Idempotency(key, fingerprint="command-2")
            await store.append(stream, [new_event()], ANY, metadata=metadata, idempotency=other)

    async def test_a_retried_create_is_replayed_though_it_made_a_new_stream_id(
        self, store: EventStore, metadata: EventMetadata
    ) -> None:
        # A retried "create" command mints a fresh aggregate id; its fingerprint says it is
        # the same request, so it gets the first result and no second aggregate exists.
        same = Idempotency(unique("key"), fingerprint="create-command")
        first = await store.append(
            unique("stream"), [new_event()], NO_STREAM, metadata=metadata, idempotency=same
        )
        retry_stream = unique("stream")

        retried = await store.append(
            retry_stream, [new_event()], NO_STREAM, metadata=metadata, idempotency=same
        )

        assert retried.replayed and retried.stream_id == first.stream_id
        assert await store.read_stream(retry_stream) == []

    async def test_a_retry_is_replayed_even_though_its_expected_version_is_now_stale(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        key = Idempotency(unique("key"), fingerprint="command")
        first = await store.append(stream, [new_event()], 0, metadata=metadata, idempotency=key)

        retried = await store.append(stream, [new_event()], 0, metadata=metadata, idempotency=key)

        assert retried.replayed and retried.positions == first.positions

    async def test_an_append_refused_for_its_version_does_not_use_up_its_key(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, [new_event()], NO_STREAM, metadata=metadata)
        key = Idempotency(unique("key"), fingerprint="command")
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [new_event()], NO_STREAM, metadata=metadata, idempotency=key)

        result = await store.append(stream, [new_event()], 1, metadata=metadata, idempotency=key)

        assert not result.replayed
        assert await store.find_idempotent_result(metadata.tenant_id, key.key) is not None

    async def test_idempotency_keys_are_scoped_per_tenant(
        self, store: EventStore, tenant: str
    ) -> None:
        key = Idempotency(unique("key"), fingerprint="command")
        other_tenant = EventMetadata(tenant_id=unique("tenant"))
        await store.append(
            unique("stream"), [new_event()], ANY, metadata=EventMetadata(tenant), idempotency=key
        )

        result = await store.append(
            unique("stream"), [new_event()], ANY, metadata=other_tenant, idempotency=key
        )

        assert not result.replayed

    async def test_find_idempotent_result_returns_the_first_result_for_its_tenant_only(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        key = Idempotency(unique("key"))
        first = await store.append(stream, new_events(2), ANY, metadata=metadata, idempotency=key)

        found = await store.find_idempotent_result(metadata.tenant_id, key.key)

        assert found == AppendResult(stream, 2, first.positions, replayed=True)
        assert await store.find_idempotent_result(unique("tenant"), key.key) is None
        assert await store.find_idempotent_result(metadata.tenant_id, unique("key")) is None

    # -- reading a stream ----------------------------------------------------------------

    async def test_read_stream_returns_the_versions_between_from_and_to_inclusive(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(6), NO_STREAM, metadata=metadata)

        middle = await store.read_stream(stream, from_version=2, to_version=4)
        tail = await store.read_stream(stream, from_version=5)

        assert [event.stream_version for event in middle] == [2, 3, 4]
        assert [event.stream_version for event in tail] == [5, 6]

    async def test_reading_a_stream_as_of_a_position_leaves_out_later_events(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        first = await store.append(stream, new_events(2), NO_STREAM, metadata=metadata)
        await store.append(unique("other"), [new_event()], NO_STREAM, metadata=metadata)
        await store.append(stream, new_events(2), 2, metadata=metadata)

        as_of = await store.read_stream(stream, as_of_position=first.position)

        assert [event.stream_version for event in as_of] == [1, 2]

    async def test_reading_a_stream_as_of_a_time_leaves_out_later_events(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(2), NO_STREAM, metadata=metadata)
        [_, second] = await store.read_stream(stream)
        # Recorded times have microsecond precision: leave a clear gap before the next append.
        await asyncio.sleep(0.01)
        await store.append(stream, [new_event()], 2, metadata=metadata)

        as_of = await store.read_stream(stream, as_of_time=second.recorded_at)
        before_any = await store.read_stream(
            stream, as_of_time=second.recorded_at - timedelta(seconds=1)
        )

        assert [event.stream_version for event in as_of] == [1, 2]
        assert before_any == []

    # -- the global log ------------------------------------------------------------------

    async def test_positions_strictly_increase_across_streams_and_appends(
        self, store: EventStore, metadata: EventMetadata
    ) -> None:
        results = [
            await store.append(unique("stream"), new_events(2), NO_STREAM, metadata=metadata)
            for _ in range(4)
        ]

        positions = [position for result in results for position in result.positions]

        assert positions == sorted(set(positions))

    async def test_read_all_returns_events_after_a_position_in_position_order(
        self, store: EventStore, metadata: EventMetadata
    ) -> None:
        first = await store.append(unique("a"), new_events(2), NO_STREAM, metadata=metadata)
        second = await store.append(unique("b"), new_events(2), NO_STREAM, metadata=metadata)

        from_start = await store.read_all()
        after_first = await store.read_all(from_position=first.position)

        assert [e.position for e in from_start] == [*first.positions, *second.positions]
        assert [e.position for e in after_first] == list(second.positions)

    async def test_read_all_returns_at_most_limit_events(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        result = await store.append(stream, new_events(5), NO_STREAM, metadata=metadata)

        page = await store.read_all(from_position=result.positions[0] - 1, limit=3)

        assert [event.position for event in page] == list(result.positions[:3])

    async def test_read_all_filters_by_event_type(
        self, store: EventStore, stream: str, tenant: str, metadata: EventMetadata
    ) -> None:
        events = [new_event("Placed"), new_event("Paid"), new_event("Shipped"), new_event("Paid")]
        await store.append(stream, events, NO_STREAM, metadata=metadata)

        only = LogFilter(event_types=frozenset({"Paid", "Shipped"}), tenant_id=tenant)
        found = await store.read_all(log_filter=only)

        assert [event.type for event in found] == ["Paid", "Shipped", "Paid"]

    async def test_read_all_filtered_by_tenant_never_returns_another_tenants_events(
        self, store: EventStore, tenant: str, metadata: EventMetadata
    ) -> None:
        other = EventMetadata(tenant_id=unique("tenant"))
        await store.append(unique("mine"), new_events(2), NO_STREAM, metadata=metadata)
        await store.append(unique("theirs"), new_events(2), NO_STREAM, metadata=other)
        await store.append(unique("mine"), new_events(1), NO_STREAM, metadata=metadata)

        mine = await store.read_all(log_filter=LogFilter(tenant_id=tenant))

        assert len(mine) == 3
        assert {event.tenant_id for event in mine} == {tenant}

    async def test_head_position_is_zero_for_an_empty_log_then_the_last_position(
        self, store: EventStore, metadata: EventMetadata
    ) -> None:
        assert await store.head_position() == 0

        await store.append(unique("a"), new_events(2), NO_STREAM, metadata=metadata)
        result = await store.append(unique("b"), new_events(2), NO_STREAM, metadata=metadata)

        assert await store.head_position() == result.position

    async def test_count_between_counts_the_events_after_one_position_up_to_another(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        p = (await store.append(stream, new_events(5), NO_STREAM, metadata=metadata)).positions

        assert await store.count_between(p[0], p[3]) == 3
        assert await store.count_between(p[0] - 1, p[4]) == 5
        assert await store.count_between(p[4], p[4]) == 0

    async def test_position_before_time_starts_a_read_at_the_first_event_of_that_time(
        self, store: EventStore, stream: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(2), NO_STREAM, metadata=metadata)
        await asyncio.sleep(0.01)
        later = await store.append(stream, new_events(2), 2, metadata=metadata)
        first_later = (await store.read_stream(stream, from_version=3))[0]

        start = await store.position_before_time(first_later.recorded_at)
        read = await store.read_all(from_position=start, limit=2)

        assert [e.position for e in read] == list(later.positions)
        future = first_later.recorded_at + timedelta(days=1)
        assert await store.position_before_time(future) == await store.head_position()

    # -- subscriptions -------------------------------------------------------------------

    async def test_a_subscriber_catches_up_then_receives_live_appends_promptly_once_each(
        self,
        store: EventStore,
        tenant: str,
        metadata: EventMetadata,
        subscribers: list[Subscriber],
    ) -> None:
        stream = unique("stream")
        await store.append(stream, new_events(5), NO_STREAM, metadata=metadata)
        subscriber = Subscriber(store, 0, LogFilter(tenant_id=tenant))
        subscribers.append(subscriber)

        caught_up = await subscriber.receive(5)
        live = await store.append(stream, new_events(2), 5, metadata=metadata)
        received = await subscriber.receive(2)

        assert [event.stream_version for event in caught_up] == [1, 2, 3, 4, 5]
        assert [event.position for event in received] == list(live.positions)
        await asyncio.sleep(0.1)
        assert subscriber.has_nothing_more()

    async def test_a_subscriber_starting_midway_receives_only_later_events(
        self,
        store: EventStore,
        tenant: str,
        metadata: EventMetadata,
        subscribers: list[Subscriber],
    ) -> None:
        stream = unique("stream")
        first = await store.append(stream, new_events(3), NO_STREAM, metadata=metadata)
        await store.append(stream, new_events(2), 3, metadata=metadata)
        subscriber = Subscriber(store, first.position, LogFilter(tenant_id=tenant))
        subscribers.append(subscriber)

        received = await subscriber.receive(2)

        assert [event.stream_version for event in received] == [4, 5]

    async def test_a_filtered_subscriber_receives_only_matching_events(
        self,
        store: EventStore,
        tenant: str,
        metadata: EventMetadata,
        subscribers: list[Subscriber],
    ) -> None:
        subscriber = Subscriber(store, 0, LogFilter(frozenset({"Paid"}), tenant_id=tenant))
        subscribers.append(subscriber)

        events = [new_event("Placed"), new_event("Paid"), new_event("Placed"), new_event("Paid")]
        await store.append(unique("stream"), events, NO_STREAM, metadata=metadata)
        received = await subscriber.receive(2)

        assert [event.stream_version for event in received] == [2, 4]

    # -- snapshots -----------------------------------------------------------------------

    async def test_a_stream_has_no_snapshot_until_one_is_saved(
        self, store: EventStore, stream: str
    ) -> None:
        assert await store.latest_snapshot(stream) is None

    async def test_the_latest_snapshot_is_read_back_whole(
        self, store: EventStore, stream: str, tenant: str
    ) -> None:
        earlier = snapshot_of(stream, tenant, version=2)
        later = snapshot_of(stream, tenant, version=5)
        await store.save_snapshot(earlier)
        await store.save_snapshot(later)

        assert await store.latest_snapshot(stream) == later

    async def test_an_older_snapshot_saved_late_does_not_replace_a_newer_one(
        self, store: EventStore, stream: str, tenant: str
    ) -> None:
        newer = snapshot_of(stream, tenant, version=5)
        await store.save_snapshot(newer)
        await store.save_snapshot(snapshot_of(stream, tenant, version=3))

        assert await store.latest_snapshot(stream) == newer

    async def test_saving_a_snapshot_appends_no_event(
        self, store: EventStore, stream: str, tenant: str, metadata: EventMetadata
    ) -> None:
        await store.append(stream, new_events(2), NO_STREAM, metadata=metadata)
        head = await store.head_position()

        await store.save_snapshot(snapshot_of(stream, tenant, version=2))

        assert await store.head_position() == head
        assert await store.stream_version(stream) == 2


def snapshot_of(stream: str, tenant: str, version: int) -> Snapshot:
    return Snapshot(
        stream_id=stream,
        stream_version=version,
        type="module:Thing.Snapshot",
        state=f'{{"version": {version}}}'.encode(),
        tenant_id=tenant,
        taken_at=datetime(2024, 5, 1, 12, 0, version, 123456, tzinfo=UTC),
    )
