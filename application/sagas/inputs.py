"""Which events of the global log drive which saga, and what each does to it.

`ROUTES` maps an event type (its eventsourcing topic) to the saga it concerns, how to find the
order that saga belongs to, and the function that feeds it to the saga. The runner subscribes
to exactly these types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.ports.event_store import RecordedEvent
from application.sagas.checkout import CheckoutSaga, checkout_saga_id
from application.sagas.escrow import EscrowSaga, escrow_saga_id
from application.sagas.policy import SagaPolicy
from application.sagas.saga import Saga
from domain.escrow import Escrow
from domain.order import Order
from domain.payment import Payment

Receive = Callable[[Any, Any, RecordedEvent, SagaPolicy], Saga | None]
"""(the saga or None, the domain event, its record, the policy) → the saga after the input."""


class OrderOf(Enum):
    """Where the id of the order a saga belongs to comes from."""

    STREAM = "the event's own stream is the order"
    EVENT = "the event carries an `order_id`"
    PAYMENT = "the event's stream is a payment (its `order_id`)"
    ESCROW = "the event's stream is an escrow (its `order_id`)"


@dataclass(frozen=True)
class Route:
    saga_type: type[Saga]
    saga_id: Callable[[UUID], UUID]
    order_of: OrderOf
    receive: Receive


def topic(aggregate: type[Any], event_name: str) -> str:
    """The stored type of an aggregate's event (`domain.order:Order.Placed`)."""
    return f"{get_topic(aggregate)}.{event_name}"


def _unseen(saga: Saga | None, recorded: RecordedEvent) -> bool:
    return saga is not None and not saga.has_seen(recorded.position)


def _correlation(recorded: RecordedEvent, fallback: UUID) -> UUID:
    return recorded.correlation_id or fallback


# -- checkout --------------------------------------------------------------------------------


def _order_placed(
    saga: CheckoutSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> CheckoutSaga:
    if saga is not None:
        return saga
    return CheckoutSaga.start(
        order_id=event.originator_id,
        tenant_id=event.tenant_id,
        lines=event.lines,
        placed_at=event.at,
        payment_timeout=policy.payment_timeout,
        position=recorded.position,
        correlation_id=_correlation(recorded, event.originator_id),
    )


def _order_cancelled(
    saga: CheckoutSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> CheckoutSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_order_cancelled(reason=event.reason, position=recorded.position)
    return saga


def _payment_captured(
    saga: CheckoutSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> CheckoutSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_payment_captured(position=recorded.position)
    return saga


def _payment_failed(
    saga: CheckoutSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> CheckoutSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_payment_failed(reason=event.reason, position=recorded.position)
    return saga


# -- escrow ----------------------------------------------------------------------------------


def _funds_held(
    saga: EscrowSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> EscrowSaga:
    if saga is not None:
        return saga
    return EscrowSaga.start(
        order_id=event.order_id,
        tenant_id=event.tenant_id,
        seller_id=event.seller_id,
        amount=event.amount,
        position=recorded.position,
        correlation_id=_correlation(recorded, event.order_id),
    )


def _order_delivered(
    saga: EscrowSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> EscrowSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_order_delivered(
            at=event.at, window=policy.dispute_window, position=recorded.position
        )
    return saga


def _order_completed(
    saga: EscrowSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> EscrowSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_order_completed(position=recorded.position)
    return saga


def _order_disputed(
    saga: EscrowSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> EscrowSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_order_disputed(reason=event.reason, position=recorded.position)
    return saga


def _escrow_released(
    saga: EscrowSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> EscrowSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_escrow_released(
            seller_net=event.seller_net, platform_fee=event.platform_fee, position=recorded.position
        )
    return saga


def _escrow_refunded(
    saga: EscrowSaga | None, event: Any, recorded: RecordedEvent, policy: SagaPolicy
) -> EscrowSaga | None:
    if saga is not None and _unseen(saga, recorded):
        saga.on_escrow_refunded(position=recorded.position)
    return saga


_CHECKOUT, _ESCROW = CheckoutSaga, EscrowSaga
ROUTES: Mapping[str, Route] = {
    topic(Order, "Placed"): Route(_CHECKOUT, checkout_saga_id, OrderOf.STREAM, _order_placed),
    topic(Order, "Cancelled"): Route(_CHECKOUT, checkout_saga_id, OrderOf.STREAM, _order_cancelled),
    topic(Payment, "Captured"): Route(
        _CHECKOUT, checkout_saga_id, OrderOf.PAYMENT, _payment_captured
    ),
    topic(Payment, "Failed"): Route(_CHECKOUT, checkout_saga_id, OrderOf.PAYMENT, _payment_failed),
    topic(Escrow, "FundsHeld"): Route(_ESCROW, escrow_saga_id, OrderOf.EVENT, _funds_held),
    topic(Order, "Delivered"): Route(_ESCROW, escrow_saga_id, OrderOf.STREAM, _order_delivered),
    topic(Order, "Completed"): Route(_ESCROW, escrow_saga_id, OrderOf.STREAM, _order_completed),
    topic(Order, "Disputed"): Route(_ESCROW, escrow_saga_id, OrderOf.STREAM, _order_disputed),
    topic(Escrow, "Released"): Route(_ESCROW, escrow_saga_id, OrderOf.ESCROW, _escrow_released),
    topic(Escrow, "Refunded"): Route(_ESCROW, escrow_saga_id, OrderOf.ESCROW, _escrow_refunded),
}

SAGA_TYPES: Mapping[str, type[Saga]] = {
    CheckoutSaga.kind: CheckoutSaga,
    EscrowSaga.kind: EscrowSaga,
}
"""Saga classes by the `kind` their timers carry."""
