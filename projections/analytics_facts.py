"""Analytics facts (the `analytics` sink: ClickHouse, or chdb in-process): order lines, order
state transitions, escrow movements and payments, one row per line or event (the tables are
defined in `application.read_models.analytics`).

A row's key is the aggregate's id and what makes the row unique within it (line number, or the
event's version in its stream), after the tenant: a redelivered event writes the same row again,
and the store keeps the copy with the highest position. Order events carry their own `at`;
escrow and payment events have none, so their rows take the domain event's `timestamp`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from application.ports.read_model_sink import InsertRow, JsonValue, Operation
from application.read_models.analytics import (
    ESCROW_MOVEMENTS,
    ORDER_LINES,
    ORDER_TRANSITIONS,
    PAYMENTS,
    FactTable,
    utc_text,
)
from domain.dispute import Resolution
from domain.escrow import Escrow
from domain.order import Order, OrderStatus
from domain.payment import Payment
from projections.definition import Handler, ProjectedEvent, Projection, event_type


def fact(table: FactTable, **row: JsonValue) -> InsertRow:
    """A row of `table`, keyed by the table's key columns."""
    return InsertRow(table.name, table.key_of(row), row)


# -- orders -----------------------------------------------------------------------------------


def _transition(
    event: ProjectedEvent, status: OrderStatus, at: datetime, *, seller_id: str = ""
) -> InsertRow:
    return fact(
        ORDER_TRANSITIONS,
        tenant=event.tenant_id,
        order_id=event.stream_id,
        seq=event.record.stream_version,
        event=event.record.type.rsplit(".", 1)[-1],
        status=status.value,
        seller_id=seller_id,
        at=utc_text(at),
    )


def on_placed(event: ProjectedEvent) -> list[Operation]:
    placed: Any = event.event
    placed_at = utc_text(placed.at)
    lines: list[Operation] = [
        fact(
            ORDER_LINES,
            tenant=event.tenant_id,
            order_id=event.stream_id,
            line_no=number,
            seller_id=str(line.seller_id),
            buyer_id=str(placed.buyer_id),
            product_id=str(line.product_id),
            title=line.title,
            quantity=line.quantity,
            unit_price=line.unit_price.amount,
            amount=line.subtotal.amount,
            currency=line.unit_price.currency,
            placed_at=placed_at,
        )
        for number, line in enumerate(placed.lines, start=1)
    ]
    seller_id = str(placed.seller_id)
    return [*lines, _transition(event, OrderStatus.PLACED, placed.at, seller_id=seller_id)]


def _entered(status: OrderStatus) -> Handler:
    """The handler of an order event that moves the order to `status`."""

    def handler(event: ProjectedEvent) -> list[Operation]:
        happened: Any = event.event
        return [_transition(event, status, happened.at)]

    return handler


def on_dispute_resolved(event: ProjectedEvent) -> list[Operation]:
    resolved: Any = event.event
    released = resolved.resolution == Resolution.RELEASE
    status = OrderStatus.COMPLETED if released else OrderStatus.REFUNDED
    return [_transition(event, status, resolved.at)]


# -- escrows ----------------------------------------------------------------------------------


def _movement(event: ProjectedEvent, kind: str, **fields: JsonValue) -> list[Operation]:
    happened: Any = event.event
    row: dict[str, JsonValue] = {
        "tenant": event.tenant_id,
        "escrow_id": event.stream_id,
        "seq": event.record.stream_version,
        "kind": kind,
        "order_id": "",
        "seller_id": "",
        "buyer_id": "",
        "currency": "",
        "amount": 0,
        "seller_net": 0,
        "platform_fee": 0,
        "platform_fee_bps": 0,
        "resolution": "",
        "at": utc_text(happened.timestamp),
    }
    return [fact(ESCROW_MOVEMENTS, **(row | fields))]


