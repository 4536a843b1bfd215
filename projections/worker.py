"""A live projection worker: feed → applier → sink → commit, until told to stop.

The order of the last two steps is the whole crash-safety argument: the sink stores a batch's
writes and checkpoints before the feed acknowledges it, so a worker killed at any moment has
either not written the batch (it comes again) or written it without acknowledging (it comes
again, and the convergent writes make the second time a no-op).

On stop, the batch in hand is finished and committed; the worker does not start another.

A store that fails (the sink refusing or timing out, the dead-letter store, the feed's commit)
does not end the worker: the batch is tried again with backoff until the store is back
(`projections.outages`), logged and reported as it goes. A stop while waiting leaves the batch
uncommitted: it comes again.

Each batch with events the projection handles is one span, `consume <projection>` (apply and
commit), placed by those events' `traceparent`s: a child of the request's span when they all
come from one trace, else a trace of its own linked to theirs (`SpanCause`).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from application.ports.event_feed import EventFeed, FeedBatch
from application.tracing import EVENT_COUNT, POSITION, PROJECTION, SpanCause, traced
from projections.applier import BatchOutcome, ProjectionApplier
from projections.outages import GaveUp, until_done
from projections.targets import RoutingCache

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("mercato.projections")


@dataclass
class WorkerCounters:
    batches: int = 0
    events: int = 0
    writes: int = 0
    held_back: int = 0


class ProjectionWorker:
    def __init__(
        self, applier: ProjectionApplier, feed: EventFeed, *, routing_ttl: float = 1.0
    ) -> None:
        self.applier = applier
        self.feed = feed
        self.counters = WorkerCounters()
        self._routing = RoutingCache(applier.sink, applier.projection, ttl=routing_ttl)

    @property
    def name(self) -> str:
        return self.applier.projection.name

    async def run(self, stop: asyncio.Event) -> None:
        batches = aiter(self.feed.batches())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                fetching = asyncio.ensure_future(anext(batches))
                await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
                # Stop wins even when a batch came at the same time: with a backlog one always
                # does, and a worker that looked at the batch first would never stop. A batch
                # taken but not started is not committed: it comes again to the next worker.
                if stopping.done():
                    fetching.cancel()
                    with suppress(asyncio.CancelledError, StopAsyncIteration):
                        await fetching
                    return
                try:
                    batch = fetching.result()
                except StopAsyncIteration:
                    return
                try:
                    await self.handle(batch, stop)
                except GaveUp:
                    logger.info("projection %s stopped while waiting on its stores", self.name)
                    return
        finally:
            stopping.cancel()
            await self.feed.close()

    async def handle(self, batch: FeedBatch, stop: asyncio.Event | None = None) -> None:
        """Apply one batch to the live target, then acknowledge it (never the other way),
        waiting out failing stores; `GaveUp` when `stop` is set while waiting."""
        handled = [event for event in batch.events if self.applier.projection.handles(event)]
        if not handled:  # a watermark tick, or other projections' events: not worth a span
            await self._handle(batch, stop)
            return
        cause = SpanCause.of(event.traceparent for event in handled)
        with traced(
            tracer,
            f"consume {self.name}",
            context=cause.context,
            links=cause.links,
            kind=SpanKind.CONSUMER,
            attributes={
                PROJECTION: self.name,
                EVENT_COUNT: len(handled),
                POSITION: handled[-1].position,
                "mercato.partitions": sorted(batch.checkpoints),
            },
        ):
            await self._handle(batch, stop)

    async def _handle(self, batch: FeedBatch, stop: asyncio.Event | None) -> None:
        async def apply_and_commit() -> BatchOutcome:
            target = await self._routing.live_target()
            outcome = await self.applier.apply(target, batch.events, batch.checkpoints, stop=stop)
            # Applying again after a failed commit is harmless: every write is convergent.
            await self.feed.commit(batch)
            return outcome

        outcome = await until_done(
            apply_and_commit,
            projection=self.name,
            what=f"applying a batch of {len(batch.events)} events",
            backoff=self.applier.backoff,
            report=self.applier.outages,
            stop=stop,
        )
        self.counters.batches += 1
        self.counters.events += outcome.events
        self.counters.writes += outcome.writes
        self.counters.held_back += outcome.held_back
