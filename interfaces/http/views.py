"""How the read models are shown: response models built from the hot views' documents.

Each view document is read from the live target of its projection (`ReadModelsDep`), and turned
into a response here; the field names of the documents are the projections' (see
`projections.order_views`, `wallet_views`, `seller_dashboard`, `product_pages`). The one read
that does not come from a view is an order `as_of` a past moment, rebuilt from its stream
(`OrderView.of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, cast
from uuid import UUID

from pydantic import BaseModel, Field

from application.ports.read_model_sink import JsonValue
from application.read_models.documents import Document
from domain.money import Money
from domain.order import Order
from interfaces.http.read_models import LiveReadModel
from projections import order_views, seller_dashboard, wallet_views

Fields = dict[str, JsonValue]


class DocumentReader(Protocol):
    """The readers of the `views` stores (Redis and its SQLite twin)."""

    async def documents(
        self, projection: str, target: str, doc_ids: Sequence[str]
    ) -> list[Document | None]: ...


async def view_documents(live: LiveReadModel, doc_ids: Sequence[str]) -> list[Fields | None]:
    """The fields of each document in the live target, in the order asked (None: missing)."""
    reader = cast(DocumentReader, live.sink)
    found = await reader.documents(live.projection, live.target, list(doc_ids))
    return [None if document is None else document.fields for document in found]


async def view_document(live: LiveReadModel, doc_id: str) -> Fields | None:
    (fields,) = await view_documents(live, [doc_id])
    return fields


class MoneyView(BaseModel):
    amount: int
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyView:
        return cls(amount=money.amount, currency=money.currency)


# -- products -------------------------------------------------------------------------------


class ProductView(BaseModel):
    id: UUID
    creator_id: UUID
    title: str
    description: str
    tags: list[str]
    kind: str
    price: MoneyView
    stock: int | None = Field(description="Units left to sell; none: unlimited.")
    available: int | None = Field(description="Units not held by orders in flight.")
    published: bool
    version: int = Field(description="The product's stream version: its ETag.")

    @classmethod
    def from_document(cls, fields: Fields) -> ProductView:
        unlimited = bool(fields.get("unlimited_stock"))
        return cls(
            id=fields["id"],
            creator_id=fields["creator_id"],
            title=fields["title"],
            description=fields["description"],
            tags=fields["tags"],
            kind=fields["kind"],
            price=fields["price"],
            stock=None if unlimited else int(fields.get("stock", 0)),
            available=None if unlimited else int(fields.get("available", 0)),
            published=bool(fields["published"]),
            version=fields["version"],
        )


# -- orders ---------------------------------------------------------------------------------


class OrderLineView(BaseModel):
    product_id: UUID
    title: str
    unit_price: MoneyView
    quantity: int


class StatusChange(BaseModel):
    status: str
    at: datetime


class OrderView(BaseModel):
    id: UUID
    status: str
    buyer_id: UUID
    seller_id: UUID
    lines: list[OrderLineView]
    total: MoneyView
    timeline: list[StatusChange]
    cancellation_reason: str | None
    dispute_reason: str | None
    resolution: str | None
    version: int = Field(description="The order's stream version shown.")

    @classmethod
    def of(cls, order: Order) -> OrderView:
        """An order rebuilt from its stream (reads `as_of` a past moment)."""
        return cls(
            id=order.id,
            status=order.status,
            buyer_id=order.buyer_id,
            seller_id=order.seller_id,
            lines=[
                OrderLineView(
                    product_id=line.product_id,
                    title=line.title,
                    unit_price=MoneyView.of(line.unit_price),
                    quantity=line.quantity,
                )
                for line in order.lines
            ],
            total=MoneyView.of(order.total),
            timeline=[StatusChange(status=status, at=at) for status, at in order.timeline],
            cancellation_reason=order.cancellation_reason,
            dispute_reason=order.dispute_reason,
            resolution=order.resolution,
            version=order.version,
        )

    @classmethod
    def from_document(cls, fields: Fields) -> OrderView:
        timeline = order_views.timeline(fields)
        return cls(
            id=fields["id"],
            status=fields["status"],
            buyer_id=fields["buyer_id"],
            seller_id=fields["seller_id"],
            lines=fields["lines"],
            total=fields["total"],
            timeline=timeline,
            cancellation_reason=fields.get("cancellation_reason"),
            dispute_reason=fields.get("dispute_reason"),
            resolution=fields.get("resolution"),
            # One timeline entry per event of the order (see `order_views.timeline`).
            version=len(timeline),
        )


class OrderSummary(BaseModel):
    id: UUID
    status: str
    seller_id: UUID | None
    total: MoneyView
    placed_at: datetime
    updated_at: datetime | None

    @classmethod
    def from_documents(cls, entry: dict[str, Any], order: Fields | None) -> OrderSummary:
        """A buyer's list entry, with the current status from the order's own document
        (written by the same event as the entry, so missing only for a moment mid-batch)."""
        order = order or {}
        return cls(
            id=entry["id"],
            status=order.get("status", "placed"),
            seller_id=order.get("seller_id"),
            total=entry["total"],
            placed_at=entry["placed_at"],
            updated_at=order.get("updated_at"),
        )


class OrderPage(BaseModel):
    orders: list[OrderSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; none on the last page."
    )


# -- wallets --------------------------------------------------------------------------------


class MovementView(BaseModel):
    kind: str = Field(description="`credit` (a sale, a fee) or `debit` (a payout).")
    amount: MoneyView
    reason: str | None
    reference: str
    at: datetime


class WalletView(BaseModel):
    id: UUID
    owner_id: UUID | None
    currency: str
    balance: MoneyView
    credited: MoneyView
    paid_out: MoneyView
    movements: list[MovementView] = Field(
        description=f"The latest {wallet_views.RECENT_MOVEMENTS} movements, newest first."
    )
    version: int

    @classmethod
    def from_document(cls, fields: Fields) -> WalletView:
        currency = fields["currency"]

        def total(counter: str) -> MoneyView:
            return MoneyView(amount=int(fields.get(counter, 0)), currency=currency)

        return cls(
            id=fields["id"],
            owner_id=fields.get("owner_id"),
            currency=currency,
            balance=total("balance"),
            credited=total("credited"),
            paid_out=total("paid_out"),
            movements=wallet_views.recent_movements(fields),
            version=fields["version"],
        )


class MyWallets(BaseModel):
    wallets: list[WalletView] = Field(description="One per currency, by currency.")


# -- sellers --------------------------------------------------------------------------------


class CurrencyTotals(BaseModel):
    currency: str
    sales_count: int = Field(description="Sales paid for and not refunded.")
    gross: MoneyView = Field(description="What those sales brought in: net + fees + pending.")
    net: MoneyView = Field(description="Released from escrow to the seller's wallet.")
    fees: MoneyView = Field(description="The platform's fees on the money released.")
    pending_escrow: MoneyView = Field(description="Held in escrow, not yet released.")
    refunds_count: int
    refunded: MoneyView = Field(description="Escrowed money returned to buyers.")

    @classmethod
    def of(cls, currency: str, totals: dict[str, int]) -> CurrencyTotals:
        def money(counter: str) -> MoneyView:
            return MoneyView(amount=totals[counter], currency=currency)

        return cls(
            currency=currency,
            sales_count=totals["sales_count"],
            gross=money("gross"),
            net=money("net"),
            fees=money("fees"),
            pending_escrow=money("pending_escrow"),
            refunds_count=totals["refunds_count"],
            refunded=money("refunded"),
        )


class SellerDashboardView(BaseModel):
    seller_id: UUID
    sales_count: int = Field(description="Sales in every currency.")
    currencies: list[CurrencyTotals] = Field(description="By currency.")

    @classmethod
    def from_document(cls, fields: Fields) -> SellerDashboardView:
        by_currency = seller_dashboard.totals_by_currency(fields)
        currencies = [CurrencyTotals.of(c, totals) for c, totals in sorted(by_currency.items())]
        return cls(
            seller_id=fields["seller_id"],
            sales_count=sum(totals.sales_count for totals in currencies),
            currencies=currencies,
        )
