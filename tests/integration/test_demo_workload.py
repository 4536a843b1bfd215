"""The demo workload drives the real command side, and every order ends as its plan says.

The outcome is read back from the event store (aggregates through the repository, and the
tenant's log), never from read models: the demo exists to feed those, not to be checked by them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic
from typer.testing import CliRunner

from application.errors import AggregateNotFoundError
from application.ports.event_store import LogFilter
from application.repository import Repository
from application.saga_statuses import CheckoutStatus, EscrowSagaStatus
from application.sagas.checkout import CheckoutSaga, checkout_saga_id
from application.sagas.escrow import EscrowSaga, escrow_saga_id
from domain.dispute import Resolution
from domain.escrow import Escrow, EscrowStatus
from domain.ids import escrow_id_for, payment_id_for, wallet_id_for
from domain.ledger import assert_money_conserved
from domain.order import Order, OrderStatus
from domain.payment import Payment, PaymentStatus
from domain.product import Product
from domain.wallet import Wallet
from infrastructure.settings import Settings, load_settings
from interfaces.bootstrap import Container, bootstrap
from interfaces.cli.demo import SimulatorScripts, seed_on_first_start
from interfaces.cli.main import app as mercato
from interfaces.demo.plan import Fate, Plan, WorkloadSpec, demo_id, make_plan
from interfaces.demo.workload import DemoDriver, DemoReport, leading_sagas
from tests.e2e.http_support import CHEAP_ARGON2, call, container_of, embedded_settings, running

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Container]:
    """A container whose sagas run in this test, led by the demo's own runner."""
    container = bootstrap(settings)
    await container.start(background=False)
    try:
        async with leading_sagas(container.marketplace):
            yield container
    finally:
        await container.close()


async def seeded(container: Container, plan: Plan, tenant: str) -> DemoReport:
    driver = DemoDriver(
        container.marketplace,
        container.accounts,
        container.tenants,
        tenant_id=tenant,
        payments=SimulatorScripts(container.payment_simulator),
    )
    return await driver.run(plan)


async def outcome_in_the_store(repository: Repository, plan: Plan, tenant: str) -> dict[int, str]:
    """Each planned order's end as the aggregates tell it, in the words `expected_outcome`
    uses; `refused` when the order was never placed."""

    async def get(aggregate_type: type[Any], aggregate_id: UUID) -> Any:
        return await repository.get(aggregate_type, aggregate_id, tenant_id=tenant)

    outcomes = {}
    for planned in plan.orders:
        order_id = demo_id(tenant, plan.spec.seed, "order", planned.index)
        try:
            order: Order = await get(Order, order_id)
        except AggregateNotFoundError:
            outcomes[planned.index] = "refused"
            continue
        checkout: CheckoutSaga = await get(CheckoutSaga, checkout_saga_id(order_id))
        words = [str(order.status), f"checkout {checkout.status}"]
        if order.status is OrderStatus.CANCELLED:
            words.append(f"because {order.cancellation_reason}")
        else:
            escrow: Escrow = await get(Escrow, escrow_id_for(order_id))
            escrow_saga: EscrowSaga = await get(EscrowSaga, escrow_saga_id(order_id))
            payment: Payment = await get(Payment, payment_id_for(order_id))
            words += [f"escrow {escrow.status}", f"escrow saga {escrow_saga.status}"]
            words += [f"payment {payment.status}", f"resolution {order.resolution}"]
        outcomes[planned.index] = ", ".join(words)
    return outcomes


