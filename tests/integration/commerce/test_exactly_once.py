"""Runners that die between two steps, or run side by side, still take every step once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from application.commerce.bus import CommandBus
from application.commerce.commands import CancelOrder, Command, ConfirmReceipt
from application.commerce.process_commands import (
    CreditWallet,
    PaymentOutcome,
    RecordPaymentOutcome,
    ReleaseStock,
    ReserveStock,
)
from application.commerce.results import CommandResult
from application.context import Actor, CommandContext
from application.sagas.cancellation import cancel_and_wait
from application.sagas.checkout import CheckoutSaga, checkout_saga_id
from application.sagas.driver import SagaDriver
from application.sagas.policy import SagaPolicy
from application.sagas.router import Router
from domain.ids import escrow_id_for, platform_wallet_id_for, wallet_id_for
from domain.order import OrderStatus
from domain.wallet import CreditReason, Wallet
from infrastructure.payments.simulator import IntentScript
from tests.integration.commerce.support import FEE_BPS, PRICE, Shop

pytestmark = pytest.mark.integration

LEASE = timedelta(minutes=1)


class CrashingBus(CommandBus):
    """The real bus, except that once a command matching `crash_after` has run, it hangs: the
    runner is stuck between that step and the next until the test kills it."""

    def __init__(self, shop: Shop, crash_after: Callable[[Command], bool]) -> None:
        super().__init__(shop.marketplace.services)
        self._crash_after = crash_after
        self.crashed = asyncio.Event()

    async def dispatch(self, command: Command, context: CommandContext) -> CommandResult:
        result = await super().dispatch(command, context)
        if not self.crashed.is_set() and self._crash_after(command):
            self.crashed.set()
            await asyncio.Event().wait()
        return result


async def test_a_runner_killed_between_two_reservations_finishes_the_checkout_once(
    idle_shop: Shop,
) -> None:
    shop = idle_shop
    first, second = await shop.product(stock=3), await shop.product(stock=3)
    order_id = await shop.place(shop.buyer(), (first, 2), (second, 1))

    bus = CrashingBus(shop, lambda command: isinstance(command, ReserveStock))
    doomed = shop.start_runner(bus=bus)
    await asyncio.wait_for(bus.crashed.wait(), 30)
    await shop.kill(doomed)
    # The first line is reserved, but the saga never recorded it: the next runner must ask again.
    assert (await shop.get_product(first)).reserved == 2
    assert await shop.find(CheckoutSaga, checkout_saga_id(order_id)) is None

    shop.start_runner()
    await shop.until_order(order_id, OrderStatus.DELIVERED)

    for product_id, quantity in ((first, 2), (second, 1)):
        events = Counter(await shop.events_of(product_id))
        assert (events["StockReserved"], events["StockCommitted"]) == (1, 1)
        product = await shop.get_product(product_id)
        assert (product.stock, product.reserved, product.sold) == (3 - quantity, 0, quantity)
    assert len(shop.psp.intents) == 1
    assert (await shop.checkout(order_id)).refusals == ()
    assert (await shop.money())["EUR"].in_escrow == 3 * PRICE


async def test_a_runner_killed_between_paying_the_seller_and_the_platform_pays_each_once(
    idle_shop: Shop,
) -> None:
    shop = idle_shop
    buyer = shop.buyer()
    product = await shop.product()
    order_id = await shop.place(buyer, (product, 1))
    crashing = CrashingBus(
        shop,
        lambda command: isinstance(command, CreditWallet) and command.reason is CreditReason.SALE,
    )
    doomed = shop.start_runner(bus=crashing)
    await shop.until_order(order_id, OrderStatus.DELIVERED)
    await shop.send(ConfirmReceipt(order_id=order_id), buyer)
    await asyncio.wait_for(crashing.crashed.wait(), 30)
    await shop.kill(doomed)
    assert "credit-seller" not in (await shop.escrow_saga(order_id)).done

    shop.start_runner()
    await shop.until_escrow_saga(order_id, "settled")

    assert shop.creator.account_id is not None
    seller = wallet_id_for(shop.creator.account_id, "EUR")
    platform = platform_wallet_id_for(shop.tenant, "EUR")
    assert await shop.events_of(seller) == ["Opened", "Credited"]
    assert await shop.events_of(platform) == ["Opened", "Credited"]
    assert Counter(await shop.events_of(escrow_id_for(order_id)))["Released"] == 1
    fee = PRICE * FEE_BPS // 10_000
    assert (await shop.get(Wallet, seller)).balance.amount == PRICE - fee
    totals = (await shop.money())["EUR"]
    assert (totals.in_wallets, totals.in_escrow) == (PRICE, 0)


async def test_a_runner_killed_while_a_deadline_fires_leaves_it_to_the_next_runner(
    idle_shop: Shop,
) -> None:
    shop = idle_shop
    shop.psp.script_next(IntentScript(outcomes=()))
    product = await shop.product(stock=1)
    order_id = await shop.place(shop.buyer(), (product, 1))
    crashing = CrashingBus(shop, lambda command: isinstance(command, ReleaseStock))
    doomed = shop.start_runner(bus=crashing, claim_lease=timedelta(minutes=1))
    await shop.until_order(order_id, OrderStatus.PAYMENT_REQUESTED)

    await shop.advance(timedelta(minutes=16))
    await asyncio.wait_for(crashing.crashed.wait(), 30)
    await shop.kill(doomed)
    # The stock is released, but nothing in the log says so to a saga: only the timer can.
    assert (await shop.get_product(product)).available == 1
    assert (await shop.order(order_id)).status is OrderStatus.PAYMENT_REQUESTED
    assert (await shop.checkout(order_id)).status == "awaiting_payment"

    shop.start_runner()
    await shop.advance(timedelta(minutes=1))  # the dead runner's claim on the timer expires

    await shop.until_checkout(order_id, "cancelled")
    assert Counter(await shop.events_of(order_id))["Cancelled"] == 1
    assert Counter(await shop.events_of(product))["StockReleased"] == 1
    assert (await shop.get_product(product)).available == 1
    assert (await shop.money())["EUR"].received == 0


async def test_two_runners_side_by_side_take_every_step_once_and_survive_the_leaders_death(
    idle_shop: Shop,
) -> None:
    shop = idle_shop
    runners = [shop.start_runner(owner="runner-a"), shop.start_runner(owner="runner-b")]
    product = await shop.product(stock=None)
    early = [await shop.place(shop.buyer(), (product, 1)) for _ in range(4)]
    for order_id in early:
        await shop.until_order(order_id, OrderStatus.DELIVERED)

    [leader] = [runner for runner in runners if runner.leading]
    await shop.kill(leader)
    late = [await shop.place(shop.buyer(), (product, 1)) for _ in range(4)]
    for order_id in late:
        await shop.until_order(order_id, OrderStatus.DELIVERED)

    for order_id in early + late:
        assert await shop.events_of(order_id) == [
            "Placed",
            "StockReserved",
            "PaymentRequested",
            "Paid",
            "Confirmed",
            "Delivered",
        ]
        saga_events = await shop.events_of((await shop.checkout(order_id)).id)
        assert saga_events.count("StepCompleted") == len((await shop.checkout(order_id)).done)
    assert Counter(await shop.events_of(product))["StockReserved"] == 8
    assert len(shop.psp.intents) == 8
    assert (await shop.money())["EUR"].in_escrow == 8 * PRICE


async def test_a_saga_deciding_otherwise_after_a_crash_is_not_stuck_on_its_lost_decision(
    idle_shop: Shop,
) -> None:
    shop = idle_shop
    shop.psp.script_next(IntentScript(outcomes=()))
    product = await shop.product(stock=1)
    order_id = await shop.place(shop.buyer(), (product, 1))
    runner = shop.start_runner()
    await shop.until_checkout(order_id, "awaiting_payment")
    await shop.kill(runner)
    marketplace = shop.marketplace
    [deadline] = await marketplace.saga_store.claim_due(
        "sagas", now=shop.clock.now() + timedelta(hours=1), owner="x", limit=1, lease=LEASE
    )

    # A first attempt cancels the order for the deadline, then dies before recording it.
    crashing = CrashingBus(shop, lambda command: isinstance(command, CancelOrder))
    first = asyncio.create_task(driver(shop, crashing).fire(deadline))
    await asyncio.wait_for(crashing.crashed.wait(), 30)
    await cancel_and_wait(first)
    # Meanwhile the provider reports a failure: the saga now cancels for another reason.
    failure = RecordPaymentOutcome(
        order_id=order_id,
        intent_id=(await shop.order(order_id)).payment_intent_id or "",
        outcome=PaymentOutcome.FAILED,
        reason="card declined",
    )
    await marketplace.dispatch(failure, CommandContext(Actor.system(shop.tenant)))
    [failed] = [e for e in await shop.tenant_log() if e.type.endswith("Payment.Failed")]
    routed = await Router(marketplace.repository, marketplace.serializer).route(failed)
    assert routed is not None

    await driver(shop, marketplace.bus).receive(routed)

    saga = await shop.checkout(order_id)
    assert (saga.status, saga.compensation_reason) == ("cancelled", "payment failed: card declined")
    assert Counter(await shop.events_of(order_id))["Cancelled"] == 1
    assert (await shop.get_product(product)).available == 1
    assert (await shop.money())["EUR"].received == 0


def driver(shop: Shop, bus: CommandBus) -> SagaDriver:
    marketplace = shop.marketplace
    return SagaDriver(
        marketplace.repository, bus, marketplace.saga_store, group="sagas", policy=SagaPolicy()
    )
