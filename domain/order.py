"""Orders: a buyer's purchase from one seller, and the state machine it goes through.

    placed ─→ stock_reserved ─→ payment_requested ─→ paid ─→ confirmed ─→ delivered ─→ completed
      │             │                   │                                   │            ↑
      └─────────────┴───────────────────┴─→ cancelled          disputed ←───┘            │
                                                                  ├─ resolved: release ──┘
                                                                  └─ resolved: refund ─→ refunded

`TRANSITIONS` is the whole state machine as data; every command checks it and anything not in
it raises `IllegalTransition`. Order commands are strict, not idempotent: the sagas make steps
idempotent with deterministic command ids, and a surprise here is worth an error.

Times are passed in (`at`) by the caller's clock, so tests can fast-forward it; they make up
the order's `timeline`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import checks
from domain.dispute import Resolution
from domain.errors import (
    CurrencyMismatchError,
    IllegalTransition,
    InvariantViolation,
    NotOwner,
    SelfDealing,
)
from domain.money import Money

MAX_LINES = 50
MAX_QUANTITY = 100
LINE_TITLE_MAX_LENGTH = 200
PAYMENT_INTENT_ID_MAX_LENGTH = 200


class OrderStatus(StrEnum):
    PLACED = "placed"
    STOCK_RESERVED = "stock_reserved"
    PAYMENT_REQUESTED = "payment_requested"
    PAID = "paid"
    """The payment provider captured the payment."""
    CONFIRMED = "confirmed"
    """The captured funds are held in escrow."""
    DELIVERED = "delivered"
    """The download is granted; the dispute window runs."""
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"
    REFUNDED = "refunded"


class OrderAction(StrEnum):
    MARK_STOCK_RESERVED = "mark_stock_reserved"
    REQUEST_PAYMENT = "request_payment"
    MARK_PAID = "mark_paid"
    CONFIRM = "confirm"
    DELIVER = "deliver"
    COMPLETE = "complete"
    CANCEL = "cancel"
    DISPUTE = "dispute"
    RESOLVE_RELEASE = "resolve_release"
    RESOLVE_REFUND = "resolve_refund"


_S, _A = OrderStatus, OrderAction
TRANSITIONS: Final[Mapping[OrderStatus, Mapping[OrderAction, OrderStatus]]] = {
    _S.PLACED: {_A.MARK_STOCK_RESERVED: _S.STOCK_RESERVED, _A.CANCEL: _S.CANCELLED},
    _S.STOCK_RESERVED: {_A.REQUEST_PAYMENT: _S.PAYMENT_REQUESTED, _A.CANCEL: _S.CANCELLED},
    _S.PAYMENT_REQUESTED: {_A.MARK_PAID: _S.PAID, _A.CANCEL: _S.CANCELLED},
    # Once paid, the order is no longer cancellable: money has moved, so it ends in
    # completion or, through a dispute, in a refund.
    _S.PAID: {_A.CONFIRM: _S.CONFIRMED},
    _S.CONFIRMED: {_A.DELIVER: _S.DELIVERED},
    _S.DELIVERED: {_A.COMPLETE: _S.COMPLETED, _A.DISPUTE: _S.DISPUTED},
    _S.DISPUTED: {_A.RESOLVE_RELEASE: _S.COMPLETED, _A.RESOLVE_REFUND: _S.REFUNDED},
    _S.COMPLETED: {},
    _S.CANCELLED: {},
    _S.REFUNDED: {},
}


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One product in an order, with the title and unit price it had when the order was placed."""

    product_id: UUID
    seller_id: UUID
    title: str
    unit_price: Money
    quantity: int

    @property
    def subtotal(self) -> Money:
        return self.unit_price * self.quantity


def _check_lines(lines: Sequence[OrderLine]) -> tuple[OrderLine, ...]:
    """The lines as recorded: 1 to `MAX_LINES`, one currency, one seller, one line per product.

    One seller, because an order has one escrow that pays one seller: the application splits a
    cart with several sellers into one order per seller. One line per product, because a
    product holds one reservation per order.
    """
    if not 1 <= len(lines) <= MAX_LINES:
        raise InvariantViolation(
            f"an order has from 1 to {MAX_LINES} lines, got {len(lines)}", field="lines"
        )
    first = lines[0]
    checked: list[OrderLine] = []
    for line in lines:
        if line.unit_price.currency != first.unit_price.currency:
            raise CurrencyMismatchError(
                first.unit_price.currency, line.unit_price.currency, field="lines"
            )
        if line.seller_id != first.seller_id:
            raise InvariantViolation("all lines of an order must have one seller", field="lines")
        if any(line.product_id == seen.product_id for seen in checked):
            raise InvariantViolation(
                f"product {line.product_id} appears on more than one line", field="lines"
            )
        checks.whole_number(line.quantity, field="quantity", minimum=1, maximum=MAX_QUANTITY)
        checks.positive(line.unit_price, field="unit_price")
        title = checks.text(line.title, field="title", max_length=LINE_TITLE_MAX_LENGTH)
        checked.append(dataclasses.replace(line, title=title))
    return tuple(checked)