def expected_outcome(plan: Plan, index: int, tenant: str) -> str:
    planned = plan.orders[index]
    cancelled = f"{OrderStatus.CANCELLED}, checkout {CheckoutStatus.CANCELLED}"
    paid = f"checkout {CheckoutStatus.COMPLETED}"
    settled = f"escrow saga {EscrowSagaStatus.SETTLED}, payment {PaymentStatus.CAPTURED}"
    if planned.fate is Fate.PAYMENT_FAILED:
        return f"{cancelled}, because payment failed: {planned.reason}"
    if planned.fate is Fate.BUYER_CANCELLED:
        return f"{cancelled}, because {planned.reason}"
    if planned.fate is Fate.SOLD_OUT:
        [line] = planned.lines
        product_id = demo_id(tenant, plan.spec.seed, "product", line.product)
        left = units_left(plan, line.product)
        return (
            f"{cancelled}, because product {product_id} has {left} unit(s) available, "
            f"{line.quantity} requested"
        )
    if planned.fate is Fate.UNPUBLISHED:
        return "refused"
    if planned.fate is Fate.COMPLETED:
        return (
            f"{OrderStatus.COMPLETED}, {paid}, escrow {EscrowStatus.RELEASED}, {settled}, "
            "resolution None"
        )
    if planned.fate is Fate.DISPUTE_RELEASED:
        return (
            f"{OrderStatus.COMPLETED}, {paid}, escrow {EscrowStatus.RELEASED}, {settled}, "
            f"resolution {Resolution.RELEASE}"
        )
    return (
        f"{OrderStatus.REFUNDED}, {paid}, escrow {EscrowStatus.REFUNDED}, escrow saga "
        f"{EscrowSagaStatus.REFUNDED}, payment {PaymentStatus.REFUNDED}, "
        f"resolution {Resolution.REFUND}"
    )


def units_left(plan: Plan, product: int) -> int:
    """A limited product's stock once the first wave has bought (only paid orders buy it)."""
    stock = plan.products[product].stock
    assert stock is not None
    sold = sum(
        line.quantity
        for order in plan.first_wave
        for line in order.lines
        if line.product == product
    )
    return stock - sold


async def assert_it_went_to_plan(
    container: Container, plan: Plan, report: DemoReport, tenant: str
) -> None:
    repository = container.marketplace.repository

    # What the demo saw on the log is what the plan says …
    assert report.unexpected == ()
    assert report.orders_by_status == {str(s): n for s, n in plan.expected_statuses().items()}
    # … and the aggregates say so too, order by order.
    outcomes = await outcome_in_the_store(repository, plan, tenant)
    expected = {o.index: expected_outcome(plan, o.index, tenant) for o in plan.orders}
    assert outcomes == expected

    async def get(aggregate_type: type[Any], aggregate_id: UUID) -> Any:
        return await repository.get(aggregate_type, aggregate_id, tenant_id=tenant)

    for planned in plan.products:
        product: Product = await get(
            Product, demo_id(tenant, plan.spec.seed, "product", planned.index)
        )
        assert product.published is not planned.unpublished_after_first_wave
        if planned.stock is not None:
            assert product.stock == units_left(plan, planned.index)
    paid_out = 0
    for seller in plan.sellers:
        wallet_id = wallet_id_for(report.people.sellers[seller.index], seller.currency)
        with contextlib.suppress(AggregateNotFoundError):
            wallet: Wallet = await get(Wallet, wallet_id)
            assert wallet.debited.amount == wallet.credited.amount * seller.payout_percent // 100
            paid_out += wallet.debited.amount
    assert sum(report.paid_out.values()) == paid_out > 0

    totals = await money_in(container, tenant)
    assert all(t.is_conserved for t in totals.values())
    received = {currency: t.received for currency, t in totals.items()}
    assert received == container.payment_simulator.net_collected()


async def money_in(container: Container, tenant: str) -> dict[str, Any]:
    """Where the tenant's money is; `assert_money_conserved` raises if any was made or lost."""
    repository = container.marketplace.repository
    log = await container.event_store.read_all(0, 10_000_000, LogFilter(tenant_id=tenant))

    async def every(aggregate_type: type[Aggregate]) -> list[Any]:
        prefix = get_topic(aggregate_type) + "."
        ids = {event.stream_id for event in log if event.type.startswith(prefix)}
        return [await repository.get(aggregate_type, i, tenant_id=tenant) for i in sorted(ids)]

    return assert_money_conserved(
        wallets=await every(Wallet), escrows=await every(Escrow), payments=await every(Payment)
    )


