"""Handlers of the order transitions the sagas drive, from reservation to completion."""

from __future__ import annotations

from uuid import UUID

from application.commerce.guards import require_system
from application.commerce.process_commands import (
    CloseDispute,
    CompleteOrder,
    ConfirmOrder,
    DeliverOrder,
    MarkOrderPaid,
    MarkPaymentRequested,
    MarkStockReserved,
)
from application.commerce.results import CommandResult
from application.commerce.services import Services
from application.context import CommandContext
from domain.ids import payment_id_for
from domain.order import Order
from domain.payment import Payment


async def mark_stock_reserved(
    command: MarkStockReserved, context: CommandContext, services: Services
) -> CommandResult:
    order = await _order(command.order_id, context, services)
    order.mark_stock_reserved(at=services.clock.now())
    return await services.save(order, context, command)


async def mark_payment_requested(
    command: MarkPaymentRequested, context: CommandContext, services: Services
) -> CommandResult:
    order = await _order(command.order_id, context, services)
    payment = await services.load(Payment, payment_id_for(order.id), context)
    order.request_payment(payment_intent_id=payment.provider_intent_id, at=services.clock.now())
    return await services.save(order, context, command)


async def mark_order_paid(
    command: MarkOrderPaid, context: CommandContext, services: Services
) -> CommandResult:
    order = await _order(command.order_id, context, services)
    order.mark_paid(at=services.clock.now())
    return await services.save(order, context, command)


async def confirm_order(
    command: ConfirmOrder, context: CommandContext, services: Services
) -> CommandResult:
    order = await _order(command.order_id, context, services)
    order.confirm(at=services.clock.now())
    return await services.save(order, context, command)


async def deliver_order(
    command: DeliverOrder, context: CommandContext, services: Services
) -> CommandResult:
    order = await _order(command.order_id, context, services)
    order.deliver(at=services.clock.now())
    return await services.save(order, context, command)


async def complete_order(
    command: CompleteOrder, context: CommandContext, services: Services
) -> CommandResult:
    order = await _order(command.order_id, context, services)
    order.complete(at=services.clock.now())
    return await services.save(order, context, command)


async def close_dispute(
    command: CloseDispute, context: CommandContext, services: Services
) -> CommandResult:
    order = await _order(command.order_id, context, services)
    order.resolve_dispute(resolution=command.resolution, at=services.clock.now())
    return await services.save(order, context, command)


async def _order(order_id: UUID, context: CommandContext, services: Services) -> Order:
    require_system(context.actor)
    return await services.load(Order, order_id, context)
