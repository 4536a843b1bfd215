"""Escrow: one per order, holding the captured money until it goes to the seller or back.

    held ─→ released        (seller net + platform fee)
      ├───→ refunded        (all of it, back to the buyer)
      └───→ disputed ─→ released | refunded      (an admin's resolution)

A dispute freezes the money: nothing leaves a disputed escrow until an admin resolves it.
Resolving records `DisputeResolved` (who decided what) followed by `Released` or `Refunded`,
from one command and so in one append: every movement of escrowed money is a `Released` or
`Refunded` event, whatever led to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import checks
from domain.dispute import Resolution
from domain.errors import IllegalTransition
from domain.money import Money, validate_basis_points


class EscrowStatus(StrEnum):
    HELD = "held"
    DISPUTED = "disputed"
    RELEASED = "released"
    REFUNDED = "refunded"


class EscrowAction(StrEnum):
    RELEASE = "release"
    REFUND = "refund"
    DISPUTE = "dispute"
    RESOLVE_RELEASE = "resolve_release"
    RESOLVE_REFUND = "resolve_refund"


_S, _A = EscrowStatus, EscrowAction
TRANSITIONS: Final[Mapping[EscrowStatus, Mapping[EscrowAction, EscrowStatus]]] = {
    _S.HELD: {_A.RELEASE: _S.RELEASED, _A.REFUND: _S.REFUNDED, _A.DISPUTE: _S.DISPUTED},
    _S.DISPUTED: {_A.RESOLVE_RELEASE: _S.RELEASED, _A.RESOLVE_REFUND: _S.REFUNDED},
    _S.RELEASED: {},
    _S.REFUNDED: {},
}


@dataclass(frozen=True, slots=True)
class Settlement:
    """Where the escrowed money went; the three parts always add up to the amount held."""

    seller_net: Money
    platform_fee: Money
    buyer_refund: Money

    @property
    def total(self) -> Money:
        return self.seller_net + self.platform_fee + self.buyer_refund


class Escrow(Aggregate):
    """The money captured for one order. Open with `Escrow.hold`; its id comes from
    `domain.ids.escrow_id_for(order_id)`.

    The platform fee rate is fixed when the funds are held, so a later change of rate never
    applies to money already in escrow. Resolving a dispute is for admins: the application
    checks the resolver with `Account.ensure_has_role(Role.ADMIN)` and passes their id.
    """

    @classmethod
    def hold(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        order_id: UUID,
        buyer_id: UUID,
        seller_id: UUID,
        amount: Money,
        platform_fee_bps: int,
    ) -> Escrow:
        return cls(
            id=id,
            tenant_id=checks.tenant_id(tenant_id),
            order_id=order_id,
            buyer_id=buyer_id,
            seller_id=seller_id,
            amount=checks.positive(amount, field="amount"),
            platform_fee_bps=validate_basis_points(platform_fee_bps),
        )

    @event("FundsHeld")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        order_id: UUID,
        buyer_id: UUID,
        seller_id: UUID,
        amount: Money,
        platform_fee_bps: int,
    ) -> None:
        self.tenant_id = tenant_id
        self.order_id = order_id
        self.buyer_id = buyer_id
        self.seller_id = seller_id
        self.amount = amount
        self.platform_fee_bps = platform_fee_bps
        self.status = EscrowStatus.HELD
        self.settlement: Settlement | None = None
        self.dispute_reason: str | None = None
        self.resolution: Resolution | None = None
        self.resolved_by: UUID | None = None

    @property
    def held(self) -> Money:
        """The money still in escrow: all of it until released or refunded, then none."""
        if self.status in (EscrowStatus.HELD, EscrowStatus.DISPUTED):
            return self.amount
        return self._nothing

    def release(self) -> Settlement:
        """Pay the seller the amount minus the platform fee; the fee goes to the platform."""
        self._require(EscrowAction.RELEASE)
        return self._pay_seller()

    def _pay_seller(self) -> Settlement:
        split = self.amount.split(self.platform_fee_bps)
        self._release(
            seller_net=split.net,
            platform_fee=split.fee,
            seller_id=self.seller_id,
            order_id=self.order_id,
        )
        return Settlement(split.net, split.fee, buyer_refund=self._nothing)

    class Released(Aggregate.Event):
        """The money went to the seller (net) and the platform (fee).

        Version 2 names the seller and the order, so that a read model (a seller's dashboard)
        can attribute the release from this event alone. Version 1 events, stored before, read
        back with both None: the escrow's own state still knows them (from `FundsHeld`).
        """

        class_version = 2
        seller_net: Money
        platform_fee: Money
        seller_id: UUID | None
        order_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["seller_id"] = None
            state["order_id"] = None

    @event(Released)
    def _release(
        self,
        seller_net: Money,
        platform_fee: Money,
        seller_id: UUID | None,
        order_id: UUID | None,
    ) -> None:
        # `seller_id` and `order_id` are already this escrow's: the event carries them for
        # its readers, the state needs nothing from them.
        self.settlement = Settlement(seller_net, platform_fee, buyer_refund=self._nothing)
        self.status = EscrowStatus.RELEASED

    def refund(self) -> Settlement:
        """Return the whole amount to the buyer (through the payment provider)."""
        self._require(EscrowAction.REFUND)
        return self._pay_back_buyer()

    def _pay_back_buyer(self) -> Settlement:
        self._refund(amount=self.amount, seller_id=self.seller_id, order_id=self.order_id)
        return Settlement(self._nothing, self._nothing, buyer_refund=self.amount)

    class Refunded(Aggregate.Event):
        """The whole amount went back to the buyer. Version 2 names the seller and the order,
        as `Released` does; version 1 events read back with both None."""

        class_version = 2
        amount: Money
        seller_id: UUID | None
        order_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["seller_id"] = None
            state["order_id"] = None

    @event(Refunded)
    def _refund(self, amount: Money, seller_id: UUID | None, order_id: UUID | None) -> None:
        self.settlement = Settlement(self._nothing, self._nothing, buyer_refund=amount)
        self.status = EscrowStatus.REFUNDED

    def dispute(self, *, reason: str) -> None:
        """Freeze the money until an admin resolves the dispute."""
        self._require(EscrowAction.DISPUTE)
        self._dispute(reason=checks.reason(reason))

    @event("Disputed")
    def _dispute(self, reason: str) -> None:
        self.dispute_reason = reason
        self.status = EscrowStatus.DISPUTED

    def resolve(self, *, resolution: Resolution, resolved_by: UUID) -> Settlement:
        """Settle a dispute by releasing to the seller or refunding the buyer."""
        releasing = resolution == Resolution.RELEASE
        self._require(EscrowAction.RESOLVE_RELEASE if releasing else EscrowAction.RESOLVE_REFUND)
        self._resolve(resolution=resolution, resolved_by=resolved_by)
        return self._pay_seller() if releasing else self._pay_back_buyer()

    @event("DisputeResolved")
    def _resolve(self, resolution: Resolution, resolved_by: UUID) -> None:
        self.resolution = resolution
        self.resolved_by = resolved_by

    @property
    def _nothing(self) -> Money:
        return Money.zero(self.amount.currency)

    def _require(self, action: EscrowAction) -> None:
        if action not in TRANSITIONS[self.status]:
            raise IllegalTransition("Escrow", self.id, self.status, action)
