"""The checkout saga's state machine, without a runner: what it plans after each input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.commerce.commands import CancelOrder
from application.sagas.checkout import PAYMENT_DEADLINE, CheckoutSaga
from application.sagas.saga import Saga
from application.sagas.steps import Issue, Schedule
from domain.money import Money
from domain.order import OrderLine

pytestmark = pytest.mark.unit

PLACED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B = UUID(int=1), UUID(int=2)


def a_checkout() -> CheckoutSaga:
    lines = tuple(OrderLine(p, uuid4(), "Loops", Money(500, "EUR"), 1) for p in (A, B))
    return CheckoutSaga.start(
        order_id=uuid4(),
        tenant_id="tenant-1",
        lines=lines,
        placed_at=PLACED_AT,
        payment_timeout=timedelta(minutes=15),
        position=10,
        correlation_id=uuid4(),
    )


def planned(saga: Saga) -> list[str]:
    """The keys of the steps still to take."""
    return [step.key for step in saga.plan() if step.key not in saga.done]


def take_every_step(saga: Saga) -> None:
    while (step := saga.next_step()) is not None:
        saga.complete_step(step.key)


def awaiting_payment() -> CheckoutSaga:
    saga = a_checkout()
    take_every_step(saga)
    return saga


def replayed(saga: Saga) -> Any:
    aggregate = None
    for event in saga.collect_events():
        aggregate = event.mutate(aggregate)
    return aggregate


def test_a_new_checkout_reserves_each_line_then_requests_payment_and_sets_a_deadline() -> None:
    saga = a_checkout()

    assert saga.status == "reserving"
    assert planned(saga) == [
        f"reserve:{A}",
        f"reserve:{B}",
        "mark-stock-reserved",
        "request-payment",
        "mark-payment-requested",
        "schedule-payment-deadline",
    ]


def test_the_payment_deadline_is_the_placing_time_plus_the_timeout() -> None:
    [deadline] = [step for step in a_checkout().plan() if isinstance(step, Schedule)]

    assert (deadline.timer, deadline.due_at) == (
        PAYMENT_DEADLINE,
        PLACED_AT + timedelta(minutes=15),
    )


def test_once_every_reservation_step_is_taken_the_saga_waits_for_the_payment() -> None:
    saga = awaiting_payment()

    assert (saga.status, saga.next_step()) == ("awaiting_payment", None)


def test_a_refused_reservation_releases_every_line_and_cancels_the_order() -> None:
    saga = a_checkout()
    saga.complete_step(f"reserve:{A}")

    saga.refuse_step(f"reserve:{B}", "product 2 has 0 unit(s) available, 1 requested")

    assert saga.status == "compensating"
    assert planned(saga) == [
        "unschedule-payment-deadline",
        f"release:{A}",
        f"release:{B}",
        "cancel-order",
    ]
    cancel = saga.plan()[-1]
    assert isinstance(cancel, Issue) and isinstance(cancel.command, CancelOrder)
    assert "0 unit(s) available" in cancel.command.reason


def test_a_capture_fulfils_the_order_step_by_step_and_completes_the_checkout() -> None:
    saga = awaiting_payment()

    saga.on_payment_captured(position=11)

    assert planned(saga) == [
        "unschedule-payment-deadline",
        "mark-paid",
        "hold-funds",
        "confirm-order",
        f"commit:{A}",
        f"commit:{B}",
        "deliver-order",
    ]
    take_every_step(saga)
    assert saga.status == "completed"


def test_a_failed_payment_cancels_the_order_with_the_providers_reason() -> None:
    saga = awaiting_payment()

    saga.on_payment_failed(reason="card expired", position=11)

    assert (saga.status, saga.compensation_reason) == (
        "compensating",
        "payment failed: card expired",
    )
    take_every_step(saga)
    assert saga.status == "cancelled"


def test_the_payment_deadline_cancels_an_order_still_waiting_for_its_payment() -> None:
    saga = awaiting_payment()

    saga.on_timer(PAYMENT_DEADLINE)

    assert (saga.status, saga.compensation_reason) == (
        "compensating",
        "the payment deadline passed",
    )


def test_a_deadline_that_fires_after_the_capture_changes_nothing() -> None:
    saga = awaiting_payment()
    saga.on_payment_captured(position=11)
    take_every_step(saga)

    saga.on_timer(PAYMENT_DEADLINE)

    assert saga.status == "completed"


def test_an_order_the_buyer_cancelled_is_compensated_without_cancelling_it_again() -> None:
    saga = awaiting_payment()

    saga.on_order_cancelled(reason="changed my mind", position=11)

    assert "cancel-order" not in planned(saga)
    assert planned(saga)[1:] == [f"release:{A}", f"release:{B}"]


def test_a_capture_arriving_after_the_cancellation_is_refunded_once() -> None:
    saga = awaiting_payment()
    saga.on_timer(PAYMENT_DEADLINE)
    take_every_step(saga)

    saga.on_payment_captured(position=12)
    assert planned(saga) == ["refund-payment"]
    take_every_step(saga)
    saga.on_payment_captured(position=13)

    assert (saga.status, planned(saga)) == ("cancelled", [])


def test_a_buyer_cancelling_between_the_capture_and_its_recording_is_refunded() -> None:
    saga = awaiting_payment()
    saga.on_payment_captured(position=11)
    saga.complete_step("unschedule-payment-deadline")

    saga.refuse_step("mark-paid", "Order x cannot mark_paid when cancelled")

    assert planned(saga) == [f"release:{A}", f"release:{B}", "refund-payment"]


def test_a_step_refused_after_the_payment_was_recorded_needs_a_person() -> None:
    saga = awaiting_payment()
    saga.on_payment_captured(position=11)
    for key in ("unschedule-payment-deadline", "mark-paid"):
        saga.complete_step(key)

    saga.refuse_step("hold-funds", "something impossible happened")

    assert saga.needs_attention
    assert saga.refusals == (("hold-funds", "something impossible happened"),)


def test_a_refused_step_while_compensating_does_not_stop_the_compensation() -> None:
    saga = awaiting_payment()
    saga.on_timer(PAYMENT_DEADLINE)
    for key in ("unschedule-payment-deadline", f"release:{A}", f"release:{B}"):
        saga.complete_step(key)

    saga.refuse_step("cancel-order", "Order x cannot cancel when cancelled")

    assert saga.status == "cancelled"


def test_an_input_is_seen_once_it_has_changed_the_saga() -> None:
    saga = awaiting_payment()

    saga.on_payment_captured(position=11)

    assert saga.has_seen(11) and saga.has_seen(10) and not saga.has_seen(12)


def test_the_saga_replayed_from_its_events_is_the_saga() -> None:
    saga = awaiting_payment()
    saga.on_payment_failed(reason="declined", position=11)
    take_every_step(saga)
    pending = list(saga.pending_events)

    rebuilt = replayed(saga)

    assert len(pending) > 1
    assert rebuilt == saga
