"""The relay against real Postgres and real Kafka: exactly once in a clean run, per-stream order,
the record format, watermark ticks, resuming from the durable checkpoint, and failover between
two relays of the same name (a clean stop, a crash, and a lost lock session)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from application.event_categories import category_of, topic_of
from application.ports.event_store import (
    ANY,
    EventMetadata,
    EventStore,
    NewEvent,
    RecordedEvent,
)
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.kafka.codec import decode_event, tick_position
from infrastructure.kafka.relay import Relay
from infrastructure.kafka.relay_checkpoint import lock_key
from infrastructure.kafka.topics import ensure_topics, partition_counts

pytestmark = pytest.mark.integration

KAFKA_BOOTSTRAP = os.environ.get("MERCATO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PARTITIONS = 4
KNOWN_CATEGORIES = ("order", "product", "escrow")  # escrow never gets an event: ticks only
EVENT_TYPES = ("tests.relay:Order.Placed", "tests.relay:Product.Created", "tests.relay:Wallet.Paid")
"""`wallet` is not known up front: its topic is created when its first event comes."""
ALL_CATEGORIES = ("order", "product", "escrow", "wallet")
WAIT = 60.0


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
async def prefix(kafka_topic_prefix: str) -> AsyncIterator[str]:
    """A topic prefix of this test's own; its topics are deleted afterwards."""
    prefix = f"{kafka_topic_prefix}relay-{uuid.uuid4().hex[:8]}."
    yield prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        mine = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


@pytest.fixture
async def store(fresh_postgres_dsn: str) -> AsyncIterator[EventStore]:
    store = await PostgresEventStore.connect(fresh_postgres_dsn, min_size=1, max_size=8)
    yield store
    await store.close()


@dataclass
class RunningRelay:
    relay: Relay
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def stop_and_wait(self) -> None:
        self.stop.set()
        async with asyncio.timeout(WAIT):
            await self.task


@pytest.fixture
async def relays(
    store: EventStore, fresh_postgres_dsn: str, prefix: str
) -> AsyncIterator[Callable[..., RunningRelay]]:
    """Starts relays on this test's store and topics; stops any still running afterwards."""
    started: list[RunningRelay] = []

    def start(
        name: str = "relay",
        standby_poll: float = 0.2,
        dsn: str = fresh_postgres_dsn,
        bootstrap: str = KAFKA_BOOTSTRAP,
    ) -> RunningRelay:
        relay = Relay(
            store,
            dsn,
            bootstrap,
            topic_prefix=prefix,
            partitions=PARTITIONS,
            categories=KNOWN_CATEGORIES,
            name=name,
            standby_poll=standby_poll,
        )
        stop = asyncio.Event()
        running = RunningRelay(relay, stop, asyncio.create_task(relay.run(stop)))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop.set()
    await asyncio.gather(*(running.task for running in started), return_exceptions=True)


# --- helpers -------------------------------------------------------------------------------------


METADATA = EventMetadata(
    tenant_id="tenant-relay",
    correlation_id=uuid.uuid4(),
    causation_id=uuid.uuid4(),
    traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
)


def new_streams(count: int) -> list[str]:
    return [f"relay-{n}-{uuid.uuid4().hex[:8]}" for n in range(count)]


async def append(store: EventStore, stream_id: str, count: int = 1) -> None:
    """Append `count` events to a stream, of the stream's category (fixed by its name)."""
    event_type = EVENT_TYPES[int(stream_id.split("-")[1]) % len(EVENT_TYPES)]
    events = [NewEvent(event_type, b'{"n": %d}' % n) for n in range(count)]
    await store.append(stream_id, events, ANY, metadata=METADATA)


async def append_to_all(store: EventStore, streams: Iterable[str], per_stream: int) -> None:
    await asyncio.gather(*(append(store, stream, per_stream) for stream in streams))


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll `condition` (a plain or an async check) until it holds; fail after `WAIT`."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        outcome = condition()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.02)


async def wait_until_published(store: EventStore, running: RunningRelay) -> int:
    head = await store.head_position()
    await wait_until(lambda: running.relay.published_position >= head, f"published up to {head}")
    return head


async def lock_holder(dsn: str, name: str) -> int | None:
    """The backend pid holding the relay's advisory lock, if any."""
    key = lock_key(name) & (2**64 - 1)
    connection = await asyncpg.connect(dsn)
    try:
        pid = await connection.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = $1 AND objid = $2 AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            key >> 32,
            key & 0xFFFFFFFF,
        )
        return None if pid is None else int(pid)
    finally:
        await connection.close()


async def terminate_backend(dsn: str, pid: int) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


async def wait_for_new_lock_holder(dsn: str, previous: int) -> None:
    async def taken_over() -> bool:
        return (await lock_holder(dsn, "relay")) not in (None, previous)

    await wait_until(taken_over, "another session holds the lock")


