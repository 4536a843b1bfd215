from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest

from domain.dispute import Resolution
from domain.errors import (
    CurrencyMismatchError,
    Forbidden,
    IllegalTransition,
    InvariantViolation,
    NotOwner,
    SelfDealing,
)
from domain.money import Money
from domain.order import TRANSITIONS, Order, OrderAction, OrderLine, OrderStatus
from tests.unit.domain.support import AT, LATER, assert_replays_identically, eur, recorded

pytestmark = pytest.mark.unit

BUYER, SELLER = uuid4(), uuid4()


def line(**overrides: Any) -> OrderLine:
    fields: dict[str, Any] = {
        "product_id": uuid4(),
        "seller_id": SELLER,
        "title": "Night Drive",
        "unit_price": eur(500),
        "quantity": 1,
    }
    return OrderLine(**(fields | overrides))


def place(lines: list[OrderLine] | None = None, at: datetime = AT) -> Order:
    return Order.place(id=uuid4(), tenant_id="acme", buyer_id=BUYER, lines=lines or [line()], at=at)


# Each action of the state machine as a command call, and the event it records.
COMMANDS: dict[OrderAction, tuple[Callable[[Order], None], str]] = {
    OrderAction.MARK_STOCK_RESERVED: (lambda o: o.mark_stock_reserved(at=LATER), "StockReserved"),
    OrderAction.REQUEST_PAYMENT: (
        lambda o: o.request_payment(payment_intent_id="pi_123", at=LATER),
        "PaymentRequested",
    ),
    OrderAction.MARK_PAID: (lambda o: o.mark_paid(at=LATER), "Paid"),
    OrderAction.CONFIRM: (lambda o: o.confirm(at=LATER), "Confirmed"),
    OrderAction.DELIVER: (lambda o: o.deliver(at=LATER), "Delivered"),
    OrderAction.COMPLETE: (lambda o: o.complete(at=LATER), "Completed"),
    OrderAction.CANCEL: (lambda o: o.cancel(reason="payment deadline", at=LATER), "Cancelled"),
    OrderAction.DISPUTE: (lambda o: o.dispute(reason="file is corrupt", at=LATER), "Disputed"),
    OrderAction.RESOLVE_RELEASE: (
        lambda o: o.resolve_dispute(resolution=Resolution.RELEASE, at=LATER),
        "DisputeResolved",
    ),
    OrderAction.RESOLVE_REFUND: (
        lambda o: o.resolve_dispute(resolution=Resolution.REFUND, at=LATER),
        "DisputeResolved",
    ),
}


def path_to(status: OrderStatus) -> list[OrderAction]:
    """The shortest sequence of actions from `placed` to `status`, read off the table."""
    paths: dict[OrderStatus, list[OrderAction]] = {OrderStatus.PLACED: []}
    queue = deque([OrderStatus.PLACED])
    while queue:
        current = queue.popleft()
        for action, target in TRANSITIONS[current].items():
            if target not in paths:
                paths[target] = [*paths[current], action]
                queue.append(target)
    return paths[status]


def order_in(status: OrderStatus) -> Order:
    order = place()
    for action in path_to(status):
        command, _ = COMMANDS[action]
        command(order)
    order.collect_events()
    return order


ALLOWED = [
    (status, action, target)
    for status, actions in TRANSITIONS.items()
    for action, target in actions.items()
]
ILLEGAL = [
    (status, action)
    for status in OrderStatus
    for action in OrderAction
    if action not in TRANSITIONS[status]
]


# Placing


def test_placing_records_the_lines_and_their_total_from_one_seller() -> None:
    order = place([line(unit_price=eur(500), quantity=2), line(unit_price=eur(250), quantity=3)])

    assert recorded(order) == ["Placed"]
    assert order.total == eur(1750)
    assert order.seller_id == SELLER
    assert order.status is OrderStatus.PLACED
    assert order.timeline == [(OrderStatus.PLACED, AT)]
    assert order.placed_at == AT


def test_line_titles_are_recorded_trimmed() -> None:
    order = place([line(title="  Night Drive  ")])
    assert order.lines[0].title == "Night Drive"


def test_an_order_may_have_50_lines_of_100_units() -> None:
    order = place([line(quantity=100) for _ in range(50)])
    assert order.total == eur(500 * 100 * 50)


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([line() for _ in range(51)], "lines"),
        ([line(quantity=0)], "quantity"),
        ([line(quantity=101)], "quantity"),
        ([line(unit_price=eur(0))], "unit_price"),
        ([line(title=" ")], "title"),
        ([line(), line(seller_id=uuid4())], "lines"),
    ],
    ids=[
        "no lines",
        "51 lines",
        "zero quantity",
        "101 units",
        "free line",
        "untitled line",
        "two sellers",
    ],
)
def test_placing_refuses_invalid_lines_naming_the_field(lines: list[OrderLine], field: str) -> None:
    with pytest.raises(InvariantViolation) as raised:
        Order.place(id=uuid4(), tenant_id="acme", buyer_id=BUYER, lines=lines, at=AT)
    assert raised.value.field == field


