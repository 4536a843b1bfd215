"""The domain's errors: every rule the model refuses a command with.

When one is raised, nothing was recorded. There are three families, so the application can
map them to HTTP once and never per error:

- `InvariantViolation` — the values given break a rule on their own (422);
- `Conflict` — the values are fine but the aggregate's current state refuses them (409);
- `Forbidden` — the actor may not do this to this aggregate (403).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from domain.money import Money


class DomainError(Exception):
    """A domain rule refused a command; nothing was recorded."""


class InvariantViolation(DomainError):
    """The values given break a rule on their own, whatever the aggregate's state (422)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class CurrencyMismatchError(InvariantViolation):
    """Two amounts in different currencies were combined or compared."""

    def __init__(self, expected: str, actual: str, *, field: str | None = None) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"expected an amount in {expected}, got one in {actual}", field=field)


class Conflict(DomainError):
    """The values are valid, but the aggregate's current state refuses the command (409)."""


class IllegalTransition(Conflict):
    """The aggregate's state machine does not allow `action` from `state`."""

    def __init__(self, aggregate: str, aggregate_id: UUID, state: str, action: str) -> None:
        self.aggregate = aggregate
        self.aggregate_id = aggregate_id
        self.state = state
        self.action = action
        super().__init__(f"{aggregate} {aggregate_id} cannot {action} when {state}")


class InsufficientStock(Conflict):
    """A reservation asked for more units than the product has available."""

    def __init__(self, product_id: UUID, requested: int, available: int) -> None:
        self.product_id = product_id
        self.requested = requested
        self.available = available
        super().__init__(
            f"product {product_id} has {available} unit(s) available, {requested} requested"
        )


class InsufficientFunds(Conflict):
    """A debit asked for more than the wallet's balance; balances never go negative."""

    def __init__(self, wallet_id: UUID, balance: Money, requested: Money) -> None:
        self.wallet_id = wallet_id
        self.balance = balance
        self.requested = requested
        super().__init__(f"wallet {wallet_id} holds {balance}, a debit of {requested} requested")


class IdempotencyMismatch(Conflict):
    """A repeated operation (same order, same reference) came back with different values.

    Repeating an operation with the same values records nothing; repeating it with other values
    is a client or saga bug, refused rather than silently reinterpreted.
    """

    def __init__(self, aggregate: str, aggregate_id: UUID, key: str, detail: str) -> None:
        self.aggregate = aggregate
        self.aggregate_id = aggregate_id
        self.key = key
        super().__init__(f"{aggregate} {aggregate_id} already recorded {key}: {detail}")


class Forbidden(DomainError):
    """The actor may not do this (403)."""


class NotOwner(Forbidden):
    """Only the aggregate's owner may do this."""

    def __init__(self, aggregate: str, aggregate_id: UUID, actor_id: UUID) -> None:
        self.aggregate = aggregate
        self.aggregate_id = aggregate_id
        self.actor_id = actor_id
        super().__init__(f"account {actor_id} does not own {aggregate} {aggregate_id}")


class MissingRole(Forbidden):
    """The account lacks the role the action needs."""

    def __init__(self, account_id: UUID, role: str) -> None:
        self.account_id = account_id
        self.role = role
        super().__init__(f"account {account_id} does not have the {role} role")


class SelfDealing(Forbidden):
    """A seller ordered their own product: wash trading that would inflate sales counts and
    rankings (and launder money through the platform's escrow)."""

    def __init__(self, account_id: UUID, product_id: UUID) -> None:
        self.account_id = account_id
        self.product_id = product_id
        super().__init__(f"account {account_id} sells product {product_id}; it cannot order it")
