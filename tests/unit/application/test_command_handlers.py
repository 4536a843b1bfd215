"""Command handlers and the command bus, on a SQLite store in tmp_path (no saga runs here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.commerce.bus import CommandBus
from application.commerce.commands import (
    CancelOrder,
    ChangePrice,
    Command,
    CreateProduct,
    OrderLineRequest,
    PlaceOrder,
    Price,
    PublishProduct,
    ResolveDispute,
    UpdateProduct,
)
from application.commerce.process_commands import MarkStockReserved, RequestPayment, ReserveStock
from application.commerce.results import CommandResult
from application.commerce.services import Services
from application.context import Actor, CommandContext
from application.errors import AggregateNotFoundError
from application.marketplace import Marketplace
from application.ports.clock import ManualClock
from application.ports.event_store import ConcurrencyError, IdempotencyKeyReusedError
from application.ports.payment_gateway import InvalidWebhookError
from domain.account import Role
from domain.dispute import Resolution
from domain.errors import Forbidden, IllegalTransition, MissingRole, NotOwner
from domain.ids import payment_id_for
from domain.order import Order, OrderStatus
from domain.payment import Payment, PaymentStatus
from domain.product import Product
from infrastructure.eventstore.sqlite import SqliteEventStore
from infrastructure.payments.simulator import PaymentSimulator
from infrastructure.sagas.sqlite import SqliteSagaStore

pytestmark = pytest.mark.integration

TENANT = "tenant-1"


def actor(*roles: Role, tenant: str = TENANT) -> Actor:
    return Actor(account_id=uuid4(), tenant_id=tenant, roles=frozenset(roles))


CREATOR, BUYER, ADMIN = actor(Role.CREATOR), actor(Role.BUYER), actor(Role.ADMIN)


@pytest.fixture
async def marketplace(tmp_path: Path) -> AsyncIterator[Marketplace]:
    store = await SqliteEventStore.open(tmp_path / "events.sqlite3")
    saga_store = await SqliteSagaStore.open(tmp_path / "sagas.sqlite3")
    clock = ManualClock()
    yield Marketplace(store, saga_store, PaymentSimulator(clock), clock)
    await saga_store.close()
    await store.close()


async def send(
    marketplace: Marketplace, command: Command, who: Actor, key: str | None = None
) -> CommandResult:
    return await marketplace.dispatch(command, CommandContext(who, key))


def a_product(**changes: Any) -> CreateProduct:
    fields: dict[str, Any] = {
        "title": "Loops",
        "kind": "track",
        "price": Price(amount=900, currency="EUR"),
        "stock": 10,
        **changes,
    }
    return CreateProduct(**fields)


async def published_product(marketplace: Marketplace, **changes: Any) -> UUID:
    product_id = UUID((await send(marketplace, a_product(**changes), CREATOR)).stream_id)
    await send(marketplace, PublishProduct(product_id=product_id), CREATOR)
    return product_id


def an_order(product_id: UUID, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder(lines=(OrderLineRequest(product_id=product_id, quantity=quantity),))


async def load(marketplace: Marketplace, aggregate_type: type[Any], aggregate_id: UUID) -> Any:
    return await marketplace.repository.get(aggregate_type, aggregate_id, tenant_id=TENANT)


# -- products ------------------------------------------------------------------------------


async def test_a_creator_creates_a_product_they_own(marketplace: Marketplace) -> None:
    result = await send(marketplace, a_product(), CREATOR)

    product = await load(marketplace, Product, UUID(result.stream_id))
    assert (product.creator_id, product.title, result.stream_version) == (
        CREATOR.account_id,
        "Loops",
        1,
    )
    assert result.position == await marketplace.store.head_position()


async def test_an_account_without_the_creator_role_cannot_create_products(
    marketplace: Marketplace,
) -> None:
    with pytest.raises(MissingRole):
        await send(marketplace, a_product(), BUYER)


async def test_only_the_creator_of_a_product_may_change_its_price(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace)
    rival = actor(Role.CREATOR)

    with pytest.raises(NotOwner):
        await send(
            marketplace,
            ChangePrice(product_id=product_id, price=Price(amount=1, currency="EUR")),
            rival,
        )


async def test_an_edit_made_against_a_stale_version_is_a_conflict_and_changes_nothing(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace)  # version 2
    edit = UpdateProduct(product_id=product_id, title="Loops II", expected_version=1)

    with pytest.raises(ConcurrencyError) as conflict:
        await send(marketplace, edit, CREATOR)

    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert (await load(marketplace, Product, product_id)).title == "Loops"
    current = edit.model_copy(update={"expected_version": 2})
    assert (await send(marketplace, current, CREATOR)).stream_version == 3


async def test_a_repeated_command_returns_its_first_result_and_appends_nothing(
    marketplace: Marketplace,
) -> None:
    first = await send(marketplace, a_product(), CREATOR, key="create-loops")
    head = await marketplace.store.head_position()

    again = await send(marketplace, a_product(), CREATOR, key="create-loops")

    assert again.replayed and not first.replayed
    assert (again.stream_id, again.position) == (first.stream_id, first.position)
    assert await marketplace.store.head_position() == head


async def test_a_key_reused_for_the_same_command_with_another_body_is_refused(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace)
    await send(marketplace, an_order(product_id, 1), BUYER, key="k")

    with pytest.raises(IdempotencyKeyReusedError):
        await send(marketplace, an_order(product_id, 2), BUYER, key="k")


async def test_a_key_belongs_to_one_command_type_so_another_command_may_use_it_too(
    marketplace: Marketplace,
) -> None:
    # Keys are scoped per caller and command type (`application.context`): a cancel under
    # the key of an earlier order is a first cancel, not a clash with the order.
    product_id = await published_product(marketplace)
    await send(marketplace, an_order(product_id, 1), BUYER, key="k")
    order_id = UUID((await send(marketplace, an_order(product_id, 2), BUYER)).stream_id)

    cancelled = await send(marketplace, CancelOrder(order_id=order_id), BUYER, key="k")

    assert (cancelled.replayed, cancelled.stream_id) == (False, str(order_id))


async def test_a_repeated_order_gets_its_first_result_after_the_order_moved_on(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace)
    placed = await send(marketplace, an_order(product_id), BUYER, key="order-1")
    await send(marketplace, CancelOrder(order_id=UUID(placed.stream_id)), BUYER)

    again = await send(marketplace, an_order(product_id), BUYER, key="order-1")

    assert (again.replayed, again.stream_id, again.stream_version) == (True, placed.stream_id, 1)


async def test_commands_of_another_tenant_cannot_find_the_product(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace)
    stranger = actor(Role.BUYER, tenant="tenant-2")

    with pytest.raises(AggregateNotFoundError):
        await send(marketplace, an_order(product_id), stranger)


# -- orders --------------------------------------------------------------------------------


async def test_an_order_is_priced_at_the_products_current_price(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace)
    await send(
        marketplace,
        ChangePrice(product_id=product_id, price=Price(amount=1250, currency="EUR")),
        CREATOR,
    )

    result = await send(marketplace, an_order(product_id, 3), BUYER)

    order = await load(marketplace, Order, UUID(result.stream_id))
    assert (order.total.amount, order.seller_id, order.buyer_id) == (
        3750,
        CREATOR.account_id,
        BUYER.account_id,
    )


async def test_an_unpublished_product_cannot_be_ordered(marketplace: Marketplace) -> None:
    product_id = UUID((await send(marketplace, a_product(), CREATOR)).stream_id)

    with pytest.raises(IllegalTransition):
        await send(marketplace, an_order(product_id), BUYER)


async def test_only_the_buyer_may_cancel_an_order(marketplace: Marketplace) -> None:
    product_id = await published_product(marketplace)
    order_id = UUID((await send(marketplace, an_order(product_id), BUYER)).stream_id)

    with pytest.raises(NotOwner):
        await send(marketplace, CancelOrder(order_id=order_id), actor(Role.BUYER))
    await send(marketplace, CancelOrder(order_id=order_id), BUYER)
    assert (await load(marketplace, Order, order_id)).status is OrderStatus.CANCELLED


async def test_the_commands_of_the_sagas_are_refused_to_people(marketplace: Marketplace) -> None:
    product_id = await published_product(marketplace)

    with pytest.raises(Forbidden):
        await send(
            marketplace, ReserveStock(product_id=product_id, order_id=uuid4(), quantity=1), ADMIN
        )


async def test_only_an_admin_resolves_disputes(marketplace: Marketplace) -> None:
    with pytest.raises(MissingRole):
        await send(
            marketplace, ResolveDispute(order_id=uuid4(), resolution=Resolution.REFUND), BUYER
        )


# -- retries on version conflicts ----------------------------------------------------------


async def test_reservations_racing_on_one_product_are_retried_until_each_lands(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace, stock=20)
    system = CommandContext(Actor.system(TENANT))

    await asyncio.gather(
        *(
            marketplace.dispatch(
                ReserveStock(product_id=product_id, order_id=uuid4(), quantity=1), system
            )
            for _ in range(20)
        )
    )

    product = await load(marketplace, Product, product_id)
    assert (product.reserved, product.available) == (20, 0)


class Conflicting:
    """A handler that always loses the race."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, command: Any, context: Any, services: Services) -> CommandResult:
        self.calls += 1
        raise ConcurrencyError("stream", 1, 2)


