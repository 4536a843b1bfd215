"""How aggregates read from the store are shown, until the read models serve these reads."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from domain.money import Money
from domain.order import Order
from domain.product import Product
from domain.wallet import Wallet


class MoneyView(BaseModel):
    amount: int
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyView:
        return cls(amount=money.amount, currency=money.currency)


class ProductView(BaseModel):
    id: UUID
    creator_id: UUID
    title: str
    description: str
    tags: list[str]
    kind: str
    price: MoneyView
    stock: int | None
    available: int | None
    published: bool
    version: int

    @classmethod
    def of(cls, product: Product) -> ProductView:
        return cls(
            id=product.id,
            creator_id=product.creator_id,
            title=product.title,
            description=product.description,
            tags=list(product.tags),
            kind=product.kind,
            price=MoneyView.of(product.price),
            stock=product.stock,
            available=product.available,
            published=product.published,
            version=product.version,
        )


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
    version: int

    @classmethod
    def of(cls, order: Order) -> OrderView:
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


class WalletView(BaseModel):
    id: UUID
    currency: str
    balance: MoneyView
    credited: MoneyView
    paid_out: MoneyView
    version: int

    @classmethod
    def of(cls, wallet: Wallet) -> WalletView:
        return cls(
            id=wallet.id,
            currency=wallet.currency,
            balance=MoneyView.of(wallet.balance),
            credited=MoneyView.of(wallet.credited),
            paid_out=MoneyView.of(wallet.debited),
            version=wallet.version,
        )
