"""The document sinks against their contract: the in-memory reference, Redis and SQLite; then
what only the Redis sink has (its key layout, chunked batches, the 2^53 limit)."""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from application.ports.read_model_sink import Checkpoints, Entry, ReadModelSink
from application.read_models.documents import Document
from application.read_models.memory_sink import InMemorySink
from infrastructure.read_models.redis_documents import RedisDocumentSink
from infrastructure.read_models.sqlite_documents import SqliteDocumentSink
from tests.contract.read_model_sink_contract import (
    TENANT,
    DocumentSinkContract,
    DocumentStoreContract,
    contribute,
    created,
    live,
    new_projection,
    set_fields,
)

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("MERCATO_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def key_prefix(redis_key_prefix: str) -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"{redis_key_prefix}{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.unlink(*keys)
    await client.aclose()


@pytest.fixture
async def redis_sink(key_prefix: str) -> AsyncIterator[RedisDocumentSink]:
    sink = await RedisDocumentSink.connect(REDIS_URL, key_prefix=key_prefix)
    yield sink
    await sink.close()


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


class TestInMemorySink(DocumentSinkContract):
    @pytest.fixture
    async def sink(self) -> AsyncIterator[ReadModelSink]:
        yield InMemorySink()

    async def read(self, sink: Any, projection: str, target: str, doc_id: str) -> Document | None:
        # A copy, as the other sinks give: the stored document changes with the next apply.
        document: Document | None = sink.document(projection, target, doc_id)
        return copy.deepcopy(document)


class TestRedisDocumentSink(DocumentStoreContract):
    @pytest.fixture
    async def sink(self, redis_sink: RedisDocumentSink) -> AsyncIterator[ReadModelSink]:
        yield redis_sink


class TestSqliteDocumentSink(DocumentStoreContract):
    @pytest.fixture
    async def sink(self, tmp_path: Path) -> AsyncIterator[ReadModelSink]:
        sink = await SqliteDocumentSink.open(tmp_path / "read_models.sqlite3")
        yield sink
        await sink.close()


async def test_sqlite_documents_outlive_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "read_models.sqlite3"
    projection = new_projection()
    sink = await SqliteDocumentSink.open(path)
    target = await live(sink, projection)
    await sink.apply(projection, target, [set_fields("d", 1, v=1)], {"log": 1})
    await sink.close()

    reopened = await SqliteDocumentSink.open(path)
    try:
        assert await reopened.entries(projection, target) == {("d", "field", "v"): Entry(1, 1)}
        assert await reopened.checkpoints(projection, target) == Checkpoints(0, {"log": 1}, False)
    finally:
        await reopened.close()


# -- Redis only ---------------------------------------------------------------------------


async def test_redis_keys_carry_the_target_and_documents_are_json(
    redis_sink: RedisDocumentSink, client: Redis, key_prefix: str
) -> None:
    projection = new_projection()
    target = await live(redis_sink, projection)
    await redis_sink.apply(projection, target, [contribute("d", "sales", "o1", 2, 7)], {"p0": 7})

    stored = await client.get(f"{key_prefix}{projection}:{target}:doc:d")
    checkpoints = await client.hgetall(f"{key_prefix}{projection}:{target}:checkpoints")
    routing = await client.hgetall(f"{key_prefix}{projection}:routing")

    assert stored is not None
    assert (
        json.loads(stored)
        == Document(TENANT, {"sales": 2}, {}, {"sales": {"o1": [2, 7]}}).to_json()
    )
    assert checkpoints == {"~base": "0", "~complete": "0", "p0": "7"}
    assert routing == {"live": target}


async def test_redis_drop_leaves_no_key_of_the_target(
    redis_sink: RedisDocumentSink, client: Redis, key_prefix: str
) -> None:
    projection = new_projection()
    await live(redis_sink, projection, 1)
    second = await created(redis_sink, projection, 2)
    writes = [set_fields(f"doc-{n}", n + 1, n=n) for n in range(1_200)]
    await redis_sink.apply(projection, second, writes, {"p0": 1_200})

    await redis_sink.drop_target(projection, second)

    left = [k async for k in client.scan_iter(match=f"{key_prefix}{projection}:{second}:*")]
    assert left == []


async def test_redis_drop_interrupted_midway_is_finished_by_dropping_again(
    redis_sink: RedisDocumentSink, client: Redis, key_prefix: str
) -> None:
    projection = new_projection()
    target = await created(redis_sink, projection)
    await redis_sink.apply(projection, target, [set_fields("d", 1, v=1)], {})
    # What a drop leaves when its process dies after marking the target, before deleting it.
    await client.hset(f"{key_prefix}{projection}:{target}:checkpoints", "~dropping", "1")

    assert await redis_sink.targets(projection) == [target]  # its name is not reused
    with pytest.raises(LookupError):
        await redis_sink.apply(projection, target, [set_fields("d", 2, v=2)], {})
    with pytest.raises(ValueError):
        await redis_sink.create_target(projection, target)

    await redis_sink.drop_target(projection, target)

    assert await redis_sink.targets(projection) == []
    assert [k async for k in client.scan_iter(match=f"{key_prefix}{projection}:*")] == []


async def test_redis_batch_in_chunks_raises_the_checkpoints_with_the_last(
    client: Redis, key_prefix: str
) -> None:
    sink = RedisDocumentSink(client, key_prefix=key_prefix, batch_size=2)
    projection = new_projection()
    target = await created(sink, projection)
    # Three chunks: the last cannot be merged (a contribution to a field holding text).
    writes = [
        set_fields("x", 1, status="paid"),
        set_fields("y", 2, n=1),
        set_fields("z", 3, n=1),
        set_fields("y", 4, n=2),
        contribute("x", "status", "s", 1, 5),
    ]

    with pytest.raises(ValueError, match="status"):
        await sink.apply(projection, target, writes, {"p0": 5})

    # The first chunks landed (redelivery merges them again to the same result); the
    # checkpoint did not move, so they will be redelivered.
    assert (await sink.checkpoints(projection, target)).partitions == {}
    assert set(await sink.entries(projection, target)) == {
        ("x", "field", "status"),
        ("y", "field", "n"),
        ("z", "field", "n"),
    }

    await sink.apply(projection, target, writes[:4], {"p0": 4})

    assert (await sink.checkpoints(projection, target)).partitions == {"p0": 4}


async def test_redis_refuses_what_it_cannot_store_faithfully(
    redis_sink: RedisDocumentSink,
) -> None:
    projection = new_projection()
    target = await created(redis_sink, projection)

    with pytest.raises(ValueError, match="2\\^53"):
        await redis_sink.apply(projection, target, [set_fields("d", 2**53 + 1, v=1)], {})
    with pytest.raises(ValueError, match="2\\^53"):
        await redis_sink.apply(projection, target, [], {"p0": 2**53 + 1})
    with pytest.raises(ValueError, match="~"):
        await redis_sink.apply(projection, target, [], {"~base": 7})  # would clash with the base
    with pytest.raises(ValueError, match="':'"):
        await redis_sink.create_target(projection, "odd:name")

    assert await redis_sink.entries(projection, target) == {}


async def test_redis_sink_works_with_a_client_that_returns_bytes(key_prefix: str) -> None:
    sink = RedisDocumentSink(Redis.from_url(REDIS_URL), key_prefix=key_prefix)
    try:
        projection = new_projection()
        target = await live(sink, projection)
        await sink.apply(projection, target, [set_fields("d", 3, v="é")], {"p0": 3})

        assert (await sink.routing(projection)).live == target
        assert await sink.targets(projection) == [target]
        assert await sink.entries(projection, target) == {("d", "field", "v"): Entry("é", 3)}
        assert await sink.checkpoints(projection, target) == Checkpoints(0, {"p0": 3}, False)
        live_document = await sink.live_document(projection, "d")
        assert live_document is not None and live_document.fields == {"v": "é"}
    finally:
        await sink.close()
