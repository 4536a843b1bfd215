"""The embedded profile's feed: the event store's own subscription, in one ordered partition.

The store yields final events in position order, so the checkpoint of the one partition
(`log`) is simply the last position applied; the worker resumes from the live target's
checkpoint. Nothing needs committing — the checkpoint is stored with the data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from application.ports.event_feed import FeedBatch
from application.ports.event_store import EventStore
from application.ports.read_model_sink import EMBEDDED_PARTITION, Checkpoints


def resume_position(checkpoints: Checkpoints) -> int:
    """Where an embedded worker continues: everything at or below it is in the target."""
    return max(checkpoints.base, checkpoints.partitions.get(EMBEDDED_PARTITION, 0))


class StoreFeed:
    def __init__(self, store: EventStore, *, from_position: int, batch_size: int = 500) -> None:
        self._store = store
        self._from = from_position
        self._batch_size = batch_size

    async def batches(self) -> AsyncIterator[FeedBatch]:
        # Unfiltered on purpose: the checkpoint must pass events the projection ignores, or a
        # query waiting for such an event's position would wait for ever.
        async for events in self._store.subscribe(self._from, batch_size=self._batch_size):
            if events:
                self._from = events[-1].position
                yield FeedBatch(events=events, checkpoints={EMBEDDED_PARTITION: self._from})

    async def commit(self, batch: FeedBatch) -> None:
        return None

    async def close(self) -> None:
        return None
