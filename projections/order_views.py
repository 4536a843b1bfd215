"""Hot views of orders (the `views` sink: Redis, or its embedded twin).

Documents:
- `<tenant>:order:<order id>` — the order as the buyer sees it: status, lines, total, when each
  state was entered (`timeline.<position>` fields, so entries from any delivery order collect).
- `<tenant>:buyer-orders:<buyer id>` — one field per order the buyer placed (id, total, time);
  later order events do not name the buyer, so the list holds what `Placed` knows and the query
  side reads each order's current status from its own document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from application.ports.read_model_sink import JsonValue, Operation, SetFields
from domain.money import Money
from domain.order import Order, OrderLine, OrderStatus
from projections.definition import ProjectedEvent, Projection, event_type

TIMELINE_PREFIX = "timeline."


def order_doc(tenant_id: str, order_id: str) -> str:
    return f"{tenant_id}:order:{order_id}"


def buyer_orders_doc(tenant_id: str, buyer_id: str) -> str:
    return f"{tenant_id}:buyer-orders:{buyer_id}"


def timeline(fields: dict[str, JsonValue]) -> list[dict[str, Any]]:
    """An order document's state changes (`{"status", "at"}`), oldest first.

    Every order event enters a status, so there is one entry per event of the order's stream:
    the timeline's length is the stream version the document reflects.
    """
    names = sorted(name for name in fields if name.startswith(TIMELINE_PREFIX))
    return [fields[name] for name in names]


def money(value: Money) -> dict[str, Any]:
    return {"amount": value.amount, "currency": value.currency}


def _line(line: OrderLine) -> dict[str, Any]:
    return {
        "product_id": str(line.product_id),
        "title": line.title,
        "unit_price": money(line.unit_price),
        "quantity": line.quantity,
        "subtotal": money(line.subtotal),
    }


def _timeline(event: ProjectedEvent, status: OrderStatus, at: datetime) -> dict[str, Any]:
    return {
        "status": status.value,
        f"{TIMELINE_PREFIX}{event.position:020d}": {"status": status.value, "at": at.isoformat()},
        "updated_at": at.isoformat(),
    }


def on_placed(event: ProjectedEvent) -> list[Operation]:
    placed: Any = event.event
    order_id = event.stream_id
    return [
        SetFields(
            order_doc(event.tenant_id, order_id),
            {
                "id": order_id,
                "buyer_id": str(placed.buyer_id),
                "seller_id": str(placed.seller_id),
                "lines": [_line(line) for line in placed.lines],
                "total": money(placed.total),
                "placed_at": placed.at.isoformat(),
                **_timeline(event, OrderStatus.PLACED, placed.at),
            },
        ),
        SetFields(
            buyer_orders_doc(event.tenant_id, str(placed.buyer_id)),
            {
                order_id: {
                    "id": order_id,
                    "total": money(placed.total),
                    "placed_at": placed.at.isoformat(),
                }
            },
        ),
    ]


def _entered(status: OrderStatus, **copied: str) -> Any:
    """A handler for an event that moves the order to `status`, copying event attributes into
    fields (`field_name="attribute"`)."""

    def handler(event: ProjectedEvent) -> list[Operation]:
        happened: Any = event.event
        fields = _timeline(event, status, happened.at)
        for field_name, attribute in copied.items():
            fields[field_name] = getattr(happened, attribute)
        return [SetFields(order_doc(event.tenant_id, event.stream_id), fields)]

    return handler


def on_dispute_resolved(event: ProjectedEvent) -> list[Operation]:
    resolved: Any = event.event
    resolution = str(resolved.resolution.value)
    status = OrderStatus.COMPLETED if resolution == "release" else OrderStatus.REFUNDED
    fields = _timeline(event, status, resolved.at)
    fields["resolution"] = resolution
    return [SetFields(order_doc(event.tenant_id, event.stream_id), fields)]


ORDER_VIEWS = Projection(
    name="order_views",
    version=1,
    sink="views",
    description="Order views and each buyer's order list (GET /orders/{id}, GET /me/orders).",
    handlers={
        event_type(Order, "Placed"): on_placed,
        event_type(Order, "StockReserved"): _entered(OrderStatus.STOCK_RESERVED),
        event_type(Order, "PaymentRequested"): _entered(
            OrderStatus.PAYMENT_REQUESTED, payment_intent_id="payment_intent_id"
        ),
        event_type(Order, "Paid"): _entered(OrderStatus.PAID),
        event_type(Order, "Confirmed"): _entered(OrderStatus.CONFIRMED),
        event_type(Order, "Delivered"): _entered(OrderStatus.DELIVERED),
        event_type(Order, "Completed"): _entered(OrderStatus.COMPLETED),
        event_type(Order, "Cancelled"): _entered(
            OrderStatus.CANCELLED, cancellation_reason="reason"
        ),
        event_type(Order, "Disputed"): _entered(OrderStatus.DISPUTED, dispute_reason="reason"),
        event_type(Order, "DisputeResolved"): on_dispute_resolved,
    },
)
