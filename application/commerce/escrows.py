"""Handlers of the escrow commands: holding the captured money, disputes, and settling."""

from __future__ import annotations

from uuid import UUID

from application.commerce.commands import ResolveDispute
from application.commerce.guards import require_role, require_system
from application.commerce.process_commands import DisputeEscrow, HoldFunds, ReleaseEscrow
from application.commerce.results import CommandResult
from application.commerce.services import Services
from application.context import CommandContext
from domain.account import Role
from domain.errors import IllegalTransition
from domain.escrow import Escrow
from domain.ids import escrow_id_for
from domain.order import Order, OrderStatus


async def hold_funds(
    command: HoldFunds, context: CommandContext, services: Services
) -> CommandResult:
    require_system(context.actor)
    order = await services.load(Order, command.order_id, context)
    if order.status is not OrderStatus.PAID:
        raise IllegalTransition("Order", order.id, order.status, "hold funds")
    escrow = await services.find(Escrow, escrow_id_for(order.id), context) or Escrow.hold(
        id=escrow_id_for(order.id),
        tenant_id=context.tenant_id,
        order_id=order.id,
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
        amount=order.total,
        platform_fee_bps=services.platform_fee_bps,
    )
    return await services.save(escrow, context, command)


async def dispute_escrow(
    command: DisputeEscrow, context: CommandContext, services: Services
) -> CommandResult:
    escrow = await _escrow(command.order_id, context, services)
    escrow.dispute(reason=command.reason)
    return await services.save(escrow, context, command)


async def release_escrow(
    command: ReleaseEscrow, context: CommandContext, services: Services
) -> CommandResult:
    escrow = await _escrow(command.order_id, context, services)
    escrow.release()
    return await services.save(escrow, context, command)


async def resolve_dispute(
    command: ResolveDispute, context: CommandContext, services: Services
) -> CommandResult:
    """An admin's decision; the escrow saga then pays out or refunds and closes the order's
    dispute. Until that saga has frozen the escrow (moments after the order's dispute), the
    escrow is still held and this is a conflict to retry."""
    admin_id = require_role(context.actor, Role.ADMIN)
    escrow = await services.load(Escrow, escrow_id_for(command.order_id), context)
    escrow.resolve(resolution=command.resolution, resolved_by=admin_id)
    return await services.save(escrow, context, command)


async def _escrow(order_id: UUID, context: CommandContext, services: Services) -> Escrow:
    require_system(context.actor)
    return await services.load(Escrow, escrow_id_for(order_id), context)
