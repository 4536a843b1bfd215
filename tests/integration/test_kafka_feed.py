"""The Kafka `EventFeed` against the real broker: delivery and order, commit after apply,
rebalances between members of one group, backpressure, and records that are not events.

Every test works on a fresh topic (6 partitions) and a fresh consumer group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from application.event_categories import kafka_partition_id
from application.ports.event_feed import FeedBatch
from application.ports.event_store import RecordedEvent
from infrastructure.kafka.codec import encode_event, encode_tick
from infrastructure.kafka.feed import KafkaEventFeed

pytestmark = pytest.mark.integration

KAFKA_BOOTSTRAP = os.environ.get("MERCATO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PARTITIONS = 6
WAIT = 60.0

OpenFeed = Callable[..., Coroutine[Any, Any, KafkaEventFeed]]


@pytest.fixture
async def topic(kafka_topic_prefix: str) -> AsyncIterator[str]:
    name = f"{kafka_topic_prefix}feed-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
        try:
            yield name
        finally:
            await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.fixture
def group(kafka_topic_prefix: str) -> str:
    return f"{kafka_topic_prefix}group-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def open_feed(topic: str) -> AsyncIterator[OpenFeed]:
    """Starts feeds on the test's topic; closes whatever is still open at the end."""
    feeds: list[KafkaEventFeed] = []

    async def start(group_id: str, **options: Any) -> KafkaEventFeed:
        feed = await KafkaEventFeed.start(
            KAFKA_BOOTSTRAP, group_id=group_id, topics=[topic], **options
        )
        feeds.append(feed)
        return feed

    yield start
    for feed in feeds:
        await feed.close()


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(
        bootstrap_servers=KAFKA_BOOTSTRAP, acks="all", enable_idempotence=True
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def event_log(
    streams: int, versions: Iterable[int], *, first_position: int = 1
) -> list[RecordedEvent]:
    """Events of `streams` streams, interleaved version by version, at increasing positions."""
    events: list[RecordedEvent] = []
    for version in versions:
        for stream in range(streams):
            events.append(
                RecordedEvent(
                    event_id=uuid.uuid4(),
                    stream_id=f"order-{stream}",
                    stream_version=version,
                    position=first_position + len(events),
                    type="domain.order:Order.Placed",
                    schema_version=1,
                    tenant_id="t1",
                    recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
                    correlation_id=None,
                    causation_id=None,
                    traceparent=None,
                    payload=b'{"n": %d}' % version,
                )
            )
    return events


async def produce(
    producer: AIOKafkaProducer, topic: str, events: Iterable[RecordedEvent]
) -> dict[str, int]:
    """Sends the events (key = stream id) and returns the partition each stream went to."""
    sent = []
    for event in events:
        record = encode_event(event)
        sent.append(
            (
                event.stream_id,
                await producer.send(
                    topic, key=record.key, value=record.value, headers=record.headers
                ),
            )
        )
    return {stream: (await delivery).partition for stream, delivery in sent}


async def produce_tick(
    producer: AIOKafkaProducer, topic: str, partition: int, position: int
) -> None:
    await producer.send_and_wait(
        topic, value=b"", headers=encode_tick(position), partition=partition
    )


async def consume(
    feed: KafkaEventFeed,
    done: Callable[[list[FeedBatch]], bool],
    *,
    commit: Callable[[list[FeedBatch]], bool] = lambda _: True,
) -> list[FeedBatch]:
    """Applies batches (here: keeps them) and commits each one unless `commit` says no, until
    `done` says so."""
    batches: list[FeedBatch] = []
    async with asyncio.timeout(WAIT), aclosing(feed.batches()) as feed_batches:
        async for batch in feed_batches:
            batches.append(batch)
            if commit(batches):
                await feed.commit(batch)
            if done(batches):
                return batches
    raise AssertionError("the feed ended early")


def events_of(batches: Iterable[FeedBatch]) -> list[RecordedEvent]:
    return [event for batch in batches for event in batch.events]


def has_events(count: int) -> Callable[[list[FeedBatch]], bool]:
    return lambda batches: len(events_of(batches)) >= count


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.05)


def versions_by_stream(events: Iterable[RecordedEvent]) -> dict[str, list[int]]:
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event.stream_id].append(event.stream_version)
    return versions


