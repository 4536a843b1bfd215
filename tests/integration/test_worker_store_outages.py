"""A projector outlives its store's outages: a real `mercato worker projector` process whose Redis
is reached through an `OutageProxy` keeps running while Redis refuses connections and while it
is silent (each longer than the window in which it used to exit with status 1), says in its log
and its `/metrics` that it is waiting, and once Redis is back catches up with nothing lost —
`verify` finds the read model equal to the log — and still stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from application.ports.event_store import EventStore
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.projections.dead_letters_postgres import PostgresDeadLetterStore
from infrastructure.read_models.redis_documents import RedisDocumentSink
from tests.contract.projection_runtime_contract import assert_verified, caught_up, running
from tests.integration.projections.services_harness import ServicesHarness, unique_prefix
from tests.integration.test_worker_shutdown import (
    PROJECTOR_COMMAND,
    REDIS,
    REPOSITORY,
    STOP_WITHIN,
    checkpoints_of,
    exit_status,
    output_of,
    until_applying,
)
from tests.outage_proxy import OutageProxy
from tests.projection_support import add_to_tally, append_tally_events, tallies

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 6.0
"""Longer than the worker used to last in a silent partition (it exited twice in 15 s)."""
STORE_TIMEOUT = 0.3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def metric(port: int, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(rf'^{name}\{{projection="tallies"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def keep_writing(
    store: EventStore, tenant: str, versions: dict[str, int], stop: asyncio.Event
) -> None:
    streams = list(versions)
    index = 0
    while not stop.is_set():
        stream = streams[index % len(streams)]
        index += 1
        await add_to_tally(store, tenant, stream, versions[stream], 1)
        versions[stream] += 1
        await asyncio.sleep(0.02)


async def stays_alive(worker: subprocess.Popen[bytes], seconds: float, log: Path) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        assert worker.poll() is None, f"exited with {worker.returncode}:\n{output_of(log)}"
        await asyncio.sleep(0.2)


async def test_a_projector_waits_out_redis_refusing_and_going_silent_and_loses_nothing(
    fresh_postgres_dsn: str, kafka_topic_prefix: str, redis_key_prefix: str, tmp_path: Path
) -> None:
    key_prefix = unique_prefix(redis_key_prefix)
    harness = ServicesHarness(
        await PostgresEventStore.connect(fresh_postgres_dsn),
        await RedisDocumentSink.connect(REDIS, key_prefix=key_prefix),
        await PostgresDeadLetterStore.connect(fresh_postgres_dsn),
        fresh_postgres_dsn,
        unique_prefix(kafka_topic_prefix),
        2,
    )
    projection = tallies()
    metrics_port = free_port()
    log = tmp_path / "projector.log"
    streams = await append_tally_events(
        harness.store, harness.tenant, streams=20, events_per_stream=5
    )
    versions = dict.fromkeys(streams, 5)
    stop_relay = asyncio.Event()
    relay = asyncio.create_task(harness.relay(projection).run(stop_relay))
    with OutageProxy("127.0.0.1", 6379) as proxy:
        env: Mapping[str, str] = {
            "MERCATO_PROFILE": "services",
            "MERCATO_POSTGRES_DSN": fresh_postgres_dsn,
            "MERCATO_KAFKA_TOPIC_PREFIX": harness.partitioning.kafka_topic_prefix or "",
            "MERCATO_KAFKA_PARTITIONS": "2",
            "MERCATO_REDIS_URL": proxy.url("redis", "/0"),
            "MERCATO_REDIS_KEY_PREFIX": key_prefix,
            "MERCATO_READ_STORE_TIMEOUT": str(STORE_TIMEOUT),
            "MERCATO_EXTRA_PROJECTIONS": "tests.projection_support:tallies",
            "MERCATO_LOG_LEVEL": "INFO",
        }
        worker = spawn_projector_with_metrics(env, log, metrics_port)
        try:
            await until_applying(harness, worker, beyond={})
            for outage in (proxy.refuse, proxy.silence):
                before = await checkpoints_of(harness)
                outage()
                writing = running(
                    lambda stop: keep_writing(harness.store, harness.tenant, versions, stop)
                )
                async with writing:
                    await stays_alive(worker, OUTAGE_SECONDS, log)
                assert await metric(metrics_port, "mercato_projection_stalled") == 1
                proxy.heal()
                await until_applying(harness, worker, beyond=before)
                await caught_up(harness, projection, within=60)
                await stays_alive(worker, 0.5, log)
                assert await metric(metrics_port, "mercato_projection_stalled") == 0

            assert await metric(metrics_port, "mercato_projection_store_errors_total") >= 2
            await assert_verified(harness, projection)
            waited = output_of(log)
            assert "projection tallies is waiting on its stores" in waited, waited
            assert "projection tallies resumed" in waited, waited
            assert "Traceback" not in waited, waited

            worker.send_signal(signal.SIGTERM)
            assert await exit_status(worker, STOP_WITHIN) == 0, output_of(log)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
            stop_relay.set()
            await asyncio.wait_for(relay, 30)
            await harness.dead_letters.close()
            await harness.sink.close()
            await harness.store.close()


def spawn_projector_with_metrics(
    env: Mapping[str, str], log: Path, port: int
) -> subprocess.Popen[bytes]:
    """`mercato worker projector tallies --metrics-port PORT`, logging to `log`."""
    metrics = ("--metrics-port", str(port))
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", *PROJECTOR_COMMAND, *metrics],
            cwd=REPOSITORY,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
