"""Fifty buyers race for the last ten units of a product."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from domain.order import OrderStatus
from tests.integration.commerce.support import PRICE, Shop

pytestmark = pytest.mark.integration

BUYERS, UNITS = 50, 10
CONFIRMED = (OrderStatus.CONFIRMED, OrderStatus.DELIVERED)


async def test_fifty_buyers_racing_for_ten_units_get_ten_orders_confirmed_and_forty_cancelled(
    shop: Shop,
) -> None:
    product = await shop.product(stock=UNITS)

    order_ids = await asyncio.gather(
        *(shop.place(shop.buyer(), (product, 1)) for _ in range(BUYERS))
    )
    orders = [
        await shop.until_order(order_id, *CONFIRMED, OrderStatus.CANCELLED)
        for order_id in order_ids
    ]
    for order in orders:
        if order.status is OrderStatus.CANCELLED:
            await shop.until_checkout(order.id, "cancelled")
        else:
            await shop.until_order(order.id, OrderStatus.DELIVERED)

    outcomes = Counter(
        "confirmed" if order.status in CONFIRMED else "cancelled" for order in orders
    )
    assert outcomes == {"confirmed": UNITS, "cancelled": BUYERS - UNITS}
    stock = await shop.get_product(product)
    assert (stock.stock, stock.reserved, stock.available, stock.sold) == (0, 0, 0, UNITS)
    totals = (await shop.money())["EUR"]
    assert (totals.received, totals.in_escrow) == (UNITS * PRICE, UNITS * PRICE)
    assert len(shop.psp.intents) == UNITS
