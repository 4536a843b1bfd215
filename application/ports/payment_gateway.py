"""The payment provider port: payment intents, refunds, and the provider's signed webhooks.

A provider reports on an intent later, by webhook, at least once and in any order; each
webhook has a unique id, which the application uses as the idempotency key of what it records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from domain.money import Money

WebhookCallback = Callable[[bytes, str], Awaitable[object]]
"""Where a provider delivers webhooks: `(raw body, signature header)`; raising means "retry"."""


class PaymentGatewayError(Exception):
    """The provider could not be reached, or refused the request."""


class InvalidWebhookError(Exception):
    """A webhook that must not be trusted: bad or missing signature, too old, or malformed."""


class NotificationKind(StrEnum):
    CAPTURED = "payment.captured"
    FAILED = "payment.failed"


@dataclass(frozen=True)
class PaymentNotification:
    """A verified webhook: what the provider says happened to one intent."""

    webhook_id: str
    kind: NotificationKind
    intent_id: str
    order_id: UUID
    tenant_id: str
    amount: Money
    occurred_at: datetime
    reason: str | None = None
    """Why a payment failed, as the provider puts it."""


class PaymentGateway(Protocol):
    async def create_intent(self, *, tenant_id: str, order_id: UUID, amount: Money) -> str:
        """Open an intent to collect `amount` for the order; returns the provider's intent id.

        Idempotent per order: asking again for the same order returns the same intent, so a
        retried step never charges twice. The tenant and order travel with the intent and come
        back in its webhooks.
        """
        ...

    async def refund(self, intent_id: str) -> None:
        """Give the captured money back to the payer; refunding a refunded intent does nothing."""
        ...

    def verify_webhook(self, body: bytes, signature: str) -> PaymentNotification:
        """The notification in `body` if `signature` proves the provider sent it, recently;
        otherwise `InvalidWebhookError`. Nothing is parsed before the signature is checked."""
        ...
