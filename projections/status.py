"""Where each projection stands: checkpoint, head, lag, state — and read-your-writes waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from application.ports.dead_letters import DeadLetterStore
from application.ports.event_store import EventStore
from application.ports.read_model_sink import ReadModelSink, TargetName, watermark
from projections.definition import Projection
from projections.targets import Partitioning


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    version: int
    live_target: str | None
    building: str | None
    checkpoint: int
    """The watermark of the live target: every event at or below it is reflected."""
    head: int
    lag_events: int
    lag_seconds: float
    """Age of the oldest event not yet reflected (0 when caught up)."""
    parked_streams: int

    @property
    def state(self) -> str:
        if self.live_target is None:
            return "not started"
        words = ["rebuilding" if self.building else "live"]
        live_version = TargetName.parse(self.live_target).version
        if live_version != self.version:
            words.append(f"live target is v{live_version}: rebuild")
        if self.parked_streams:
            words.append(f"{self.parked_streams} parked")
        return ", ".join(words)


async def projection_status(
    projection: Projection,
    sink: ReadModelSink,
    store: EventStore,
    dead_letters: DeadLetterStore,
    partitioning: Partitioning,
    now: datetime,
) -> ProjectionStatus:
    routing = await sink.routing(projection.name)
    head = await store.head_position()
    checkpoint = 0
    if routing.live is not None:
        checkpoints = await sink.checkpoints(projection.name, routing.live)
        checkpoint = watermark(checkpoints, partitioning.partitions_of(projection))
    lag_events = await store.count_between(checkpoint, head) if head > checkpoint else 0
    lag_seconds = 0.0
    if lag_events:
        oldest = await store.read_all(checkpoint, 1)
        if oldest:
            lag_seconds = max(0.0, (now - oldest[0].recorded_at).total_seconds())
    return ProjectionStatus(
        name=projection.name,
        version=projection.version,
        live_target=routing.live,
        building=routing.building,
        checkpoint=checkpoint,
        head=head,
        lag_events=lag_events,
        lag_seconds=lag_seconds,
        parked_streams=len(await dead_letters.parked(projection.name)),
    )


async def live_watermark(
    sink: ReadModelSink, projection: Projection, partitions: Collection[str]
) -> int:
    routing = await sink.routing(projection.name)
    if routing.live is None:
        return 0
    return watermark(await sink.checkpoints(projection.name, routing.live), partitions)


async def wait_for_position(
    sink: ReadModelSink,
    projection: Projection,
    partitions: Collection[str],
    position: int,
    *,
    within: float,
    poll: float = 0.01,
) -> int:
    """Wait (at most `within` seconds) until the live target reflects `position`; returns the
    watermark reached, which the caller compares with `position` (lower means timed out)."""
    deadline = time.monotonic() + within
    while True:
        reached = await live_watermark(sink, projection, partitions)
        if reached >= position or time.monotonic() >= deadline:
            return reached
        await asyncio.sleep(poll)
