"""Blue/green rebuild, and replay: re-reading the event store (never Kafka) into a target.

Rebuild, step by step (each step survives an interruption; a rerun picks up where it stopped):

1. *Build*: a new target `<name>_v<version>_<n>` is created beside the live one (readers and live
   workers keep using the live one) and filled from the store in large batches read by position;
   after each batch the target's *base* records how far it got (`complete=False`), so a rerun
   resumes there.
2. *Swap*: once a read comes back short (the build has reached the head), the target is promoted
   — one atomic step in the sink. Readers now see a target as complete as the live one was, give
   or take the events of the last moments, which the next step adds.
3. *Settle*: live workers learn the new routing within their routing TTL; until every worker has
   (`grace`, longer than the TTL), some may still write the newest events to the old target. The
   rebuild keeps reading the store for that long, then once more to the head, and only then marks
   the target complete. Writes are convergent, so the rebuild and the workers writing the same
   event in either order is harmless. Until complete, the target's watermark is its base, so a
   read-your-writes query never trusts a checkpoint the rebuild has not backed.
4. *Drop*: the old target is dropped after `drop_after` seconds (readers that looked it up just
   before the swap finish first), unless asked to keep it.

Replay re-applies a range of the log to the live target with the current handlers (after a
handler fix): positions are the versions, so equal positions overwrite and nothing newer is
touched; checkpoints do not move.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from application.ports.event_store import EventStore
from application.ports.read_model_sink import TargetName
from projections.applier import ProjectionApplier
from projections.targets import next_target

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    phase: str
    """`build`, `settle`, `drop`, `replay`, `done`."""
    target: str
    position: int
    events: int
    """Events applied so far (of the kinds the projection handles)."""
    total: int
    """Events to apply, as estimated at the start (grows while writes continue)."""


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RebuildReport:
    target: str
    previous: str | None
    events: int
    position: int
    seconds: float
    resumed: bool
    dropped_previous: bool


@dataclass(frozen=True)
class RebuildOptions:
    batch_size: int = 5000
    grace: float = 3.0
    """How long after the swap live workers may still write to the old target (> routing TTL)."""
    drop_after: float = 5.0
    keep_previous: bool = False
    restart: bool = False
    """Throw away an unfinished target of an interrupted rebuild instead of resuming it."""


class ProgressCounter:
    """Counts applied events and tells the progress callback."""

    def __init__(self, total: int, report: ProgressCallback | None, target: str) -> None:
        self.events = 0
        self.total = total
        self._report = report
        self._target = target

    def tell(self, phase: str, position: int) -> None:
        self.total = max(self.total, self.events)
        if self._report is not None:
            self._report(Progress(phase, self._target, position, self.events, self.total))


async def rebuild(
    applier: ProjectionApplier,
    store: EventStore,
    options: RebuildOptions | None = None,
    progress: ProgressCallback | None = None,
) -> RebuildReport:
    options = options or RebuildOptions()
    projection, sink = applier.projection, applier.sink
    started = time.monotonic()
    routing = await sink.routing(projection.name)
    target, position, resumed, settling = await _choose_target(applier, options)
    previous = routing.live if routing.live != target else None
    head = await store.head_position()
    counter = ProgressCounter(await _count_events(store, position, head), progress, target)
    logger.info(
        "rebuild of %s into %s %s at position %d (live: %s)",
        projection.name,
        target,
        "resumes" if resumed else "starts",
        position,
        previous,
    )
    if not settling:
        position = await _fill(applier, store, target, position, counter, "build", options)
        await sink.promote(projection.name, target)
        logger.info("rebuild of %s: %s is live at position %d", projection.name, target, position)
    position = await _settle(applier, store, target, position, counter, options)
    await sink.set_base(projection.name, target, position, complete=True)
    dropped = False
    if previous is not None and not options.keep_previous:
        counter.tell("drop", position)
        await asyncio.sleep(options.drop_after)
        await sink.drop_target(projection.name, previous)
        dropped = True
    counter.tell("done", position)
    return RebuildReport(
        target=target,
        previous=previous,
        events=counter.events,
        position=position,
        seconds=time.monotonic() - started,
        resumed=resumed,
        dropped_previous=dropped,
    )


async def _choose_target(
    applier: ProjectionApplier, options: RebuildOptions
) -> tuple[str, int, bool, bool]:
    """(target, position to continue from, resumed?, already promoted and settling?)."""
    projection, sink = applier.projection, applier.sink
    routing = await sink.routing(projection.name)
    if routing.live is not None and not options.restart:
        live = await sink.checkpoints(projection.name, routing.live)
        if not live.complete:
            return routing.live, live.base, True, True
    if routing.building is not None:
        building_version = TargetName.parse(routing.building).version
        if options.restart or building_version != projection.version:
            await sink.drop_target(projection.name, routing.building)
        else:
            building = await sink.checkpoints(projection.name, routing.building)
            return routing.building, building.base, True, False
    target = await next_target(sink, projection)
    await sink.create_target(projection.name, target)
    await sink.set_base(projection.name, target, 0, complete=False)
    return target, 0, False, False


async def _fill(
    applier: ProjectionApplier,
    store: EventStore,
    target: str,
    position: int,
    counter: ProgressCounter,
    phase: str,
    options: RebuildOptions,
) -> int:
    """Apply the log from `position` until a read comes back short; returns the position
    reached, recorded as the target's (incomplete) base."""
    projection, sink = applier.projection, applier.sink
    while True:
        head = await store.head_position()
        events = await store.read_all(position, options.batch_size, projection.log_filter)
        if events:
            outcome = await applier.apply(target, events, {})
            counter.events += outcome.events
            position = events[-1].position
        if len(events) < options.batch_size:
            # Nothing the projection handles lies between the last event read and `head`,
            # which was final before the read: the target holds everything up to it.
            position = max(position, head)
        await sink.set_base(projection.name, target, position, complete=False)
        counter.tell(phase, position)
        if len(events) < options.batch_size:
            return position


