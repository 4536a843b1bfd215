"""Kafka topics for the relay: create the ones missing, and read how many partitions they have.

The local broker (like many) has `auto.create.topics.enable=true`, and a metadata request that
names a missing topic creates it with the broker's default partition count (1). So topics are
created explicitly before anything names them, and metadata is only asked for topics that
`list_topics()` (a request naming no topic) already shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

logger = logging.getLogger(__name__)

_READY_POLL = 0.05
_READY_TIMEOUT = 30.0


async def ensure_topics(
    bootstrap: str, topics: Collection[str], *, partitions: int, replication: int = 1
) -> None:
    """Create the topics that do not exist yet, and return once metadata shows every one of
    them with a leader for each partition. Another process creating the same topic at the same
    moment is fine; a topic that already exists keeps its partition count."""
    wanted = set(topics)
    if not wanted:
        return
    async with _admin_client(bootstrap) as admin:
        missing = wanted - set(await admin.list_topics())
        if missing:
            response = await admin.create_topics(
                [NewTopic(topic, partitions, replication) for topic in sorted(missing)]
            )
            _raise_creation_errors(response)
        leaders = await _wait_until_led(admin, wanted)
    # Ordering per key holds whatever the count; only the parallelism of consumers differs.
    other_counts = {
        topic: len(leaders[topic]) for topic in sorted(wanted) if len(leaders[topic]) != partitions
    }
    if other_counts:
        logger.warning(
            "topics already exist with other partition counts than %d, kept as they are "
            "(created earlier, or auto-created by a client that asked for them first): %s",
            partitions,
            other_counts,
        )


async def partition_counts(bootstrap: str, topics: Collection[str]) -> dict[str, int]:
    """How many partitions each of `topics` has; topics that do not exist are left out (and
    are not created by asking)."""
    async with _admin_client(bootstrap) as admin:
        leaders = await _partition_leaders(admin, set(topics))
    return {topic: len(partition_leaders) for topic, partition_leaders in leaders.items()}


@asynccontextmanager
async def _admin_client(bootstrap: str) -> AsyncIterator[Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _partition_leaders(admin: Any, topics: set[str]) -> dict[str, list[int]]:
    """Per existing topic of `topics`, the leader of each partition (-1 while none is)."""
    existing = topics & set(await admin.list_topics())
    if not existing:
        return {}
    described = await admin.describe_topics(sorted(existing))
    return {
        topic["topic"]: [partition["leader"] for partition in topic["partitions"]]
        for topic in described
        if topic["error_code"] == 0
    }


async def _wait_until_led(admin: Any, topics: set[str]) -> dict[str, list[int]]:
    """Poll metadata until every topic exists with a leader for each of its partitions."""
    async with asyncio.timeout(_READY_TIMEOUT):
        while True:
            leaders = await _partition_leaders(admin, topics)
            if all(leaders.get(topic) and min(leaders[topic]) >= 0 for topic in topics):
                return leaders
            await asyncio.sleep(_READY_POLL)


def _raise_creation_errors(response: Any) -> None:
    """A creation that lost a race with another creator is success; anything else is not."""
    for topic, error_code, *_ in response.topic_errors:
        if error_code not in (0, TopicAlreadyExistsError.errno):
            raise for_code(error_code)(f"could not create topic {topic}")
