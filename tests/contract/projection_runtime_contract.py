"""The projection runtime's behaviour, on any profile.

A test module provides a `harness` fixture (a `RuntimeHarness`): the embedded one runs workers
from the store's own subscription into the SQLite twins; the services one runs the Kafka relay
and Kafka-fed workers into Redis with dead letters in Postgres. The same tests run on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from application.ports.dead_letters import DeadLetterStore
from application.ports.event_store import EventStore
from application.ports.read_model_sink import (
    Entry,
    EntryKey,
    ReadModelSink,
    SetFields,
    TargetName,
    Write,
)
from projections.applier import ProjectionApplier
from projections.dead_letter_retry import retry_parked_stream
from projections.definition import Projection
from projections.rebuild import RebuildOptions, rebuild, replay
from projections.status import projection_status, wait_for_position
from projections.targets import Partitioning
from projections.verify import verify
from tests.projection_support import (
    POISON,
    SERIALIZER,
    add_to_tally,
    append_tally_events,
    tallies,
    tally_doc,
)


class RuntimeHarness(Protocol):
    store: EventStore
    sink: ReadModelSink
    dead_letters: DeadLetterStore
    partitioning: Partitioning
    tenant: str

    def live(
        self, projection: Projection, workers: int = 1
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Run the live pipeline (relay and workers where the profile has them) while inside."""
        ...


def applier_for(harness: RuntimeHarness, projection: Projection) -> ProjectionApplier:
    return ProjectionApplier(projection, harness.sink, harness.dead_letters, SERIALIZER)


async def caught_up(harness: RuntimeHarness, projection: Projection, within: float = 60) -> int:
    head = await harness.store.head_position()
    partitions = harness.partitioning.partitions_of(projection)
    reached = await wait_for_position(harness.sink, projection, partitions, head, within=within)
    assert reached >= head, f"{projection.name} reached {reached}, head is {head}"
    return head


async def live_entries(harness: RuntimeHarness, projection: Projection) -> dict[EntryKey, Entry]:
    routing = await harness.sink.routing(projection.name)
    assert routing.live is not None
    return await harness.sink.entries(projection.name, routing.live)


def field_of(entries: dict[EntryKey, Entry], doc: str, name: str) -> Any:
    entry = entries.get((doc, "field", name))
    return None if entry is None else entry.value


def total_of(entries: dict[EntryKey, Entry]) -> int:
    return sum(int(e.value) for k, e in entries.items() if k[:3] == ("totals", "counter", "sum"))


async def assert_verified(harness: RuntimeHarness, projection: Projection) -> None:
    report = await verify(
        applier_for(harness, projection),
        harness.store,
        harness.partitioning.partitions_of(projection),
    )
    assert report.differences == []
    assert report.would_park == []
    assert report.live_watermark >= report.position
    assert report.compared > 0


@dataclass
class _Writer:
    """Appends to existing tallies at a steady rate until stopped."""

    harness: RuntimeHarness
    streams: list[str]
    rate: float
    versions: dict[str, int] = field(default_factory=dict)
    appended: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        for stream in self.streams:
            self.versions[stream] = await self.harness.store.stream_version(stream)
        interval = 1 / self.rate
        next_at = time.monotonic()
        index = 0
        while not stop.is_set():
            stream = self.streams[index % len(self.streams)]
            index += 1
            await add_to_tally(
                self.harness.store, self.harness.tenant, stream, self.versions[stream], 1
            )
            self.versions[stream] += 1
            self.appended += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


