"""The escrow saga: from funds held for a delivered order to the seller's wallet, or back.

    held ──delivered──→ awaiting_confirmation ──window passed──→ closing_window (complete order)
                          │                                        │
                          ├─ order completed (buyer confirmed, or the window closed it) ─┐
                          └─ order disputed ──→ disputed (freeze the escrow)             │
                                                   │ an admin resolves the escrow        ↓
                     refunding ←── refunded ───────┤                 releasing (release escrow)
          refund via the provider, close dispute   └── released ──→ settling ←── released
                         ↓                                            credit seller net and
                      refunded                                        platform fee (and close
                                                                      the dispute) → settled

The order decides between completion and dispute (its state machine admits only one), so the
saga never releases money the buyer is disputing: a window closing at the moment of a dispute
fails to complete the order, and the dispute wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import event

from application.commerce.commands import Price
from application.commerce.process_commands import (
    CloseDispute,
    CompleteOrder,
    CreditWallet,
    DisputeEscrow,
    RefundPayment,
    ReleaseEscrow,
)
from application.saga_statuses import EscrowSagaStatus
from application.sagas.saga import Saga, saga_id_for
from application.sagas.steps import Issue, Schedule, Step, Unschedule
from domain.dispute import Resolution
from domain.ids import escrow_id_for
from domain.money import Money
from domain.wallet import CreditReason

DISPUTE_WINDOW = "dispute-window"
DEFAULT_DISPUTE_WINDOW = timedelta(hours=72)


_S = EscrowSagaStatus
_AFTER_PLAN: dict[str, EscrowSagaStatus] = {_S.SETTLING: _S.SETTLED, _S.REFUNDING: _S.REFUNDED}
_OPEN = (_S.AWAITING_CONFIRMATION, _S.CLOSING_WINDOW)
"""Waiting for the buyer: the order may still be completed or disputed."""


def escrow_saga_id(order_id: UUID) -> UUID:
    return saga_id_for(EscrowSaga.kind, order_id)


class EscrowSaga(Saga):
    kind = "escrow"

    @classmethod
    def start(
        cls,
        *,
        order_id: UUID,
        tenant_id: str,
        seller_id: UUID,
        amount: Money,
        position: int,
        correlation_id: UUID,
    ) -> EscrowSaga:
        return cls(
            id=escrow_saga_id(order_id),
            tenant_id=tenant_id,
            order_id=order_id,
            seller_id=seller_id,
            amount=amount,
            position=position,
            correlation_id=correlation_id,
        )

    @event("Started")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        order_id: UUID,
        seller_id: UUID,
        amount: Money,
        position: int,
        correlation_id: UUID,
    ) -> None:
        self._init_saga(tenant_id, order_id, _S.HELD, position, correlation_id)
        self.seller_id = seller_id
        self.amount = amount
        self.window_closes_at: datetime | None = None
        self.disputed = False
        self.dispute_reason: str | None = None
        self.seller_net: Money | None = None
        self.platform_fee: Money | None = None

    # -- inputs ---------------------------------------------------------------------------

    def on_order_delivered(self, *, at: datetime, window: timedelta, position: int) -> None:
        if self.status is _S.HELD:
            self._await_confirmation(closes_at=at + window, position=position)

    def on_timer(self, timer: str) -> None:
        if timer == DISPUTE_WINDOW and self.status is _S.AWAITING_CONFIRMATION:
            self._advance(status=_S.CLOSING_WINDOW)

    def on_order_completed(self, *, position: int) -> None:
        if self.status in _OPEN:
            self._release(position=position)

    def on_order_disputed(self, *, reason: str, position: int) -> None:
        if self.status in _OPEN:
            self._dispute(reason=reason, position=position)

    def on_escrow_released(self, *, seller_net: Money, platform_fee: Money, position: int) -> None:
        if self.status in (_S.RELEASING, _S.DISPUTED):
            self._settle_release(
                seller_net=seller_net, platform_fee=platform_fee, position=position
            )
            self._settle()

    def on_escrow_refunded(self, *, position: int) -> None:
        if self.status is _S.DISPUTED:
            self._refund(position=position)
            self._settle()

    @event("AwaitingConfirmation")
    def _await_confirmation(self, closes_at: datetime, position: int) -> None:
        self.status = _S.AWAITING_CONFIRMATION
        self.window_closes_at = closes_at
        self._seen(position)

    @event("ReleaseStarted")
    def _release(self, position: int) -> None:
        self.status = _S.RELEASING
        self._seen(position)

    @event("DisputeOpened")
    def _dispute(self, reason: str, position: int) -> None:
        self.status = _S.DISPUTED
        self.disputed = True
        self.dispute_reason = reason
        self._seen(position)

    @event("Settling")
    def _settle_release(self, seller_net: Money, platform_fee: Money, position: int) -> None:
        self.status = _S.SETTLING
        self.seller_net = seller_net
        self.platform_fee = platform_fee
        self._seen(position)

    @event("RefundStarted")
    def _refund(self, position: int) -> None:
        self.status = _S.REFUNDING
        self._seen(position)

    def _on_refused(self, key: str, reason: str) -> None:
        # Completing the order fails when the buyer confirmed or disputed at the same moment;
        # the order's own event then says which, and the saga follows it.
        if key != "complete-order":
            self._advance(status=_S.NEEDS_ATTENTION)

    # -- plans ----------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        order_id = self.order_id
        if self.status is _S.AWAITING_CONFIRMATION:
            assert self.window_closes_at is not None
            return [Schedule("schedule-dispute-window", DISPUTE_WINDOW, self.window_closes_at)]
        if self.status is _S.CLOSING_WINDOW:
            return [Issue("complete-order", CompleteOrder(order_id=order_id))]
        if self.status is _S.RELEASING:
            return [
                Unschedule("unschedule-dispute-window", DISPUTE_WINDOW),
                Issue("release-escrow", ReleaseEscrow(order_id=order_id)),
            ]
        if self.status is _S.DISPUTED:
            reason = self.dispute_reason or "disputed"
            return [
                Unschedule("unschedule-dispute-window", DISPUTE_WINDOW),
                Issue("dispute-escrow", DisputeEscrow(order_id=order_id, reason=reason)),
            ]
        if self.status is _S.SETTLING:
            return self._settling()
        if self.status is _S.REFUNDING:
            return [
                Issue("refund-payment", RefundPayment(order_id=order_id)),
                Issue(
                    "close-dispute", CloseDispute(order_id=order_id, resolution=Resolution.REFUND)
                ),
            ]
        return []

    def _after_plan(self) -> EscrowSagaStatus | None:
        return _AFTER_PLAN.get(self.status)

    def _settling(self) -> list[Step]:
        assert self.seller_net is not None and self.platform_fee is not None
        reference = f"escrow:{escrow_id_for(self.order_id)}"
        steps: list[Step] = []
        if self.seller_net.is_positive:
            steps.append(
                Issue(
                    "credit-seller",
                    _credit(self.seller_id, self.seller_net, CreditReason.SALE, reference),
                )
            )
        if self.platform_fee.is_positive:
            steps.append(
                Issue(
                    "credit-platform",
                    _credit(None, self.platform_fee, CreditReason.PLATFORM_FEE, reference),
                )
            )
        if self.disputed:
            steps.append(
                Issue(
                    "close-dispute",
                    CloseDispute(order_id=self.order_id, resolution=Resolution.RELEASE),
                )
            )
        return steps


def _credit(
    owner_id: UUID | None, amount: Money, reason: CreditReason, reference: str
) -> CreditWallet:
    return CreditWallet(
        owner_id=owner_id,
        amount=Price(amount=amount.amount, currency=amount.currency),
        reason=reason,
        reference=f"{reference}:{reason}",
    )