def test_all_lines_of_an_order_are_in_one_currency() -> None:
    with pytest.raises(CurrencyMismatchError):
        place([line(), line(unit_price=Money(500, "USD"))])


def test_a_product_appears_on_one_line_only() -> None:
    product_id = uuid4()
    with pytest.raises(InvariantViolation, match="more than one line"):
        place([line(product_id=product_id), line(product_id=product_id)])


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(InvariantViolation, match="timezone-aware"):
        place(at=datetime(2025, 3, 1, 12, 0))


def test_only_the_buyer_owns_the_order() -> None:
    order = place()
    order.ensure_buyer(BUYER)
    with pytest.raises(NotOwner):
        order.ensure_buyer(SELLER)


# The state machine


def test_every_action_of_the_state_machine_has_a_command() -> None:
    assert set(COMMANDS) == set(OrderAction)


def test_every_state_is_reachable_from_placed() -> None:
    for status in OrderStatus:
        assert order_in(status).status is status


@pytest.mark.parametrize(
    "status", [OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.REFUNDED]
)
def test_completed_cancelled_and_refunded_are_final(status: OrderStatus) -> None:
    assert order_in(status).allowed_actions == frozenset()


@pytest.mark.parametrize(("status", "action", "target"), ALLOWED)
def test_an_allowed_action_records_its_event_and_moves_to_the_next_state(
    status: OrderStatus, action: OrderAction, target: OrderStatus
) -> None:
    order = order_in(status)
    assert action in order.allowed_actions
    command, event_name = COMMANDS[action]

    command(order)

    assert recorded(order) == [event_name]
    assert order.status is target
    assert order.timeline[-1] == (target, LATER)


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_an_action_the_table_does_not_allow_is_an_illegal_transition(
    status: OrderStatus, action: OrderAction
) -> None:
    order = order_in(status)
    command, _ = COMMANDS[action]

    with pytest.raises(IllegalTransition) as raised:
        command(order)

    assert (raised.value.aggregate, raised.value.state, raised.value.action) == (
        "Order",
        status,
        action,
    )
    assert recorded(order) == []
    assert order.status is status


def test_an_illegal_transition_says_what_was_attempted_from_which_state() -> None:
    order = order_in(OrderStatus.PAID)
    with pytest.raises(IllegalTransition, match=f"Order {order.id} cannot cancel when paid"):
        order.cancel(reason="changed my mind", at=LATER)


def test_the_happy_path_keeps_a_timeline_of_every_state() -> None:
    order = order_in(OrderStatus.COMPLETED)

    assert [status for status, _ in order.timeline] == [
        OrderStatus.PLACED,
        OrderStatus.STOCK_RESERVED,
        OrderStatus.PAYMENT_REQUESTED,
        OrderStatus.PAID,
        OrderStatus.CONFIRMED,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
    ]
    assert order.payment_intent_id == "pi_123"


def test_cancelling_records_the_reason() -> None:
    order = order_in(OrderStatus.STOCK_RESERVED)
    order.cancel(reason="  out of stock ", at=LATER)
    assert order.cancellation_reason == "out of stock"


@pytest.mark.parametrize(
    ("status", "command"),
    [
        (OrderStatus.PLACED, lambda o: o.cancel(reason=" ", at=LATER)),
        (OrderStatus.STOCK_RESERVED, lambda o: o.request_payment(payment_intent_id="", at=LATER)),
        (OrderStatus.PLACED, lambda o: o.mark_stock_reserved(at=datetime(2025, 3, 1))),
    ],
    ids=["empty reason", "empty payment intent", "naive time"],
)
def test_a_command_with_an_invalid_value_records_nothing(
    status: OrderStatus, command: Callable[[Order], None]
) -> None:
    order = order_in(status)
    with pytest.raises(InvariantViolation):
        command(order)
    assert recorded(order) == []


def test_a_dispute_records_its_reason_and_its_resolution() -> None:
    order = order_in(OrderStatus.DELIVERED)

    order.dispute(reason="file is corrupt", at=LATER)
    order.resolve_dispute(resolution=Resolution.REFUND, at=LATER)

    assert order.dispute_reason == "file is corrupt"
    assert order.resolution is Resolution.REFUND
    assert order.status is OrderStatus.REFUNDED


def test_replaying_an_orders_events_rebuilds_the_same_order() -> None:
    order = place([line(quantity=2), line()])
    for action in path_to(OrderStatus.REFUNDED):
        command, _ = COMMANDS[action]
        command(order)

    assert_replays_identically(order, order.collect_events())


def test_a_seller_cannot_order_their_own_product() -> None:
    own = line(seller_id=BUYER)

    with pytest.raises(SelfDealing) as refused:
        place([own])

    assert isinstance(refused.value, Forbidden)
    assert refused.value.product_id == own.product_id


def test_no_line_of_an_order_may_be_the_buyers_own_product() -> None:
    lines = [line(seller_id=BUYER), line(seller_id=BUYER, product_id=uuid4())]

    with pytest.raises(SelfDealing):
        place(lines)