class Order(Aggregate):
    """A buyer's order from one seller. Place with `Order.place`."""

    @classmethod
    def place(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        buyer_id: UUID,
        lines: Sequence[OrderLine],
        at: datetime,
    ) -> Order:
        """Record the order; the caller copies titles and current prices from the products.

        No line may be the buyer's own product (`SelfDealing`), whatever roles the buyer has.
        """
        checked = _check_lines(lines)
        own = next((line for line in checked if line.seller_id == buyer_id), None)
        if own is not None:
            raise SelfDealing(buyer_id, own.product_id)
        total = Money.zero(checked[0].unit_price.currency)
        for line in checked:
            total += line.subtotal
        return cls(
            id=id,
            tenant_id=checks.tenant_id(tenant_id),
            buyer_id=buyer_id,
            seller_id=checked[0].seller_id,
            lines=checked,
            total=total,
            at=checks.aware(at),
        )

    @event("Placed")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        buyer_id: UUID,
        seller_id: UUID,
        lines: tuple[OrderLine, ...],
        total: Money,
        at: datetime,
    ) -> None:
        self.tenant_id = tenant_id
        self.buyer_id = buyer_id
        self.seller_id = seller_id
        self.lines = lines
        self.total = total
        self.status = OrderStatus.PLACED
        self.timeline: list[tuple[OrderStatus, datetime]] = [(OrderStatus.PLACED, at)]
        self.payment_intent_id: str | None = None
        self.cancellation_reason: str | None = None
        self.dispute_reason: str | None = None
        self.resolution: Resolution | None = None

    @property
    def placed_at(self) -> datetime:
        return self.timeline[0][1]

    @property
    def allowed_actions(self) -> frozenset[OrderAction]:
        return frozenset(TRANSITIONS[self.status])

    def ensure_buyer(self, account_id: UUID) -> None:
        """Raise `NotOwner` unless `account_id` placed this order (records nothing)."""
        if account_id != self.buyer_id:
            raise NotOwner("Order", self.id, account_id)

    def mark_stock_reserved(self, *, at: datetime) -> None:
        """Every line's stock is reserved."""
        self._require(OrderAction.MARK_STOCK_RESERVED)
        self._mark_stock_reserved(at=checks.aware(at))

    @event("StockReserved")
    def _mark_stock_reserved(self, at: datetime) -> None:
        self._enter(OrderStatus.STOCK_RESERVED, at)

    def request_payment(self, *, payment_intent_id: str, at: datetime) -> None:
        """A payment intent was created with the provider for the order's total."""
        self._require(OrderAction.REQUEST_PAYMENT)
        intent_id = checks.text(
            payment_intent_id, field="payment_intent_id", max_length=PAYMENT_INTENT_ID_MAX_LENGTH
        )
        self._request_payment(payment_intent_id=intent_id, at=checks.aware(at))

    @event("PaymentRequested")
    def _request_payment(self, payment_intent_id: str, at: datetime) -> None:
        self.payment_intent_id = payment_intent_id
        self._enter(OrderStatus.PAYMENT_REQUESTED, at)

    def mark_paid(self, *, at: datetime) -> None:
        """The provider captured the payment."""
        self._require(OrderAction.MARK_PAID)
        self._mark_paid(at=checks.aware(at))

    @event("Paid")
    def _mark_paid(self, at: datetime) -> None:
        self._enter(OrderStatus.PAID, at)

    def confirm(self, *, at: datetime) -> None:
        """The captured funds are held in the order's escrow."""
        self._require(OrderAction.CONFIRM)
        self._confirm(at=checks.aware(at))

    @event("Confirmed")
    def _confirm(self, at: datetime) -> None:
        self._enter(OrderStatus.CONFIRMED, at)

    def deliver(self, *, at: datetime) -> None:
        """The buyer was granted the download."""
        self._require(OrderAction.DELIVER)
        self._deliver(at=checks.aware(at))

    @event("Delivered")
    def _deliver(self, at: datetime) -> None:
        self._enter(OrderStatus.DELIVERED, at)

    def complete(self, *, at: datetime) -> None:
        """The buyer confirmed receipt, or the dispute window passed without a dispute."""
        self._require(OrderAction.COMPLETE)
        self._complete(at=checks.aware(at))

    @event("Completed")
    def _complete(self, at: datetime) -> None:
        self._enter(OrderStatus.COMPLETED, at)

    def cancel(self, *, reason: str, at: datetime) -> None:
        """Cancel before payment: a failed reservation, a failed payment, a deadline, the buyer."""
        self._require(OrderAction.CANCEL)
        self._cancel(reason=checks.reason(reason), at=checks.aware(at))

    @event("Cancelled")
    def _cancel(self, reason: str, at: datetime) -> None:
        self.cancellation_reason = reason
        self._enter(OrderStatus.CANCELLED, at)

    def dispute(self, *, reason: str, at: datetime) -> None:
        """The buyer disputes a delivered order before it completes."""
        self._require(OrderAction.DISPUTE)
        self._dispute(reason=checks.reason(reason), at=checks.aware(at))

    @event("Disputed")
    def _dispute(self, reason: str, at: datetime) -> None:
        self.dispute_reason = reason
        self._enter(OrderStatus.DISPUTED, at)

    def resolve_dispute(self, *, resolution: Resolution, at: datetime) -> None:
        """An admin settled the dispute: release completes the order, refund refunds it."""
        if resolution == Resolution.RELEASE:
            self._require(OrderAction.RESOLVE_RELEASE)
        else:
            self._require(OrderAction.RESOLVE_REFUND)
        self._resolve_dispute(resolution=resolution, at=checks.aware(at))

    @event("DisputeResolved")
    def _resolve_dispute(self, resolution: Resolution, at: datetime) -> None:
        self.resolution = resolution
        status = OrderStatus.COMPLETED if resolution == Resolution.RELEASE else OrderStatus.REFUNDED
        self._enter(status, at)

    def _require(self, action: OrderAction) -> None:
        if action not in TRANSITIONS[self.status]:
            raise IllegalTransition("Order", self.id, self.status, action)

    def _enter(self, status: OrderStatus, at: datetime) -> None:
        self.status = status
        self.timeline.append((status, at))
