"""The composition root wires the marketplace on both profiles; embedded runs its sagas itself."""

from __future__ import annotations

import asyncio
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
from application.sagas.cancellation import cancel_and_wait
from domain.account import Role
from domain.order import Order, OrderStatus
from infrastructure.settings import load_settings
from interfaces.bootstrap import Container, bootstrap

pytestmark = pytest.mark.integration


async def order_is_delivered(container: Container) -> None:
    tenant = f"tenant-{uuid4().hex[:8]}"
    creator = CommandContext(Actor(uuid4(), tenant, frozenset({Role.CREATOR})))
    buyer = CommandContext(Actor(uuid4(), tenant, frozenset({Role.BUYER})))
    marketplace = container.marketplace
    created = await marketplace.dispatch(
        CreateProduct(title="Loops", kind="track", price=Price(amount=500, currency="EUR")),
        creator,
    )
    product_id = UUID(created.stream_id)
    await marketplace.dispatch(PublishProduct(product_id=product_id), creator)
    placed = await marketplace.dispatch(
        PlaceOrder(lines=(OrderLineRequest(product_id=product_id, quantity=1),)), buyer
    )
    async with asyncio.timeout(20):
        while True:
            order = await marketplace.repository.get(
                Order, UUID(placed.stream_id), tenant_id=tenant
            )
            if order.status is OrderStatus.DELIVERED:
                return
            await asyncio.sleep(0.05)


async def test_the_embedded_profile_runs_the_sagas_in_its_own_process(tmp_path: Path) -> None:
    container = bootstrap(load_settings(profile="embedded", data_dir=tmp_path))
    await container.start()
    try:
        await order_is_delivered(container)
    finally:
        await container.close()


async def test_the_services_profile_leaves_the_sagas_to_a_worker(fresh_postgres_dsn: str) -> None:
    container = bootstrap(load_settings(profile="services", postgres_dsn=fresh_postgres_dsn))
    await container.start()
    worker = asyncio.create_task(container.marketplace.saga_runner(poll_interval=0.05).run())
    try:
        await order_is_delivered(container)
    finally:
        await cancel_and_wait(worker)
        await container.close()
