"""The commands the system sends itself: issued by the sagas and the payment webhook handler.

Only a system actor may send them (`guards.require_system`). Each one changes one aggregate,
so one idempotency key (saga id + step, or the webhook id) covers it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field

from application.commerce.commands import Command, Price, Quantity, Reason
from domain import checks, payment
from domain.dispute import Resolution
from domain.wallet import CreditReason

IntentId = Annotated[str, Field(min_length=1, max_length=payment.PROVIDER_INTENT_ID_MAX_LENGTH)]


class ReserveStock(Command):
    product_id: UUID
    order_id: UUID
    quantity: Quantity


class ReleaseStock(Command):
    product_id: UUID
    order_id: UUID


class CommitStock(Command):
    product_id: UUID
    order_id: UUID


class MarkStockReserved(Command):
    order_id: UUID


class RequestPayment(Command):
    """Open a payment intent with the provider for the order's total."""

    order_id: UUID


class MarkPaymentRequested(Command):
    """Move the order to `payment_requested`, with the intent the payment holds."""

    order_id: UUID


class PaymentOutcome(StrEnum):
    CAPTURED = "captured"
    FAILED = "failed"


class RecordPaymentOutcome(Command):
    order_id: UUID
    intent_id: IntentId
    outcome: PaymentOutcome
    reason: Reason | None = None


class RefundPayment(Command):
    """Give the buyer the captured money back through the provider."""

    order_id: UUID


class MarkOrderPaid(Command):
    order_id: UUID


class HoldFunds(Command):
    """Open the order's escrow with the captured total."""

    order_id: UUID


class ConfirmOrder(Command):
    order_id: UUID


class DeliverOrder(Command):
    """Grant the buyer the download."""

    order_id: UUID


class CompleteOrder(Command):
    """The dispute window passed without a dispute."""

    order_id: UUID


class DisputeEscrow(Command):
    order_id: UUID
    reason: Reason


class ReleaseEscrow(Command):
    order_id: UUID


class CloseDispute(Command):
    """Bring the order in line with how an admin resolved its escrow."""

    order_id: UUID
    resolution: Resolution


class CreditWallet(Command):
    owner_id: UUID | None
    """The account to credit; `None` for the tenant's platform wallet."""
    amount: Price
    reason: CreditReason
    reference: Annotated[str, Field(min_length=1, max_length=checks.REFERENCE_MAX_LENGTH)]
