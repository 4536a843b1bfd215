"""A live projection worker: feed → applier → sink → commit, until told to stop.

The order of the last two steps is the whole crash-safety argument: the sink stores a batch's
writes and checkpoints before the feed acknowledges it, so a worker killed at any moment has
either not written the batch (it comes again) or written it without acknowledging (it comes
again, and the convergent writes make the second time a no-op).

On stop, the batch in hand is finished and committed; the worker does not start another.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass

from application.ports.event_feed import EventFeed, FeedBatch
from projections.applier import ProjectionApplier
from projections.targets import RoutingCache

logger = logging.getLogger(__name__)


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
                if not fetching.done():
                    fetching.cancel()
                    with suppress(asyncio.CancelledError, StopAsyncIteration):
                        await fetching
                    return
                try:
                    batch = fetching.result()
                except StopAsyncIteration:
                    return
                await self.handle(batch)
        finally:
            stopping.cancel()
            await self.feed.close()

    async def handle(self, batch: FeedBatch) -> None:
        """Apply one batch to the live target, then acknowledge it (never the other way)."""
        target = await self._routing.live_target()
        outcome = await self.applier.apply(target, batch.events, batch.checkpoints)
        await self.feed.commit(batch)
        self.counters.batches += 1
        self.counters.events += outcome.events
        self.counters.writes += outcome.writes
        self.counters.held_back += outcome.held_back