async def _settle(
    applier: ProjectionApplier,
    store: EventStore,
    target: str,
    position: int,
    counter: ProgressCounter,
    options: RebuildOptions,
) -> int:
    deadline = time.monotonic() + options.grace
    while time.monotonic() < deadline:
        position = await _fill(applier, store, target, position, counter, "settle", options)
        await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    return await _fill(applier, store, target, position, counter, "settle", options)


async def _count_events(store: EventStore, after: int, head: int) -> int:
    """Every event in range, handled or not: cheap, and close enough for a progress bar."""
    return await store.count_between(after, head) if head > after else 0


@dataclass(frozen=True)
class ReplayReport:
    target: str
    events: int
    first_position: int | None
    last_position: int | None
    seconds: float


async def replay(
    applier: ProjectionApplier,
    store: EventStore,
    *,
    from_position: int,
    to_position: int | None = None,
    batch_size: int = 5000,
    progress: ProgressCallback | None = None,
) -> ReplayReport:
    """Re-apply the events after `from_position` (exclusive) up to `to_position` (inclusive;
    the head at the start by default) to the live target."""
    projection, sink = applier.projection, applier.sink
    started = time.monotonic()
    routing = await sink.routing(projection.name)
    if routing.live is None:
        raise LookupError(f"{projection.name} has no live target to replay into")
    end = to_position if to_position is not None else await store.head_position()
    counter = ProgressCounter(
        await _count_events(store, from_position, end), progress, routing.live
    )
    position, first, last = from_position, None, None
    while position < end:
        events = [
            e
            for e in await store.read_all(position, batch_size, projection.log_filter)
            if e.position <= end
        ]
        if not events:
            break
        outcome = await applier.apply(routing.live, events, {})
        counter.events += outcome.events
        first = first if first is not None else events[0].position
        last = position = events[-1].position
        counter.tell("replay", position)
    counter.tell("done", position)
    return ReplayReport(routing.live, counter.events, first, last, time.monotonic() - started)
