"""Stopping a projection worker with a backlog: it finishes the batch in hand, commits, and
stops (it does not drain the backlog); a successor carries on from there, and `verify` finds
the read model equal to the log — nothing lost, nothing applied twice. Once in-process on the
embedded stack, once as SIGTERM to a real `mercato worker projector` on the services stack
while events keep flowing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest

from application.ports.event_feed import FeedBatch
from application.ports.read_model_sink import EMBEDDED_PARTITION, ReadModelSink, Write
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.eventstore.sqlite import SqliteEventStore
from infrastructure.projections.dead_letters_postgres import PostgresDeadLetterStore
from infrastructure.projections.dead_letters_sqlite import SqliteDeadLetterStore
from infrastructure.read_models.redis_documents import RedisDocumentSink
from infrastructure.read_models.sqlite_documents import SqliteDocumentSink
from projections.definition import Projection
from projections.store_feed import StoreFeed, resume_position
from projections.targets import ensure_live_target
from projections.worker import ProjectionWorker
from tests.contract.projection_runtime_contract import (
    applier_for,
    assert_verified,
    caught_up,
    live_entries,
    running,
)
from tests.integration.projections.services_harness import ServicesHarness, unique_prefix
from tests.integration.projections.test_runtime_embedded import EmbeddedHarness
from tests.projection_support import add_to_tally, append_tally_events, tallies, tally_doc

pytestmark = pytest.mark.integration

REDIS = "redis://127.0.0.1:6379/0"
REPOSITORY = Path(__file__).resolve().parents[2]
STOP_WITHIN = 20.0
"""Seconds from SIGTERM to exit: the worker's grace (10 s) for the batch in hand, and the time
to close its clients. A worker that finished its batch takes far less (the log says which)."""
PATIENCE = 60.0
PROJECTOR_COMMAND = ("worker", "projector", "tallies")


def spawn_projector(env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", *PROJECTOR_COMMAND],
            cwd=REPOSITORY,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def checkpoints_of(harness: ServicesHarness) -> dict[str, int]:
    """The tallies projection's checkpoints, stored in the sink with the data."""
    projection = tallies()
    routing = await harness.sink.routing(projection.name)
    if routing.live is None:
        return {}
    return dict((await harness.sink.checkpoints(projection.name, routing.live)).partitions)


async def until_applying(
    harness: ServicesHarness, worker: subprocess.Popen[bytes], *, beyond: Mapping[str, int]
) -> None:
    """Wait until the worker has applied a batch: the checkpoints moved on from `beyond`."""
    async with asyncio.timeout(PATIENCE):
        while (checkpoints := await checkpoints_of(harness)) == beyond or not checkpoints:
            assert worker.poll() is None, f"the projector exited with {worker.returncode}"
            await asyncio.sleep(0.05)


async def exit_status(worker: subprocess.Popen[bytes], within: float) -> int:
    return await asyncio.to_thread(worker.wait, within)


def output_of(log: Path) -> str:
    return log.read_text()


async def test_a_stopped_worker_finishes_its_batch_and_leaves_the_backlog_to_its_successor(
    tmp_path: Path,
) -> None:
    store = await SqliteEventStore.open(tmp_path / "events.sqlite3")
    sink = await SqliteDocumentSink.open(tmp_path / "views.sqlite3")
    dead_letters = await SqliteDeadLetterStore.open(tmp_path / "dead_letters.sqlite3")
    harness = EmbeddedHarness(store, sink, dead_letters)
    projection = tallies()
    try:
        await append_tally_events(store, harness.tenant, streams=20, events_per_stream=50)
        await ensure_live_target(sink, projection)

        # Its feed always has the next batch ready, as a Kafka consumer with a backlog does.
        backlog = await backlog_of(store)
        first = ProjectionWorker(applier_for(harness, projection), backlog)
        stop = asyncio.Event()
        # The stop comes while the third batch is being written.
        first.applier.sink = StopDuring(sink, stop, write_number=3)  # type: ignore[assignment]
        await asyncio.wait_for(first.run(stop), 10)
        # It finished that batch, committed it and stopped, with most of the backlog untouched;
        # its checkpoint says how far it got.
        assert first.counters.batches == len(backlog.committed) == 3
        checkpoints = await sink.checkpoints(projection.name, await live_target(harness))
        applied_to = resume_position(checkpoints)
        assert await store.count_between(0, applied_to) == first.counters.events < 1000

        successor = embedded_worker(harness, projection, from_position=applied_to)
        async with harness_running(successor):
            await caught_up(harness, projection)
        await assert_verified(harness, projection)
        assert first.counters.events + successor.counters.events == 1000
    finally:
        await dead_letters.close()
        await sink.close()
        await store.close()


