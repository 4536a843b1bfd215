"""Handlers of the creators' product commands."""

from __future__ import annotations

from uuid import UUID

from application.commerce.commands import (
    ChangePrice,
    CreateProduct,
    PublishProduct,
    UnpublishProduct,
    UpdateProduct,
)
from application.commerce.guards import require_account, require_role
from application.commerce.results import CommandResult
from application.commerce.services import Services, check_expected_version, new_id
from application.context import CommandContext
from domain.account import Role
from domain.product import Product


async def create_product(
    command: CreateProduct, context: CommandContext, services: Services
) -> CommandResult:
    creator_id = require_role(context.actor, Role.CREATOR)
    product = Product.create(
        id=command.product_id or new_id(context, "product"),
        tenant_id=context.tenant_id,
        creator_id=creator_id,
        title=command.title,
        description=command.description,
        tags=command.tags,
        kind=command.kind,
        price=command.price.to_money(),
        stock=command.stock,
    )
    return await services.save(product, context, command)


async def update_product(
    command: UpdateProduct, context: CommandContext, services: Services
) -> CommandResult:
    product = await _owned_product(command.product_id, command.expected_version, context, services)
    product.update_details(title=command.title, description=command.description, tags=command.tags)
    return await services.save(product, context, command)


async def publish_product(
    command: PublishProduct, context: CommandContext, services: Services
) -> CommandResult:
    product = await _owned_product(command.product_id, command.expected_version, context, services)
    product.publish()
    return await services.save(product, context, command)


async def unpublish_product(
    command: UnpublishProduct, context: CommandContext, services: Services
) -> CommandResult:
    product = await _owned_product(command.product_id, command.expected_version, context, services)
    product.unpublish()
    return await services.save(product, context, command)


async def change_price(
    command: ChangePrice, context: CommandContext, services: Services
) -> CommandResult:
    product = await _owned_product(command.product_id, command.expected_version, context, services)
    product.change_price(command.price.to_money())
    return await services.save(product, context, command)


async def _owned_product(
    product_id: UUID, expected_version: int | None, context: CommandContext, services: Services
) -> Product:
    """The product, if the actor created it and (with `If-Match`) it is still at that version."""
    product = await services.load(Product, product_id, context)
    product.ensure_owned_by(require_account(context.actor))
    check_expected_version(product, expected_version)
    return product
