"""`mercato worker sagas` as a real process: on the services profile it runs the sagas of an
order placed by another process, and stops on SIGTERM with exit status 0; on the embedded
profile it refuses."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from application.commerce.commands import (
    CreateProduct,
    OrderLineRequest,
    PlaceOrder,
    Price,
    PublishProduct,
)
from application.context import Actor, CommandContext
from domain.account import Role
from domain.order import Order, OrderStatus
from infrastructure.settings import load_settings
from interfaces.bootstrap import Container, bootstrap

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
PATIENCE = 30.0
"""Seconds to wait for the worker to start and move the order (it imports, then connects)."""
STOP_WITHIN = 10.0


def worker_environment(data_dir: Path, **variables: str) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("MERCATO_")
    }
    environment |= {"MERCATO_DATA_DIR": str(data_dir), "MERCATO_LOG_LEVEL": "INFO"}
    environment |= {f"MERCATO_{name.upper()}": value for name, value in variables.items()}
    return environment


async def start_worker(
    environment: dict[str, str], cwd: Path, log: Path
) -> asyncio.subprocess.Process:
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "interfaces.cli.main",
            "worker",
            "sagas",
            env=environment | {"PYTHONPATH": str(REPOSITORY)},
            cwd=cwd,  # a folder without a .env file
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )


async def ended(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


@pytest.fixture
async def shop(fresh_postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Container]:
    """This process's view of the marketplace: the services profile, which runs no sagas."""
    container = bootstrap(
        load_settings(profile="services", data_dir=tmp_path, postgres_dsn=fresh_postgres_dsn)
    )
    await container.start()
    try:
        yield container
    finally:
        await container.close()


async def place_an_order(container: Container) -> tuple[UUID, str]:
    tenant = f"tenant-{uuid4().hex[:8]}"
    creator = CommandContext(Actor(uuid4(), tenant, frozenset({Role.CREATOR})))
    buyer = CommandContext(Actor(uuid4(), tenant, frozenset({Role.BUYER})))
    marketplace = container.marketplace
    created = await marketplace.dispatch(
        CreateProduct(
            title="Loops", kind="track", price=Price(amount=500, currency="EUR"), stock=3
        ),
        creator,
    )
    product_id = UUID(created.stream_id)
    await marketplace.dispatch(PublishProduct(product_id=product_id), creator)
    placed = await marketplace.dispatch(
        PlaceOrder(lines=(OrderLineRequest(product_id=product_id, quantity=1),)), buyer
    )
    return UUID(placed.stream_id), tenant


PAST_RESERVATION = frozenset(
    {
        OrderStatus.PAYMENT_REQUESTED,
        OrderStatus.PAID,
        OrderStatus.CONFIRMED,
        OrderStatus.DELIVERED,
    }
)


async def until_past_reservation(
    container: Container, order_id: UUID, tenant: str, worker: asyncio.subprocess.Process
) -> OrderStatus:
    """Poll the store until the worker's checkout saga has reserved the stock and moved on."""
    async with asyncio.timeout(PATIENCE):
        while True:
            assert worker.returncode is None, f"the worker exited with {worker.returncode}"
            order = await container.marketplace.repository.get(Order, order_id, tenant_id=tenant)
            assert order.status is not OrderStatus.CANCELLED
            if order.status in PAST_RESERVATION:
                return order.status
            await asyncio.sleep(0.05)


async def test_the_worker_runs_the_sagas_and_stops_on_sigterm(
    shop: Container, fresh_postgres_dsn: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    environment = worker_environment(tmp_path, profile="services", postgres_dsn=fresh_postgres_dsn)
    worker = await start_worker(environment, tmp_path, log)
    try:
        order_id, tenant = await place_an_order(shop)
        # Only the worker can move the order: this process runs no sagas. The signal comes
        # while its sagas are likely still at work (payment, escrow, delivery).
        await until_past_reservation(shop, order_id, tenant, worker)

        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_WITHIN):
            status = await worker.wait()
    finally:
        await ended(worker)

    output = log.read_text()
    assert status == 0, output
    assert "saga worker started: profile services, runner group sagas" in output
    assert "saga worker stopped: profile services, runner group sagas" in output
    assert "saga worker failed" not in output, output


async def test_sigint_stops_an_idle_worker_cleanly(fresh_postgres_dsn: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    environment = worker_environment(tmp_path, profile="services", postgres_dsn=fresh_postgres_dsn)
    worker = await start_worker(environment, tmp_path, log)
    try:
        async with asyncio.timeout(PATIENCE):
            while "saga worker started" not in log.read_text():
                assert worker.returncode is None, log.read_text()
                await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGINT)
        async with asyncio.timeout(STOP_WITHIN):
            status = await worker.wait()
    finally:
        await ended(worker)
    output = log.read_text()
    assert status == 0, output
    assert "saga worker stopped" in output
    assert "Traceback" not in output, output


async def test_the_worker_refuses_the_embedded_profile_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = await start_worker(worker_environment(tmp_path, profile="embedded"), tmp_path, log)
    try:
        async with asyncio.timeout(PATIENCE):
            status = await worker.wait()
    finally:
        await ended(worker)
    output = log.read_text().strip()
    assert status == 2, output
    assert output.count("\n") == 0, output
    assert output.startswith("error: `mercato worker sagas` is for the services profile")
    assert "`mercato serve` runs the sagas in its own process" in output
    assert not (tmp_path / "events.sqlite3").exists()  # it opened nothing
