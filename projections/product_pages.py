"""Product pages (the `views` sink): what a product shows, its price, stock and availability.

Document `<tenant>:product:<product id>`: the product's details, `price`, `published`,
`unlimited_stock`, `version` (the stream version of the latest event, for the ETag), and two
counters, each the sum of per-source contributions:
- `stock` — units left to sell: the initial stock (source `created`), less each order's
  committed quantity (source: the order);
- `available` — units that can still be reserved: the initial stock, plus per order -quantity
  while reserved, 0 once released, -quantity once committed (the units are sold).

Every event of a product comes from its own stream, in order, so each order's contribution
moves last-writer-wins from reserved to released or committed; a redelivered reservation never
holds a unit twice. Unlimited products (`stock` None) get the contributions too; the page shows
no stock for them.
"""

from __future__ import annotations

from typing import Any

from application.ports.read_model_sink import Contribute, Operation, SetFields
from domain.product import Product
from projections.definition import ProjectedEvent, Projection, event_type
from projections.order_views import money


def product_doc(tenant_id: str, product_id: str) -> str:
    return f"{tenant_id}:product:{product_id}"


def _set(event: ProjectedEvent, **fields: Any) -> SetFields:
    """`fields` of the product's page, with the version this event brought it to."""
    return SetFields(
        product_doc(event.tenant_id, event.stream_id),
        {**fields, "version": event.record.stream_version},
    )


def on_created(event: ProjectedEvent) -> list[Operation]:
    created: Any = event.event
    operations: list[Operation] = [
        _set(
            event,
            id=event.stream_id,
            creator_id=str(created.creator_id),
            title=created.title,
            description=created.description,
            tags=list(created.tags),
            kind=str(created.kind.value),
            price=money(created.price),
            published=False,
            unlimited_stock=created.stock is None,
            created_at=created.timestamp.isoformat(),
        )
    ]
    if created.stock is not None:
        doc = product_doc(event.tenant_id, event.stream_id)
        operations += [
            Contribute(doc, "stock", "created", created.stock),
            Contribute(doc, "available", "created", created.stock),
        ]
    return operations


def on_details_updated(event: ProjectedEvent) -> list[Operation]:
    updated: Any = event.event
    return [
        _set(event, title=updated.title, description=updated.description, tags=list(updated.tags))
    ]


def _published(value: bool) -> Any:
    def handler(event: ProjectedEvent) -> list[Operation]:
        return [_set(event, published=value)]

    return handler


def on_price_changed(event: ProjectedEvent) -> list[Operation]:
    changed: Any = event.event
    return [_set(event, price=money(changed.price))]


def _reservation(*, holds: bool, sold: bool) -> Any:
    """A handler for a reservation's step: whether its units are now held from `available`
    (reserved, or sold) and whether they left `stock` (sold)."""

    def handler(event: ProjectedEvent) -> list[Operation]:
        step: Any = event.event
        doc = product_doc(event.tenant_id, event.stream_id)
        order = str(step.order_id)
        operations: list[Operation] = [
            _set(event),
            Contribute(doc, "available", order, -step.quantity if holds else 0),
        ]
        if sold:
            operations.append(Contribute(doc, "stock", order, -step.quantity))
        return operations

    return handler


PRODUCT_PAGES = Projection(
    name="product_pages",
    version=1,
    sink="views",
    description="Product pages: details, price, stock, availability, ETag (GET /products/{id}).",
    handlers={
        event_type(Product, "Created"): on_created,
        event_type(Product, "DetailsUpdated"): on_details_updated,
        event_type(Product, "Published"): _published(True),
        event_type(Product, "Unpublished"): _published(False),
        event_type(Product, "PriceChanged"): on_price_changed,
        event_type(Product, "StockReserved"): _reservation(holds=True, sold=False),
        event_type(Product, "StockReleased"): _reservation(holds=False, sold=False),
        event_type(Product, "StockCommitted"): _reservation(holds=True, sold=True),
    },
)
