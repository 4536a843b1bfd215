"""A saga whose step fails for good is parked; it never stops the others, and a retry resumes it.
A transient failure is waited out instead."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from application.backoff import Backoff
from application.commerce.bus import CommandBus
from application.commerce.commands import CancelOrder, Command, OrderLineRequest, PlaceOrder
from application.commerce.results import CommandResult
from application.context import Actor, CommandContext
from application.ports.saga_store import ParkedSaga, Timer
from application.sagas.checkout import checkout_saga_id
from domain.order import OrderStatus
from infrastructure.payments.simulator import IntentScript
from tests.integration.commerce.support import Shop

pytestmark = pytest.mark.integration

QUICK_BACKOFF = Backoff(first=0.01, cap=0.05)


class BreakableBus(CommandBus):
    """The shop's bus, except that commands about the orders in `broken` raise what is there
    (a bug in a step, say) — or, for `flaky` orders, fail transiently a few times first."""

    def __init__(self, shop: Shop) -> None:
        super().__init__(shop.marketplace.services)
        self.broken: dict[UUID, Exception] = {}
        self.flaky: dict[UUID, int] = {}

    async def dispatch(self, command: Command, context: CommandContext) -> CommandResult:
        order_id = getattr(command, "order_id", None)
        if isinstance(order_id, UUID) and order_id in self.broken:
            raise self.broken[order_id]
        if isinstance(order_id, UUID) and self.flaky.get(order_id, 0) > 0:
            self.flaky[order_id] -= 1
            raise ConnectionRefusedError("the store is restarting")
        return await super().dispatch(command, context)


async def place(shop: Shop, buyer: Actor, product: UUID, order_id: UUID | None = None) -> UUID:
    order_id = order_id or uuid4()
    line = OrderLineRequest(product_id=product, quantity=1)
    await shop.send(PlaceOrder(order_id=order_id, lines=(line,)), buyer, key=f"place-{order_id}")
    return order_id


async def until_parked(shop: Shop, order_id: UUID, *, letters: int = 1) -> ParkedSaga:
    saga_id = str(checkout_saga_id(order_id))

    async def parked() -> ParkedSaga | None:
        found = await shop.marketplace.parked_sagas().find(saga_id, tenant_id=shop.tenant)
        return found if found is not None and found.letters == letters else None

    return await shop.until(parked, what=f"the checkout of {order_id} is parked")


async def test_a_step_failing_for_good_parks_its_saga_while_every_other_tenants_orders_complete(
    idle_shop: Shop,
) -> None:
    shop, bus = idle_shop, BreakableBus(idle_shop)
    other_tenant = dataclasses.replace(shop, tenant=f"tenant-{uuid4().hex[:8]}", runners=[])
    shop.start_runner(bus=bus)
    product, elsewhere = await shop.product(stock=10), await other_tenant.product(stock=10)
    poisoned = uuid4()
    bus.broken[poisoned] = RuntimeError("a bug in a step")

    await place(shop, shop.buyer(), product, poisoned)
    others = [await place(shop, shop.buyer(), product) for _ in range(2)]
    elsewhere_orders = [
        await place(other_tenant, other_tenant.buyer(), elsewhere) for _ in range(2)
    ]

    for order_id in others:
        await shop.until_order(order_id, OrderStatus.DELIVERED)
    for order_id in elsewhere_orders:
        await other_tenant.until_order(order_id, OrderStatus.DELIVERED)
    parked = await until_parked(shop, poisoned)
    assert (parked.saga_type, parked.tenant_id) == ("checkout", shop.tenant)
    assert parked.error == "RuntimeError: a bug in a step"
    assert (await shop.order(poisoned)).status is OrderStatus.PLACED
    assert await shop.marketplace.parked_sagas().parked(tenant_id=other_tenant.tenant) == []

    del bus.broken[poisoned]  # the cause is removed
    outcome = await shop.marketplace.parked_sagas(bus=bus).retry(parked.saga_id)

    # The saga asks for payment while its letters are fed: the capture may arrive before the
    # retry ends, then it waits as a letter too, and this retry feeds it.
    assert outcome.resumed and outcome.fed >= 1
    await shop.until_order(poisoned, OrderStatus.DELIVERED)
    assert await shop.marketplace.parked_sagas().parked() == []
    assert (await shop.get_product(product)).sold == 3


async def test_inputs_arriving_while_a_saga_is_parked_wait_and_are_fed_in_order_on_retry(
    idle_shop: Shop,
) -> None:
    shop, bus = idle_shop, BreakableBus(idle_shop)
    shop.start_runner(bus=bus)
    product, buyer, poisoned = await shop.product(stock=1), shop.buyer(), uuid4()
    bus.broken[poisoned] = ValueError("refused for good")
    await place(shop, buyer, product, poisoned)
    await until_parked(shop, poisoned)

    await shop.send(CancelOrder(order_id=poisoned), buyer)
    parked = await until_parked(shop, poisoned, letters=2)
    retry = shop.marketplace.parked_sagas(bus=bus)
    failed_again = await retry.retry(parked.saga_id)
    del bus.broken[poisoned]
    outcome = await retry.retry(parked.saga_id)

    assert (failed_again.resumed, failed_again.error) == (False, "ValueError: refused for good")
    assert (outcome.fed, outcome.resumed) == (2, True)
    await shop.until_checkout(poisoned, "cancelled")
    assert (await shop.get_product(product)).available == 1


async def test_skip_drops_the_poison_letter_and_feeds_the_rest(idle_shop: Shop) -> None:
    shop, bus = idle_shop, BreakableBus(idle_shop)
    shop.start_runner(bus=bus)
    product, poisoned = await shop.product(stock=1), uuid4()
    bus.broken[poisoned] = ValueError("poison")
    await place(shop, shop.buyer(), product, poisoned)
    parked = await until_parked(shop, poisoned)
    del bus.broken[poisoned]

    outcome = await shop.marketplace.parked_sagas(bus=bus).retry(parked.saga_id, skip_first=True)

    assert (outcome.skipped, outcome.fed, outcome.resumed) == (True, 0, True)
    assert await shop.find(type(await shop.order(poisoned)), poisoned) is not None
    assert await shop.marketplace.parked_sagas().parked() == []


async def test_a_deadline_whose_firing_fails_for_good_parks_its_saga_instead_of_refiring(
    idle_shop: Shop,
) -> None:
    shop, bus = idle_shop, BreakableBus(idle_shop)
    shop.start_runner(bus=bus)
    shop.psp.script_next(IntentScript(outcomes=()))
    product = await shop.product(stock=1)
    order_id = await place(shop, shop.buyer(), product)
    await shop.until_checkout(order_id, "awaiting_payment")
    bus.broken[order_id] = RuntimeError("cannot compensate")

    await shop.advance(timedelta(minutes=15, seconds=1))
    parked = await until_parked(shop, order_id)

    [letter] = await shop.marketplace.parked_sagas().letters(parked.saga_id)
    assert isinstance(letter.input, Timer)
    assert letter.input.name == "payment-deadline"
    group = shop.marketplace.saga_group
    assert await shop.marketplace.saga_store.count_timers(group) == 0  # kept as the letter
    del bus.broken[order_id]
    outcome = await shop.marketplace.parked_sagas(bus=bus).retry(parked.saga_id)

    assert outcome.resumed
    order = await shop.until_order(order_id, OrderStatus.CANCELLED)
    assert order.cancellation_reason == "the payment deadline passed"


async def test_a_transient_failure_is_tried_again_not_parked(idle_shop: Shop) -> None:
    shop, bus = idle_shop, BreakableBus(idle_shop)
    shop.start_runner(bus=bus, backoff=QUICK_BACKOFF)
    product, order_id = await shop.product(stock=1), uuid4()
    bus.flaky[order_id] = 3

    await place(shop, shop.buyer(), product, order_id)

    await shop.until_order(order_id, OrderStatus.DELIVERED)
    assert bus.flaky[order_id] == 0
    assert await shop.marketplace.parked_sagas().parked() == []