@contextlib.asynccontextmanager
async def running(work: Callable[[asyncio.Event], Any]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(work(stop))
    try:
        yield
    finally:
        stop.set()
        await task


class Interrupted(Exception):
    """Stands for Ctrl-C in the middle of a rebuild."""


class ProjectionRuntimeContract:
    async def test_a_live_worker_applies_every_event_and_verify_agrees(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="live_apply")
        streams = await append_tally_events(
            harness.store, harness.tenant, streams=20, events_per_stream=10
        )
        async with harness.live(projection):
            await caught_up(harness, projection)
        entries = await live_entries(harness, projection)
        for stream in streams:
            assert field_of(entries, tally_doc(stream), "version") == 10
        await assert_verified(harness, projection)

    async def test_a_poison_event_parks_its_stream_only_and_retry_drains_it_in_order(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="poison")
        POISON.active = True
        try:
            streams = await append_tally_events(
                harness.store,
                harness.tenant,
                streams=10,
                events_per_stream=6,
                poison=[(3, 1)],  # stream 3's second add: version 3
            )
            async with harness.live(projection):
                await caught_up(harness, projection)
                entries = await live_entries(harness, projection)
                for index, stream in enumerate(streams):
                    expected = 2 if index == 3 else 6
                    assert field_of(entries, tally_doc(stream), "version") == expected
                parked = await harness.dead_letters.parked(projection.name)
                assert [p.stream_id for p in parked] == [streams[3]]
                letters = await harness.dead_letters.letters(projection.name, streams[3])
                assert [letter.event.stream_version for letter in letters] == [3, 4, 5, 6]
                assert letters[0].error is not None and "PoisonedEvent" in letters[0].error
                # Still failing: retry leaves the stream parked, with the error.
                outcome = await retry_parked_stream(applier_for(harness, projection), streams[3])
                assert outcome.error is not None and outcome.applied == 0
                POISON.active = False  # the fix is deployed
                outcome = await retry_parked_stream(applier_for(harness, projection), streams[3])
                assert (outcome.applied, outcome.remaining, outcome.error) == (4, 0, None)
                assert await harness.dead_letters.parked(projection.name) == []
                # New events of the stream flow again.
                await add_to_tally(harness.store, harness.tenant, streams[3], 6, 5)
                await caught_up(harness, projection)
            entries = await live_entries(harness, projection)
            assert field_of(entries, tally_doc(streams[3]), "version") == 7
            await assert_verified(harness, projection)
        finally:
            POISON.active = True

    async def test_dlq_skip_drops_the_poison_event_and_applies_the_rest(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="skipping")
        POISON.active = True
        streams = await append_tally_events(
            harness.store, harness.tenant, streams=3, events_per_stream=4, poison=[(0, 0)]
        )
        async with harness.live(projection):
            await caught_up(harness, projection)
            outcome = await retry_parked_stream(
                applier_for(harness, projection), streams[0], skip_first=True
            )
        assert (outcome.skipped, outcome.applied, outcome.error) == (1, 2, None)
        entries = await live_entries(harness, projection)
        assert field_of(entries, tally_doc(streams[0]), "version") == 4

    async def test_rebuild_under_writes_never_shows_a_partial_target_and_verifies_clean(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="rebuilt")
        streams = await append_tally_events(
            harness.store, harness.tenant, streams=40, events_per_stream=25
        )
        async with harness.live(projection):
            await caught_up(harness, projection)
            before = await harness.sink.routing(projection.name)
            floor = total_of(await live_entries(harness, projection))
            lowest_seen: list[int] = []

            async def read_while_rebuilding(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    total = total_of(await live_entries(harness, projection))
                    lowest_seen.append(total)
                    await asyncio.sleep(0.02)

            writer = _Writer(harness, streams, rate=200)
            async with running(writer.run), running(read_while_rebuilding):
                await asyncio.sleep(0.5)
                report = await rebuild(
                    applier_for(harness, projection),
                    harness.store,
                    RebuildOptions(batch_size=200, grace=2.0, drop_after=0.5),
                )
                await asyncio.sleep(0.5)
            await caught_up(harness, projection)
            assert writer.appended > 100
            assert min(lowest_seen) >= floor, "a reader saw an empty or partial target"
            assert report.previous == before.live
            assert report.dropped_previous
            assert TargetName.parse(report.target).generation == 2
            after = await harness.sink.routing(projection.name)
            assert (after.live, after.building) == (report.target, None)
            assert await harness.sink.targets(projection.name) == [report.target]
            await assert_verified(harness, projection)

    async def test_an_interrupted_rebuild_leaves_the_live_target_and_a_rerun_resumes(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="interrupted")
        await append_tally_events(harness.store, harness.tenant, streams=30, events_per_stream=20)
        async with harness.live(projection):
            await caught_up(harness, projection)
            before = await harness.sink.routing(projection.name)
            applier = applier_for(harness, projection)
            batches: list[int] = []

            def stop_after_two(progress: Any) -> None:
                batches.append(progress.position)
                if len(batches) == 2:
                    raise Interrupted

            options = RebuildOptions(batch_size=100, grace=1.0, drop_after=0.1)
            with contextlib.suppress(Interrupted):
                await rebuild(applier, harness.store, options, stop_after_two)
            during = await harness.sink.routing(projection.name)
            assert during.live == before.live
            assert during.building is not None
            report = await rebuild(applier, harness.store, options)
            assert report.resumed
            assert report.target == during.building
            await caught_up(harness, projection)
            await assert_verified(harness, projection)

    async def test_replay_reapplies_exactly_a_range_from_a_position_or_a_time(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="replayed")
        streams = await append_tally_events(
            harness.store, harness.tenant, streams=5, events_per_stream=3
        )
        async with harness.live(projection):
            await caught_up(harness, projection)
            middle = await harness.store.head_position()
            await asyncio.sleep(0.05)
            since = datetime.now(UTC)
            await asyncio.sleep(0.05)
            for stream in streams:
                await add_to_tally(harness.store, harness.tenant, stream, 3, 10)
            await caught_up(harness, projection)
        before = await live_entries(harness, projection)
        # The handler is "fixed": amounts now count double. Replay only the later events.
        doubled = tallies(name="replayed", times=2)
        report = await replay(applier_for(harness, doubled), harness.store, from_position=middle)
        assert report.events == len(streams)
        entries = await live_entries(harness, projection)
        for stream in streams:
            assert field_of(entries, tally_doc(stream), "last") == 20
            assert entries[("totals", "counter", "sum", f"{stream}:4")].value == 20
        untouched = {k: e for k, e in before.items() if e.position <= middle}
        assert untouched and all(entries[k] == e for k, e in untouched.items())
        by_time = await replay(
            applier_for(harness, tallies(name="replayed", times=3)),
            harness.store,
            from_position=await harness.store.position_before_time(since),
        )
        assert by_time.events == len(streams)
        entries = await live_entries(harness, projection)
        assert {field_of(entries, tally_doc(s), "last") for s in streams} == {30}

    async def test_verify_reports_each_difference_with_the_live_target(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="tampered")
        streams = await append_tally_events(
            harness.store, harness.tenant, streams=3, events_per_stream=3
        )
        async with harness.live(projection):
            await caught_up(harness, projection)
        entries = await live_entries(harness, projection)
        key = (tally_doc(streams[0]), "field", "last")
        routing = await harness.sink.routing(projection.name)
        assert routing.live is not None
        await harness.sink.apply(
            projection.name,
            routing.live,
            [Write(SetFields(key[0], {"last": -1}), entries[key].position, harness.tenant)],
            {},
        )
        report = await verify(
            applier_for(harness, projection),
            harness.store,
            harness.partitioning.partitions_of(projection),
        )
        assert [(d.key, d.kind) for d in report.differences] == [(key, "different")]
        assert report.differences[0].live == Entry(-1, entries[key].position)

    async def test_status_shows_lag_while_no_worker_runs_and_none_after(
        self, harness: RuntimeHarness
    ) -> None:
        projection = tallies(name="lagging")
        await append_tally_events(harness.store, harness.tenant, streams=2, events_per_stream=2)
        async with harness.live(projection):
            await caught_up(harness, projection)
        await append_tally_events(harness.store, harness.tenant, streams=3, events_per_stream=3)
        status = await projection_status(
            projection,
            harness.sink,
            harness.store,
            harness.dead_letters,
            harness.partitioning,
            datetime.now(UTC),
        )
        assert status.lag_events >= 9
        assert status.lag_seconds >= 0
        assert status.state == "live"
        async with harness.live(projection):
            await caught_up(harness, projection)
        status = await projection_status(
            projection,
            harness.sink,
            harness.store,
            harness.dead_letters,
            harness.partitioning,
            datetime.now(UTC),
        )
        assert (status.lag_events, status.lag_seconds) == (0, 0.0)
