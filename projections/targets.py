"""Naming and finding a projection's targets, and which partitions feed them."""

from __future__ import annotations

import time
from dataclasses import dataclass

from application.event_categories import kafka_partition_id, topic_of
from application.ports.read_model_sink import (
    EMBEDDED_PARTITION,
    ReadModelSink,
    Routing,
    TargetName,
)
from projections.definition import Projection


@dataclass(frozen=True)
class Partitioning:
    """Where a projection's events come from, so which checkpoints make up its watermark."""

    kafka_topic_prefix: str | None = None
    """None: the embedded profile's one in-order feed from the store."""
    kafka_partitions: int = 1

    def partitions_of(self, projection: Projection) -> list[str]:
        if self.kafka_topic_prefix is None:
            return [EMBEDDED_PARTITION]
        return [
            kafka_partition_id(topic_of(category, self.kafka_topic_prefix), partition)
            for category in sorted(projection.categories)
            for partition in range(self.kafka_partitions)
        ]

    def topics_of(self, projection: Projection) -> list[str]:
        if self.kafka_topic_prefix is None:
            return []
        return [topic_of(c, self.kafka_topic_prefix) for c in sorted(projection.categories)]


EMBEDDED = Partitioning()


async def ensure_live_target(sink: ReadModelSink, projection: Projection) -> str:
    """The live target, creating the projection's first (empty, complete) one when there is
    none: a fresh deployment starts live from position 0, no rebuild needed."""
    routing = await sink.routing(projection.name)
    if routing.live is not None:
        return routing.live
    first = str(TargetName(projection.name, projection.version, 1))
    await sink.create_target(projection.name, first)
    await sink.set_base(projection.name, first, 0, complete=True)
    await sink.promote(projection.name, first)
    return first


async def next_target(sink: ReadModelSink, projection: Projection) -> str:
    """A new target name for the projection's current version, never used before."""
    generations = [TargetName.parse(t).generation for t in await sink.targets(projection.name)]
    routing = await sink.routing(projection.name)
    for named in (routing.live, routing.building):
        if named:
            generations.append(TargetName.parse(named).generation)
    return str(TargetName(projection.name, projection.version, max(generations, default=0) + 1))


class RoutingCache:
    """The routing of one projection, re-read at most every `ttl` seconds.

    Workers look it up before every batch; the cache keeps that to one read per `ttl`. A rebuild
    waits longer than `ttl` after promoting a target before it trusts that every worker writes
    to it (see `projections.rebuild`).
    """

    def __init__(self, sink: ReadModelSink, projection: Projection, *, ttl: float = 1.0) -> None:
        self._sink = sink
        self._projection = projection
        self._ttl = ttl
        self._routing: Routing | None = None
        self._read_at = 0.0

    async def live_target(self) -> str:
        now = time.monotonic()
        if self._routing is None or self._routing.live is None or now - self._read_at > self._ttl:
            self._routing = await self._sink.routing(self._projection.name)
            self._read_at = now
            if self._routing.live is None:
                live = await ensure_live_target(self._sink, self._projection)
                self._routing = Routing(live=live)
        assert self._routing.live is not None
        return self._routing.live
