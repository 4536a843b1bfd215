"""Wallets: a seller's (or the platform's) balance in one currency, never negative."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import checks
from domain.errors import (
    CurrencyMismatchError,
    IdempotencyMismatch,
    InsufficientFunds,
    InvariantViolation,
)
from domain.money import Money, validate_currency


class WalletKind(StrEnum):
    ACCOUNT = "account"
    """An account's earnings; `owner_id` is the account."""
    PLATFORM = "platform"
    """The tenant's platform fees; it has no owner account."""


class CreditReason(StrEnum):
    SALE = "sale"
    """A seller's net proceeds released from escrow."""
    PLATFORM_FEE = "platform_fee"
    """The platform's fee released from escrow."""


class MovementKind(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


@dataclass(frozen=True, slots=True)
class Movement:
    kind: MovementKind
    amount: Money
    reason: CreditReason | None

    def __str__(self) -> str:
        because = f" ({self.reason})" if self.reason is not None else ""
        return f"a {self.kind} of {self.amount}{because}"


class Wallet(Aggregate):
    """Money the platform owes a seller (or itself), in one currency.

    Open with `Wallet.open`; ids come from `domain.ids.wallet_id_for` and
    `platform_wallet_id_for`. Every credit and debit carries a caller-chosen `reference`
    (say, the escrow it came from or the payout request); a movement is recorded once per
    reference: the same reference with the same values records nothing, with other values it
    is `IdempotencyMismatch`. A debit (a payout to the owner's bank) never takes the balance
    below zero.
    """

    @classmethod
    def open(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        kind: WalletKind,
        owner_id: UUID | None,
        currency: str,
    ) -> Wallet:
        if (kind == WalletKind.ACCOUNT) != (owner_id is not None):
            raise InvariantViolation(
                "an account wallet needs an owner and the platform wallet has none",
                field="owner_id",
            )
        return cls(
            id=id,
            tenant_id=checks.tenant_id(tenant_id),
            kind=kind,
            owner_id=owner_id,
            currency=validate_currency(currency),
        )

    @event("Opened")
    def __init__(
        self, id: UUID, tenant_id: str, kind: WalletKind, owner_id: UUID | None, currency: str
    ) -> None:
        self.tenant_id = tenant_id
        self.kind = kind
        self.owner_id = owner_id
        self.currency = currency
        self.balance = Money.zero(currency)
        self.credited = Money.zero(currency)
        self.debited = Money.zero(currency)  # paid out: money that has left the platform
        self.movements: dict[str, Movement] = {}

    def credit(self, *, amount: Money, reason: CreditReason, reference: str) -> None:
        ref = checks.reference(reference)
        movement = Movement(MovementKind.CREDIT, self._amount(amount), reason)
        if self._already_recorded(ref, movement):
            return
        self._credit(amount=amount, reason=reason, reference=ref)

    @event("Credited")
    def _credit(self, amount: Money, reason: CreditReason, reference: str) -> None:
        self.movements[reference] = Movement(MovementKind.CREDIT, amount, reason)
        self.balance += amount
        self.credited += amount

    def debit(self, *, amount: Money, reference: str) -> None:
        """Pay out to the owner; `InsufficientFunds` rather than a negative balance."""
        ref = checks.reference(reference)
        movement = Movement(MovementKind.DEBIT, self._amount(amount), reason=None)
        if self._already_recorded(ref, movement):
            return
        if amount > self.balance:
            raise InsufficientFunds(self.id, balance=self.balance, requested=amount)
        self._debit(amount=amount, reference=ref)

    @event("Debited")
    def _debit(self, amount: Money, reference: str) -> None:
        self.movements[reference] = Movement(MovementKind.DEBIT, amount, reason=None)
        self.balance -= amount
        self.debited += amount

    def _amount(self, amount: Money) -> Money:
        if amount.currency != self.currency:
            raise CurrencyMismatchError(self.currency, amount.currency, field="amount")
        return checks.positive(amount, field="amount")

    def _already_recorded(self, reference: str, movement: Movement) -> bool:
        earlier = self.movements.get(reference)
        if earlier is None:
            return False
        if earlier != movement:
            raise IdempotencyMismatch(
                "Wallet",
                self.id,
                f"reference {reference!r}",
                f"it was {earlier}, not {movement}",
            )
        return True
