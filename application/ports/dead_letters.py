"""Per-stream dead letters of the projections.

When a projection's handler keeps failing on an event (a *poison* event), the runtime parks that
event's stream for that projection: the event and every later event of the same stream wait
here, in order, while every other stream keeps flowing. An operator fixes the handler and
retries (`mercato dlq retry`), or skips the poison event (`mercato dlq skip`).

Parking counts as handled for checkpoints: a parked event is safe here, not lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from application.ports.event_store import RecordedEvent


@dataclass(frozen=True)
class ParkedStream:
    projection: str
    stream_id: str
    tenant_id: str
    error: str
    """Why the first waiting event failed (the last error, after a failed retry)."""
    first_position: int
    events: int
    parked_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    event: RecordedEvent
    error: str | None
    """The handler's error for the event that parked the stream; None for events that wait."""


class DeadLetterRetry(Protocol):
    """A locked parked stream being retried (see `DeadLetterStore.retrying`)."""

    @property
    def letters(self) -> Sequence[DeadLetter]: ...

    def settle(self, through_position: int | None, error: str | None = None) -> None:
        """Say how the retry went: letters at or below `through_position` are handled (None:
        none were); `error` (if any) is why the next one failed, and the stream stays parked."""
        ...


class DeadLetterStore(Protocol):
    async def park(self, projection: str, event: RecordedEvent, error: str) -> None:
        """Park `event`'s stream (if it is not already) with `event` as a letter. Idempotent."""
        ...

    async def hold_back(self, projection: str, events: Sequence[RecordedEvent]) -> set[int]:
        """Store each event whose stream is parked as a letter (idempotent); return their
        positions. The caller applies the others. Atomic with `retrying`: an event is either
        held back before a retry takes the stream, or sees the stream un-parked after it."""
        ...

    async def parked(self, projection: str | None = None) -> list[ParkedStream]:
        """Parked streams (of one projection, or all), oldest first."""
        ...

    async def letters(self, projection: str, stream_id: str) -> list[DeadLetter]:
        """A parked stream's letters in position order (empty when it is not parked)."""
        ...

    def retrying(
        self, projection: str, stream_id: str
    ) -> AbstractAsyncContextManager[DeadLetterRetry]:
        """Lock the parked stream (workers hold its new events back meanwhile) and hand out its
        letters. On a clean exit, the letters the retry settled are deleted, and the stream is
        un-parked when none are left and no error was reported. On an exception, nothing
        changes. Raises `LookupError` when the stream is not parked."""
        ...

    async def close(self) -> None: ...
