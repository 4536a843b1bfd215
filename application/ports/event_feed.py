"""The port a projection worker reads events from: Kafka in the services profile, the event
store's own subscription in the embedded profile.

A feed hands out batches in order per partition. The worker applies a batch to its sink (the
sink stores the batch's checkpoints with the data) and only then calls `commit` — so a crash
between the two redelivers the batch, which the sink's convergent writes absorb.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from application.ports.event_store import RecordedEvent


@dataclass(frozen=True)
class FeedBatch:
    events: Sequence[RecordedEvent]
    """The batch's events, in order within each partition (and so within each stream)."""
    checkpoints: Mapping[str, int]
    """Per partition, the highest position the batch covers: its last event, or a later
    watermark tick from the relay saying nothing below it is still to come in that partition."""
    offsets: Mapping[object, int] = field(default_factory=dict)
    """Transport bookkeeping (Kafka: the offset to commit per topic-partition)."""


class EventFeed(Protocol):
    def batches(self) -> AsyncIterator[FeedBatch]:
        """Batches until the feed is closed (or its iterator is closed)."""
        ...

    async def commit(self, batch: FeedBatch) -> None:
        """Acknowledge a batch whose effects are stored; it will not be delivered again
        (unless a crash comes first)."""
        ...

    async def close(self) -> None: ...
