"""The relay: follows the event store's global log and publishes every event to Kafka.

One relay of a given name is active at a time (the others stand by, see `relay_checkpoint`).
The active one subscribes to the log from its durable checkpoint and, per batch, sends every
event to its category's topic (key = stream id, so a stream stays in one partition and in
order), waits until Kafka has acknowledged all of them, and only then counts the batch as
published. The checkpoint follows the published position, never ahead of it: after a crash the
successor republishes at most what was acknowledged but not yet checkpointed (duplicates, which
consumers absorb; never a gap).

Watermark ticks tell consumers how far each partition is complete (see `codec`): after events
are acknowledged, a tick with the published position goes to every partition of every known
topic — sent after the acknowledgement, so it lands behind the events it covers. A round of
ticks costs one record per partition of every topic, so rounds are paced (at most one per
`tick_interval`) and skipped while nothing new was published.

Telemetry: each published batch is a span, `relay publish`, a child of the request's span when
all its events come from one trace, else linked to each event's (the `traceparent` stored with
it, which also travels in the record's headers); `mercato_events_published_total` counts what
Kafka acknowledged, and `mercato_relay_lag_events` is refreshed while the relay leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from application.backoff import Backoff
from application.event_categories import category_of, topic_of
from application.ports.event_store import EventStore, EventStoreError, RecordedEvent
from application.tracing import EVENT_COUNT, POSITION, SpanCause
from infrastructure.kafka.codec import encode_event, encode_tick
from infrastructure.kafka.relay_checkpoint import LeadershipLostError, RelayLeadership
from infrastructure.kafka.topics import ensure_topics
from infrastructure.telemetry.metrics import EVENTS_PUBLISHED, RELAY_LAG

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("mercato.relay")

_BATCH_SIZE = 1000
_CHECKPOINT_INTERVAL = 0.1
_MAX_BATCH_BYTES = 256 * 1024
_LAG_REPORT_INTERVAL = 5.0

# Failures that a fresh attempt may get past: Kafka or Postgres away for a while.
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    KafkaError,
    EventStoreError,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class Relay:
    """Publishes the event store's log to Kafka. Run with `run(stop)`; read its progress from
    `active`, `published_position`, `events_published` and `ticks_sent`."""

    def __init__(
        self,
        store: EventStore,
        dsn: str,
        bootstrap: str,
        *,
        topic_prefix: str,
        partitions: int,
        categories: Collection[str],
        tick_interval: float = 0.05,
        name: str = "relay",
        standby_poll: float = 0.5,
        lag_report_interval: float = _LAG_REPORT_INTERVAL,
    ) -> None:
        self._store = store
        self._dsn = dsn
        self._bootstrap = bootstrap
        self._prefix = topic_prefix
        self._partitions = partitions
        self._topics = {topic_of(category, topic_prefix) for category in categories}
        """Every topic that gets ticks: the known categories', and those of events seen."""
        self._tick_interval = tick_interval
        self._name = name
        self._standby_poll = standby_poll
        self._lag_report_interval = lag_report_interval
        self._retry = _Retries(Backoff(first=0.1, cap=5.0))
        self._tick_wanted = asyncio.Event()
        self._checkpoint_wanted = asyncio.Event()
        self._ticked_position = 0
        self._checkpointed_position = 0
        self.active = False
        self.published_position = 0
        """The position of the last event Kafka acknowledged (this relay, while leading)."""
        self.events_published = 0
        self.ticks_sent = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Stand by or lead until `stop` is set. Then finish the batch in flight, store the
        checkpoint, release the lock and return."""
        leadership = RelayLeadership(self._dsn, self._name)
        try:
            while not stop.is_set():
                try:
                    if await self._become_leader(leadership, stop):
                        await self._lead(leadership, stop)
                except LeadershipLostError as error:
                    logger.warning("relay %r lost its leadership (%s)", self._name, error)
                    leadership.abandon()
                    self.active = False
                    await _sleep_unless(stop, self._standby_poll)
                except _TRANSIENT_ERRORS as error:
                    logger.warning("relay %r cannot reach Postgres: %s", self._name, error)
                    leadership.abandon()
                    await self._retry.wait(stop)
        finally:
            self.active = False
            await leadership.release()

    async def _become_leader(self, leadership: RelayLeadership, stop: asyncio.Event) -> bool:
        """Try for the lock every `standby_poll` seconds; False when stopped first."""
        standby_logged = False
        while not stop.is_set():
            if await leadership.try_acquire():
                self._retry.reset()
                logger.info("relay %r is active", self._name)
                self.active = True
                return True
            if not standby_logged:
                logger.info("relay %r is on standby: another relay holds its lock", self._name)
                standby_logged = True
            await _sleep_unless(stop, self._standby_poll)
        return False

    async def _lead(self, leadership: RelayLeadership, stop: asyncio.Event) -> None:
        checkpoint = await leadership.load_checkpoint()
        self.published_position = self._ticked_position = checkpoint
        self._checkpointed_position = checkpoint
        logger.info("relay %r resumes after position %d", self._name, checkpoint)
        await _first_to_finish(
            leadership.watch(self._standby_poll), self._publish_until_stopped(leadership, stop)
        )
        await self._save_checkpoint(leadership)

    async def _publish_until_stopped(
        self, leadership: RelayLeadership, stop: asyncio.Event
    ) -> None:
        """Publish with one producer after another: a Kafka or event store failure ends a
        producer's session, and the next one resumes after the last acknowledged event."""
        while not stop.is_set():
            try:
                await self._publish_with_one_producer(leadership, stop)
            except _TRANSIENT_ERRORS as error:
                logger.warning(
                    "relay %r could not publish after position %d (%r); retrying",
                    self._name,
                    self.published_position,
                    error,
                )
                await self._retry.wait(stop)

    async def _publish_with_one_producer(
        self, leadership: RelayLeadership, stop: asyncio.Event
    ) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"mercato-{self._name}",
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=_MAX_BATCH_BYTES,
        )
        try:
            await producer.start()
            await ensure_topics(self._bootstrap, self._topics, partitions=self._partitions)
            await _first_to_finish(
                self._follow_log(producer, stop),
                _paced(self._tick_wanted, self._tick_interval, lambda: self._send_ticks(producer)),
                _paced(
                    self._checkpoint_wanted,
                    _CHECKPOINT_INTERVAL,
                    lambda: self._save_checkpoint(leadership),
                ),
                self._report_lag(),
            )
            await self._send_ticks(producer)  # the last batch's, before going away
        finally:
            await producer.stop()

    async def _follow_log(self, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        batches = self._store.subscribe(
            from_position=self.published_position, batch_size=_BATCH_SIZE
        )
        try:
            while (batch := await _next_unless_stopped(batches, stop)) is not None:
                await self._publish(producer, batch)
        finally:
            await _close(batches)

    async def _publish(self, producer: AIOKafkaProducer, batch: list[RecordedEvent]) -> None:
        """Send every event of the batch at once, then wait for Kafka to acknowledge them all:
        only then is the batch published (and may the checkpoint and the ticks cover it)."""
        topics = [topic_of(category_of(event.type), self._prefix) for event in batch]
        new_topics = set(topics) - self._topics
        if new_topics:
            await ensure_topics(self._bootstrap, new_topics, partitions=self._partitions)
            self._topics |= new_topics
        cause = SpanCause.of(event.traceparent for event in batch)
        with tracer.start_as_current_span(
            "relay publish",
            context=cause.context,
            links=cause.links,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": sorted(set(topics)),
                EVENT_COUNT: len(batch),
                POSITION: batch[-1].position,
                "mercato.first_position": batch[0].position,
            },
        ):
            deliveries = []
            for topic, event in zip(topics, batch, strict=True):
                record = encode_event(event)
                deliveries.append(
                    await producer.send(topic, record.value, key=record.key, headers=record.headers)
                )
            await _all_delivered(deliveries)
        self.published_position = batch[-1].position
        self.events_published += len(batch)
        EVENTS_PUBLISHED.inc(len(batch))
        self._retry.reset()
        self._tick_wanted.set()
        self._checkpoint_wanted.set()

    async def _report_lag(self) -> None:
        """Set the relay lag gauge (events stored but not yet published) now and then, while
        this relay leads. A failure is logged and tried again: it must not stop publishing."""
        while True:
            try:
                head = await self._store.head_position()
                published = self.published_position
                lag = await self._store.count_between(published, head) if head > published else 0
                RELAY_LAG.set(lag)
            except _TRANSIENT_ERRORS as error:
                logger.warning("relay %r could not measure its lag: %s", self._name, error)
            await asyncio.sleep(self._lag_report_interval)

    async def _send_ticks(self, producer: AIOKafkaProducer) -> None:
        position = self.published_position
        if position <= self._ticked_position:
            return
        deliveries = []
        for topic in sorted(self._topics):
            for partition in sorted(await producer.partitions_for(topic)):
                deliveries.append(
                    await producer.send(
                        topic, b"", partition=partition, headers=encode_tick(position)
                    )
                )
        await _all_delivered(deliveries)
        self._ticked_position = position
        self.ticks_sent += len(deliveries)

    async def _save_checkpoint(self, leadership: RelayLeadership) -> None:
        position = self.published_position
        if position > self._checkpointed_position:
            await leadership.save_checkpoint(position)
            self._checkpointed_position = position