async def test_a_retried_command_gives_up_after_its_bounded_attempts(
    marketplace: Marketplace,
) -> None:
    handler = Conflicting()
    bus = CommandBus(marketplace.services, handlers={ReserveStock: handler}, attempts=3)
    command = ReserveStock(product_id=uuid4(), order_id=uuid4(), quantity=1)

    with pytest.raises(ConcurrencyError):
        await bus.dispatch(command, CommandContext(Actor.system(TENANT)))

    assert handler.calls == 3


async def test_an_edit_with_an_expected_version_is_never_retried(
    marketplace: Marketplace,
) -> None:
    handler = Conflicting()
    bus = CommandBus(marketplace.services, handlers={UpdateProduct: handler})
    command = UpdateProduct(product_id=uuid4(), title="Loops", expected_version=1)

    with pytest.raises(ConcurrencyError):
        await bus.dispatch(command, CommandContext(CREATOR))

    assert handler.calls == 1


# -- payment webhooks ----------------------------------------------------------------------


async def an_intent(marketplace: Marketplace) -> tuple[UUID, PaymentSimulator]:
    """An order with a payment intent, as the checkout saga would leave it."""
    psp = marketplace.gateway
    assert isinstance(psp, PaymentSimulator)
    product_id = await published_product(marketplace)
    order_id = UUID((await send(marketplace, an_order(product_id), BUYER)).stream_id)
    system = CommandContext(Actor.system(TENANT))
    await marketplace.dispatch(MarkStockReserved(order_id=order_id), system)
    await marketplace.dispatch(RequestPayment(order_id=order_id), system)
    return order_id, psp


