"""Catalog search (the `search` sink: Elasticsearch, or its SQLite FTS5 twin).

Documents (see `application.read_models.search` for what the sinks make of them):
- `<tenant>:product:<id>` — a product as buyers find it: the fields each product event sets,
  `updated_at` from the latest, and `sales_count`, a counter with one contribution per order
  (source = the order id, amount = the units it bought), so a redelivered or replayed
  `StockCommitted` never counts twice.
- `<tenant>:seller:<id>` — the account's display name, for the hits' seller. Every account gets
  one, not only creators: roles can change later, and `RolesChanged` does not carry the display
  name a handler would need then. Emails are never indexed.

Times are UTC ISO 8601 with microseconds, so the text order is the time order (the SQLite twin
sorts `newest` on it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from application.ports.read_model_sink import Contribute, Operation, SetFields
from application.read_models.search import product_doc, seller_doc
from domain.account import Account
from domain.money import Money
from domain.product import Product, ProductKind
from projections.definition import ProjectedEvent, Projection, event_type


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _price(price: Money) -> dict[str, Any]:
    return {"amount": price.amount, "currency": price.currency}


def _product(event: ProjectedEvent, fields: dict[str, Any]) -> list[Operation]:
    happened: Any = event.event
    fields["updated_at"] = timestamp(happened.timestamp)
    return [SetFields(product_doc(event.tenant_id, event.stream_id), fields)]


def on_created(event: ProjectedEvent) -> list[Operation]:
    created: Any = event.event
    return _product(
        event,
        {
            "id": event.stream_id,
            "tenant": event.tenant_id,
            "seller_id": str(created.creator_id),
            "title": created.title,
            "description": created.description,
            "tags": list(created.tags),
            "kind": ProductKind(created.kind).value,
            "price": _price(created.price),
            "created_at": timestamp(created.timestamp),
            "published": False,
        },
    )


def on_details_updated(event: ProjectedEvent) -> list[Operation]:
    updated: Any = event.event
    return _product(
        event,
        {"title": updated.title, "description": updated.description, "tags": list(updated.tags)},
    )


def on_published(event: ProjectedEvent) -> list[Operation]:
    return _product(event, {"published": True})


def on_unpublished(event: ProjectedEvent) -> list[Operation]:
    return _product(event, {"published": False})


def on_price_changed(event: ProjectedEvent) -> list[Operation]:
    changed: Any = event.event
    return _product(event, {"price": _price(changed.price)})


def on_stock_committed(event: ProjectedEvent) -> list[Operation]:
    committed: Any = event.event
    doc = product_doc(event.tenant_id, event.stream_id)
    return [Contribute(doc, "sales_count", str(committed.order_id), committed.quantity)]


def on_account_registered(event: ProjectedEvent) -> list[Operation]:
    registered: Any = event.event
    doc = seller_doc(event.tenant_id, event.stream_id)
    return [SetFields(doc, {"display_name": registered.display_name})]


CATALOG_SEARCH = Projection(
    name="catalog_search",
    version=1,
    sink="search",
    description="Published products by text, filters and facets (GET /products/search).",
    handlers={
        event_type(Product, "Created"): on_created,
        event_type(Product, "DetailsUpdated"): on_details_updated,
        event_type(Product, "Published"): on_published,
        event_type(Product, "Unpublished"): on_unpublished,
        event_type(Product, "PriceChanged"): on_price_changed,
        event_type(Product, "StockCommitted"): on_stock_committed,
        event_type(Account, "Registered"): on_account_registered,
    },
)
