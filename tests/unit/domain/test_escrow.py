from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from domain.dispute import Resolution
from domain.errors import IllegalTransition, InvariantViolation
from domain.escrow import TRANSITIONS, Escrow, EscrowAction, EscrowStatus, Settlement
from domain.ids import escrow_id_for
from tests.unit.domain.support import assert_replays_identically, eur, recorded

pytestmark = pytest.mark.unit

ADMIN = uuid4()


def hold(**overrides: Any) -> Escrow:
    order_id = uuid4()
    fields: dict[str, Any] = {
        "id": escrow_id_for(order_id),
        "tenant_id": "acme",
        "order_id": order_id,
        "buyer_id": uuid4(),
        "seller_id": uuid4(),
        "amount": eur(1020),
        "platform_fee_bps": 250,
    }
    return Escrow.hold(**(fields | overrides))


COMMANDS: dict[EscrowAction, tuple[Callable[[Escrow], object], list[str]]] = {
    EscrowAction.RELEASE: (lambda e: e.release(), ["Released"]),
    EscrowAction.REFUND: (lambda e: e.refund(), ["Refunded"]),
    EscrowAction.DISPUTE: (lambda e: e.dispute(reason="file is corrupt"), ["Disputed"]),
    EscrowAction.RESOLVE_RELEASE: (
        lambda e: e.resolve(resolution=Resolution.RELEASE, resolved_by=ADMIN),
        ["DisputeResolved", "Released"],
    ),
    EscrowAction.RESOLVE_REFUND: (
        lambda e: e.resolve(resolution=Resolution.REFUND, resolved_by=ADMIN),
        ["DisputeResolved", "Refunded"],
    ),
}

# The shortest way into each state from `held`.
PATHS: dict[EscrowStatus, list[EscrowAction]] = {
    EscrowStatus.HELD: [],
    EscrowStatus.DISPUTED: [EscrowAction.DISPUTE],
    EscrowStatus.RELEASED: [EscrowAction.RELEASE],
    EscrowStatus.REFUNDED: [EscrowAction.REFUND],
}


def escrow_in(status: EscrowStatus) -> Escrow:
    escrow = hold()
    for action in PATHS[status]:
        command, _ = COMMANDS[action]
        command(escrow)
    escrow.collect_events()
    return escrow


ALLOWED = [(s, a, t) for s, actions in TRANSITIONS.items() for a, t in actions.items()]
ILLEGAL = [(s, a) for s in EscrowStatus for a in EscrowAction if a not in TRANSITIONS[s]]


def test_holding_records_the_funds_and_the_fee_rate_of_the_day() -> None:
    escrow = hold(amount=eur(1020), platform_fee_bps=250)

    assert recorded(escrow) == ["FundsHeld"]
    assert escrow.status is EscrowStatus.HELD
    assert escrow.held == eur(1020)
    assert escrow.platform_fee_bps == 250


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", eur(0)), ("platform_fee_bps", 10_001), ("platform_fee_bps", -1)],
)
def test_holding_refuses_nothing_to_hold_or_an_impossible_fee_rate(field: str, value: Any) -> None:
    with pytest.raises(InvariantViolation):
        hold(**{field: value})


def test_releasing_pays_the_seller_the_amount_minus_the_platform_fee() -> None:
    escrow = escrow_in(EscrowStatus.HELD)

    settlement = escrow.release()

    assert settlement == Settlement(seller_net=eur(994), platform_fee=eur(26), buyer_refund=eur(0))
    [released] = escrow.collect_events()
    assert (released.seller_net, released.platform_fee) == (eur(994), eur(26))  # type: ignore[attr-defined]
    assert escrow.settlement == settlement
    assert escrow.held == eur(0)


def test_refunding_returns_the_whole_amount_to_the_buyer() -> None:
    escrow = escrow_in(EscrowStatus.HELD)

    settlement = escrow.refund()

    assert settlement == Settlement(seller_net=eur(0), platform_fee=eur(0), buyer_refund=eur(1020))
    assert escrow.held == eur(0)


def test_a_settlement_always_adds_up_to_the_amount_held() -> None:
    for amount in (1, 99, 1020, 123_457):
        for bps in (0, 250, 10_000):
            assert hold(amount=eur(amount), platform_fee_bps=bps).release().total == eur(amount)


def test_a_dispute_freezes_the_money_until_it_is_resolved() -> None:
    escrow = escrow_in(EscrowStatus.DISPUTED)

    assert escrow.held == eur(1020)
    assert escrow.dispute_reason == "file is corrupt"
    for attempt in (escrow.release, escrow.refund):
        with pytest.raises(IllegalTransition, match="when disputed"):
            attempt()


def test_an_admin_resolving_for_the_seller_releases_the_money() -> None:
    escrow = escrow_in(EscrowStatus.DISPUTED)

    settlement = escrow.resolve(resolution=Resolution.RELEASE, resolved_by=ADMIN)

    assert recorded(escrow) == ["DisputeResolved", "Released"]
    assert settlement.seller_net + settlement.platform_fee == eur(1020)
    assert (escrow.status, escrow.resolution, escrow.resolved_by) == (
        EscrowStatus.RELEASED,
        Resolution.RELEASE,
        ADMIN,
    )


def test_an_admin_resolving_for_the_buyer_refunds_the_money() -> None:
    escrow = escrow_in(EscrowStatus.DISPUTED)

    settlement = escrow.resolve(resolution=Resolution.REFUND, resolved_by=ADMIN)

    assert recorded(escrow) == ["DisputeResolved", "Refunded"]
    assert settlement.buyer_refund == eur(1020)
    assert escrow.status is EscrowStatus.REFUNDED


def test_a_dispute_needs_a_reason() -> None:
    with pytest.raises(InvariantViolation):
        escrow_in(EscrowStatus.HELD).dispute(reason="")


def test_every_action_has_a_command_and_every_state_a_path() -> None:
    assert set(COMMANDS) == set(EscrowAction)
    assert set(PATHS) == set(EscrowStatus)


@pytest.mark.parametrize(("status", "action", "target"), ALLOWED)
def test_an_allowed_action_records_its_events_and_moves_to_the_next_state(
    status: EscrowStatus, action: EscrowAction, target: EscrowStatus
) -> None:
    escrow = escrow_in(status)
    command, event_names = COMMANDS[action]

    command(escrow)

    assert recorded(escrow) == event_names
    assert escrow.status is target


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_an_action_the_table_does_not_allow_is_an_illegal_transition(
    status: EscrowStatus, action: EscrowAction
) -> None:
    escrow = escrow_in(status)
    command, _ = COMMANDS[action]

    with pytest.raises(IllegalTransition) as raised:
        command(escrow)

    assert (raised.value.aggregate, raised.value.state, raised.value.action) == (
        "Escrow",
        status,
        action,
    )
    assert recorded(escrow) == []
    assert escrow.status is status


def test_replaying_an_escrows_events_rebuilds_the_same_escrow() -> None:
    escrow = hold()
    escrow.dispute(reason="never arrived")
    escrow.resolve(resolution=Resolution.RELEASE, resolved_by=ADMIN)

    assert_replays_identically(escrow, escrow.collect_events())
