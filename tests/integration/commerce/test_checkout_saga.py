"""The checkout saga, from a placed order to a delivered one, or back to a cancelled one."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from application.commerce.commands import CancelOrder
from application.ports.payment_gateway import NotificationKind
from domain.ids import payment_id_for
from domain.order import OrderStatus
from domain.payment import Payment, PaymentStatus
from domain.product import ReservationStatus
from infrastructure.payments.simulator import IntentScript
from tests.integration.commerce.support import PRICE, Shop

pytestmark = pytest.mark.integration

CAPTURED, FAILED = NotificationKind.CAPTURED, NotificationKind.FAILED
NEVER_PAID = IntentScript(outcomes=())


async def test_a_paid_order_is_confirmed_delivered_and_its_stock_committed(shop: Shop) -> None:
    track, pack = await shop.product(stock=5), await shop.product(stock=None)
    order_id = await shop.place(shop.buyer(), (track, 2), (pack, 1))

    order = await shop.until_order(order_id, OrderStatus.DELIVERED)

    assert [status for status, _ in order.timeline] == [
        "placed",
        "stock_reserved",
        "payment_requested",
        "paid",
        "confirmed",
        "delivered",
    ]
    product = await shop.get_product(track)
    assert (product.stock, product.reserved, product.sold) == (3, 0, 2)
    assert (await shop.checkout(order_id)).status == "completed"
    assert (await shop.money())["EUR"].in_escrow == 3 * PRICE


async def test_an_order_short_of_stock_on_its_second_line_is_cancelled_and_the_first_released(
    shop: Shop,
) -> None:
    plenty, scarce = await shop.product(stock=5), await shop.product(stock=1)
    order_id = await shop.place(shop.buyer(), (plenty, 2), (scarce, 2))

    order = await shop.until_order(order_id, OrderStatus.CANCELLED)

    assert "1 unit(s) available, 2 requested" in (order.cancellation_reason or "")
    first = await shop.get_product(plenty)
    assert first.reservations[order_id].status is ReservationStatus.RELEASED
    assert (first.available, first.stock) == (5, 5)
    assert (await shop.get_product(scarce)).available == 1
    assert shop.psp.intents == {}
    await shop.until_checkout(order_id, "cancelled")
    assert await shop.money() == {}


async def test_a_failed_payment_cancels_the_order_and_releases_its_stock(shop: Shop) -> None:
    shop.psp.script_next(IntentScript(outcomes=(FAILED,), failure_reason="card expired"))
    product = await shop.product(stock=3)
    order_id = await shop.place(shop.buyer(), (product, 3))

    order = await shop.until_order(order_id, OrderStatus.CANCELLED)

    assert order.cancellation_reason == "payment failed: card expired"
    assert (await shop.get_product(product)).available == 3
    payment = await shop.get(Payment, payment_id_for(order_id))
    assert payment.status is PaymentStatus.FAILED
    await shop.until_checkout(order_id, "cancelled")
    assert (await shop.money())["EUR"].received == 0


async def test_an_order_unpaid_at_its_deadline_is_cancelled_once_the_clock_passes_it(
    shop: Shop,
) -> None:
    shop.psp.script_next(NEVER_PAID)
    product = await shop.product(stock=1)
    order_id = await shop.place(shop.buyer(), (product, 1))
    await shop.until_order(order_id, OrderStatus.PAYMENT_REQUESTED)

    await shop.advance(timedelta(minutes=14))
    await shop.until_checkout(order_id, "awaiting_payment")
    await shop.advance(timedelta(minutes=1, seconds=1))
    order = await shop.until_order(order_id, OrderStatus.CANCELLED)

    assert order.cancellation_reason == "the payment deadline passed"
    assert (await shop.get_product(product)).available == 1
    assert (await shop.money())["EUR"].received == 0


async def test_a_capture_arriving_after_the_deadline_is_refunded_through_the_provider(
    shop: Shop,
) -> None:
    shop.psp.script_next(IntentScript(outcomes=(CAPTURED,), delay=timedelta(minutes=20)))
    product = await shop.product(stock=1)
    order_id = await shop.place(shop.buyer(), (product, 1))
    await shop.until_order(order_id, OrderStatus.PAYMENT_REQUESTED)

    await shop.advance(timedelta(minutes=16))
    await shop.until_order(order_id, OrderStatus.CANCELLED)
    await shop.advance(timedelta(minutes=5))

    payment = await shop.until(
        lambda: _refunded_payment(shop, order_id), what="the late capture is refunded"
    )
    assert payment.status is PaymentStatus.REFUNDED
    [intent] = shop.psp.intents.values()
    assert intent.refunded
    assert (await shop.money())["EUR"].received == 0


async def test_a_webhook_delivered_twice_records_the_capture_once(shop: Shop) -> None:
    shop.psp.script_next(IntentScript(duplicate=True))
    product = await shop.product()
    order_id = await shop.place(shop.buyer(), (product, 1))

    await shop.until_order(order_id, OrderStatus.DELIVERED)
    await shop.until(lambda: _no_pending(shop), what="both deliveries are made")

    [first, second] = shop.psp.delivered
    assert first == second
    assert await shop.events_of(payment_id_for(order_id)) == ["IntentCreated", "Captured"]
    assert (await shop.money())["EUR"].in_escrow == PRICE


async def test_a_stale_failure_delivered_after_the_capture_is_ignored(shop: Shop) -> None:
    # The payer's first card was declined, the second went through; the provider's webhooks
    # for the two attempts arrive the other way round.
    shop.psp.script_next(IntentScript(outcomes=(FAILED, CAPTURED), reverse=True))
    product = await shop.product()
    order_id = await shop.place(shop.buyer(), (product, 1))

    await shop.until_order(order_id, OrderStatus.DELIVERED)
    await shop.until(lambda: _no_pending(shop), what="both webhooks are delivered")

    assert [notice.kind for notice in shop.psp.delivered] == [CAPTURED, FAILED]
    payment = await shop.get(Payment, payment_id_for(order_id))
    assert payment.status is PaymentStatus.CAPTURED
    assert await shop.events_of(payment_id_for(order_id)) == ["IntentCreated", "Captured"]
    assert (await shop.money())["EUR"].in_escrow == PRICE


async def test_captures_of_two_orders_arriving_in_reverse_order_confirm_both(shop: Shop) -> None:
    shop.psp.script_next(
        IntentScript(delay=timedelta(minutes=2)), IntentScript(delay=timedelta(minutes=1))
    )
    product = await shop.product()
    first = await shop.place(shop.buyer(), (product, 1))
    await shop.until_order(first, OrderStatus.PAYMENT_REQUESTED)
    second = await shop.place(shop.buyer(), (product, 1))
    await shop.until_order(second, OrderStatus.PAYMENT_REQUESTED)

    await shop.advance(timedelta(minutes=1))
    await shop.until_order(second, OrderStatus.DELIVERED)
    assert (await shop.order(first)).status is OrderStatus.PAYMENT_REQUESTED
    await shop.advance(timedelta(minutes=1))
    await shop.until_order(first, OrderStatus.DELIVERED)

    assert [notice.order_id for notice in shop.psp.delivered] == [second, first]
    assert (await shop.money())["EUR"].in_escrow == 2 * PRICE


async def test_a_buyer_who_cancels_before_paying_gets_the_stock_back(shop: Shop) -> None:
    shop.psp.script_next(NEVER_PAID)
    buyer = shop.buyer()
    product = await shop.product(stock=2)
    order_id = await shop.place(buyer, (product, 2))
    await shop.until_order(order_id, OrderStatus.PAYMENT_REQUESTED)

    await shop.send(CancelOrder(order_id=order_id, reason="changed my mind"), buyer)

    saga = await shop.until_checkout(order_id, "cancelled")
    assert "cancel-order" not in saga.done
    assert (await shop.get_product(product)).available == 2
    assert (await shop.order(order_id)).cancellation_reason == "changed my mind"
    assert (await shop.money())["EUR"].received == 0


async def test_a_checkout_waits_out_a_provider_outage_and_then_goes_through(shop: Shop) -> None:
    shop.psp.unavailable = True
    product = await shop.product()
    order_id = await shop.place(shop.buyer(), (product, 1))
    await shop.until_order(order_id, OrderStatus.STOCK_RESERVED)

    shop.psp.unavailable = False

    await shop.until_order(order_id, OrderStatus.DELIVERED)
    assert len(shop.psp.intents) == 1
    assert (await shop.checkout(order_id)).refusals == ()
    assert (await shop.money())["EUR"].in_escrow == PRICE


async def _refunded_payment(shop: Shop, order_id: UUID) -> Payment | None:
    payment = await shop.get(Payment, payment_id_for(order_id))
    return payment if payment.status is PaymentStatus.REFUNDED else None


async def _no_pending(shop: Shop) -> bool:
    return shop.psp.pending_deliveries == 0