async def read_everything(prefix: str) -> list[Any]:
    """Every record of this test's topics, up to their end offsets, in offset order per
    partition (read after the relays stopped, so nothing is still on its way)."""
    topics = [topic_of(category, prefix) for category in ALL_CATEGORIES]
    counts = await partition_counts(KAFKA_BOOTSTRAP, topics)
    assert counts == dict.fromkeys(topics, PARTITIONS)
    partitions = [TopicPartition(topic, p) for topic in topics for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[Any] = []
        async with asyncio.timeout(WAIT):
            while not await read_up_to(consumer, end):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return sorted(records, key=lambda record: (record.topic, record.partition, record.offset))


async def read_up_to(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for partition, offset in end.items():
        if await consumer.position(partition) < offset:
            return False
    return True


def events_of(records: list[Any]) -> list[tuple[Any, RecordedEvent]]:
    return [
        (record, decode_event(record.value, record.headers))
        for record in records
        if tick_position(record.headers) is None
    ]


def assert_first_occurrences_in_order(records: list[Any]) -> None:
    """Per stream, the first time each version shows up, versions go 1, 2, 3, … with no gap
    (duplicates after a crash are fine), and the stream stays in one partition."""
    highest: dict[str, int] = defaultdict(int)
    partition_of: dict[str, tuple[str, int]] = {}
    for record, event in events_of(records):
        assert partition_of.setdefault(event.stream_id, (record.topic, record.partition)) == (
            record.topic,
            record.partition,
        )
        if event.stream_version > highest[event.stream_id]:
            assert event.stream_version == highest[event.stream_id] + 1, event
            highest[event.stream_id] = event.stream_version


async def assert_all_published(
    store: EventStore, records: list[Any], *, exactly_once: bool
) -> None:
    stored = await store.read_all(0, limit=100_000)
    published = Counter(event.event_id for _, event in events_of(records))
    assert set(published) == {event.event_id for event in stored}
    if exactly_once:
        assert set(published.values()) == {1}
    assert_first_occurrences_in_order(records)


# --- tests ---------------------------------------------------------------------------------------


async def test_ensure_topics_tolerates_concurrent_creators_and_keeps_existing_topics(
    prefix: str,
) -> None:
    racing, existing = f"{prefix}racing", f"{prefix}existing"
    await ensure_topics(KAFKA_BOOTSTRAP, [existing], partitions=2)
    await asyncio.gather(
        *(ensure_topics(KAFKA_BOOTSTRAP, [racing, existing], partitions=3) for _ in range(3))
    )
    counts = await partition_counts(KAFKA_BOOTSTRAP, [racing, existing, f"{prefix}absent"])
    assert counts == {racing: 3, existing: 2}


async def test_a_clean_run_publishes_every_event_once_in_stream_order_with_ticks(
    store: EventStore, relays: Callable[..., RunningRelay], prefix: str
) -> None:
    streams = new_streams(12)
    await append_to_all(store, streams[:6], per_stream=4)  # before the relay starts
    running = relays()
    await wait_until(lambda: running.relay.active, "the relay leads")
    for _ in range(3):  # while it runs
        await append_to_all(store, streams, per_stream=2)
    head = await wait_until_published(store, running)
    # Nothing new, no ticks: once the last round is out, the count stays put.
    await wait_until(lambda: running.relay.ticks_sent > 0, "ticks sent")
    await asyncio.sleep(0.3)
    ticks_sent = running.relay.ticks_sent
    await asyncio.sleep(0.3)
    assert running.relay.ticks_sent == ticks_sent
    await running.stop_and_wait()

    records = await read_everything(prefix)
    await assert_all_published(store, records, exactly_once=True)
    stored = {event.event_id: event for event in await store.read_all(0, limit=100_000)}
    assert running.relay.events_published == len(stored)
    for record, event in events_of(records):
        assert event == stored[event.event_id]  # the RecordedEvent round-trips exactly
        assert record.key == event.stream_id.encode()
        assert record.topic == topic_of(category_of(event.type), prefix)
        names = {name for name, _ in record.headers}
        assert {"ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject"} <= (
            names
        )

    ticks: dict[tuple[str, int], list[int]] = defaultdict(list)
    for record in records:
        position = tick_position(record.headers)
        if position is not None:
            assert record.key is None and record.value == b""
            ticks[(record.topic, record.partition)].append(position)
            # Everything the tick covers in its partition is already in front of it.
            later = [
                event
                for other, event in events_of(records)
                if (other.topic, other.partition) == (record.topic, record.partition)
                and other.offset > record.offset
            ]
            assert all(event.position > position for event in later)
    every_partition = {
        (topic_of(category, prefix), p) for category in ALL_CATEGORIES for p in range(PARTITIONS)
    }
    assert set(ticks) == every_partition
    assert {max(positions) for positions in ticks.values()} == {head}


async def test_a_restart_resumes_from_the_durable_checkpoint(
    store: EventStore,
    relays: Callable[..., RunningRelay],
    prefix: str,
    fresh_postgres_dsn: str,
) -> None:
    streams = new_streams(6)
    await append_to_all(store, streams, per_stream=3)
    first = relays()
    head = await wait_until_published(store, first)
    await first.stop_and_wait()
    connection = await asyncpg.connect(fresh_postgres_dsn)
    try:
        checkpoint = await connection.fetchval(
            "SELECT position FROM relay_checkpoints WHERE name = 'relay'"
        )
    finally:
        await connection.close()
    assert checkpoint == head

    await append_to_all(store, streams, per_stream=2)  # while no relay runs
    second = relays()
    await wait_until_published(store, second)
    await second.stop_and_wait()

    assert second.relay.events_published == len(streams) * 2
    await assert_all_published(store, await read_everything(prefix), exactly_once=True)


async def test_a_standby_takes_over_when_the_active_relay_stops(
    store: EventStore, relays: Callable[..., RunningRelay], prefix: str
) -> None:
    streams = new_streams(8)
    active = relays()
    await wait_until(lambda: active.relay.active, "the first relay leads")
    standby = relays(standby_poll=0.5)
    await append_to_all(store, streams, per_stream=3)
    await wait_until_published(store, active)
    assert not standby.relay.active

    await active.stop_and_wait()
    await append_to_all(store, streams, per_stream=3)  # most likely before the takeover
    await wait_until(lambda: standby.relay.active, "the standby takes over")
    await append_to_all(store, streams, per_stream=2)
    await wait_until_published(store, standby)
    await standby.stop_and_wait()

    # A clean handover stores the checkpoint before letting go: nothing is published twice.
    await assert_all_published(store, await read_everything(prefix), exactly_once=True)


@pytest.mark.parametrize("crash", ["process dies", "lock session dies"])
async def test_after_a_crash_another_relay_publishes_on_without_losing_an_event(
    store: EventStore,
    relays: Callable[..., RunningRelay],
    prefix: str,
    fresh_postgres_dsn: str,
    caplog: pytest.LogCaptureFixture,
    crash: str,
) -> None:
    streams = new_streams(10)
    appending = asyncio.Event()
    appending.set()

    async def keep_appending() -> None:
        n = 0
        while appending.is_set():
            await append(store, streams[n % len(streams)])
            n += 1
            await asyncio.sleep(0.002)

    first = relays()
    await wait_until(lambda: first.relay.active, "the first relay leads")
    second = relays()
    appender = asyncio.create_task(keep_appending())
    try:
        await wait_until(lambda: first.relay.events_published > 50, "the first relay publishes")
        holder = await lock_holder(fresh_postgres_dsn, "relay")
        assert holder is not None
        with caplog.at_level(logging.WARNING, logger="infrastructure.kafka.relay"):
            await terminate_backend(fresh_postgres_dsn, holder)
            if crash == "process dies":
                first.task.cancel()  # no clean-up of its own gets a say before this
                await wait_until(lambda: second.relay.active, "the standby takes over")
            else:
                # Which of its calls meets the dead session first is a race: the lock watch
                # ("lost its leadership") or another query ("cannot reach Postgres"); either
                # way the relay gives the lock up.
                await wait_until(
                    lambda: (
                        "lost its leadership" in caplog.text
                        or "cannot reach Postgres" in caplog.text
                    ),
                    "leadership lost",
                )
            await wait_for_new_lock_holder(fresh_postgres_dsn, holder)
        await asyncio.sleep(0.5)  # appends go on under the new leader
    finally:
        appending.clear()
        await appender
    leader = second if second.relay.active else first
    assert leader.relay.active and not (first.relay.active and second.relay.active)
    await wait_until_published(store, leader)
    for running in (first, second):
        running.stop.set()
    await asyncio.gather(first.task, second.task, return_exceptions=True)

    await assert_all_published(store, await read_everything(prefix), exactly_once=False)


async def test_without_kafka_the_relay_retries_and_still_stops_cleanly(
    store: EventStore,
    relays: Callable[..., RunningRelay],
    fresh_postgres_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await append_to_all(store, new_streams(2), per_stream=2)
    with caplog.at_level(logging.WARNING, logger="infrastructure.kafka.relay"):
        running = relays(bootstrap="127.0.0.1:1")  # nothing listens there
        await wait_until(lambda: caplog.text.count("could not publish") >= 2, "retries")
    await running.stop_and_wait()
    assert running.relay.published_position == 0
    connection = await asyncpg.connect(fresh_postgres_dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM relay_checkpoints") == 0
    finally:
        await connection.close()


async def test_without_postgres_the_relay_retries_and_still_stops_cleanly(
    relays: Callable[..., RunningRelay], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="infrastructure.kafka.relay"):
        running = relays(dsn="postgresql://postgres@127.0.0.1:1/postgres")
        await wait_until(lambda: caplog.text.count("cannot reach Postgres") >= 2, "retries")
    await running.stop_and_wait()
    assert not running.relay.active
