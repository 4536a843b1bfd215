"""Handlers of the per-order stock reservations (sent by the checkout saga).

A hot product gets many of these at once: they are retried on a version conflict (`registry`),
which is safe because each attempt reloads the product and the domain decides again.
"""

from __future__ import annotations

from uuid import UUID

from application.commerce.guards import require_system
from application.commerce.process_commands import CommitStock, ReleaseStock, ReserveStock
from application.commerce.results import CommandResult
from application.commerce.services import Services
from application.context import CommandContext
from domain.product import Product


async def reserve_stock(
    command: ReserveStock, context: CommandContext, services: Services
) -> CommandResult:
    product = await _product(command.product_id, context, services)
    product.reserve(command.order_id, command.quantity)
    return await services.save(product, context, command)


async def release_stock(
    command: ReleaseStock, context: CommandContext, services: Services
) -> CommandResult:
    product = await _product(command.product_id, context, services)
    product.release(command.order_id)
    return await services.save(product, context, command)


async def commit_stock(
    command: CommitStock, context: CommandContext, services: Services
) -> CommandResult:
    product = await _product(command.product_id, context, services)
    product.commit(command.order_id)
    return await services.save(product, context, command)


async def _product(product_id: UUID, context: CommandContext, services: Services) -> Product:
    require_system(context.actor)
    return await services.load(Product, product_id, context)
