from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from domain.errors import (
    CurrencyMismatchError,
    IdempotencyMismatch,
    InsufficientFunds,
    InvariantViolation,
)
from domain.ids import platform_wallet_id_for, wallet_id_for
from domain.money import Money
from domain.wallet import CreditReason, Wallet, WalletKind
from tests.unit.domain.support import assert_replays_identically, eur, recorded

pytestmark = pytest.mark.unit

OWNER = uuid4()


def open_wallet(**overrides: Any) -> Wallet:
    fields: dict[str, Any] = {
        "id": wallet_id_for(OWNER, "EUR"),
        "tenant_id": "acme",
        "kind": WalletKind.ACCOUNT,
        "owner_id": OWNER,
        "currency": "EUR",
    }
    return Wallet.open(**(fields | overrides))


def wallet_with(balance: int) -> Wallet:
    wallet = open_wallet()
    wallet.credit(amount=eur(balance), reason=CreditReason.SALE, reference="escrow-1")
    wallet.collect_events()
    return wallet


def test_an_account_wallet_opens_empty_in_one_currency() -> None:
    wallet = open_wallet()

    assert recorded(wallet) == ["Opened"]
    assert wallet.balance == eur(0)


def test_the_platform_wallet_has_no_owner_account() -> None:
    wallet = open_wallet(
        id=platform_wallet_id_for("acme", "EUR"), kind=WalletKind.PLATFORM, owner_id=None
    )
    assert wallet.kind is WalletKind.PLATFORM


@pytest.mark.parametrize(
    "overrides",
    [
        {"kind": WalletKind.ACCOUNT, "owner_id": None},
        {"kind": WalletKind.PLATFORM, "owner_id": OWNER},
        {"currency": "euro"},
    ],
    ids=["account without owner", "platform with owner", "bad currency"],
)
def test_opening_refuses_an_inconsistent_wallet(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvariantViolation):
        open_wallet(**overrides)


def test_a_credit_adds_to_the_balance() -> None:
    wallet = open_wallet()
    wallet.collect_events()

    wallet.credit(amount=eur(975), reason=CreditReason.SALE, reference="escrow-1")
    wallet.credit(amount=eur(500), reason=CreditReason.SALE, reference="escrow-2")

    assert recorded(wallet) == ["Credited", "Credited"]
    assert wallet.balance == eur(1475)


def test_a_credit_with_the_same_reference_twice_records_nothing() -> None:
    wallet = wallet_with(975)

    wallet.credit(amount=eur(975), reason=CreditReason.SALE, reference="escrow-1")

    assert recorded(wallet) == []
    assert wallet.balance == eur(975)


@pytest.mark.parametrize(
    ("amount", "reason"),
    [(eur(976), CreditReason.SALE), (eur(975), CreditReason.PLATFORM_FEE)],
    ids=["other amount", "other reason"],
)
def test_a_reference_reused_with_other_values_is_refused(
    amount: Money, reason: CreditReason
) -> None:
    wallet = wallet_with(975)
    with pytest.raises(IdempotencyMismatch, match="'escrow-1'"):
        wallet.credit(amount=amount, reason=reason, reference="escrow-1")


@pytest.mark.parametrize("amount", [eur(0), eur(-5)])
def test_only_positive_amounts_move(amount: Money) -> None:
    wallet = wallet_with(100)
    with pytest.raises(InvariantViolation):
        wallet.credit(amount=amount, reason=CreditReason.SALE, reference="r")
    with pytest.raises(InvariantViolation):
        wallet.debit(amount=amount, reference="r")


def test_a_wallet_holds_a_single_currency() -> None:
    wallet = wallet_with(100)
    with pytest.raises(CurrencyMismatchError):
        wallet.credit(amount=Money(100, "USD"), reason=CreditReason.SALE, reference="r")
    with pytest.raises(CurrencyMismatchError):
        wallet.debit(amount=Money(100, "USD"), reference="r")


def test_a_reference_is_required() -> None:
    with pytest.raises(InvariantViolation):
        open_wallet().credit(amount=eur(1), reason=CreditReason.SALE, reference=" ")


def test_a_payout_debits_the_balance_down_to_zero_at_most() -> None:
    wallet = wallet_with(975)

    wallet.debit(amount=eur(975), reference="payout-1")

    assert recorded(wallet) == ["Debited"]
    assert wallet.balance == eur(0)
    assert wallet.debited == eur(975)


def test_a_payout_above_the_balance_is_insufficient_funds() -> None:
    wallet = wallet_with(975)

    with pytest.raises(InsufficientFunds, match="holds 975 minor units of EUR"):
        wallet.debit(amount=eur(976), reference="payout-1")

    assert recorded(wallet) == []
    assert wallet.balance == eur(975)


def test_a_payout_with_the_same_reference_twice_records_nothing_even_once_the_balance_is_gone() -> (
    None
):
    wallet = wallet_with(975)
    wallet.debit(amount=eur(975), reference="payout-1")
    wallet.collect_events()

    wallet.debit(amount=eur(975), reference="payout-1")

    assert recorded(wallet) == []


def test_a_credits_reference_cannot_be_reused_for_a_payout() -> None:
    wallet = wallet_with(975)
    with pytest.raises(IdempotencyMismatch, match="it was a credit"):
        wallet.debit(amount=eur(975), reference="escrow-1")


def test_replaying_a_wallets_events_rebuilds_the_same_wallet() -> None:
    wallet = open_wallet()
    wallet.credit(amount=eur(975), reason=CreditReason.SALE, reference="escrow-1")
    wallet.debit(amount=eur(500), reference="payout-1")

    assert_replays_identically(wallet, wallet.collect_events())
