"""The workers as real processes: `mercato worker sagas --metrics-port` serves the saga gauges
(instances by saga and status, deadlines pending), and `mercato worker projector` refuses, in
one line, an analytics projection whose ClickHouse engine is chdb (it lives in the API)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.settings import load_settings
from interfaces.bootstrap import Container, bootstrap
from projections.definition import Projection
from tests.e2e.test_worker_sagas import REPOSITORY, ended, place_an_order, worker_environment
from tests.projection_support import tallies

pytestmark = pytest.mark.e2e

PATIENCE = 60.0
STOP_WITHIN = 15.0


@pytest.fixture
async def shop(fresh_postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Container]:
    """This process's view of the marketplace: the services profile, which runs no sagas."""
    settings = load_settings(profile="services", data_dir=tmp_path, postgres_dsn=fresh_postgres_dsn)
    container = bootstrap(settings)
    await container.start()
    try:
        yield container
    finally:
        await container.close()


def analytics_tallies() -> Projection:
    """The tallies projection, kept in the analytics store (`MERCATO_EXTRA_PROJECTIONS`)."""
    return dataclasses.replace(tallies(name="analytics_tallies"), sink="analytics")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def start_worker(
    environment: dict[str, str], cwd: Path, log: Path, *arguments: str
) -> asyncio.subprocess.Process:
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "interfaces.cli.main", "worker", *arguments),
            env=environment | {"PYTHONPATH": str(REPOSITORY)},
            cwd=cwd,  # a folder without a .env file
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )


def output_of(log: Path) -> str:
    return log.read_text()


def saga_gauges(text: str) -> dict[tuple[str, ...], float]:
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mercato_saga_instances":
                found[(sample.labels["saga"], sample.labels["state"])] = sample.value
            elif sample.name == "mercato_saga_deadlines_pending":
                found[("deadlines pending",)] = sample.value
    return found


async def test_the_saga_worker_serves_sagas_by_status_and_deadlines_pending(
    shop: Container, fresh_postgres_dsn: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    port = free_port()
    environment = worker_environment(tmp_path, profile="services", postgres_dsn=fresh_postgres_dsn)
    worker = await start_worker(environment, tmp_path, log, "sagas", "--metrics-port", str(port))
    # Delivered and waiting for the buyer: checkout completed, the escrow waits for the dispute
    # window, the one deadline pending (the payment deadline was dropped on capture).
    resting = {
        ("checkout", "completed"): 1.0,
        ("escrow", "awaiting_confirmation"): 1.0,
        ("deadlines pending",): 1.0,
    }
    gauges: dict[tuple[str, ...], float] = {}
    try:
        await place_an_order(shop)
        async with httpx.AsyncClient() as http, asyncio.timeout(PATIENCE):
            while not resting.items() <= gauges.items():
                assert worker.returncode is None, output_of(log)
                with contextlib.suppress(httpx.TransportError):
                    scrape = await http.get(f"http://127.0.0.1:{port}/metrics")
                    gauges = saga_gauges(scrape.text)
                await asyncio.sleep(0.2)
        assert all(gauges[status] == 0 for status in gauges.keys() - resting.keys()), gauges

        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_WITHIN):
            status = await worker.wait()
    finally:
        await ended(worker)
    assert status == 0, output_of(log)


async def test_a_projector_refuses_an_analytics_projection_when_clickhouse_is_chdb(
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    environment = worker_environment(
        tmp_path,
        profile="services",
        clickhouse_url=f"chdb://{tmp_path / 'clickhouse'}",
        extra_projections="tests.e2e.test_worker_telemetry:analytics_tallies",
    )
    worker = await start_worker(environment, tmp_path, log, "projector", "analytics_tallies")
    try:
        async with asyncio.timeout(PATIENCE):
            status = await worker.wait()
    finally:
        await ended(worker)
    output = output_of(log).strip()
    assert status == 2, output
    assert output.count("\n") == 0, output
    assert output.startswith("error: projection analytics_tallies writes to the analytics store")
    assert "`mercato serve` runs the analytics projections itself" in output
    assert not (tmp_path / "clickhouse").exists()  # it opened nothing