async def test_delivers_every_event_in_stream_order_with_checkpoints_per_partition(
    topic: str, group: str, producer: AIOKafkaProducer, open_feed: OpenFeed
) -> None:
    events = event_log(12, range(1, 11))
    partition_of = await produce(producer, topic, events)
    last_position = events[-1].position
    ticks = {p: last_position + 100 + p for p in range(0, PARTITIONS, 2)}
    for partition, position in ticks.items():
        await produce_tick(producer, topic, partition, position)
    expected: dict[str, int] = {}
    for event in events:
        expected[kafka_partition_id(topic, partition_of[event.stream_id])] = event.position
    for partition, position in ticks.items():
        expected[kafka_partition_id(topic, partition)] = position

    def merged(batches: Iterable[FeedBatch]) -> dict[str, int]:
        highest: dict[str, int] = {}
        for batch in batches:
            for partition, position in batch.checkpoints.items():
                highest[partition] = max(highest.get(partition, position), position)
        return highest

    feed = await open_feed(group, max_batch=16)
    batches = await consume(
        feed, lambda batches: len(events_of(batches)) >= len(events) and merged(batches) == expected
    )

    delivered = events_of(batches)
    assert sorted(e.event_id for e in delivered) == sorted(e.event_id for e in events)
    produced = {event.event_id: event for event in events}
    assert all(event == produced[event.event_id] for event in delivered)
    assert all(
        versions == list(range(1, 11)) for versions in versions_by_stream(delivered).values()
    )
    assert len(batches) > 1
    for batch in batches:
        for event in batch.events:
            assert batch.checkpoints[kafka_partition_id(topic, partition_of[event.stream_id])] >= (
                event.position
            )
    assert merged(batches) == expected


async def test_a_batch_not_committed_is_delivered_again_to_the_next_member(
    topic: str, group: str, producer: AIOKafkaProducer, open_feed: OpenFeed
) -> None:
    events = event_log(12, range(1, 6))
    await produce(producer, topic, events)

    first = await open_feed(group, max_batch=8)
    # The "worker" applies every batch but dies before committing the one that completes the log.
    batches = await consume(
        first,
        has_events(len(events)),
        commit=lambda batches: len(events_of(batches)) < len(events),
    )
    await first.close()
    uncommitted = batches[-1]
    assert uncommitted.events

    second = await open_feed(group, max_batch=8)
    again = await consume(second, has_events(len(uncommitted.events)))

    assert sorted(e.event_id for e in events_of(again)) == sorted(
        e.event_id for e in uncommitted.events
    )


Deliveries = list[tuple[str, RecordedEvent]]


async def run_worker(
    name: str,
    feed: KafkaEventFeed,
    deliveries: Deliveries,
    batches: AsyncGenerator[FeedBatch, None] | None = None,
) -> None:
    """A worker whose sink write takes a moment: notes what it applies, then commits."""
    async with aclosing(batches or feed.batches()) as feed_batches:
        async for batch in feed_batches:
            deliveries.extend((name, event) for event in batch.events)
            await asyncio.sleep(0.02)
            await feed.commit(batch)


async def test_a_rebalance_waits_for_the_batch_in_hand_and_drops_the_queued_ones(
    topic: str, group: str, producer: AIOKafkaProducer, open_feed: OpenFeed
) -> None:
    events = event_log(12, range(1, 11))
    await produce(producer, topic, events)
    a = await open_feed(group, max_batch=5, max_in_flight=2)
    a_batches = a.batches()
    held = await anext(a_batches)  # the worker is busy with it
    await eventually(lambda: a.queued_batches() == 2, "a's queue fills up")

    starting_b = asyncio.create_task(open_feed(group, max_batch=5))
    await eventually(lambda: a.queued_batches() == 0, "the rebalance drops a's queued batches")
    await asyncio.sleep(0.5)
    assert not starting_b.done(), "b joins only once a has finished the batch it holds"
    await a.commit(held)
    b = await asyncio.wait_for(starting_b, WAIT)

    deliveries: Deliveries = [("a", event) for event in held.events]
    workers = [
        asyncio.create_task(run_worker("a", a, deliveries, a_batches)),
        asyncio.create_task(run_worker("b", b, deliveries)),
    ]
    try:
        await eventually(lambda: len(deliveries) >= len(events), "every event is delivered")
        await asyncio.sleep(0.5)  # room for a wrong second delivery to show up
    finally:
        await a.close()
        await b.close()
        await asyncio.gather(*workers)

    # The batch in hand was committed before its partitions moved, and the dropped ones had
    # never been handed out: in this run every event comes exactly once.
    assert sorted(e.event_id for _, e in deliveries) == sorted(e.event_id for e in events)
    assert {name for name, _ in deliveries} == {"a", "b"}


