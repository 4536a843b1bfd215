from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import IllegalTransition, InvariantViolation
from domain.ids import payment_id_for
from domain.payment import RESPONSES, Outcome, Payment, PaymentAction, PaymentStatus
from tests.unit.domain.support import assert_replays_identically, eur, recorded

pytestmark = pytest.mark.unit


def create_intent(**overrides: Any) -> Payment:
    order_id = uuid4()
    fields: dict[str, Any] = {
        "id": payment_id_for(order_id),
        "tenant_id": "acme",
        "order_id": order_id,
        "provider_intent_id": "pi_123",
        "amount": eur(1020),
    }
    return Payment.create_intent(**(fields | overrides))


COMMANDS: dict[PaymentAction, tuple[Callable[[Payment], Outcome], str]] = {
    PaymentAction.CAPTURE: (lambda p: p.capture(), "Captured"),
    PaymentAction.FAIL: (lambda p: p.fail(reason="card declined"), "Failed"),
    PaymentAction.REFUND: (lambda p: p.refund(), "Refunded"),
}

PATHS: dict[PaymentStatus, list[PaymentAction]] = {
    PaymentStatus.PENDING: [],
    PaymentStatus.CAPTURED: [PaymentAction.CAPTURE],
    PaymentStatus.FAILED: [PaymentAction.FAIL],
    PaymentStatus.REFUNDED: [PaymentAction.CAPTURE, PaymentAction.REFUND],
}


def payment_in(status: PaymentStatus) -> Payment:
    payment = create_intent()
    for action in PATHS[status]:
        command, _ = COMMANDS[action]
        command(payment)
    payment.collect_events()
    return payment


CASES = [(s, a, RESPONSES[s].get(a)) for s in PaymentStatus for a in PaymentAction]
TRANSITIONS = [(s, a, r) for s, a, r in CASES if isinstance(r, PaymentStatus)]
NO_OPS = [(s, a, r) for s, a, r in CASES if isinstance(r, Outcome)]
ILLEGAL = [(s, a) for s, a, r in CASES if r is None]


def test_creating_an_intent_records_a_pending_payment() -> None:
    payment = create_intent()

    assert recorded(payment) == ["IntentCreated"]
    assert payment.status is PaymentStatus.PENDING
    assert payment.net_captured == eur(0)


@pytest.mark.parametrize(
    ("field", "value"), [("amount", eur(0)), ("provider_intent_id", ""), ("tenant_id", " ")]
)
def test_creating_an_intent_refuses_invalid_details(field: str, value: Any) -> None:
    with pytest.raises(InvariantViolation) as raised:
        create_intent(**{field: value})
    assert raised.value.field == field


def test_every_state_has_a_path_and_every_action_a_command() -> None:
    assert set(PATHS) == set(PaymentStatus)
    assert set(COMMANDS) == set(PaymentAction)


@pytest.mark.parametrize(("status", "action", "target"), TRANSITIONS)
def test_news_from_the_provider_is_recorded(
    status: PaymentStatus, action: PaymentAction, target: PaymentStatus
) -> None:
    payment = payment_in(status)
    command, event_name = COMMANDS[action]

    assert command(payment) is Outcome.RECORDED

    assert recorded(payment) == [event_name]
    assert payment.status is target


@pytest.mark.parametrize(("status", "action", "outcome"), NO_OPS)
def test_a_duplicate_or_stale_notification_records_nothing_and_says_so(
    status: PaymentStatus, action: PaymentAction, outcome: Outcome
) -> None:
    payment = payment_in(status)
    command, _ = COMMANDS[action]

    assert command(payment) is outcome

    assert recorded(payment) == []
    assert payment.status is status


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_a_notification_contradicting_the_record_is_an_illegal_transition(
    status: PaymentStatus, action: PaymentAction
) -> None:
    payment = payment_in(status)
    command, _ = COMMANDS[action]

    with pytest.raises(IllegalTransition, match=f"Payment {payment.id} cannot {action}"):
        command(payment)

    assert recorded(payment) == []


def test_a_capture_after_a_capture_is_a_duplicate() -> None:
    assert payment_in(PaymentStatus.CAPTURED).capture() is Outcome.DUPLICATE


def test_a_failure_after_a_capture_is_ignored_for_the_caller_to_log() -> None:
    payment = payment_in(PaymentStatus.CAPTURED)
    assert payment.fail(reason="card declined") is Outcome.IGNORED
    assert payment.status is PaymentStatus.CAPTURED


def test_a_capture_after_a_failure_is_an_illegal_transition() -> None:
    with pytest.raises(IllegalTransition, match="cannot capture when failed"):
        payment_in(PaymentStatus.FAILED).capture()


def test_a_failure_records_its_reason() -> None:
    payment = payment_in(PaymentStatus.PENDING)
    payment.fail(reason=" card declined ")
    assert payment.failure_reason == "card declined"


def test_a_failure_needs_a_reason() -> None:
    with pytest.raises(InvariantViolation):
        payment_in(PaymentStatus.PENDING).fail(reason="")


@pytest.mark.parametrize(
    ("status", "net"),
    [
        (PaymentStatus.PENDING, 0),
        (PaymentStatus.CAPTURED, 1020),
        (PaymentStatus.FAILED, 0),
        (PaymentStatus.REFUNDED, 0),
    ],
)
def test_only_a_captured_payment_holds_money_at_the_provider(
    status: PaymentStatus, net: int
) -> None:
    assert payment_in(status).net_captured == eur(net)


def test_replaying_a_payments_events_rebuilds_the_same_payment() -> None:
    payment = create_intent()
    payment.capture()
    payment.refund()

    assert_replays_identically(payment, payment.collect_events())
