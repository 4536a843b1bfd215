"""The payment provider's webhooks, turned into `RecordPaymentOutcome` commands."""

from __future__ import annotations

from application.commerce.bus import CommandBus
from application.commerce.process_commands import PaymentOutcome, RecordPaymentOutcome
from application.commerce.results import CommandResult
from application.context import Actor, CommandContext
from application.ports.payment_gateway import (
    NotificationKind,
    PaymentGateway,
    PaymentNotification,
)

_OUTCOMES = {
    NotificationKind.CAPTURED: PaymentOutcome.CAPTURED,
    NotificationKind.FAILED: PaymentOutcome.FAILED,
}


class PaymentWebhooks:
    def __init__(self, gateway: PaymentGateway, bus: CommandBus) -> None:
        self._gateway = gateway
        self._bus = bus

    async def handle(self, body: bytes, signature: str) -> CommandResult:
        """Verify the webhook, then record what it says, once per webhook id.

        Raises `InvalidWebhookError` (bad signature, stale, malformed: nothing recorded) and
        the errors of `CommandBus.dispatch`; providers retry a webhook that was not accepted.
        """
        notification = self._gateway.verify_webhook(body, signature)
        return await self._bus.dispatch(_command(notification), _context(notification))


def _command(notification: PaymentNotification) -> RecordPaymentOutcome:
    return RecordPaymentOutcome(
        order_id=notification.order_id,
        intent_id=notification.intent_id,
        outcome=_OUTCOMES[notification.kind],
        reason=notification.reason,
    )


def _context(notification: PaymentNotification) -> CommandContext:
    # The webhook id is the idempotency key: a redelivered webhook appends nothing. The tenant
    # comes from the intent's metadata, which the provider signed.
    return CommandContext(
        actor=Actor.system(notification.tenant_id),
        idempotency_key=f"webhook:{notification.webhook_id}",
    )
