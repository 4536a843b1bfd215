"""The Kafka pipeline under load and under fire: ordering across partitions and workers, and
`kill -9` of the relay and the projector while writes continue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest

from application.ports.read_model_sink import ReadModelSink, SetFields, Write
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.projections.dead_letters_postgres import PostgresDeadLetterStore
from infrastructure.read_models.redis_documents import RedisDocumentSink
from tests.contract.projection_runtime_contract import (
    assert_verified,
    caught_up,
    live_entries,
    running,
)
from tests.integration.projections.services_harness import ServicesHarness, unique_prefix
from tests.projection_support import add_to_tally, append_tally_events, tallies, tally_doc

pytestmark = pytest.mark.integration

REDIS = "redis://127.0.0.1:6379/0"
REPO = Path(__file__).resolve().parents[3]


async def _harness(
    dsn: str, kafka_topic_prefix: str, redis_key_prefix: str, partitions: int
) -> tuple[ServicesHarness, str]:
    key_prefix = unique_prefix(redis_key_prefix)
    harness = ServicesHarness(
        await PostgresEventStore.connect(dsn),
        await RedisDocumentSink.connect(REDIS, key_prefix=key_prefix),
        await PostgresDeadLetterStore.connect(dsn),
        dsn,
        unique_prefix(kafka_topic_prefix),
        partitions,
    )
    return harness, key_prefix


async def _close(harness: ServicesHarness) -> None:
    await harness.dead_letters.close()
    await harness.sink.close()
    await harness.store.close()


@pytest.fixture
async def twelve_partitions(
    fresh_postgres_dsn: str, kafka_topic_prefix: str, redis_key_prefix: str
) -> AsyncIterator[ServicesHarness]:
    harness, _ = await _harness(fresh_postgres_dsn, kafka_topic_prefix, redis_key_prefix, 12)
    yield harness
    await _close(harness)


class RecordingSink:
    """Delegates to a real sink and records, per tally document, the versions it was asked to
    write, in the order the writes reached the sink."""

    def __init__(self, sink: ReadModelSink, log: dict[str, list[int]]) -> None:
        self._sink = sink
        self._log = log

    def __getattr__(self, name: str) -> object:
        return getattr(self._sink, name)

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        await self._sink.apply(projection, target, writes, checkpoints)
        for write in writes:
            operation = write.operation
            if isinstance(operation, SetFields) and operation.doc.startswith("tally:"):
                self._log.setdefault(operation.doc, []).append(operation.fields["version"])


async def test_ten_thousand_events_over_500_streams_apply_in_version_order_per_stream(
    twelve_partitions: ServicesHarness,
) -> None:
    harness = twelve_partitions
    projection = tallies(name="ordered")
    streams = await append_tally_events(
        harness.store, harness.tenant, streams=500, events_per_stream=20
    )
    applied: dict[str, list[int]] = {}
    stop = asyncio.Event()
    relay = harness.relay(projection)
    workers = [
        await harness.worker(projection, RecordingSink(harness.sink, applied))  # type: ignore[arg-type]
        for _ in range(3)
    ]
    tasks = [asyncio.create_task(relay.run(stop))]
    tasks += [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        await caught_up(harness, projection, within=120)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    assert sum(w.counters.events for w in workers) >= 10_000
    assert sum(1 for w in workers if w.counters.events) >= 2, "the partitions were not shared"
    for stream in streams:
        seen = applied[tally_doc(stream)]
        first_occurrences = list(dict.fromkeys(seen))
        assert first_occurrences == list(range(1, 21)), (stream, seen)
        # A redelivery (after a rebalance) repeats versions already applied, never skips back.
        for index, version in enumerate(seen):
            assert version in first_occurrences[: first_occurrences.index(version) + 1]
            del index
    await assert_verified(harness, projection)


def _spawn(command: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "worker", *command.split()],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_kill_9_of_relay_and_projector_twenty_times_under_writes_loses_nothing(
    fresh_postgres_dsn: str,
    kafka_topic_prefix: str,
    redis_key_prefix: str,
    tmp_path: Path,
) -> None:
    harness, key_prefix = await _harness(
        fresh_postgres_dsn, kafka_topic_prefix, redis_key_prefix, 4
    )
    projection = tallies()
    env = {
        "MERCATO_PROFILE": "services",
        "MERCATO_POSTGRES_DSN": fresh_postgres_dsn,
        "MERCATO_KAFKA_TOPIC_PREFIX": harness.partitioning.kafka_topic_prefix or "",
        "MERCATO_KAFKA_PARTITIONS": "4",
        "MERCATO_REDIS_KEY_PREFIX": key_prefix,
        "MERCATO_EXTRA_PROJECTIONS": "tests.projection_support:tallies",
        "MERCATO_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "workers.log"
    streams = await append_tally_events(
        harness.store, harness.tenant, streams=50, events_per_stream=4
    )
    versions = dict.fromkeys(streams, 4)
    rng = random.Random(20)

    async def write(stop: asyncio.Event) -> None:
        while not stop.is_set():
            stream = rng.choice(streams)
            await add_to_tally(harness.store, harness.tenant, stream, versions[stream], 1)
            versions[stream] += 1
            await asyncio.sleep(0.01)

    processes = {
        "relay": _spawn("relay", env, log),
        "projector": _spawn("projector tallies", env, log),
    }
    kills = 0
    try:
        async with running(write):
            while kills < 20:
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                victim = rng.choice(sorted(processes))
                processes[victim].send_signal(signal.SIGKILL)
                processes[victim].wait()
                kills += 1
                command = "relay" if victim == "relay" else "projector tallies"
                processes[victim] = _spawn(command, env, log)
        await caught_up(harness, projection, within=120)
        await assert_verified(harness, projection)
        entries = await live_entries(harness, projection)
        for stream in streams:
            assert entries[(tally_doc(stream), "field", "version")].value == versions[stream]
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
        await _close(harness)
    assert kills == 20


async def test_a_projector_serves_metrics_and_exits_0_soon_after_sigterm(
    fresh_postgres_dsn: str, kafka_topic_prefix: str, redis_key_prefix: str, tmp_path: Path
) -> None:
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "MERCATO_PROFILE": "services",
        "MERCATO_POSTGRES_DSN": fresh_postgres_dsn,
        "MERCATO_KAFKA_TOPIC_PREFIX": unique_prefix(kafka_topic_prefix),
        "MERCATO_KAFKA_PARTITIONS": "2",
        "MERCATO_REDIS_KEY_PREFIX": unique_prefix(redis_key_prefix),
        "MERCATO_EXTRA_PROJECTIONS": "tests.projection_support:tallies",
    }
    log = tmp_path / "projector.log"
    process = _spawn(f"projector tallies --metrics-port {port}", env, log)
    try:
        body = ""
        lag_line = 'mercato_projection_lag_events{projection="tallies"} 0.0'
        async with httpx.AsyncClient() as client:
            for _ in range(200):  # until the server answers and the first status is in
                with contextlib.suppress(httpx.TransportError):
                    body = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                    if lag_line in body:
                        break
                await asyncio.sleep(0.1)
        assert "# HELP mercato_projection_lag_events" in body, log.read_text()
        assert lag_line in body, body
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
