"""The projection runtime on the services profile: the same contract as the embedded one, over
the real relay, Kafka, Redis and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.projections.dead_letters_postgres import PostgresDeadLetterStore
from infrastructure.read_models.redis_documents import RedisDocumentSink
from tests.contract.projection_runtime_contract import ProjectionRuntimeContract
from tests.integration.projections.services_harness import ServicesHarness, unique_prefix

pytestmark = pytest.mark.integration

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def harness(
    fresh_postgres_dsn: str, kafka_topic_prefix: str, redis_key_prefix: str
) -> AsyncIterator[ServicesHarness]:
    store = await PostgresEventStore.connect(fresh_postgres_dsn)
    key_prefix = unique_prefix(redis_key_prefix)
    sink = await RedisDocumentSink.connect(REDIS, key_prefix=key_prefix)
    dead_letters = await PostgresDeadLetterStore.connect(fresh_postgres_dsn)
    try:
        yield ServicesHarness(
            store, sink, dead_letters, fresh_postgres_dsn, unique_prefix(kafka_topic_prefix), 4
        )
    finally:
        await dead_letters.close()
        await sink.close()
        await store.close()


class TestServicesProjectionRuntime(ProjectionRuntimeContract):
    pass
