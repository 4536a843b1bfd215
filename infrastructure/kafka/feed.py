"""The services profile's `EventFeed`: a Kafka consumer group, committed by hand after the sink.

A background task fetches records and turns them into `FeedBatch`es in a small queue; the worker
takes them from `batches()`, writes them to its sink and then calls `commit`. Three properties
matter, and each has its place below:

- **At-least-once, commit after apply**: offsets are committed only by `commit(batch)`, never
  automatically, so a batch whose effects are not stored comes again (sinks are idempotent).
- **Backpressure**: the queue holds at most `max_in_flight` batches; when it is full the consumer
  pauses every assigned partition, so a slow sink stops fetching instead of buffering.
- **Rebalance safety**: before a partition moves to another member, the batch the worker holds
  is finished and committed (bounded wait), and queued batches are dropped — the new owner
  starts from the committed offset and delivers them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from application.backoff import Backoff
from application.event_categories import kafka_partition_id
from application.ports.event_feed import FeedBatch
from application.ports.event_store import RecordedEvent
from infrastructure.kafka.codec import decode_event, tick_position

logger = logging.getLogger(__name__)

_FETCH_RETRY = Backoff(first=0.2, cap=5.0)
"""The longest pause between two fetches that failed with a retriable Kafka error."""
REVOKE_GRACE_SECONDS = 30.0
"""How long a rebalance waits for the worker to finish the batch it holds. Past it, the
partition moves anyway and the batch is delivered again to the new owner."""


class KafkaEventFeed:
    """One member of a projection's consumer group (aiokafka, manual commits)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        max_batch: int,
        max_in_flight: int,
        fetch_timeout: float,
        revoke_grace: float = REVOKE_GRACE_SECONDS,
    ) -> None:
        self._consumer = consumer
        self._max_batch = max_batch
        self._fetch_timeout_ms = int(fetch_timeout * 1000)
        self._revoke_grace = revoke_grace
        # `None` marks the end: the feed is closed (or its fetcher failed, see `_failure`).
        self._queue: asyncio.Queue[FeedBatch | None] = asyncio.Queue(max_in_flight)
        self._room = asyncio.Event()
        """Set when a queued batch leaves the queue (taken by the worker or dropped)."""
        self._in_hand: dict[int, FeedBatch] = {}
        """Batches handed to the worker and not yet settled, by identity."""
        self._handed_back = asyncio.Event()
        """Set when a batch in hand is settled (or the feed closes)."""
        self._closing = False
        self._failure: Exception | None = None
        self._fetcher: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        bootstrap: str,
        *,
        group_id: str,
        topics: Iterable[str],
        max_batch: int = 1000,
        max_in_flight: int = 2,
        fetch_timeout: float = 0.05,
        client_id: str | None = None,
    ) -> KafkaEventFeed:
        """Join `group_id` on `topics` (from the earliest offset when the group has none) and
        start fetching."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=client_id or f"mercato-feed-{group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        feed = cls(
            consumer,
            max_batch=max_batch,
            max_in_flight=max_in_flight,
            fetch_timeout=fetch_timeout,
        )
        consumer.subscribe(topics=list(topics), listener=_RebalanceListener(feed))
        try:
            await consumer.start()  # returns once the group has given this member partitions
        except BaseException:
            await consumer.stop()
            raise
        feed._fetcher = asyncio.create_task(feed._fetch(), name=f"kafka-feed-{group_id}")
        return feed

    async def batches(self) -> AsyncGenerator[FeedBatch, None]:
        while True:
            batch = await self._queue.get()
            if batch is None:
                self._queue.put_nowait(None)  # leave the end mark for any other iterator
                if self._failure is not None:
                    raise self._failure
                return
            self._room.set()
            # Taken from the queue and marked as in hand in one step (no await between), so a
            # rebalance sees every batch either queued or in hand.
            self._in_hand[id(batch)] = batch
            try:
                yield batch
            finally:
                # The worker asks for the next batch (or stops) only when it is done with this
                # one, committed or not: it no longer holds it.
                self._settle(batch)

    async def commit(self, batch: FeedBatch) -> None:
        """Commit the batch's offsets of the partitions this member still owns. A partition
        that has moved is left to its new owner, which delivers the batch again."""
        try:
            if self._closing:
                return
            assigned = self._consumer.assignment()
            offsets = {tp: offset for tp, offset in batch.offsets.items() if tp in assigned}
            if len(offsets) < len(batch.offsets):
                logger.info(
                    "not committing %s: no longer assigned to this member",
                    sorted(set(batch.offsets) - set(offsets), key=str),
                )
            if offsets:
                await self._consumer.commit(offsets)
        except CommitFailedError as error:
            logger.warning("commit failed, the partitions' new owner will redeliver: %s", error)
        finally:
            self._settle(batch)

    async def close(self) -> None:
        """Stop fetching, commit nothing more, and leave the group (its partitions move to the
        other members at once, from the offsets committed so far)."""
        if self._closing:
            return
        self._closing = True
        self._handed_back.set()  # a rebalance waiting for the worker need not wait any more
        if self._fetcher is not None:
            self._fetcher.cancel()
            with suppress(asyncio.CancelledError):
                await self._fetcher
        self._end(None)
        await self._consumer.stop()

    def paused_partitions(self) -> set[TopicPartition]:
        """The partitions this member has paused because its worker is behind."""
        return set(self._consumer.paused())

    def assigned_partitions(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def queued_batches(self) -> int:
        """Batches fetched and waiting for the worker."""
        return self._queue.qsize()

    async def _fetch(self) -> None:
        failures = 0
        try:
            while True:
                await self._wait_for_room()
                try:
                    records = await self._consumer.getmany(
                        timeout_ms=self._fetch_timeout_ms, max_records=self._max_batch
                    )
                except KafkaError as error:
                    # A broker away or a leader moving is waited out; anything else (offsets
                    # out of range, authorisation) ends the feed, and the worker with it.
                    if not error.retriable:
                        raise
                    failures += 1
                    delay = _FETCH_RETRY.delay(failures)
                    logger.warning(
                        "fetching failed (attempt %d, retry in %.1fs): %r", failures, delay, error
                    )
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                if records:
                    # Only this task puts batches, and there was room before `getmany`.
                    self._queue.put_nowait(batch_of(records))
        except Exception as error:
            logger.exception("the Kafka feed stopped fetching")
            self._end(error)

    async def _wait_for_room(self) -> None:
        if not self._queue.full():
            return
        # Paused partitions are neither fetched nor returned by `getmany`, and what aiokafka
        # had prefetched for them is dropped (fetched again from the position on resume).
        self._consumer.pause(*self._consumer.assignment())
        while self._queue.full():
            self._room.clear()
            await self._room.wait()
        # A rebalance meanwhile may have replaced the assignment (fresh partitions start
        # unpaused): resume whatever is paused now.
        self._consumer.resume(*self._consumer.paused())

    async def _on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the revoked partitions go with nothing half-way.

        Why this cannot deadlock: aiokafka runs this listener in its coordination task, never
        inside `getmany`, and holds nothing the worker's `commit` needs — a commit takes only
        the coordinator lookup and the commit lock, which the coordination task does not hold
        (auto-commit is off), and the group still accepts it, because this member is in the
        group with its old generation until it rejoins after this listener returns. Meanwhile
        the fetch task is either blocked inside `getmany` (which waits for the new assignment
        before it returns any record) or waiting for room; this listener waits for neither, and
        dropping queued batches only makes room. The wait is for the worker alone, bounded by
        the grace period, and cut short by `close()`.
        """
        dropped = self._drop_queued(revoked)
        if dropped:
            logger.info("rebalance: dropped %d queued batches, they will come again", dropped)
        try:
            async with asyncio.timeout(self._revoke_grace):
                while not self._closing and self._holds(revoked):
                    self._handed_back.clear()
                    await self._handed_back.wait()
        except TimeoutError:
            logger.warning(
                "rebalance: the worker did not finish its batch within %.0f s; "
                "the partitions' next owner will deliver it again",
                self._revoke_grace,
            )

    def _drop_queued(self, revoked: set[TopicPartition]) -> int:
        """Drop queued batches that touch a revoked partition. Safe because aiokafka rebalances
        eagerly: every partition of the next assignment (even one that stays with this member)
        starts again from its committed offset."""
        queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        kept = [batch for batch in queued if batch is None or revoked.isdisjoint(batch.offsets)]
        for batch in kept:
            self._queue.put_nowait(batch)
        self._room.set()
        return len(queued) - len(kept)

    def _holds(self, partitions: set[TopicPartition]) -> bool:
        return any(not partitions.isdisjoint(batch.offsets) for batch in self._in_hand.values())

    def _settle(self, batch: FeedBatch) -> None:
        self._in_hand.pop(id(batch), None)
        self._handed_back.set()

    def _end(self, failure: Exception | None) -> None:
        """End every `batches()` iterator (raising `failure`, if any). Queued batches were never
        handed out, hence never committed: they come again to whoever consumes next."""
        if self._failure is None:
            self._failure = failure
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    def __init__(self, feed: KafkaEventFeed) -> None:
        self._feed = feed

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._feed._on_partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        logger.info("assigned %s", sorted(assigned, key=str))


