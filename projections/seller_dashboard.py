"""A seller's dashboard (the `views` sink): sales and money, per currency.

Document `<tenant>:seller-dashboard:<seller id>`, with per currency (`<counter>.<currency>`):
- `sales_count`, `gross` — sales whose money was captured and not refunded: counted when the
  escrow holds the funds, taken back if the escrow is refunded;
- `net`, `fees` — what escrow released to the seller's wallet, and the platform's fee on it;
- `pending_escrow` — money held and not yet released or refunded;
- `refunds_count`, `refunded` — escrows refunded to the buyer.

So `gross = net + fees + pending_escrow` in every currency. Every counter is a `Contribute`
whose source is the escrow: an escrow's events come in order, each setting (not adding) its
share, so redelivery never counts twice and a release or refund replaces what the hold put in.

Escrow events stored before `Released`/`Refunded` named the seller (class version 1) read
back with `seller_id` None; they cannot be attributed without a lookup, which handlers never
do, so they are skipped: only such old escrows may show as still pending.
"""

from __future__ import annotations

from typing import Any

from application.ports.read_model_sink import Contribute, JsonValue, Operation, SetFields
from domain.escrow import Escrow
from projections.definition import ProjectedEvent, Projection, event_type

COUNTERS = ("sales_count", "gross", "net", "fees", "pending_escrow", "refunds_count", "refunded")


def seller_dashboard_doc(tenant_id: str, seller_id: str) -> str:
    return f"{tenant_id}:seller-dashboard:{seller_id}"


def totals_by_currency(fields: dict[str, JsonValue]) -> dict[str, dict[str, int]]:
    """`{currency: {counter: value}}` from a dashboard document, every counter present."""
    totals: dict[str, dict[str, int]] = {}
    for name, value in fields.items():
        counter, dot, currency = name.partition(".")
        if dot and counter in COUNTERS:
            totals.setdefault(currency, dict.fromkeys(COUNTERS, 0))[counter] = int(value)
    return totals


def _shares(
    event: ProjectedEvent, seller_id: Any, currency: str, **amounts: int
) -> list[Operation]:
    doc = seller_dashboard_doc(event.tenant_id, str(seller_id))
    escrow = event.stream_id
    return [
        SetFields(doc, {"seller_id": str(seller_id)}),
        *(
            Contribute(doc, f"{counter}.{currency}", escrow, amount)
            for counter, amount in amounts.items()
        ),
    ]


def on_funds_held(event: ProjectedEvent) -> list[Operation]:
    held: Any = event.event
    amount: int = held.amount.amount
    return _shares(
        event,
        held.seller_id,
        held.amount.currency,
        sales_count=1,
        gross=amount,
        pending_escrow=amount,
    )


def on_released(event: ProjectedEvent) -> list[Operation]:
    released: Any = event.event
    if released.seller_id is None:
        return []  # stored before the event named its seller (see the module docstring)
    return _shares(
        event,
        released.seller_id,
        released.seller_net.currency,
        net=released.seller_net.amount,
        fees=released.platform_fee.amount,
        pending_escrow=0,
    )


def on_refunded(event: ProjectedEvent) -> list[Operation]:
    refunded: Any = event.event
    if refunded.seller_id is None:
        return []  # stored before the event named its seller (see the module docstring)
    return _shares(
        event,
        refunded.seller_id,
        refunded.amount.currency,
        sales_count=0,
        gross=0,
        pending_escrow=0,
        refunds_count=1,
        refunded=refunded.amount.amount,
    )


SELLER_DASHBOARD = Projection(
    name="seller_dashboard",
    version=1,
    sink="views",
    description="Each seller's sales, earnings and money in escrow (GET /sellers/{id}/dashboard).",
    handlers={
        event_type(Escrow, "FundsHeld"): on_funds_held,
        event_type(Escrow, "Released"): on_released,
        event_type(Escrow, "Refunded"): on_refunded,
    },
)
