"""Saga gauges: instances by saga and status, the deadlines pending, and the parked sagas (by
saga and tenant). Refreshed by the process that runs the sagas: `mercato worker sagas
--metrics-port` every few seconds, the API of the embedded profile when it is scraped."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from contextlib import suppress

from application.sagas.census import SagaCensus
from infrastructure.telemetry import metrics
from interfaces.bootstrap import Container

logger = logging.getLogger(__name__)


def saga_census(container: Container) -> SagaCensus:
    """A census of the container's sagas. Its first refresh reads every saga event in the log;
    later ones only what was appended since: keep it for the life of the process."""
    marketplace = container.marketplace
    return SagaCensus(container.event_store, marketplace.repository, container.serializer)


async def refresh_saga_gauges(container: Container, census: SagaCensus) -> None:
    """Set the saga gauges from the saga store and the census now (the store's first: a long
    first census cut short by a scrape's bound still leaves them fresh)."""
    marketplace = container.marketplace
    pending = await marketplace.saga_store.count_timers(marketplace.saga_group)
    metrics.SAGA_DEADLINES_PENDING.set(pending)
    parked = Counter(
        (saga.saga_type, saga.tenant_id) for saga in await marketplace.parked_sagas().parked()
    )
    # Cleared first: a saga retried since the last refresh leaves no stale series behind.
    metrics.SAGAS_PARKED.clear()
    for (saga_type, tenant_id), count in parked.items():
        metrics.SAGAS_PARKED.labels(saga_type, tenant_id).set(count)
    for (saga, state), count in (await census.refresh()).items():
        metrics.SAGA_INSTANCES.labels(saga, state).set(count)


async def report_sagas_while_running(
    container: Container, stop: asyncio.Event, *, every: float = 5.0
) -> None:
    """Refresh the saga gauges every `every` seconds until `stop` (a failed refresh is logged
    and tried again next time)."""
    census = saga_census(container)
    while not stop.is_set():
        try:
            await refresh_saga_gauges(container, census)
        except Exception as error:
            logger.warning("saga metrics not refreshed: %s", error)
        with suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