def batch_of(records: Mapping[TopicPartition, Sequence[Any]]) -> FeedBatch:
    """One batch of what `getmany` returned: events in order per partition, the highest
    position covered per partition (events and ticks), and the offsets to commit."""
    events: list[RecordedEvent] = []
    checkpoints: dict[str, int] = {}
    offsets: dict[object, int] = {}
    for tp, partition_records in records.items():
        partition = kafka_partition_id(tp.topic, tp.partition)
        for record in partition_records:
            try:
                read = _read(record)
            except ValueError as error:
                logger.warning(
                    "skipping a record that is neither an event nor a tick: "
                    "topic %s partition %d offset %d: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    error,
                )
                continue
            if isinstance(read, RecordedEvent):
                events.append(read)
                position = read.position
            else:
                position = read
            checkpoints[partition] = max(checkpoints.get(partition, position), position)
        # Past the last record, malformed or not: a record that cannot be read never will be.
        offsets[tp] = partition_records[-1].offset + 1
    return FeedBatch(events=events, checkpoints=checkpoints, offsets=offsets)


def _read(record: Any) -> RecordedEvent | int:
    """The event a record carries, or the position of a tick; `ValueError` for anything else."""
    # Kafka allows null header values; the codec never writes them and cannot read them.
    headers = [(name, value) for name, value in record.headers or () if value is not None]
    tick = tick_position(headers)
    if tick is not None:
        return tick
    if record.value is None:
        raise ValueError("no value")
    return decode_event(record.value, headers)
