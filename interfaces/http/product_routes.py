"""Creators' products: create, edit (with `If-Match`), publish, unpublish, reprice."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Response, status
from pydantic import Field

from application.commerce.commands import (
    MAX_STOCK,
    ChangePrice,
    CreateProduct,
    Description,
    Price,
    PublishProduct,
    Tags,
    Title,
    UnpublishProduct,
    UpdateProduct,
)
from application.commerce.results import CommandResult
from application.context import Actor
from application.errors import AggregateNotFoundError
from domain.account import Role
from domain.product import Product, ProductKind
from interfaces.http.dependencies import (
    CommandContextDep,
    CurrentActor,
    ExpectedVersionDep,
    MarketplaceDep,
    etag,
)
from interfaces.http.read_models import ReadModelsDep
from interfaces.http.schemas import CommandAccepted, RequestBody, error_responses
from interfaces.http.views import ProductView, view_document
from projections.product_pages import PRODUCT_PAGES, product_doc

router = APIRouter(prefix="/products", tags=["products"])

Stock = Annotated[int, Field(strict=True, ge=0, le=MAX_STOCK)]
ERRORS = error_responses(401, 403, 404, 409)


class CreateProductRequest(RequestBody):
    title: Title
    description: Description = ""
    tags: Tags = ()
    kind: ProductKind
    price: Price
    stock: Stock | None = Field(default=None, description="Units for sale; none: unlimited.")


class UpdateProductRequest(RequestBody):
    """Only the fields given change; the others keep the values of the version edited."""

    title: Title | None = None
    description: Description | None = None
    tags: Tags | None = None


class PriceRequest(RequestBody):
    price: Price


class ProductAccepted(CommandAccepted):
    product_id: UUID


@router.post(
    "", response_model=ProductAccepted, status_code=status.HTTP_201_CREATED, responses=ERRORS
)
async def create_product(
    body: CreateProductRequest,
    marketplace: MarketplaceDep,
    context: CommandContextDep,
    response: Response,
) -> ProductAccepted:
    """Create an unpublished product (creators only); answers its ETag."""
    command = CreateProduct(
        title=body.title,
        description=body.description,
        tags=body.tags,
        kind=body.kind,
        price=body.price,
        stock=body.stock,
    )
    return _accepted(await marketplace.dispatch(command, context), response)


@router.get("/{product_id}", response_model=ProductView, responses=error_responses(401, 404, 503))
async def get_product(
    product_id: UUID, actor: CurrentActor, read_models: ReadModelsDep, response: Response
) -> ProductView:
    """A product's page, with its ETag (for `If-Match`); an unpublished product is shown to
    its creator and admins only."""
    live = await read_models.live(PRODUCT_PAGES.name)
    fields = await view_document(live, product_doc(actor.tenant_id, str(product_id)))
    if fields is None or "id" not in fields or not _may_see(actor, fields):
        raise AggregateNotFoundError(Product, str(product_id))
    page = ProductView.from_document(fields)
    response.headers["ETag"] = etag(page.version)
    return page


@router.patch("/{product_id}", response_model=ProductAccepted, responses=ERRORS)
async def update_product(
    product_id: UUID,
    body: UpdateProductRequest,
    expected: ExpectedVersionDep,
    marketplace: MarketplaceDep,
    context: CommandContextDep,
    response: Response,
) -> ProductAccepted:
    """Change a product's title, description or tags (owner only); 409 if `If-Match` is stale."""
    current = await marketplace.repository.get(Product, product_id, tenant_id=context.tenant_id)
    changes = body.model_dump(exclude_none=True)
    command = UpdateProduct(
        product_id=product_id,
        title=changes.get("title", current.title),
        description=changes.get("description", current.description),
        tags=changes.get("tags", current.tags),
        # Without If-Match the merge still expects the version it was made from.
        expected_version=expected if expected is not None else current.version,
    )
    return _accepted(await marketplace.dispatch(command, context), response)


@router.post("/{product_id}/publish", response_model=ProductAccepted, responses=ERRORS)
async def publish_product(
    product_id: UUID,
    expected: ExpectedVersionDep,
    marketplace: MarketplaceDep,
    context: CommandContextDep,
    response: Response,
) -> ProductAccepted:
    """Put a product on sale (owner only); publishing it again changes nothing."""
    command = PublishProduct(product_id=product_id, expected_version=expected)
    return _accepted(await marketplace.dispatch(command, context), response)


@router.post("/{product_id}/unpublish", response_model=ProductAccepted, responses=ERRORS)
async def unpublish_product(
    product_id: UUID,
    expected: ExpectedVersionDep,
    marketplace: MarketplaceDep,
    context: CommandContextDep,
    response: Response,
) -> ProductAccepted:
    """Take a product off sale (owner only); orders in flight are not affected."""
    command = UnpublishProduct(product_id=product_id, expected_version=expected)
    return _accepted(await marketplace.dispatch(command, context), response)


@router.put("/{product_id}/price", response_model=ProductAccepted, responses=ERRORS)
async def change_price(
    product_id: UUID,
    body: PriceRequest,
    expected: ExpectedVersionDep,
    marketplace: MarketplaceDep,
    context: CommandContextDep,
    response: Response,
) -> ProductAccepted:
    """Set a product's price (owner only); orders already placed keep theirs."""
    command = ChangePrice(product_id=product_id, price=body.price, expected_version=expected)
    return _accepted(await marketplace.dispatch(command, context), response)


def _may_see(actor: Actor, fields: dict[str, Any]) -> bool:
    if fields.get("published"):
        return True
    return actor.account_id == UUID(fields["creator_id"]) or actor.has_role(Role.ADMIN)


def _accepted(result: CommandResult, response: Response) -> ProductAccepted:
    response.headers["ETag"] = etag(result.stream_version)
    return ProductAccepted(
        product_id=UUID(result.stream_id), version=result.stream_version, position=result.position
    )