async def test_no_payment_is_requested_for_an_order_cancelled_meanwhile(
    marketplace: Marketplace,
) -> None:
    product_id = await published_product(marketplace)
    order_id = UUID((await send(marketplace, an_order(product_id), BUYER)).stream_id)
    system = CommandContext(Actor.system(TENANT))
    await marketplace.dispatch(MarkStockReserved(order_id=order_id), system)
    await send(marketplace, CancelOrder(order_id=order_id), BUYER)

    with pytest.raises(IllegalTransition):
        await marketplace.dispatch(RequestPayment(order_id=order_id), system)

    psp = marketplace.gateway
    assert isinstance(psp, PaymentSimulator)
    assert psp.intents == {}


async def test_the_same_webhook_twice_records_the_capture_once(marketplace: Marketplace) -> None:
    order_id, psp = await an_intent(marketplace)
    deliveries: list[tuple[bytes, str]] = []

    async def capture(body: bytes, signature: str) -> None:
        deliveries.append((body, signature))

    psp.connect(capture)
    await psp.deliver_due()
    [(body, signature)] = deliveries

    first = await marketplace.webhooks.handle(body, signature)
    again = await marketplace.webhooks.handle(body, signature)

    assert (first.appended, again.replayed) == (1, True)
    payment = await load(marketplace, Payment, payment_id_for(order_id))
    assert (payment.status, payment.version) == (PaymentStatus.CAPTURED, 2)


async def test_a_webhook_with_a_bad_signature_is_refused_and_records_nothing(
    marketplace: Marketplace,
) -> None:
    _, psp = await an_intent(marketplace)
    deliveries: list[tuple[bytes, str]] = []

    async def capture(body: bytes, signature: str) -> None:
        deliveries.append((body, signature))

    psp.connect(capture)
    await psp.deliver_due()
    [(body, _)] = deliveries
    head = await marketplace.store.head_position()

    with pytest.raises(InvalidWebhookError):
        await marketplace.webhooks.handle(body, "t=1,v1=" + "0" * 64)

    assert await marketplace.store.head_position() == head