class _Retries:
    """Waits between failed attempts that grow by `backoff`; a success starts them over."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._failures = 0

    def reset(self) -> None:
        self._failures = 0

    async def wait(self, stop: asyncio.Event) -> None:
        self._failures += 1
        await _sleep_unless(stop, self._backoff.delay(self._failures))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake up as soon as `stop` is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def _paced(
    wanted: asyncio.Event, interval: float, action: Callable[[], Awaitable[None]]
) -> None:
    """Run `action` whenever `wanted` is set, but at most once per `interval` seconds: what is
    wanted while it waits is covered by the next run."""
    loop = asyncio.get_running_loop()
    last_run = float("-inf")
    while True:
        await wanted.wait()
        await asyncio.sleep(max(0.0, last_run + interval - loop.time()))
        wanted.clear()
        last_run = loop.time()
        await action()


async def _all_delivered(deliveries: list[asyncio.Future[Any]]) -> None:
    """Wait for every send; then raise the first failure. Waiting for all (rather than
    stopping at the first failure) leaves no failed future unobserved."""
    results = await asyncio.gather(*deliveries, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _next_unless_stopped(
    batches: AsyncIterator[list[RecordedEvent]], stop: asyncio.Event
) -> list[RecordedEvent] | None:
    """The next batch, or None once `stop` is set. A batch already being published is never
    cut short: `stop` is only looked at between batches, or while waiting for one."""
    if stop.is_set():
        return None
    next_batch = asyncio.ensure_future(anext(batches))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((next_batch, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not next_batch.done():
            next_batch.cancel()
            await asyncio.wait((next_batch,))
    if next_batch.cancelled():
        return None
    try:
        return next_batch.result()
    except StopAsyncIteration:
        raise RuntimeError("the event store's subscription ended") from None


async def _close(batches: AsyncIterator[list[RecordedEvent]]) -> None:
    """Close a subscription (an async generator) so it gives its connection back now."""
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()


async def _first_to_finish(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines together until one returns or raises; cancel the others, wait for
    them, then return or re-raise what the first one raised."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    first_failure: BaseException | None = None
    for task in tasks:
        if task.cancelled():
            continue
        failure = task.exception()  # also marks a sibling's failure while cancelled as seen
        if failure is not None and task in done and first_failure is None:
            first_failure = failure
    if first_failure is not None:
        raise first_failure
