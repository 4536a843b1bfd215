"""The escrow saga's state machine, without a runner: what it plans after each input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from application.commerce.process_commands import CloseDispute, CreditWallet, DisputeEscrow
from application.sagas.escrow import DISPUTE_WINDOW, EscrowSaga
from application.sagas.saga import Saga
from application.sagas.steps import Issue, Schedule
from domain.dispute import Resolution
from domain.money import Money
from domain.wallet import CreditReason

pytestmark = pytest.mark.unit

DELIVERED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=72)


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


def planned(saga: Saga) -> list[str]:
    return [step.key for step in saga.plan() if step.key not in saga.done]


def take_every_step(saga: Saga) -> None:
    while (step := saga.next_step()) is not None:
        saga.complete_step(step.key)


def awaiting_confirmation() -> EscrowSaga:
    saga = EscrowSaga.start(
        order_id=uuid4(),
        tenant_id="tenant-1",
        seller_id=uuid4(),
        amount=eur(1000),
        position=5,
        correlation_id=uuid4(),
    )
    saga.on_order_delivered(at=DELIVERED_AT, window=WINDOW, position=6)
    take_every_step(saga)
    return saga


def released(saga: EscrowSaga, *, fee: int = 100) -> EscrowSaga:
    saga.on_escrow_released(seller_net=eur(1000 - fee), platform_fee=eur(fee), position=20)
    return saga


def test_held_funds_wait_for_the_delivery_before_the_window_opens() -> None:
    saga = EscrowSaga.start(
        order_id=uuid4(),
        tenant_id="tenant-1",
        seller_id=uuid4(),
        amount=eur(1000),
        position=5,
        correlation_id=uuid4(),
    )

    assert (saga.status, planned(saga)) == ("held", [])


def test_the_dispute_window_closes_its_length_after_the_delivery() -> None:
    saga = EscrowSaga.start(
        order_id=uuid4(),
        tenant_id="tenant-1",
        seller_id=uuid4(),
        amount=eur(1000),
        position=5,
        correlation_id=uuid4(),
    )

    saga.on_order_delivered(at=DELIVERED_AT, window=WINDOW, position=6)

    [window] = saga.plan()
    assert isinstance(window, Schedule)
    assert (window.timer, window.due_at) == (DISPUTE_WINDOW, DELIVERED_AT + WINDOW)


def test_a_closed_window_completes_the_order() -> None:
    saga = awaiting_confirmation()

    saga.on_timer(DISPUTE_WINDOW)

    assert (saga.status, planned(saga)) == ("closing_window", ["complete-order"])


def test_an_order_that_could_not_be_completed_leaves_the_saga_waiting_for_the_order() -> None:
    saga = awaiting_confirmation()
    saga.on_timer(DISPUTE_WINDOW)

    saga.refuse_step("complete-order", "Order x cannot complete when disputed")
    saga.on_order_disputed(reason="broken", position=7)

    assert (saga.status, saga.needs_attention) == ("disputed", False)


def test_a_confirmed_order_releases_the_escrow() -> None:
    saga = awaiting_confirmation()

    saga.on_order_completed(position=7)

    assert planned(saga) == ["unschedule-dispute-window", "release-escrow"]


def test_a_disputed_order_freezes_the_escrow_and_ignores_the_window() -> None:
    saga = awaiting_confirmation()

    saga.on_order_disputed(reason="corrupt files", position=7)
    [_, freeze] = saga.plan()
    take_every_step(saga)
    saga.on_timer(DISPUTE_WINDOW)

    assert isinstance(freeze, Issue) and freeze.command == DisputeEscrow(
        order_id=saga.order_id, reason="corrupt files"
    )
    assert (saga.status, planned(saga)) == ("disputed", [])


def test_released_money_goes_to_the_seller_net_and_to_the_platform_as_fee() -> None:
    saga = awaiting_confirmation()
    saga.on_order_completed(position=7)
    take_every_step(saga)

    released(saga, fee=100)

    credits = [step.command for step in saga.plan() if isinstance(step, Issue)]
    assert [
        (c.owner_id, c.amount.amount, c.reason) for c in credits if isinstance(c, CreditWallet)
    ] == [
        (saga.seller_id, 900, CreditReason.SALE),
        (None, 100, CreditReason.PLATFORM_FEE),
    ]
    assert len({c.reference for c in credits if isinstance(c, CreditWallet)}) == 2
    take_every_step(saga)
    assert saga.status == "settled"


def test_no_fee_means_no_credit_to_the_platform() -> None:
    saga = awaiting_confirmation()
    saga.on_order_completed(position=7)
    take_every_step(saga)

    released(saga, fee=0)

    assert planned(saga) == ["credit-seller"]


def test_a_dispute_resolved_by_release_pays_the_seller_and_closes_the_orders_dispute() -> None:
    saga = awaiting_confirmation()
    saga.on_order_disputed(reason="corrupt files", position=7)
    take_every_step(saga)

    released(saga)

    assert planned(saga) == ["credit-seller", "credit-platform", "close-dispute"]
    close = saga.plan()[-1]
    assert isinstance(close, Issue)
    assert close.command == CloseDispute(order_id=saga.order_id, resolution=Resolution.RELEASE)


def test_a_dispute_resolved_by_refund_refunds_the_payment_and_closes_the_dispute() -> None:
    saga = awaiting_confirmation()
    saga.on_order_disputed(reason="corrupt files", position=7)
    take_every_step(saga)

    saga.on_escrow_refunded(position=8)

    assert planned(saga) == ["refund-payment", "close-dispute"]
    take_every_step(saga)
    assert saga.status == "refunded"


def test_a_refused_credit_needs_a_person() -> None:
    saga = awaiting_confirmation()
    saga.on_order_completed(position=7)
    take_every_step(saga)
    released(saga)

    saga.refuse_step("credit-seller", "currency mismatch")

    assert saga.needs_attention
