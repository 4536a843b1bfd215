"""Payments: one per order, following what the payment provider tells us about its intent.

Provider notifications arrive at least once and in any order, so each command answers with an
`Outcome` instead of assuming it is news:

    state \\ notice   capture          fail             refund
    pending          → captured       → failed         illegal
    captured         duplicate        ignored          → refunded
    failed           illegal          duplicate        illegal
    refunded         duplicate        ignored          duplicate

- a capture after a capture (or after the refund that followed it) is a duplicate: nothing
  recorded;
- a failure after a capture is stale news, ignored: nothing recorded, and `IGNORED` tells the
  caller to log it;
- a capture after a failure contradicts what was recorded: `IllegalTransition`, for a human;
- a refund is only possible for captured money.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import checks
from domain.errors import IllegalTransition
from domain.money import Money

PROVIDER_INTENT_ID_MAX_LENGTH = 200


class PaymentStatus(StrEnum):
    PENDING = "pending"
    """The intent exists; the provider has not reported on it yet."""
    CAPTURED = "captured"
    FAILED = "failed"
    REFUNDED = "refunded"


class PaymentAction(StrEnum):
    CAPTURE = "capture"
    FAIL = "fail"
    REFUND = "refund"


class Outcome(StrEnum):
    """What a provider notification did to the payment."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    """Already known; nothing recorded."""
    IGNORED = "ignored"
    """Stale and contradicted by what is recorded; nothing recorded; worth a log line."""


_S, _A, _O = PaymentStatus, PaymentAction, Outcome
RESPONSES: Final[Mapping[PaymentStatus, Mapping[PaymentAction, PaymentStatus | Outcome]]] = {
    # A status is a transition to record; an Outcome is a no-op; a missing action is illegal.
    _S.PENDING: {_A.CAPTURE: _S.CAPTURED, _A.FAIL: _S.FAILED},
    _S.CAPTURED: {_A.CAPTURE: _O.DUPLICATE, _A.FAIL: _O.IGNORED, _A.REFUND: _S.REFUNDED},
    _S.FAILED: {_A.FAIL: _O.DUPLICATE},
    _S.REFUNDED: {_A.CAPTURE: _O.DUPLICATE, _A.FAIL: _O.IGNORED, _A.REFUND: _O.DUPLICATE},
}


class Payment(Aggregate):
    """The payment for one order. Create with `Payment.create_intent`; its id comes from
    `domain.ids.payment_id_for(order_id)`. Refunds are of the whole amount.
    """

    @classmethod
    def create_intent(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        order_id: UUID,
        provider_intent_id: str,
        amount: Money,
    ) -> Payment:
        return cls(
            id=id,
            tenant_id=checks.tenant_id(tenant_id),
            order_id=order_id,
            provider_intent_id=checks.text(
                provider_intent_id,
                field="provider_intent_id",
                max_length=PROVIDER_INTENT_ID_MAX_LENGTH,
            ),
            amount=checks.positive(amount, field="amount"),
        )

    @event("IntentCreated")
    def __init__(
        self, id: UUID, tenant_id: str, order_id: UUID, provider_intent_id: str, amount: Money
    ) -> None:
        self.tenant_id = tenant_id
        self.order_id = order_id
        self.provider_intent_id = provider_intent_id
        self.amount = amount
        self.status = PaymentStatus.PENDING
        self.failure_reason: str | None = None

    @property
    def net_captured(self) -> Money:
        """Money the provider holds for us from this payment: captured and not refunded."""
        if self.status == PaymentStatus.CAPTURED:
            return self.amount
        return Money.zero(self.amount.currency)

    def capture(self) -> Outcome:
        outcome = self._outcome_of(PaymentAction.CAPTURE)
        if outcome is Outcome.RECORDED:
            self._capture()
        return outcome

    @event("Captured")
    def _capture(self) -> None:
        self.status = PaymentStatus.CAPTURED

    def fail(self, *, reason: str) -> Outcome:
        failure_reason = checks.reason(reason)
        outcome = self._outcome_of(PaymentAction.FAIL)
        if outcome is Outcome.RECORDED:
            self._fail(reason=failure_reason)
        return outcome

    @event("Failed")
    def _fail(self, reason: str) -> None:
        self.failure_reason = reason
        self.status = PaymentStatus.FAILED

    def refund(self) -> Outcome:
        outcome = self._outcome_of(PaymentAction.REFUND)
        if outcome is Outcome.RECORDED:
            self._refund()
        return outcome

    @event("Refunded")
    def _refund(self) -> None:
        self.status = PaymentStatus.REFUNDED

    def _outcome_of(self, action: PaymentAction) -> Outcome:
        """`RECORDED` if the action is a transition to record now, else the no-op's outcome."""
        response = RESPONSES[self.status].get(action)
        if response is None:
            raise IllegalTransition("Payment", self.id, self.status, action)
        if isinstance(response, Outcome):
            return response
        return Outcome.RECORDED
