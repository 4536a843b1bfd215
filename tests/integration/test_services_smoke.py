"""Smoke tests: each backing service is the real thing and does what Mercato relies on.

Start the services first: ``deploy/local/services.sh up`` (or ``docker compose -f
deploy/docker-compose.yml up -d``). Connection settings come from the environment, with the same
defaults as the scripts. Every test works on names unique to this run and removes them at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import clickhouse_connect
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from elasticsearch import AsyncElasticsearch, ConflictError

from tests.conftest import PROCESS_CHDB_URL, RUN_ID

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("MERCATO_REDIS_URL", "redis://127.0.0.1:6379/0")
KAFKA_BOOTSTRAP = os.environ.get("MERCATO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
ELASTICSEARCH_URL = os.environ.get("MERCATO_ELASTICSEARCH_URL", "http://127.0.0.1:9200")


def unique_name(kind: str) -> str:
    """Lower case, digits and underscores only: valid for databases, topics and indices alike."""
    return f"mercato_smoke_{kind}_{RUN_ID}"  # one id per test run, shared by every fixture


# --- PostgreSQL -----------------------------------------------------------------------------------


async def test_postgres_round_trip_in_a_fresh_database(fresh_postgres_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_postgres_dsn)
    try:
        version = await conn.fetchval("SELECT version()")
        assert isinstance(version, str)
        assert version.startswith("PostgreSQL 15"), version

        await conn.execute(
            "CREATE TABLE item (id uuid PRIMARY KEY, title text, price_cents bigint)"
        )
        item_id = uuid.uuid4()
        await conn.execute("INSERT INTO item VALUES ($1, $2, $3)", item_id, "Zine №1", 1250)
        row = await conn.fetchrow("SELECT id, title, price_cents FROM item WHERE id = $1", item_id)
        assert row is not None
        assert (row["id"], row["title"], row["price_cents"]) == (item_id, "Zine №1", 1250)
        database = fresh_postgres_dsn.rsplit("/", 1)[1]
        assert await conn.fetchval("SELECT current_database()") == database
    finally:
        await conn.close()


# --- Redis ---------------------------------------------------------------------------------------

# Set KEYS[1] to ARGV[2] only if it still holds ARGV[1]: 1 when written, 0 when refused.
COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    prefix = f"{unique_name('redis')}:"
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_set_get_and_lua_compare_and_set(redis_client: aioredis.Redis) -> None:
    key = f"{unique_name('redis')}:stock:sku-1"
    assert await redis_client.set(key, "v1")
    assert await redis_client.get(key) == "v1"

    cas = redis_client.register_script(COMPARE_AND_SET)
    assert await cas(keys=[key], args=["v1", "v2"]) == 1
    # A writer that still believes the value is v1 holds a stale view: refused, nothing written.
    assert await cas(keys=[key], args=["v1", "v3"]) == 0
    assert await redis_client.get(key) == "v2"

    info = await redis_client.info("server")
    assert int(str(info["redis_version"]).split(".")[0]) >= 7


# --- Kafka ---------------------------------------------------------------------------------------

KEYS = [f"order-{n}" for n in range(6)]
MESSAGES_PER_KEY = 5


@pytest.fixture
async def kafka_topic() -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    topic = unique_name("topic")
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        try:
            yield topic
        finally:
            # Deleting the topic also drops the group's committed offsets for it.
            await admin.delete_topics([topic])
    finally:
        await admin.close()


async def produce_keyed_messages(topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA_BOOTSTRAP, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for seq in range(MESSAGES_PER_KEY):
            for key in KEYS:
                await producer.send(topic, key=key.encode(), value=f"{key}:{seq}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def consume_all(consumer: AIOKafkaConsumer, expected: int) -> list[Any]:
    records: list[Any] = []
    async with asyncio.timeout(60):
        while len(records) < expected:
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                records.extend(batch)
    return records


def group_consumer(topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA_BOOTSTRAP,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def wait_for_assignment(consumer: AIOKafkaConsumer) -> set[TopicPartition]:
    async with asyncio.timeout(30):
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
    return set(consumer.assignment())


async def test_kafka_keyed_messages_through_a_consumer_group(kafka_topic: str) -> None:
    await produce_keyed_messages(kafka_topic)
    expected = len(KEYS) * MESSAGES_PER_KEY
    group = unique_name("group")

    first = group_consumer(kafka_topic, group)
    await first.start()
    try:
        records = await consume_all(first, expected)
        await first.commit()
    finally:
        await first.stop()

    assert len(records) == expected
    partitions_of: dict[str, set[int]] = defaultdict(set)
    sequence_of: dict[str, list[int]] = defaultdict(list)
    for record in records:
        key = record.key.decode()
        partitions_of[key].add(record.partition)
        sequence_of[key].append(int(record.value.decode().rsplit(":", 1)[1]))
    # One partition per key, and within it the order the messages were produced in.
    assert all(len(partitions) == 1 for partitions in partitions_of.values()), partitions_of
    assert all(seqs == list(range(MESSAGES_PER_KEY)) for seqs in sequence_of.values())
    assert len({p for partitions in partitions_of.values() for p in partitions}) > 1

    # A new member of the same group resumes at the committed offsets: nothing left to read.
    second = group_consumer(kafka_topic, group)
    await second.start()
    try:
        assignment = await wait_for_assignment(second)
        assert {tp.partition for tp in assignment} == {0, 1, 2}
        end_offsets = await second.end_offsets(list(assignment))
        for tp in assignment:
            assert await second.committed(tp) == end_offsets[tp]
        leftovers = await second.getmany(timeout_ms=1500)
        assert sum(len(batch) for batch in leftovers.values()) == 0
    finally:
        await second.stop()


# --- Elasticsearch --------------------------------------------------------------------------------

PRODUCT_MAPPING: dict[str, Any] = {
    "properties": {
        "title": {"type": "text"},
        "creator": {"type": "keyword"},
        "price_cents": {"type": "long"},
    }
}


@pytest.fixture
async def es() -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(ELASTICSEARCH_URL, request_timeout=30)
    indices = [unique_name("products_v1"), unique_name("products_v2")]
    try:
        yield client
    finally:
        await client.indices.delete(index=indices, ignore_unavailable=True)
        await client.close()


async def create_product_index(es: AsyncElasticsearch, name: str) -> None:
    await es.indices.create(
        index=name,
        mappings=PRODUCT_MAPPING,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
    )


async def test_elasticsearch_external_versions_search_and_alias_swap(
    es: AsyncElasticsearch,
) -> None:
    v1, v2 = unique_name("products_v1"), unique_name("products_v2")
    alias = unique_name("products")
    await create_product_index(es, v1)

    # Events carry their aggregate version: external versioning keeps only the newest.
    operations: list[dict[str, Any]] = []
    for doc_id, version, title in [
        ("p1", 3, "Risograph zine about mushrooms"),
        ("p2", 1, "Ceramic mug with a blue glaze"),
    ]:
        operations.append(
            {"index": {"_index": v1, "_id": doc_id, "version": version, "version_type": "external"}}
        )
        operations.append({"title": title, "creator": "ada", "price_cents": 1200})
    response = await es.bulk(operations=operations)
    assert not response["errors"], response

    stale = await es.bulk(
        operations=[
            {"index": {"_index": v1, "_id": "p1", "version": 2, "version_type": "external"}},
            {"title": "An older title", "creator": "ada", "price_cents": 900},
        ]
    )
    assert stale["errors"]
    assert stale["items"][0]["index"]["status"] == 409
    with pytest.raises(ConflictError):
        await es.index(
            index=v1,
            id="p1",
            document={"title": "An older title"},
            version=2,
            version_type="external",
        )

    await es.indices.refresh(index=v1)
    hits = await es.search(index=v1, query={"match": {"title": "mushrooms"}}, version=True)
    assert [hit["_id"] for hit in hits["hits"]["hits"]] == ["p1"]
    assert hits["hits"]["hits"][0]["_version"] == 3
    assert hits["hits"]["hits"][0]["_source"]["title"] == "Risograph zine about mushrooms"

    await es.indices.put_alias(index=v1, name=alias)
    await create_product_index(es, v2)
    await es.index(
        index=v2, id="p3", document={"title": "Mushroom field guide"}, refresh="wait_for"
    )
    # Blue/green reindex: both alias actions apply in one atomic cluster-state update.
    await es.indices.update_aliases(
        actions=[
            {"remove": {"index": v1, "alias": alias}},
            {"add": {"index": v2, "alias": alias}},
        ]
    )
    via_alias = await es.search(index=alias, query={"match": {"title": "mushroom"}})
    assert [hit["_index"] for hit in via_alias["hits"]["hits"]] == [v2]
    assert [hit["_id"] for hit in via_alias["hits"]["hits"]] == ["p3"]


# --- ClickHouse engine (chdb, in process) ---------------------------------------------------------


@pytest.fixture(scope="session")
def clickhouse() -> Iterator[Any]:
    """A chdb client on this test process's one folder: chdb opens a single folder per process
    (the analytics sinks of the tests' containers use it too)."""
    client = clickhouse_connect.get_client(dsn=PROCESS_CHDB_URL)
    try:
        yield client
    finally:
        client.close()


def test_clickhouse_replacing_merge_tree_final_keeps_latest_version(clickhouse: Any) -> None:
    table = unique_name("sales")
    clickhouse.command(
        f"CREATE TABLE {table} (order_id String, version UInt64, status String) "
        "ENGINE = ReplacingMergeTree(version) ORDER BY order_id"
    )
    try:
        # No background merges: both versions stay stored, so FINAL is what deduplicates.
        clickhouse.command(f"SYSTEM STOP MERGES {table}")
        columns = ["order_id", "version", "status"]
        clickhouse.insert(table, [["o-1", 1, "placed"]], column_names=columns)
        clickhouse.insert(table, [["o-1", 2, "paid"]], column_names=columns)

        assert clickhouse.query(f"SELECT count() FROM {table}").result_rows == [(2,)]
        latest = clickhouse.query(
            f"SELECT order_id, version, status FROM {table} FINAL WHERE order_id = {{id:String}}",
            parameters={"id": "o-1"},
        )
        assert latest.result_rows == [("o-1", 2, "paid")]
    finally:
        clickhouse.command(f"DROP TABLE IF EXISTS {table}")