async def test_members_split_partitions_and_one_leaving_mid_stream_hands_over_the_rest(
    topic: str, group: str, producer: AIOKafkaProducer, open_feed: OpenFeed
) -> None:
    deliveries: Deliveries = []
    a = await open_feed(group, max_batch=10)
    b = await open_feed(group, max_batch=10)
    workers = [
        asyncio.create_task(run_worker("a", a, deliveries)),
        asyncio.create_task(run_worker("b", b, deliveries)),
    ]
    try:
        await eventually(
            lambda: (
                bool(a.assigned_partitions())
                and bool(b.assigned_partitions())
                and len(a.assigned_partitions() | b.assigned_partitions()) == PARTITIONS
                and not a.assigned_partitions() & b.assigned_partitions()
            ),
            "the two members split the partitions",
        )
        first_half = event_log(12, range(1, 21))
        await produce(producer, topic, first_half)
        await eventually(
            lambda: {name for name, _ in deliveries} == {"a", "b"},
            "both members deliver events",
        )

        second_half = event_log(12, range(21, 41), first_position=len(first_half) + 1)
        await produce(producer, topic, second_half)
        await b.close()  # mid-stream: b's queued and in-hand batches are not committed

        everything = {event.event_id for event in first_half + second_half}
        await eventually(
            lambda: {event.event_id for _, event in deliveries} >= everything,
            "every event is delivered after b left",
        )
        await eventually(
            lambda: len(a.assigned_partitions()) == PARTITIONS, "a took over b's partitions"
        )
    finally:
        await a.close()
        await b.close()
        await asyncio.gather(*workers)

    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[uuid.UUID] = set()
    for _, event in deliveries:
        if event.event_id not in seen:
            seen.add(event.event_id)
            first_seen[event.stream_id].append(event.stream_version)
    assert len(first_seen) == 12
    assert all(versions == list(range(1, 41)) for versions in first_seen.values()), first_seen


async def test_a_worker_that_falls_behind_pauses_fetching(
    topic: str, group: str, producer: AIOKafkaProducer, open_feed: OpenFeed
) -> None:
    events = event_log(12, range(1, 11))
    await produce(producer, topic, events)

    feed = await open_feed(group, max_batch=5, max_in_flight=2)
    await eventually(
        lambda: (
            feed.queued_batches() == 2 and feed.paused_partitions() == feed.assigned_partitions()
        ),
        "a full queue pauses every assigned partition",
    )
    await asyncio.sleep(0.5)  # nothing more is fetched while the worker is away
    assert feed.queued_batches() == 2
    assert len(feed.assigned_partitions()) == PARTITIONS
    assert feed.paused_partitions() == feed.assigned_partitions()

    batches = await consume(feed, has_events(len(events)))

    assert all(len(batch.events) <= 5 for batch in batches)
    assert sorted(e.event_id for e in events_of(batches)) == sorted(e.event_id for e in events)
    await eventually(lambda: not feed.paused_partitions(), "fetching resumes once there is room")


async def test_a_record_that_is_neither_event_nor_tick_is_skipped_with_a_warning(
    topic: str,
    group: str,
    producer: AIOKafkaProducer,
    open_feed: OpenFeed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = event_log(1, range(1, 3))
    for record in (encode_event(first), None, encode_event(second)):
        if record is None:
            await producer.send_and_wait(topic, value=b"junk", partition=0)
            await producer.send_and_wait(
                topic, value=b"{}", headers=[("ce_id", b"not-a-uuid")], partition=0
            )
        else:
            await producer.send_and_wait(
                topic, key=record.key, value=record.value, headers=record.headers, partition=0
            )
    await produce_tick(producer, topic, 0, 50)
    checkpoint = kafka_partition_id(topic, 0)

    caplog.set_level(logging.WARNING, logger="infrastructure.kafka.feed")
    feed = await open_feed(group)
    batches = await consume(
        feed, lambda batches: any(b.checkpoints.get(checkpoint) == 50 for b in batches)
    )

    assert events_of(batches) == [first, second]
    assert batches[-1].offsets == {TopicPartition(topic, 0): 5}
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "infrastructure.kafka.feed" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 2, warnings
    assert f"topic {topic} partition 0 offset 1" in warnings[0]
    assert f"topic {topic} partition 0 offset 2" in warnings[1]
