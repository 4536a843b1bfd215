"""Handlers of the buyers' order commands (and of cancellation, which the checkout saga shares)."""

from __future__ import annotations

from application.commerce.commands import (
    CancelOrder,
    ConfirmReceipt,
    OpenDispute,
    OrderLineRequest,
    PlaceOrder,
)
from application.commerce.guards import is_system, require_account, require_role
from application.commerce.results import CommandResult
from application.commerce.services import Services, new_id
from application.context import CommandContext
from domain.account import Role
from domain.errors import IllegalTransition
from domain.order import Order, OrderLine
from domain.product import Product


async def place_order(
    command: PlaceOrder, context: CommandContext, services: Services
) -> CommandResult:
    buyer_id = require_role(context.actor, Role.BUYER)
    lines = [await _priced_line(request, context, services) for request in command.lines]
    order = Order.place(
        id=command.order_id or new_id(context, "order"),
        tenant_id=context.tenant_id,
        buyer_id=buyer_id,
        lines=lines,
        at=services.clock.now(),
    )
    return await services.save(order, context, command)


async def cancel_order(
    command: CancelOrder, context: CommandContext, services: Services
) -> CommandResult:
    order = await services.load(Order, command.order_id, context)
    if not is_system(context.actor):
        order.ensure_buyer(require_account(context.actor))
    order.cancel(reason=command.reason, at=services.clock.now())
    return await services.save(order, context, command)


async def confirm_receipt(
    command: ConfirmReceipt, context: CommandContext, services: Services
) -> CommandResult:
    order = await services.load(Order, command.order_id, context)
    order.ensure_buyer(require_account(context.actor))
    order.complete(at=services.clock.now())
    return await services.save(order, context, command)


async def open_dispute(
    command: OpenDispute, context: CommandContext, services: Services
) -> CommandResult:
    order = await services.load(Order, command.order_id, context)
    order.ensure_buyer(require_account(context.actor))
    order.dispute(reason=command.reason, at=services.clock.now())
    return await services.save(order, context, command)


async def _priced_line(
    request: OrderLineRequest, context: CommandContext, services: Services
) -> OrderLine:
    """The line with the product's current title, price and seller."""
    product = await services.load(Product, request.product_id, context)
    if not product.published:
        raise IllegalTransition("Product", product.id, "unpublished", "order")
    return OrderLine(
        product_id=product.id,
        seller_id=product.creator_id,
        title=product.title,
        unit_price=product.price,
        quantity=request.quantity,
    )
