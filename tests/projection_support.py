"""A small aggregate and projection for testing the projection runtime on any profile.

`Tally` streams get `Added` events; the `tallies` projection keeps one document per tally (its
name, last amount and version) and a `totals` document whose `sum` counter adds every amount.
An `Added` with `poison=True` makes the handler raise while `POISON.active` is set — a handler
bug that an operator later fixes (by clearing it).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eventsourcing.domain import Aggregate, event

from application.ports.event_store import NO_STREAM, AppendResult, EventMetadata, EventStore
from application.ports.read_model_sink import Contribute, Operation, SetFields
from application.serialization import EventSerializer
from projections.definition import ProjectedEvent, Projection, event_type

SERIALIZER = EventSerializer()


class Tally(Aggregate):
    @event("Opened")
    def __init__(self, name: str) -> None:
        self.name = name

    @event("Added")
    def add(self, amount: int, poison: bool = False) -> None:
        pass


@dataclass
class _Poison:
    active: bool = True


POISON = _Poison()


class PoisonedEvent(RuntimeError):
    pass


def tally_doc(stream_id: str) -> str:
    return f"tally:{stream_id}"


def _on_opened(event: ProjectedEvent) -> list[Operation]:
    opened: Any = event.event
    return [SetFields(tally_doc(event.stream_id), {"name": opened.name, "version": 1})]


def _on_added(event: ProjectedEvent) -> list[Operation]:
    added: Any = event.event
    if added.poison and POISON.active:
        raise PoisonedEvent(f"cannot handle {event.stream_id} v{event.record.stream_version}")
    version = event.record.stream_version
    return [
        SetFields(tally_doc(event.stream_id), {"last": added.amount, "version": version}),
        Contribute("totals", "sum", f"{event.stream_id}:{version}", added.amount),
    ]


def tallies(version: int = 1, *, name: str = "tallies", times: int = 1) -> Projection:
    """The test projection; `times` multiplies amounts (a 'handler change' for replay tests)."""

    def added(event: ProjectedEvent) -> list[Operation]:
        operations = _on_added(event)
        if times == 1:
            return operations
        scaled: list[Operation] = []
        for op in operations:
            if isinstance(op, SetFields):
                scaled.append(SetFields(op.doc, {**op.fields, "last": op.fields["last"] * times}))
            elif isinstance(op, Contribute):
                scaled.append(Contribute(op.doc, op.counter, op.source, op.amount * times))
        return scaled

    return Projection(
        name=name,
        version=version,
        sink="views",
        handlers={
            event_type(Tally, "Opened"): _on_opened,
            event_type(Tally, "Added"): added,
        },
    )


async def append_tally_events(
    store: EventStore,
    tenant: str,
    *,
    streams: int,
    events_per_stream: int,
    poison: Sequence[tuple[int, int]] = (),
    seed: int = 7,
) -> list[str]:
    """Open `streams` tallies and add to them, interleaved at random, one append per event.
    `poison` names (stream index, add number) pairs to mark poison. Returns the stream ids."""
    rng = random.Random(seed)
    metadata = EventMetadata(tenant_id=tenant)
    tallies_ = [Tally(name=f"tally-{i}-{uuid.uuid4().hex[:6]}") for i in range(streams)]
    pending: list[list[Any]] = []
    for index, tally in enumerate(tallies_):
        for number in range(events_per_stream - 1):
            tally.add(amount=rng.randint(1, 100), poison=(index, number) in poison)
        pending.append(list(tally.collect_events()))
    versions = [0] * streams
    order = [i for i in range(streams) for _ in range(events_per_stream)]
    rng.shuffle(order)
    for index in order:
        domain_event = pending[index].pop(0)
        stream = str(tallies_[index].id)
        expected = versions[index] or NO_STREAM
        await store.append(
            stream, [SERIALIZER.to_new_event(domain_event)], expected, metadata=metadata
        )
        versions[index] += 1
    return [str(t.id) for t in tallies_]


async def add_to_tally(
    store: EventStore, tenant: str, stream_id: str, version: int, amount: int
) -> AppendResult:
    """Append one `Added` to an existing tally at `version` (its current version)."""
    added_class: Any = cast(Any, Tally).Added
    added = added_class(
        originator_id=uuid.UUID(stream_id),
        originator_version=version + 1,
        timestamp=added_class.create_timestamp(),
        amount=amount,
        poison=False,
    )
    return await store.append(
        stream_id,
        [SERIALIZER.to_new_event(added)],
        version,
        metadata=EventMetadata(tenant_id=tenant),
    )
