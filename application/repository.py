"""Loads aggregates from the event store and saves their new events, through the port only.

Every append is one span, `append <Aggregate>` (every write of Mercato goes through `save`),
and the events are stored with that span's `traceparent`: whoever handles them later (the
relay, a projector, a saga) joins the trace of the request that caused them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate
from opentelemetry import trace

from application.errors import AggregateNotFoundError
from application.ports.event_store import (
    NO_STREAM,
    AppendResult,
    ConcurrencyError,
    EventMetadata,
    EventStore,
    ExpectedVersion,
    Idempotency,
    RecordedEvent,
)
from application.ports.instruments import NO_INSTRUMENTS, Instruments
from application.serialization import EventSerializer
from application.tracing import (
    EVENT_COUNT,
    OUTCOME,
    POSITION,
    STREAM,
    TENANT,
    record_failure,
    short_event_type,
    traced,
    traceparent_of_current_span,
)

TAggregate = TypeVar("TAggregate", bound=Aggregate)

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("mercato.event_store")


class Repository:
    def __init__(
        self,
        store: EventStore,
        serializer: EventSerializer | None = None,
        *,
        snapshot_intervals: Mapping[type[Aggregate], int] | None = None,
        instruments: Instruments = NO_INSTRUMENTS,
    ) -> None:
        """`snapshot_intervals[T] = n` snapshots an aggregate of type T every n events."""
        intervals = dict(snapshot_intervals or {})
        if any(interval < 1 for interval in intervals.values()):
            raise ValueError("snapshot intervals must be at least 1")
        self._store = store
        self._serializer = serializer or EventSerializer()
        self._snapshot_intervals = intervals
        self._instruments = instruments

    async def get(
        self, aggregate_type: type[TAggregate], aggregate_id: UUID | str, *, tenant_id: str
    ) -> TAggregate:
        """The aggregate at its current version: its latest snapshot plus the later events."""
        stream_id = str(aggregate_id)
        aggregate: Aggregate | None = None
        snapshot = await self._store.latest_snapshot(stream_id)
        if snapshot is not None:
            if snapshot.tenant_id != tenant_id:
                raise AggregateNotFoundError(aggregate_type, stream_id)
            aggregate = self._serializer.from_snapshot(snapshot)
        events = await self._store.read_stream(
            stream_id, from_version=1 if aggregate is None else aggregate.version + 1
        )
        return self._replay(aggregate_type, stream_id, tenant_id, aggregate, events)

    async def get_as_of(
        self,
        aggregate_type: type[TAggregate],
        aggregate_id: UUID | str,
        *,
        tenant_id: str,
        as_of_position: int | None = None,
        as_of_time: datetime | None = None,
    ) -> TAggregate:
        """The aggregate as it stood at a past position or time (replayed from its start)."""
        if as_of_position is None and as_of_time is None:
            raise ValueError("get_as_of needs as_of_position or as_of_time")
        stream_id = str(aggregate_id)
        events = await self._store.read_stream(
            stream_id, as_of_position=as_of_position, as_of_time=as_of_time
        )
        return self._replay(aggregate_type, stream_id, tenant_id, None, events)

    async def save(
        self,
        *aggregates: Aggregate,
        metadata: EventMetadata,
        idempotency: Idempotency | None = None,
    ) -> list[AppendResult]:
        """Append each aggregate's pending events, one append per aggregate, in order.

        Each append expects the version the aggregate was loaded at, so a concurrent change
        raises `ConcurrencyError`. Appends to several aggregates are not one transaction.
        Returns one result per aggregate that had pending events.
        """
        changed = [aggregate for aggregate in aggregates if aggregate.pending_events]
        if idempotency is not None:
            # eventsourcing's events carry their creation time, and new aggregates get fresh
            # ids, so a retried command never produces the same events: only a fingerprint of
            # the command can recognise the retry.
            if idempotency.fingerprint is None:
                raise ValueError("an idempotent save needs the command's fingerprint")
            if len(changed) > 1:
                raise ValueError("an idempotency key can cover one aggregate's append only")
        return [await self._append(aggregate, metadata, idempotency) for aggregate in changed]

    async def _append(
        self, aggregate: Aggregate, metadata: EventMetadata, idempotency: Idempotency | None
    ) -> AppendResult:
        pending = list(aggregate.pending_events)
        loaded_version = aggregate.version - len(pending)
        expected: ExpectedVersion = NO_STREAM if loaded_version == 0 else loaded_version
        new_events = [self._serializer.to_new_event(event) for event in pending]
        attributes = {
            STREAM: aggregate.id,
            TENANT: metadata.tenant_id,
            EVENT_COUNT: len(new_events),
            "mercato.event_types": [short_event_type(event.type) for event in new_events],
            "mercato.expected_version": str(expected),
        }
        with traced(
            tracer,
            f"append {type(aggregate).__name__}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            # The events name this span as their cause (or, with tracing off, the caller's).
            traceparent = traceparent_of_current_span() or metadata.traceparent
            started = time.perf_counter()
            try:
                result = await self._store.append(
                    str(aggregate.id),
                    new_events,
                    expected,
                    metadata=dataclasses.replace(metadata, traceparent=traceparent),
                    idempotency=idempotency,
                )
            except ConcurrencyError:
                span.set_attribute(OUTCOME, "conflict")  # expected now and then: retried above
                raise
            except BaseException as error:
                span.set_attribute(OUTCOME, "error")
                record_failure(span, error)
                raise
            self._instruments.append_acknowledged(
                0 if result.replayed else len(new_events), time.perf_counter() - started
            )
            span.set_attributes(
                {
                    OUTCOME: "replayed" if result.replayed else "ok",
                    POSITION: result.position,
                    "mercato.stream_version": result.stream_version,
                }
            )
        aggregate.collect_events()
        if not result.replayed and self._snapshot_is_due(aggregate, loaded_version):
            await self._save_snapshot(aggregate, metadata.tenant_id)
        return result

    def _snapshot_is_due(self, aggregate: Aggregate, loaded_version: int) -> bool:
        interval = self._snapshot_intervals.get(type(aggregate))
        return interval is not None and aggregate.version // interval > loaded_version // interval

    async def _save_snapshot(self, aggregate: Aggregate, tenant_id: str) -> None:
        snapshot = self._serializer.to_snapshot(aggregate, tenant_id=tenant_id)
        try:
            await self._store.save_snapshot(snapshot)
        except Exception:
            # The events are committed: failing the save now would make the caller retry a
            # command that succeeded. A missing snapshot only costs a longer replay.
            logger.exception("could not save a snapshot of stream %s", snapshot.stream_id)

    def _replay(
        self,
        aggregate_type: type[TAggregate],
        stream_id: str,
        tenant_id: str,
        aggregate: Aggregate | None,
        events: Sequence[RecordedEvent],
    ) -> TAggregate:
        # Every event is checked before any is deserialised: another tenant's data must not
        # even be decoded on this tenant's behalf.
        if any(event.tenant_id != tenant_id for event in events):
            raise AggregateNotFoundError(aggregate_type, stream_id)
        state: Any = aggregate
        for recorded in events:
            domain_event = cast(
                CanMutateAggregate[UUID], self._serializer.to_domain_event(recorded)
            )
            state = domain_event.mutate(state)
        if not isinstance(state, aggregate_type):
            raise AggregateNotFoundError(aggregate_type, stream_id)
        return state
