"""Deleting what a scenario's processes left on the shared services: the Kafka topics with its
prefix, the Redis keys with its prefix, the Elasticsearch indexes (and so their aliases) with
its prefix. (Its Postgres database is a throwaway one, dropped by `throwaway_database`.)

The processes a `BenchEnvironment` starts get no `MERCATO_*` setting from the benchmark's own
environment, so they use the default service addresses: so does this.

Kafka consumer groups (`<prefix>projector.<name>`) are not deleted: aiokafka's admin client
cannot; the broker expires their offsets (`offsets.retention.minutes`, 7 days by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from infrastructure.settings import Settings
from interfaces.bench.processes import BenchEnvironment

logger = logging.getLogger(__name__)


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    return str(value)


async def clean_namespace(environment: BenchEnvironment) -> dict[str, Any]:
    """Delete the environment's topics, keys and indexes (services profile); what was deleted,
    and the errors met (cleaning never fails a benchmark)."""
    if environment.profile != "services":
        return {}
    done: dict[str, Any] = {}
    for name, clean in (
        ("kafka_topics", _kafka_topics),
        ("redis_keys", _redis_keys),
        ("elasticsearch_indexes", _elasticsearch_indexes),
    ):
        try:
            done[name] = await asyncio.wait_for(clean(environment), 60)
        except Exception as error:  # reported, never raised: the figures are what matter
            logger.warning("cleaning %s failed: %s", name, error)
            done[name] = f"failed: {type(error).__name__}: {error}"
    return done


async def _kafka_topics(environment: BenchEnvironment) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    prefix = environment.kafka_topic_prefix
    admin = AIOKafkaAdminClient(
        bootstrap_servers=_default("kafka_bootstrap"), request_timeout_ms=30_000
    )
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        for start in range(0, len(names), 100):
            await admin.delete_topics(names[start : start + 100], timeout_ms=30_000)
        return len(names)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _redis_keys(environment: BenchEnvironment) -> int:
    from redis.asyncio import Redis

    client = Redis.from_url(_default("redis_url"))
    deleted = 0
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{environment.redis_key_prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
        return deleted
    finally:
        await client.aclose()


async def _elasticsearch_indexes(environment: BenchEnvironment) -> int:
    url = _default("elasticsearch_url").rstrip("/")
    pattern = f"{environment.elasticsearch_index_prefix}*"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        listed = await client.get(
            f"/_cat/indices/{pattern}", params={"format": "json", "h": "index"}
        )
        names = [row["index"] for row in listed.json()] if listed.is_success else []
        # Named: a wildcard delete is refused by default (action.destructive_requires_name).
        for start in range(0, len(names), 50):
            await client.delete(f"/{','.join(names[start : start + 50])}")
        return len(names)
