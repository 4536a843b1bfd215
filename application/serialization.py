"""Turns eventsourcing's domain events and aggregate snapshots into event store records, and back.

Payloads are eventsourcing's own stored state (JSON from its `JSONTranscoder`), so the library's
`Mapper` does the (de)serialising and the upcasting. An event whose class has `class_version`
n > 1 is stored with `schema_version` n and the Mapper writes `"class_version": n` into its
payload; reading it back, the Mapper upcasts from that version (1 when absent, as in events
stored before the class was versioned) through `upcast_vN_vN+1` to the class's current version.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.domain import Snapshot as AggregateSnapshot
from eventsourcing.persistence import Mapper, StoredEvent, Transcoding

from application.ports.event_store import NewEvent, RecordedEvent, Snapshot
from application.transcodings import domain_transcoder


class EventSerializer:
    def __init__(self, transcodings: Iterable[Transcoding] = ()) -> None:
        """`transcodings` add to the defaults: UUID, Decimal, datetime, and the domain's value
        types, enums, tuples and frozensets (`application.transcodings`)."""
        self._mapper: Mapper[UUID] = Mapper(transcoder=domain_transcoder(transcodings))

    def to_new_event(self, domain_event: DomainEventProtocol[UUID]) -> NewEvent:
        stored = self._mapper.to_stored_event(domain_event)
        return NewEvent(
            type=stored.topic,
            payload=stored.state,
            schema_version=getattr(type(domain_event), "class_version", 1),
            event_id=uuid4(),
        )

    def to_domain_event(self, recorded: RecordedEvent) -> DomainEventProtocol[UUID]:
        stored = StoredEvent(
            originator_id=recorded.stream_id,
            originator_version=recorded.stream_version,
            topic=recorded.type,
            state=recorded.payload,
        )
        return self._mapper.to_domain_event(stored)

    def to_snapshot(self, aggregate: Aggregate, *, tenant_id: str) -> Snapshot:
        taken = AggregateSnapshot.take(aggregate)
        stored = self._mapper.to_stored_event(taken)
        return Snapshot(
            stream_id=str(aggregate.id),
            stream_version=aggregate.version,
            type=stored.topic,
            state=stored.state,
            tenant_id=tenant_id,
            taken_at=taken.timestamp,
        )

    def from_snapshot(self, snapshot: Snapshot) -> Aggregate:
        stored = StoredEvent(
            originator_id=snapshot.stream_id,
            originator_version=snapshot.stream_version,
            topic=snapshot.type,
            state=snapshot.state,
        )
        taken = cast(AggregateSnapshot, self._mapper.to_domain_event(stored))
        aggregate: Any = taken.mutate(None)
        return cast(Aggregate, aggregate)
