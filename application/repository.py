"""Loads aggregates from the event store and saves their new events, through the port only."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate

from application.errors import AggregateNotFoundError
from application.ports.event_store import (
    NO_STREAM,
    AppendResult,
    EventMetadata,
    EventStore,
    ExpectedVersion,
    Idempotency,
    RecordedEvent,
)
from application.serialization import EventSerializer

TAggregate = TypeVar("TAggregate", bound=Aggregate)

logger = logging.getLogger(__name__)


class Repository:
    def __init__(
        self,
        store: EventStore,
        serializer: EventSerializer | None = None,
        *,
        snapshot_intervals: Mapping[type[Aggregate], int] | None = None,
    ) -> None:
        """`snapshot_intervals[T] = n` snapshots an aggregate of type T every n events."""
        intervals = dict(snapshot_intervals or {})
        if any(interval < 1 for interval in intervals.values()):
            raise ValueError("snapshot intervals must be at least 1")
        self._store = store
        self._serializer = serializer or EventSerializer()
        self._snapshot_intervals = intervals

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
        result = await self._store.append(
            str(aggregate.id),
            [self._serializer.to_new_event(event) for event in pending],
            expected,
            metadata=metadata,
            idempotency=idempotency,
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
