"""Projection status as Prometheus gauges, for the API's `/metrics` and each projector's.

A projector refreshes its own projection's gauges while it runs (`report_while_running`); the
API refreshes every projection's when it is scraped (`refresh_every_projection`), so a
projection whose projector is down still shows its lag growing.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import UTC, datetime

from application.ports.read_model_sink import ReadModelSink
from infrastructure.telemetry import metrics
from interfaces.bootstrap import Container
from projections.definition import Projection
from projections.status import ProjectionStatus, projection_status
from projections.worker import ProjectionWorker

logger = logging.getLogger(__name__)


SCRAPE_REFRESH_SECONDS = 3.0
"""How long a scrape waits for the projections' status before answering with older figures."""


async def refresh_every_projection(
    container: Container, *, within: float = SCRAPE_REFRESH_SECONDS
) -> None:
    """Set every projection's gauges from its status now; a projection whose status cannot be
    read in `within` seconds (its store is away) keeps its older figures, and the failure is
    logged."""
    now = datetime.now(UTC)
    # Each store is opened once, before the projections sharing it ask at the same time.
    try:
        async with asyncio.timeout(within):
            dead_letters = await container.dead_letters()
    except Exception as error:
        logger.warning("dead letters: projection status not refreshed: %r", error)
        return
    sinks: dict[str, ReadModelSink] = {}
    for name in dict.fromkeys(projection.sink for projection in container.projections):
        try:
            async with asyncio.timeout(within):
                sinks[name] = await container.sink(name)
        except Exception as error:
            logger.warning("read-model store %s: projection status not refreshed: %r", name, error)

    async def refresh(projection: Projection, sink: ReadModelSink) -> None:
        try:
            async with asyncio.timeout(within):
                status = await projection_status(
                    projection,
                    sink,
                    container.event_store,
                    dead_letters,
                    container.partitioning,
                    now,
                )
        except Exception as error:
            logger.warning("projection %s: status not refreshed: %r", projection.name, error)
            return
        record_status(status)

    await asyncio.gather(
        *(refresh(p, sinks[p.sink]) for p in container.projections if p.sink in sinks)
    )


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
