"""A marketplace under test: real stores of one profile, the provider simulator, saga runners,
a manual clock, and the steps and checks the scenarios share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from application.commerce.bus import CommandBus
from application.commerce.commands import (
    Command,
    CreateProduct,
    OrderLineRequest,
    PlaceOrder,
    Price,
    PublishProduct,
)
from application.commerce.results import CommandResult
from application.context import Actor, CommandContext
from application.errors import AggregateNotFoundError
from application.marketplace import Marketplace
from application.ports.clock import ManualClock
from application.ports.event_store import EventStore, LogFilter, RecordedEvent
from application.ports.saga_store import SagaStore
from application.sagas.cancellation import cancel_and_wait
from application.sagas.checkout import CheckoutSaga, checkout_saga_id
from application.sagas.escrow import EscrowSaga, escrow_saga_id
from application.sagas.runner import SagaRunner
from domain.account import Role
from domain.escrow import Escrow
from domain.ledger import CurrencyTotals, assert_money_conserved
from domain.order import Order, OrderStatus
from domain.payment import Payment
from domain.product import Product
from domain.wallet import Wallet
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.eventstore.sqlite import SqliteEventStore
from infrastructure.payments.simulator import PaymentSimulator
from infrastructure.sagas.postgres import PostgresSagaStore
from infrastructure.sagas.sqlite import SqliteSagaStore

T = TypeVar("T")
TAggregate = TypeVar("TAggregate", bound=Aggregate)

PATIENCE = 30.0
"""Seconds a scenario waits for the sagas before it fails."""
PRICE = 1_000
FEE_BPS = 1_000


async def open_stores(profile: str, location: str) -> tuple[EventStore, SagaStore]:
    """The event store and saga store of a profile: SQLite files in a folder, or a database."""
    if profile == "sqlite":
        folder = Path(location)
        return (
            await SqliteEventStore.open(folder / "events.sqlite3", poll_interval=0.05),
            await SqliteSagaStore.open(folder / "sagas.sqlite3"),
        )
    return (
        await PostgresEventStore.connect(location, min_size=2, max_size=12, poll_interval=0.1),
        await PostgresSagaStore.connect(location),
    )


@dataclass
class Shop:
    marketplace: Marketplace
    psp: PaymentSimulator
    clock: ManualClock
    tenant: str = field(default_factory=lambda: f"tenant-{uuid4().hex[:8]}")
    runners: list[tuple[SagaRunner, asyncio.Task[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.creator = self.actor(Role.CREATOR)
        self.admin = self.actor(Role.ADMIN)

    # -- people ----------------------------------------------------------------------------

    def actor(self, *roles: Role) -> Actor:
        return Actor(account_id=uuid4(), tenant_id=self.tenant, roles=frozenset(roles))

    def buyer(self) -> Actor:
        return self.actor(Role.BUYER)

    async def send(
        self, command: Command, actor: Actor, *, key: str | None = None
    ) -> CommandResult:
        return await self.marketplace.dispatch(command, CommandContext(actor, key))

    # -- runners ---------------------------------------------------------------------------

    def start_runner(self, *, bus: CommandBus | None = None, **options: Any) -> SagaRunner:
        options = {"poll_interval": 0.02, "retry_delay": 0.05, **options}
        runner = self.marketplace.saga_runner(bus=bus, **options)
        self.runners.append((runner, asyncio.create_task(runner.run())))
        return runner

    async def kill(self, runner: SagaRunner) -> None:
        """Cancel the runner's task wherever it is, as a crash or a deploy would stop it."""
        for entry in list(self.runners):
            if entry[0] is runner:
                await cancel_and_wait(entry[1])
                self.runners.remove(entry)

    async def stop(self) -> None:
        for runner, _ in list(self.runners):
            await self.kill(runner)

    # -- the catalogue and orders ------------------------------------------------------------

    async def product(self, *, stock: int | None = 10, price: int = PRICE) -> UUID:
        result = await self.send(
            CreateProduct(
                title=f"Sample pack {uuid4().hex[:6]}",
                kind="sample_pack",
                price=Price(amount=price, currency="EUR"),
                stock=stock,
            ),
            self.creator,
        )
        product_id = UUID(result.stream_id)
        await self.send(PublishProduct(product_id=product_id), self.creator)
        return product_id

    async def place(self, buyer: Actor, *lines: tuple[UUID, int]) -> UUID:
        command = PlaceOrder(
            lines=tuple(OrderLineRequest(product_id=p, quantity=q) for p, q in lines)
        )
        return UUID((await self.send(command, buyer, key=f"place-{uuid4()}")).stream_id)

    # -- reading ---------------------------------------------------------------------------

    async def get(self, aggregate_type: type[TAggregate], aggregate_id: UUID) -> TAggregate:
        return await self.marketplace.repository.get(
            aggregate_type, aggregate_id, tenant_id=self.tenant
        )

    async def find(self, aggregate_type: type[TAggregate], aggregate_id: UUID) -> TAggregate | None:
        with contextlib.suppress(AggregateNotFoundError):
            return await self.get(aggregate_type, aggregate_id)
        return None

    async def get_product(self, product_id: UUID) -> Product:
        return await self.get(Product, product_id)

    async def order(self, order_id: UUID) -> Order:
        return await self.get(Order, order_id)

    async def checkout(self, order_id: UUID) -> CheckoutSaga:
        return await self.get(CheckoutSaga, checkout_saga_id(order_id))

    async def escrow_saga(self, order_id: UUID) -> EscrowSaga:
        return await self.get(EscrowSaga, escrow_saga_id(order_id))

    async def events_of(self, stream_id: UUID) -> list[str]:
        """The stream's event names (`Placed`, `StockReserved`, …), in order."""
        events = await self.marketplace.store.read_stream(str(stream_id))
        return [event.type.rsplit(".", 1)[-1] for event in events]

    async def tenant_log(self) -> list[RecordedEvent]:
        return await self.marketplace.store.read_all(
            0, limit=1_000_000, log_filter=LogFilter(tenant_id=self.tenant)
        )

    # -- waiting ---------------------------------------------------------------------------

    async def until(
        self, check: Callable[[], Awaitable[T | None]], *, what: str, within: float = PATIENCE
    ) -> T:
        """Poll `check` until it returns something other than None/False; fail after `within`."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            with contextlib.suppress(AggregateNotFoundError):
                value = await check()
                if value:
                    return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"gave up after {within}s waiting until {what}")
            await asyncio.sleep(0.02)

    async def until_order(self, order_id: UUID, *statuses: OrderStatus) -> Order:
        async def reached() -> Order | None:
            order = await self.order(order_id)
            return order if order.status in statuses else None

        return await self.until(reached, what=f"order {order_id} is {'/'.join(statuses)}")

    async def until_checkout(self, order_id: UUID, *statuses: str) -> CheckoutSaga:
        async def reached() -> CheckoutSaga | None:
            saga = await self.checkout(order_id)
            return saga if saga.status in statuses else None

        return await self.until(reached, what=f"checkout of {order_id} is {'/'.join(statuses)}")

    async def until_escrow_saga(self, order_id: UUID, *statuses: str) -> EscrowSaga:
        async def reached() -> EscrowSaga | None:
            saga = await self.escrow_saga(order_id)
            return saga if saga.status in statuses else None

        return await self.until(reached, what=f"escrow saga of {order_id} is {'/'.join(statuses)}")

    async def advance(self, delta: timedelta) -> None:
        """Move time on; the runners' timer loops and the provider notice at their next poll."""
        self.clock.advance(delta)

    # -- money -----------------------------------------------------------------------------

    async def money(self) -> dict[str, CurrencyTotals]:
        """Where the tenant's money is, after checking it is conserved, and that what the
        platform received is what the provider says it collected."""
        log = await self.tenant_log()

        def ids_of(aggregate_type: type[Aggregate]) -> set[UUID]:
            prefix = get_topic(aggregate_type) + "."
            return {UUID(event.stream_id) for event in log if event.type.startswith(prefix)}

        totals = assert_money_conserved(
            wallets=[await self.get(Wallet, i) for i in ids_of(Wallet)],
            escrows=[await self.get(Escrow, i) for i in ids_of(Escrow)],
            payments=[await self.get(Payment, i) for i in ids_of(Payment)],
        )
        received = {currency: t.received for currency, t in totals.items() if t.received}
        assert received == self.psp.net_collected()
        return totals


@contextlib.asynccontextmanager
async def open_shop(profile: str, location: str) -> AsyncIterator[Shop]:
    store, saga_store = await open_stores(profile, location)
    clock = ManualClock()
    psp = PaymentSimulator(clock, poll_interval=0.01)
    marketplace = Marketplace(store, saga_store, psp, clock, platform_fee_bps=FEE_BPS)
    psp.connect(marketplace.webhooks.handle)
    await psp.start()
    shop = Shop(marketplace, psp, clock)
    try:
        yield shop
    finally:
        await shop.stop()
        await psp.close()
        await saga_store.close()
        await store.close()