class ReadyFeed:
    """A feed whose batches are all there already: taking the next one never waits."""

    def __init__(self, batches: list[FeedBatch]) -> None:
        self._batches = batches
        self.committed: list[FeedBatch] = []

    async def batches(self) -> AsyncIterator[FeedBatch]:
        for batch in self._batches:
            yield batch

    async def commit(self, batch: FeedBatch) -> None:
        self.committed.append(batch)

    async def close(self) -> None:
        return None


async def backlog_of(store: SqliteEventStore, *, batch_size: int = 10) -> ReadyFeed:
    batches, position = [], 0
    while events := await store.read_all(position, batch_size):
        position = events[-1].position
        batches.append(FeedBatch(events=events, checkpoints={EMBEDDED_PARTITION: position}))
    return ReadyFeed(batches)


class StopDuring:
    """Delegates to a real sink, and sets `stop` while its `write_number`th write is on."""

    def __init__(self, sink: ReadModelSink, stop: asyncio.Event, *, write_number: int) -> None:
        self._sink = sink
        self._stop = stop
        self._countdown = write_number

    def __getattr__(self, name: str) -> object:
        return getattr(self._sink, name)

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        self._countdown -= 1
        if self._countdown == 0:
            self._stop.set()
        await self._sink.apply(projection, target, writes, checkpoints)


def embedded_worker(
    harness: EmbeddedHarness, projection: Projection, *, from_position: int
) -> ProjectionWorker:
    feed = StoreFeed(harness.store, from_position=from_position, batch_size=10)
    return ProjectionWorker(applier_for(harness, projection), feed)


async def live_target(harness: EmbeddedHarness) -> str:
    routing = await harness.sink.routing(tallies().name)
    assert routing.live is not None
    return routing.live


@contextlib.asynccontextmanager
async def harness_running(worker: ProjectionWorker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_sigterm_mid_stream_commits_the_batch_in_hand_and_a_successor_loses_nothing(
    fresh_postgres_dsn: str, kafka_topic_prefix: str, redis_key_prefix: str, tmp_path: Path
) -> None:
    key_prefix = unique_prefix(redis_key_prefix)
    harness = ServicesHarness(
        await PostgresEventStore.connect(fresh_postgres_dsn),
        await RedisDocumentSink.connect(REDIS, key_prefix=key_prefix),
        await PostgresDeadLetterStore.connect(fresh_postgres_dsn),
        fresh_postgres_dsn,
        unique_prefix(kafka_topic_prefix),
        4,
    )
    projection = tallies()
    env = {
        "MERCATO_PROFILE": "services",
        "MERCATO_POSTGRES_DSN": fresh_postgres_dsn,
        "MERCATO_KAFKA_TOPIC_PREFIX": harness.partitioning.kafka_topic_prefix or "",
        "MERCATO_KAFKA_PARTITIONS": "4",
        "MERCATO_REDIS_KEY_PREFIX": key_prefix,
        "MERCATO_EXTRA_PROJECTIONS": "tests.projection_support:tallies",
        "MERCATO_LOG_LEVEL": "INFO",
    }
    log = tmp_path / "projectors.log"
    # A backlog for the first worker to chew on, and writes that never pause.
    streams = await append_tally_events(
        harness.store, harness.tenant, streams=100, events_per_stream=20
    )
    versions = dict.fromkeys(streams, 20)

    async def write(stop: asyncio.Event) -> None:
        index = 0
        while not stop.is_set():
            stream = streams[index % len(streams)]
            index += 1
            await add_to_tally(harness.store, harness.tenant, stream, versions[stream], 1)
            versions[stream] += 1
            await asyncio.sleep(0.005)

    stop_relay = asyncio.Event()
    relay = asyncio.create_task(harness.relay(projection).run(stop_relay))
    first = spawn_projector(env, log)
    successor: subprocess.Popen[bytes] | None = None
    try:
        async with running(write):
            await until_applying(harness, first, beyond={})
            await asyncio.sleep(0.5)  # well into the stream
            first.send_signal(signal.SIGTERM)
            status = await exit_status(first, STOP_WITHIN)
            assert status == 0, output_of(log)
            stopped = output_of(log)
            assert "projector tallies stopped" in stopped, stopped
            assert "did not stop within" not in stopped, stopped

            left_at = await checkpoints_of(harness)
            successor = spawn_projector(env, log)
            await until_applying(harness, successor, beyond=left_at)
            await asyncio.sleep(1.0)  # the successor applies live writes too
        await caught_up(harness, projection, within=PATIENCE)
        await assert_verified(harness, projection)
        entries = await live_entries(harness, projection)
        for stream in streams:
            assert entries[(tally_doc(stream), "field", "version")].value == versions[stream]
    finally:
        for worker in (first, successor):
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
        stop_relay.set()
        await asyncio.wait_for(relay, 30)
        await harness.dead_letters.close()
        await harness.sink.close()
        await harness.store.close()
