"""The commands people send: frozen, typed, and bounded before any handler sees them.

Amounts are integer minor units and quantities integers, both strict (neither `"5"` nor `5.0`
nor `true` is accepted). Limits mirror the domain's, so a malformed command is refused with
the field named before anything is loaded. Commands that edit what a person owns take an
optional `expected_version` (the HTTP `If-Match`): when given, a stale version is a conflict
and the command is never retried.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from application.integers import INT64_MAX
from domain import checks, order, product
from domain.dispute import Resolution
from domain.money import Money
from domain.product import ProductKind

MAX_AMOUNT = 10**12
"""The largest amount a command may carry, in minor units (ten billion in a two-decimal unit)."""
MAX_STOCK = 10**9

MinorUnits = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
Quantity = Annotated[int, Field(strict=True, ge=1, le=order.MAX_QUANTITY)]
Version = Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=product.TITLE_MAX_LENGTH)
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=product.DESCRIPTION_MAX_LENGTH)
]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=product.TAG_MAX_LENGTH)
]
Tags = Annotated[tuple[Tag, ...], Field(max_length=product.MAX_TAGS)]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=checks.REASON_MAX_LENGTH)
]


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Price(Command):
    amount: MinorUnits
    currency: Currency

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)


# -- products (creators) --------------------------------------------------------------------


class CreateProduct(Command):
    product_id: UUID | None = None
    """Left empty, derived from the idempotency key (or random without one)."""
    title: Title
    description: Description = ""
    tags: Tags = ()
    kind: ProductKind
    price: Price
    stock: Annotated[int, Field(strict=True, ge=0, le=MAX_STOCK)] | None = None
    """`None` for unlimited."""


class UpdateProduct(Command):
    product_id: UUID
    title: Title
    description: Description = ""
    tags: Tags = ()
    expected_version: Version | None = None


class PublishProduct(Command):
    product_id: UUID
    expected_version: Version | None = None


class UnpublishProduct(Command):
    product_id: UUID
    expected_version: Version | None = None


class ChangePrice(Command):
    product_id: UUID
    price: Price
    expected_version: Version | None = None


# -- orders (buyers) ------------------------------------------------------------------------


class OrderLineRequest(Command):
    product_id: UUID
    quantity: Quantity


class PlaceOrder(Command):
    order_id: UUID | None = None
    """Left empty, derived from the idempotency key (or random without one)."""
    lines: Annotated[tuple[OrderLineRequest, ...], Field(min_length=1, max_length=order.MAX_LINES)]


class CancelOrder(Command):
    """By the buyer before payment, or by the checkout saga as compensation."""

    order_id: UUID
    reason: Reason = "cancelled by the buyer"


class ConfirmReceipt(Command):
    order_id: UUID


class OpenDispute(Command):
    order_id: UUID
    reason: Reason


class ResolveDispute(Command):
    """An admin settles a disputed order's escrow: release to the seller or refund the buyer."""

    order_id: UUID
    resolution: Resolution


# -- wallets (sellers) ----------------------------------------------------------------------


class RequestPayout(Command):
    amount: Price
    payout_id: UUID | None = None
    """Left empty, derived from the idempotency key (or random without one)."""
