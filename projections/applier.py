"""Turning a batch of events into one sink write: handlers, dead letters, retries.

Live workers, rebuilds, replays and `verify` all apply events through `ProjectionApplier`, so
they agree on what a batch does:

1. Events of streams already parked in the dead-letter store are held back there (in order).
2. Each other event goes through its handler. A handler that raises is tried again (a handler is
   pure, but may still trip over something passing, like memory); when it keeps failing, the
   event is *poison*: its stream is parked with the error and the stream's later events in the
   batch are held back behind it. Other streams are untouched.
3. The writes of the batch and its checkpoints go to the sink in one call. A sink error is
   transient until proven otherwise: the call is retried with capped exponential backoff, for
   as long as it takes (a worker stalls rather than skips; its lag and `OutageReport` show it,
   see `projections.outages`).

A batch the projection handles is one span, `apply <projection>`, naming the sink: a child of
the current span (a live worker's `consume`), or, when there is none (a rebuild, a replay),
placed by the events' own `traceparent`s (`SpanCause`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass

from opentelemetry import trace

from application.ports.dead_letters import DeadLetterStore
from application.ports.event_store import RecordedEvent
from application.ports.read_model_sink import ReadModelSink, Write
from application.serialization import EventSerializer
from application.tracing import (
    EVENT_COUNT,
    POSITION,
    PROJECTION,
    SINK,
    TENANT,
    SpanCause,
    in_a_span,
    traced,
)
from projections.definition import Projection
from projections.outages import NO_OUTAGE_REPORT, Backoff, OutageReport, until_done

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("mercato.projections")


@dataclass(frozen=True)
class BatchOutcome:
    events: int
    """Events of the batch the projection handles."""
    writes: int
    held_back: int
    """Events that went to the dead-letter store (parked or waiting behind a parked one)."""
    poisoned: tuple[str, ...]
    """Streams this batch parked."""


class ProjectionApplier:
    def __init__(
        self,
        projection: Projection,
        sink: ReadModelSink,
        dead_letters: DeadLetterStore,
        serializer: EventSerializer,
        *,
        handler_attempts: int = 3,
        backoff: Backoff | None = None,
        outages: OutageReport = NO_OUTAGE_REPORT,
    ) -> None:
        self.projection = projection
        self.sink = sink
        self.dead_letters = dead_letters
        self.serializer = serializer
        self._handler_attempts = handler_attempts
        self.backoff = backoff or Backoff()
        self.outages = outages

    async def apply(
        self,
        target: str,
        events: Sequence[RecordedEvent],
        checkpoints: Mapping[str, int],
        *,
        stop: asyncio.Event | None = None,
    ) -> BatchOutcome:
        """Apply the batch, waiting out store failures; `GaveUp` if `stop` is set meanwhile."""
        relevant = [e for e in events if self.projection.handles(e)]
        if not relevant:  # only checkpoints to move (a watermark tick): not worth a span
            return await self._apply(target, relevant, checkpoints, stop)
        cause = SpanCause.of(e.traceparent for e in relevant)
        if in_a_span():  # a live worker's `consume` span, already placed by the same events
            cause = SpanCause.current()
        with traced(
            tracer,
            f"apply {self.projection.name}",
            context=cause.context,
            links=cause.links,
            attributes=self._span_attributes(target, relevant),
        ) as span:
            outcome = await self._apply(target, relevant, checkpoints, stop)
            span.set_attributes(
                {"mercato.writes": outcome.writes, "mercato.held_back": outcome.held_back}
            )
            return outcome

    def _span_attributes(self, target: str, relevant: Sequence[RecordedEvent]) -> dict[str, object]:
        tenants = {event.tenant_id for event in relevant}
        return {
            PROJECTION: self.projection.name,
            SINK: self.projection.sink,
            "mercato.target": target,
            EVENT_COUNT: len(relevant),
            POSITION: relevant[-1].position,
            "mercato.first_position": relevant[0].position,
            TENANT: next(iter(tenants)) if len(tenants) == 1 else None,
        }

    async def _apply(
        self,
        target: str,
        relevant: Sequence[RecordedEvent],
        checkpoints: Mapping[str, int],
        stop: asyncio.Event | None,
    ) -> BatchOutcome:
        name = self.projection.name
        held = await self.dead_letters.hold_back(name, relevant) if relevant else set()
        poisoned: list[str] = []
        waiting: list[RecordedEvent] = []
        writes: list[Write] = []
        for event in relevant:
            if event.position in held:
                continue
            if event.stream_id in poisoned:
                waiting.append(event)
                continue
            try:
                writes.extend(self._writes_of(event))
            except Exception as error:
                await self._park(event, error)
                poisoned.append(event.stream_id)
        if waiting:
            held |= await self.dead_letters.hold_back(name, waiting)
        await self._write(target, writes, checkpoints, stop)
        return BatchOutcome(
            events=len(relevant),
            writes=len(writes),
            held_back=len(held) + len(poisoned),
            poisoned=tuple(poisoned),
        )

    def _writes_of(self, event: RecordedEvent) -> list[Write]:
        for _ in range(self._handler_attempts - 1):
            with suppress(Exception):
                return self.projection.writes(event, self.serializer)
        return self.projection.writes(event, self.serializer)

    async def _park(self, event: RecordedEvent, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        logger.error(
            "projection %s parked stream %s at position %s (%s): %s",
            self.projection.name,
            event.stream_id,
            event.position,
            event.type,
            reason,
        )
        await self.dead_letters.park(self.projection.name, event, reason)

    async def _write(
        self,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
        stop: asyncio.Event | None,
    ) -> None:
        if not writes and not checkpoints:
            return
        await until_done(
            lambda: self.sink.apply(self.projection.name, target, writes, checkpoints),
            projection=self.projection.name,
            what=f"writing {len(writes)} writes to {target}",
            backoff=self.backoff,
            report=self.outages,
            stop=stop,
        )