def on_funds_held(event: ProjectedEvent) -> list[Operation]:
    held: Any = event.event
    return _movement(
        event,
        "held",
        order_id=str(held.order_id),
        seller_id=str(held.seller_id),
        buyer_id=str(held.buyer_id),
        currency=held.amount.currency,
        amount=held.amount.amount,
        platform_fee_bps=held.platform_fee_bps,
    )


def on_escrow_disputed(event: ProjectedEvent) -> list[Operation]:
    return _movement(event, "disputed")


def on_escrow_resolved(event: ProjectedEvent) -> list[Operation]:
    resolved: Any = event.event
    return _movement(event, "resolved", resolution=str(resolved.resolution.value))


def on_released(event: ProjectedEvent) -> list[Operation]:
    released: Any = event.event
    net, fee = released.seller_net, released.platform_fee
    return _movement(
        event,
        "released",
        currency=net.currency,
        amount=net.amount + fee.amount,
        seller_net=net.amount,
        platform_fee=fee.amount,
    )


def on_escrow_refunded(event: ProjectedEvent) -> list[Operation]:
    refunded: Any = event.event
    return _movement(
        event, "refunded", currency=refunded.amount.currency, amount=refunded.amount.amount
    )


# -- payments ---------------------------------------------------------------------------------


def _payment(event: ProjectedEvent, kind: str, **fields: JsonValue) -> list[Operation]:
    happened: Any = event.event
    row: dict[str, JsonValue] = {
        "tenant": event.tenant_id,
        "payment_id": event.stream_id,
        "seq": event.record.stream_version,
        "kind": kind,
        "order_id": "",
        "amount": 0,
        "currency": "",
        "reason": "",
        "at": utc_text(happened.timestamp),
    }
    return [fact(PAYMENTS, **(row | fields))]


def on_intent_created(event: ProjectedEvent) -> list[Operation]:
    created: Any = event.event
    return _payment(
        event,
        "intent_created",
        order_id=str(created.order_id),
        amount=created.amount.amount,
        currency=created.amount.currency,
    )


def _payment_kind(kind: str) -> Handler:
    def handler(event: ProjectedEvent) -> list[Operation]:
        return _payment(event, kind)

    return handler


def on_payment_failed(event: ProjectedEvent) -> list[Operation]:
    failed: Any = event.event
    return _payment(event, "failed", reason=failed.reason)


_S = OrderStatus

ANALYTICS_FACTS = Projection(
    name="analytics_facts",
    version=1,
    sink="analytics",
    description="Analytics facts: order lines, order transitions, escrow movements, payments "
    "(GET /analytics/…, mercato analytics …).",
    handlers={
        event_type(Order, "Placed"): on_placed,
        event_type(Order, "StockReserved"): _entered(_S.STOCK_RESERVED),
        event_type(Order, "PaymentRequested"): _entered(_S.PAYMENT_REQUESTED),
        event_type(Order, "Paid"): _entered(_S.PAID),
        event_type(Order, "Confirmed"): _entered(_S.CONFIRMED),
        event_type(Order, "Delivered"): _entered(_S.DELIVERED),
        event_type(Order, "Completed"): _entered(_S.COMPLETED),
        event_type(Order, "Cancelled"): _entered(_S.CANCELLED),
        event_type(Order, "Disputed"): _entered(_S.DISPUTED),
        event_type(Order, "DisputeResolved"): on_dispute_resolved,
        event_type(Escrow, "FundsHeld"): on_funds_held,
        event_type(Escrow, "Disputed"): on_escrow_disputed,
        event_type(Escrow, "DisputeResolved"): on_escrow_resolved,
        event_type(Escrow, "Released"): on_released,
        event_type(Escrow, "Refunded"): on_escrow_refunded,
        event_type(Payment, "IntentCreated"): on_intent_created,
        event_type(Payment, "Captured"): _payment_kind("captured"),
        event_type(Payment, "Failed"): on_payment_failed,
        event_type(Payment, "Refunded"): _payment_kind("refunded"),
    },
)
