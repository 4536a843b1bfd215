"""The services pipeline for runtime tests: Postgres event store → relay → Kafka → projector
workers → Redis, with dead letters in Postgres. Every test gets its own database, topics and
Redis keys."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from application.ports.dead_letters import DeadLetterStore
from application.ports.event_store import EventStore
from application.ports.read_model_sink import ReadModelSink
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.kafka.feed import KafkaEventFeed
from infrastructure.kafka.relay import Relay
from infrastructure.kafka.topics import ensure_topics
from infrastructure.projections.dead_letters_postgres import PostgresDeadLetterStore
from projections.definition import Projection
from projections.targets import Partitioning
from projections.worker import ProjectionWorker
from tests.contract.projection_runtime_contract import applier_for

KAFKA = "127.0.0.1:9092"


class ServicesHarness:
    tenant = "t-services"

    def __init__(
        self,
        store: PostgresEventStore,
        sink: ReadModelSink,
        dead_letters: PostgresDeadLetterStore,
        dsn: str,
        topic_prefix: str,
        partitions: int,
    ) -> None:
        self.store: EventStore = store
        self.sink = sink
        self.dead_letters: DeadLetterStore = dead_letters
        self.dsn = dsn
        self.partitioning = Partitioning(topic_prefix, partitions)
        self.workers: list[ProjectionWorker] = []

    def relay(self, projection: Projection, *, name: str = "relay") -> Relay:
        assert self.partitioning.kafka_topic_prefix is not None
        return Relay(
            self.store,
            self.dsn,
            KAFKA,
            topic_prefix=self.partitioning.kafka_topic_prefix,
            partitions=self.partitioning.kafka_partitions,
            categories=projection.categories,
            name=name,
        )

    async def worker(
        self, projection: Projection, sink: ReadModelSink | None = None
    ) -> ProjectionWorker:
        topics = self.partitioning.topics_of(projection)
        await ensure_topics(KAFKA, topics, partitions=self.partitioning.kafka_partitions)
        feed = await KafkaEventFeed.start(
            KAFKA,
            group_id=f"{self.partitioning.kafka_topic_prefix}{projection.name}",
            topics=topics,
        )
        applier = applier_for(self, projection)
        if sink is not None:
            applier.sink = sink
        return ProjectionWorker(applier, feed)

    @contextlib.asynccontextmanager
    async def live(self, projection: Projection, workers: int = 1) -> AsyncIterator[None]:
        stop = asyncio.Event()
        relay = self.relay(projection)
        tasks = [asyncio.create_task(relay.run(stop))]
        for _ in range(workers):
            worker = await self.worker(projection)
            self.workers.append(worker)
            tasks.append(asyncio.create_task(worker.run(stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)


def unique_prefix(base: str) -> str:
    return f"{base}{uuid.uuid4().hex[:8]}."
