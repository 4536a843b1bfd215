"""The escrow saga: the seller is paid on confirmation or when the dispute window closes; a
dispute freezes the money until an admin releases or refunds it."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from application.commerce.commands import ConfirmReceipt, OpenDispute, RequestPayout, ResolveDispute
from application.commerce.commands import Price as Amount
from application.context import Actor
from domain.dispute import Resolution
from domain.errors import IllegalTransition, InsufficientFunds
from domain.escrow import Escrow, EscrowStatus
from domain.ids import escrow_id_for, payment_id_for, platform_wallet_id_for, wallet_id_for
from domain.order import OrderStatus
from domain.payment import Payment, PaymentStatus
from domain.wallet import Wallet
from tests.integration.commerce.support import FEE_BPS, PRICE, Shop

pytestmark = pytest.mark.integration

TOTAL = 2 * PRICE
FEE = TOTAL * FEE_BPS // 10_000


async def delivered_order(shop: Shop, buyer: Actor) -> UUID:
    product = await shop.product()
    order_id = await shop.place(buyer, (product, 2))
    await shop.until_order(order_id, OrderStatus.DELIVERED)
    await shop.until_escrow_saga(order_id, "awaiting_confirmation")
    return order_id


async def seller_wallet(shop: Shop) -> Wallet:
    assert shop.creator.account_id is not None
    return await shop.get(Wallet, wallet_id_for(shop.creator.account_id, "EUR"))


async def platform_wallet(shop: Shop) -> Wallet:
    return await shop.get(Wallet, platform_wallet_id_for(shop.tenant, "EUR"))


async def test_the_seller_is_paid_net_of_the_fee_when_the_buyer_confirms_receipt(
    shop: Shop,
) -> None:
    buyer = shop.buyer()
    order_id = await delivered_order(shop, buyer)

    await shop.send(ConfirmReceipt(order_id=order_id), buyer)
    await shop.until_escrow_saga(order_id, "settled")

    assert (await seller_wallet(shop)).balance.amount == TOTAL - FEE
    assert (await platform_wallet(shop)).balance.amount == FEE
    assert (await shop.get(Escrow, escrow_id_for(order_id))).status is EscrowStatus.RELEASED
    assert (await shop.order(order_id)).status is OrderStatus.COMPLETED
    totals = (await shop.money())["EUR"]
    assert (totals.received, totals.in_escrow, totals.in_wallets) == (TOTAL, 0, TOTAL)


async def test_the_seller_is_paid_when_the_dispute_window_closes_without_a_dispute(
    shop: Shop,
) -> None:
    order_id = await delivered_order(shop, shop.buyer())

    await shop.advance(timedelta(hours=71))
    await shop.until_escrow_saga(order_id, "awaiting_confirmation")
    await shop.advance(timedelta(hours=1, seconds=1))
    await shop.until_escrow_saga(order_id, "settled")

    assert (await shop.order(order_id)).status is OrderStatus.COMPLETED
    assert (await seller_wallet(shop)).balance.amount == TOTAL - FEE
    assert (await shop.money())["EUR"].in_wallets == TOTAL


async def test_a_dispute_freezes_the_escrow_until_an_admin_refunds_the_buyer(shop: Shop) -> None:
    buyer = shop.buyer()
    order_id = await delivered_order(shop, buyer)

    await shop.send(OpenDispute(order_id=order_id, reason="the files are corrupt"), buyer)
    await shop.until_escrow_saga(order_id, "disputed")
    await shop.until(lambda: _escrow_in(shop, order_id, EscrowStatus.DISPUTED), what="frozen")
    await shop.advance(timedelta(hours=100))  # the window passes: a disputed escrow stays put
    await shop.send(ResolveDispute(order_id=order_id, resolution=Resolution.REFUND), shop.admin)
    await shop.until_escrow_saga(order_id, "refunded")

    order = await shop.order(order_id)
    assert (order.status, order.resolution) == (OrderStatus.REFUNDED, Resolution.REFUND)
    payment = await shop.get(Payment, payment_id_for(order_id))
    assert payment.status is PaymentStatus.REFUNDED
    [intent] = shop.psp.intents.values()
    assert intent.refunded
    assert shop.creator.account_id is not None
    assert await shop.find(Wallet, wallet_id_for(shop.creator.account_id, "EUR")) is None
    totals = (await shop.money())["EUR"]
    assert (totals.received, totals.in_escrow, totals.in_wallets) == (0, 0, 0)


async def test_a_dispute_resolved_by_release_pays_the_seller(shop: Shop) -> None:
    buyer = shop.buyer()
    order_id = await delivered_order(shop, buyer)

    await shop.send(OpenDispute(order_id=order_id, reason="not what I expected"), buyer)
    await shop.until(lambda: _escrow_in(shop, order_id, EscrowStatus.DISPUTED), what="frozen")
    await shop.send(ResolveDispute(order_id=order_id, resolution=Resolution.RELEASE), shop.admin)
    await shop.until_escrow_saga(order_id, "settled")

    order = await shop.order(order_id)
    assert (order.status, order.resolution) == (OrderStatus.COMPLETED, Resolution.RELEASE)
    escrow = await shop.get(Escrow, escrow_id_for(order_id))
    assert escrow.resolved_by == shop.admin.account_id
    assert (await seller_wallet(shop)).balance.amount == TOTAL - FEE
    assert (await shop.money())["EUR"].in_wallets == TOTAL


async def test_an_admin_cannot_resolve_an_escrow_nobody_disputed(shop: Shop) -> None:
    order_id = await delivered_order(shop, shop.buyer())

    with pytest.raises(IllegalTransition):
        await shop.send(ResolveDispute(order_id=order_id, resolution=Resolution.REFUND), shop.admin)
    assert (await shop.money())["EUR"].in_escrow == TOTAL


async def test_a_seller_can_pay_out_what_the_wallet_holds_and_no_more(shop: Shop) -> None:
    buyer = shop.buyer()
    order_id = await delivered_order(shop, buyer)
    await shop.send(ConfirmReceipt(order_id=order_id), buyer)
    await shop.until_escrow_saga(order_id, "settled")

    await shop.send(RequestPayout(amount=Amount(amount=500, currency="EUR")), shop.creator)
    with pytest.raises(InsufficientFunds):
        await shop.send(RequestPayout(amount=Amount(amount=TOTAL, currency="EUR")), shop.creator)

    assert (await seller_wallet(shop)).balance.amount == TOTAL - FEE - 500
    totals = (await shop.money())["EUR"]
    assert (totals.paid_out, totals.in_wallets) == (500, TOTAL - 500)


async def _escrow_in(shop: Shop, order_id: UUID, status: EscrowStatus) -> bool:
    return (await shop.get(Escrow, escrow_id_for(order_id))).status is status
