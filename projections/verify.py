"""`verify`: recompute a read model from the event store and compare it with the live target.

The recomputation runs the projection's handlers over the log up to the head `H` into an
in-memory target, treating dead letters as the live worker did (a parked stream's events from its
first letter on are left out). It then waits until the live target's watermark has reached `H`
and compares every entry (field, contribution, row) whose position is at or below `H` on either
side; entries written after `H` are newer than the recomputation and not compared. Every
difference is reported, never just a count.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from application.ports.dead_letters import (
    DeadLetter,
    DeadLetterRetry,
    ParkedStream,
)
from application.ports.event_store import EventStore, RecordedEvent
from application.ports.read_model_sink import Entry, EntryKey
from application.read_models.memory_sink import InMemorySink
from projections.applier import ProjectionApplier
from projections.rebuild import ProgressCallback, ProgressCounter
from projections.status import wait_for_position

SCRATCH = "verify"


@dataclass(frozen=True)
class Difference:
    key: EntryKey
    live: Entry | None
    expected: Entry | None

    @property
    def kind(self) -> str:
        if self.live is None:
            return "missing"
        if self.expected is None:
            return "unexpected"
        return "different"


@dataclass(frozen=True)
class VerifyReport:
    projection: str
    target: str
    position: int
    live_watermark: int
    compared: int
    differences: list[Difference]
    parked_streams: int
    would_park: list[str]
    """Streams the recomputation parked that the live worker has not (a handler now fails)."""

    @property
    def clean(self) -> bool:
        return not self.differences and not self.would_park and self.live_watermark >= self.position


async def verify(
    applier: ProjectionApplier,
    store: EventStore,
    partitions: Collection[str],
    *,
    wait: float = 30.0,
    batch_size: int = 5000,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    projection, sink = applier.projection, applier.sink
    routing = await sink.routing(projection.name)
    if routing.live is None:
        raise LookupError(f"{projection.name} has no live target to verify")
    parked = await applier.dead_letters.parked(projection.name)
    head = await store.head_position()
    letters = _FrozenDeadLetters(parked)
    scratch = InMemorySink()
    recompute = ProjectionApplier(
        projection, scratch, letters, applier.serializer, handler_attempts=1
    )
    await scratch.create_target(projection.name, SCRATCH)
    counter = ProgressCounter(await store.count_between(0, head), progress, SCRATCH)
    position = 0
    while position < head:
        events = await store.read_all(position, batch_size, projection.log_filter)
        events = [e for e in events if e.position <= head]
        if not events:
            break
        outcome = await recompute.apply(SCRATCH, events, {})
        counter.events += outcome.events
        position = events[-1].position
        counter.tell("verify", position)
    live_watermark = await wait_for_position(
        sink, projection, partitions, head, within=wait, poll=0.05
    )
    expected = await scratch.entries(projection.name, SCRATCH)
    live = await sink.entries(projection.name, routing.live)
    differences = compare(live, expected, up_to=head)
    return VerifyReport(
        projection=projection.name,
        target=routing.live,
        position=head,
        live_watermark=live_watermark,
        compared=sum(1 for e in expected.values() if e.position <= head),
        differences=differences,
        parked_streams=len(parked),
        would_park=sorted(letters.newly_parked),
    )


def compare(
    live: dict[EntryKey, Entry], expected: dict[EntryKey, Entry], *, up_to: int
) -> list[Difference]:
    """Entries that differ, among those at or below position `up_to` on either side."""
    differences = []
    for key in sorted(live.keys() | expected.keys()):
        have, want = live.get(key), expected.get(key)
        if have is not None and have.position > up_to:
            continue  # written after the recomputation's head: newer, not comparable
        if want is not None and want.position > up_to:
            want = None
        if have is None and want is None:
            continue
        if have != want:
            differences.append(Difference(key, have, want))
    return differences


class _FrozenDeadLetters:
    """The dead letters as the live worker left them, read-only: events of streams parked at or
    before their position are held back; a new failure is remembered, not stored."""

    def __init__(self, parked: Sequence[ParkedStream]) -> None:
        self._first = {p.stream_id: p.first_position for p in parked}
        self.newly_parked: set[str] = set()

    async def park(self, projection: str, event: RecordedEvent, error: str) -> None:
        self.newly_parked.add(event.stream_id)
        self._first.setdefault(event.stream_id, event.position)

    async def hold_back(self, projection: str, events: Sequence[RecordedEvent]) -> set[int]:
        return {
            e.position
            for e in events
            if e.stream_id in self._first and e.position >= self._first[e.stream_id]
        }

    async def parked(self, projection: str | None = None) -> list[ParkedStream]:
        return []

    async def letters(self, projection: str, stream_id: str) -> list[DeadLetter]:
        return []

    def retrying(
        self, projection: str, stream_id: str
    ) -> AbstractAsyncContextManager[DeadLetterRetry]:
        raise LookupError("verify does not retry dead letters")

    async def close(self) -> None:
        return None
