"""Deleting what left data on the shared services under a prefix: the Kafka topics, the Redis
keys and the Elasticsearch indexes (and so their aliases) whose names start with it. A
benchmark scenario cleans its namespace with `clean_namespace`; the test session cleans its
run's prefixes with `delete_prefixed`. (Postgres databases are throwaway ones, dropped by
`throwaway_database`.)

The processes a `BenchEnvironment` starts get no `MERCATO_*` setting from the benchmark's own
environment, so they use the default service addresses: so does `clean_namespace`.

Kafka consumer groups (`<prefix>projector.<name>`) are not deleted: aiokafka's admin client
cannot; the broker expires their offsets (`offsets.retention.minutes`, 7 days by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import httpx

from infrastructure.settings import Settings
from mercato_bench.processes import BenchEnvironment

logger = logging.getLogger(__name__)


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    return str(value)


@dataclass(frozen=True)
class ServiceUrls:
    kafka_bootstrap: str = _default("kafka_bootstrap")
    redis_url: str = _default("redis_url")
    elasticsearch_url: str = _default("elasticsearch_url")


@dataclass(frozen=True)
class Prefixes:
    """What to delete: names starting with each prefix (an empty one deletes nothing)."""

    kafka_topics: str = ""
    redis_keys: str = ""
    elasticsearch_indexes: str = ""


async def delete_prefixed(
    prefixes: Prefixes,
    urls: ServiceUrls | None = None,
    *,
    within: float = 60.0,
    log_failures: bool = True,
) -> dict[str, Any]:
    """Delete everything named with the prefixes; per kind, how many went, or the error met
    (never raised: a service that is down has nothing of ours to delete)."""
    urls = urls or ServiceUrls()
    work: dict[str, tuple[str, Awaitable[int]]] = {}
    if prefixes.kafka_topics:
        work["kafka_topics"] = (
            prefixes.kafka_topics,
            delete_kafka_topics(urls.kafka_bootstrap, prefixes.kafka_topics),
        )
    if prefixes.redis_keys:
        work["redis_keys"] = (
            prefixes.redis_keys,
            delete_redis_keys(urls.redis_url, prefixes.redis_keys),
        )
    if prefixes.elasticsearch_indexes:
        work["elasticsearch_indexes"] = (
            prefixes.elasticsearch_indexes,
            delete_elasticsearch_indexes(urls.elasticsearch_url, prefixes.elasticsearch_indexes),
        )
    done: dict[str, Any] = {}
    for name, (prefix, deleting) in work.items():
        try:
            done[name] = await asyncio.wait_for(deleting, within)
        except Exception as error:
            if log_failures:
                logger.warning("deleting %s %s* failed: %s", name, prefix, error)
            done[name] = f"failed: {type(error).__name__}: {error}"
    return done


async def clean_namespace(environment: BenchEnvironment) -> dict[str, Any]:
    """Delete the environment's topics, keys and indexes (services profile); what was deleted,
    and the errors met (cleaning never fails a benchmark)."""
    if environment.profile != "services":
        return {}
    return await delete_prefixed(
        Prefixes(
            kafka_topics=environment.kafka_topic_prefix,
            redis_keys=environment.redis_key_prefix,
            elasticsearch_indexes=environment.elasticsearch_index_prefix,
        )
    )


async def delete_kafka_topics(bootstrap: str, prefix: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        for start in range(0, len(names), 100):
            await admin.delete_topics(names[start : start + 100], timeout_ms=30_000)
        return len(names)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def delete_redis_keys(url: str, prefix: str) -> int:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=5)
    deleted = 0
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
        return deleted
    finally:
        await client.aclose()


async def delete_elasticsearch_indexes(url: str, prefix: str) -> int:
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30) as client:
        listed = await client.get(
            f"/_cat/indices/{prefix}*", params={"format": "json", "h": "index"}
        )
        names = [row["index"] for row in listed.json()] if listed.is_success else []
        # Named: a wildcard delete is refused by default (action.destructive_requires_name).
        for start in range(0, len(names), 50):
            await client.delete(f"/{','.join(names[start : start + 50])}")
        return len(names)
