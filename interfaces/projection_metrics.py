"""Projection status as Prometheus gauges, for the API's `/metrics` and each projector's."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import UTC, datetime

from infrastructure.telemetry import metrics
from interfaces.bootstrap import Container
from projections.definition import Projection
from projections.status import ProjectionStatus, projection_status
from projections.worker import ProjectionWorker

logger = logging.getLogger(__name__)


def record_status(status: ProjectionStatus) -> None:
    metrics.PROJECTION_LAG_EVENTS.labels(status.name).set(status.lag_events)
    metrics.PROJECTION_LAG_SECONDS.labels(status.name).set(status.lag_seconds)
    metrics.PROJECTION_CHECKPOINT.labels(status.name).set(status.checkpoint)
    metrics.DEAD_LETTERS_PARKED.labels(status.name).set(status.parked_streams)


async def report_while_running(
    container: Container,
    projection: Projection,
    worker: ProjectionWorker,
    stop: asyncio.Event,
    *,
    every: float = 5.0,
) -> None:
    """Refresh the projection's gauges, and count the events the worker applied, every `every`
    seconds until `stop` (a failed refresh is logged and tried again next time)."""
    sink = await container.sink(projection.sink)
    dead_letters = await container.dead_letters()
    counted = 0
    while not stop.is_set():
        try:
            status = await projection_status(
                projection,
                sink,
                container.event_store,
                dead_letters,
                container.partitioning,
                datetime.now(UTC),
            )
            record_status(status)
        except Exception as error:
            logger.warning("projection %s: status not refreshed: %s", projection.name, error)
        applied = worker.counters.events
        metrics.PROJECTION_EVENTS_APPLIED.labels(projection.name).inc(applied - counted)
        counted = applied
        with suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