# -- the tests -------------------------------------------------------------------------------


async def test_an_embedded_demo_ends_every_order_as_planned(tmp_path: Path) -> None:
    plan = make_plan(WorkloadSpec(sellers=3, buyers=10, orders=60, seed=11))
    tenant = f"demo-{uuid4().hex[:8]}"

    async with started(embedded_settings(tmp_path)) as container:
        report = await seeded(container, plan, tenant)
        await assert_it_went_to_plan(container, plan, report, tenant)

    fates = plan.fates()
    assert fates[Fate.PAYMENT_FAILED] == 2 and fates[Fate.BUYER_CANCELLED] == 2
    assert fates[Fate.DISPUTE_RELEASED] == fates[Fate.DISPUTE_REFUNDED] == 1
    assert fates[Fate.SOLD_OUT] == 1 and fates[Fate.UNPUBLISHED] == 1
    assert report.accounts == 14 and report.products == len(plan.products)
    assert report.events_appended > 40 * len(plan.placed)


async def test_a_demo_on_the_services_profile_ends_every_order_as_planned(
    fresh_postgres_dsn: str,
) -> None:
    plan = make_plan(WorkloadSpec(sellers=2, buyers=6, orders=30, seed=5))
    tenant = f"demo-{uuid4().hex[:8]}"
    settings = load_settings(profile="services", postgres_dsn=fresh_postgres_dsn, **CHEAP_ARGON2)

    async with started(settings) as container:
        report = await seeded(container, plan, tenant)
        await assert_it_went_to_plan(container, plan, report, tenant)

    assert set(plan.fates()) == set(Fate)


def test_the_seed_command_prints_its_summary_and_will_not_seed_a_tenant_twice(
    tmp_path: Path,
) -> None:
    cli = CliRunner()
    env = {"MERCATO_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    arguments = ["demo", "seed", "--sellers", "2", "--buyers", "4", "--orders", "20"]

    first = cli.invoke(mercato, arguments, env=env)
    again = cli.invoke(mercato, arguments, env=env)

    assert first.exit_code == 0, first.output
    for line in ("orders completed", "orders cancelled", "orders refunded", "events appended"):
        assert line in first.output
    assert "payment_failed" in first.output and "dispute_refunded" in first.output
    assert again.exit_code == 1
    assert "already has the demo's accounts" in again.output


def test_serve_demo_seeds_an_empty_store_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mercato.demo")
    spec = WorkloadSpec(sellers=2, buyers=4, orders=12, seed=2)
    settings = embedded_settings(tmp_path)

    def with_demo(api: Any) -> None:
        seed_on_first_start(api, spec=spec, tenant="demo")

    with running(settings, prepare=with_demo) as client:
        until_logged(caplog, "demo: seeded tenant")
        placed = call(client, placed_orders, container_of(client))
    with running(settings, prepare=with_demo) as client:
        until_logged(caplog, "no demo seeded")
        assert call(client, placed_orders, container_of(client)) == placed

    assert placed == len(make_plan(spec).placed)
    assert "demo: seeding failed" not in caplog.text


async def placed_orders(container: Container) -> int:
    log = await container.event_store.read_all(0, 1_000_000, LogFilter(tenant_id="demo"))
    return sum(event.type == get_topic(Order) + ".Placed" for event in log)


def until_logged(caplog: pytest.LogCaptureFixture, text: str, *, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while text not in caplog.text:
        assert "demo: seeding failed" not in caplog.text, caplog.text
        assert time.monotonic() < deadline, f"{text!r} was never logged:\n{caplog.text}"
        time.sleep(0.1)
