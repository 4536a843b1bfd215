"""The checkout saga: from a placed order to a delivered one, or back to a cancelled one.

    reserving ──────────────→ awaiting_payment ──captured──→ fulfilling ──→ completed
      │ reserve each line,        │     │                      unschedule deadline, mark paid,
      │ mark stock reserved,      │     │                      hold funds in escrow, confirm,
      │ request payment,          │     │                      commit each line, deliver
      │ schedule the deadline     │     └─ failed / deadline / order cancelled ─┐
      └─ a step refused (no stock, order cancelled, …) ─────────────────────────┤
                                                                                ↓
      cancelled ←─────────── compensating: unschedule the deadline, release every line,
          │                  cancel the order (unless it already is), refund (if captured)
          └─ captured late ──→ compensating again, with the refund

A capture that arrives once the order is cancelled (a late or racing webhook) is refunded
through the provider, so money captured for a cancelled order never stays with the platform.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import event

from application.commerce.commands import CancelOrder
from application.commerce.process_commands import (
    CommitStock,
    ConfirmOrder,
    DeliverOrder,
    HoldFunds,
    MarkOrderPaid,
    MarkPaymentRequested,
    MarkStockReserved,
    RefundPayment,
    ReleaseStock,
    RequestPayment,
    ReserveStock,
)
from application.saga_statuses import CheckoutStatus
from application.sagas.saga import Saga, saga_id_for
from application.sagas.steps import Issue, Schedule, Step, Unschedule
from domain.order import OrderLine

PAYMENT_DEADLINE = "payment-deadline"
DEFAULT_PAYMENT_TIMEOUT = timedelta(minutes=15)


_S = CheckoutStatus
_AFTER_PLAN: dict[str, CheckoutStatus] = {
    _S.RESERVING: _S.AWAITING_PAYMENT,
    _S.FULFILLING: _S.COMPLETED,
    _S.COMPENSATING: _S.CANCELLED,
}


def checkout_saga_id(order_id: UUID) -> UUID:
    return saga_id_for(CheckoutSaga.kind, order_id)


class CheckoutSaga(Saga):
    kind = "checkout"

    @classmethod
    def start(
        cls,
        *,
        order_id: UUID,
        tenant_id: str,
        lines: tuple[OrderLine, ...],
        placed_at: datetime,
        payment_timeout: timedelta,
        position: int,
        correlation_id: UUID,
    ) -> CheckoutSaga:
        return cls(
            id=checkout_saga_id(order_id),
            tenant_id=tenant_id,
            order_id=order_id,
            lines=lines,
            payment_deadline=placed_at + payment_timeout,
            position=position,
            correlation_id=correlation_id,
        )

    @event("Started")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        order_id: UUID,
        lines: tuple[OrderLine, ...],
        payment_deadline: datetime,
        position: int,
        correlation_id: UUID,
    ) -> None:
        self._init_saga(tenant_id, order_id, _S.RESERVING, position, correlation_id)
        self.lines = lines
        self.payment_deadline = payment_deadline
        self.compensation_reason: str | None = None
        self.order_cancelled = False
        """The order was cancelled by someone else (the buyer): no need to cancel it."""
        self.refund_due = False
        """The payment was captured for an order that will not go through."""

    # -- inputs ---------------------------------------------------------------------------

    def on_order_cancelled(self, *, reason: str, position: int) -> None:
        if self.status in (_S.RESERVING, _S.AWAITING_PAYMENT):
            self._compensate(reason, position, order_cancelled=True)

    def on_payment_captured(self, *, position: int) -> None:
        if self.status is _S.AWAITING_PAYMENT:
            self._fulfil(position=position)
        elif self.status in (_S.COMPENSATING, _S.CANCELLED) and not self.refund_due:
            self._compensate(
                self.compensation_reason or "cancelled",
                position,
                order_cancelled=self.order_cancelled,
                refund_due=True,
            )

    def on_payment_failed(self, *, reason: str, position: int) -> None:
        if self.status is _S.AWAITING_PAYMENT:
            self._compensate(f"payment failed: {reason}", position)

    def on_timer(self, timer: str) -> None:
        if timer == PAYMENT_DEADLINE and self.status is _S.AWAITING_PAYMENT:
            self._compensate("the payment deadline passed", self.last_position)

    def _compensate(
        self, reason: str, position: int, *, order_cancelled: bool = False, refund_due: bool = False
    ) -> None:
        self._start_compensation(
            reason=reason[:500],
            position=position,
            order_cancelled=order_cancelled,
            refund_due=refund_due,
        )
        self._settle()

    @event("CompensationStarted")
    def _start_compensation(
        self, reason: str, position: int, order_cancelled: bool, refund_due: bool
    ) -> None:
        self.status = _S.COMPENSATING
        self.compensation_reason = reason
        self.order_cancelled = order_cancelled
        self.refund_due = refund_due
        self._seen(position)

    def _fulfil(self, *, position: int) -> None:
        self._start_fulfilment(position=position)
        self._settle()

    @event("FulfilmentStarted")
    def _start_fulfilment(self, position: int) -> None:
        self.status = _S.FULFILLING
        self._seen(position)

    def _on_refused(self, key: str, reason: str) -> None:
        if self.status is _S.RESERVING:
            self._compensate(reason, self.last_position)
        elif self.status is _S.FULFILLING and key == "mark-paid":
            # The buyer cancelled the order between the capture and this step.
            self._compensate(reason, self.last_position, order_cancelled=True, refund_due=True)
        elif self.status is _S.FULFILLING:
            self._advance(status=_S.NEEDS_ATTENTION)
        # While compensating, a refused step is as good as done: releasing what was never
        # reserved, or cancelling an order already cancelled, leaves the wanted state.

    # -- plans ----------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        if self.status is _S.RESERVING:
            return self._reserving()
        if self.status is _S.FULFILLING:
            return self._fulfilling()
        if self.status is _S.COMPENSATING:
            return self._compensating()
        return []

    def _after_plan(self) -> CheckoutStatus | None:
        return _AFTER_PLAN.get(self.status)

    def _reserving(self) -> list[Step]:
        order_id = self.order_id
        return [
            *(
                Issue(
                    f"reserve:{line.product_id}",
                    ReserveStock(
                        product_id=line.product_id, order_id=order_id, quantity=line.quantity
                    ),
                )
                for line in self.lines
            ),
            Issue("mark-stock-reserved", MarkStockReserved(order_id=order_id)),
            Issue("request-payment", RequestPayment(order_id=order_id)),
            Issue("mark-payment-requested", MarkPaymentRequested(order_id=order_id)),
            Schedule("schedule-payment-deadline", PAYMENT_DEADLINE, self.payment_deadline),
        ]

    def _fulfilling(self) -> list[Step]:
        order_id = self.order_id
        return [
            Unschedule("unschedule-payment-deadline", PAYMENT_DEADLINE),
            Issue("mark-paid", MarkOrderPaid(order_id=order_id)),
            Issue("hold-funds", HoldFunds(order_id=order_id)),
            Issue("confirm-order", ConfirmOrder(order_id=order_id)),
            *(
                Issue(
                    f"commit:{line.product_id}",
                    CommitStock(product_id=line.product_id, order_id=order_id),
                )
                for line in self.lines
            ),
            Issue("deliver-order", DeliverOrder(order_id=order_id)),
        ]

    def _compensating(self) -> list[Step]:
        order_id = self.order_id
        steps: list[Step] = [
            Unschedule("unschedule-payment-deadline", PAYMENT_DEADLINE),
            # Every line, reserved or not: releasing what was never reserved does nothing.
            *(
                Issue(
                    f"release:{line.product_id}",
                    ReleaseStock(product_id=line.product_id, order_id=order_id),
                )
                for line in self.lines
            ),
        ]
        if not self.order_cancelled:
            reason = self.compensation_reason or "cancelled"
            steps.append(Issue("cancel-order", CancelOrder(order_id=order_id, reason=reason)))
        if self.refund_due:
            steps.append(Issue("refund-payment", RefundPayment(order_id=order_id)))
        return steps
