"""Webhook bodies and their HMAC-SHA256 signatures, the way card providers sign them.

The signature header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`. Signing the
time with the body lets the receiver refuse an old webhook replayed by someone who recorded
it (beyond `tolerance`); within it, the webhook id makes a replay a no-op.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from application.ports.payment_gateway import (
    InvalidWebhookError,
    NotificationKind,
    PaymentNotification,
)
from domain.errors import DomainError
from domain.money import Money

MAX_BODY_BYTES = 64 * 1024
DEFAULT_TOLERANCE = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST_TIMESTAMP = int((datetime(9000, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
"""Far beyond any honest clock, and far enough from `datetime.max` that no arithmetic on a
time this late overflows."""
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""ASCII digits only: `str.isdigit` also takes `²` and other digits `int()` refuses."""


def encode(notification: PaymentNotification) -> bytes:
    return json.dumps(
        {
            "id": notification.webhook_id,
            "type": notification.kind.value,
            "created": notification.occurred_at.isoformat(),
            "data": {
                "intent_id": notification.intent_id,
                "amount": notification.amount.amount,
                "currency": notification.amount.currency,
                "failure_reason": notification.reason,
                "metadata": {
                    "tenant_id": notification.tenant_id,
                    "order_id": str(notification.order_id),
                },
            },
        },
        separators=(",", ":"),
    ).encode()


def sign(secret: bytes, body: bytes, at: datetime) -> str:
    timestamp = int(at.timestamp())
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(
    secret: bytes,
    body: bytes,
    signature: str,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> PaymentNotification:
    """The notification, if `signature` is the provider's for this body and recent enough."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidWebhookError(f"the webhook body is over {MAX_BODY_BYTES} bytes")
    timestamp, digest = _parse_header(signature)
    if not hmac.compare_digest(digest, _digest(secret, timestamp, body)):
        raise InvalidWebhookError("the webhook signature does not match its body")
    signed_at = _EPOCH + timedelta(seconds=timestamp)
    if abs(now - signed_at) > tolerance:
        raise InvalidWebhookError(f"the webhook was signed at {signed_at}, outside the tolerance")
    return _decode(body)


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _parse_header(signature: str) -> tuple[int, str]:
    parts = dict(part.split("=", 1) for part in signature.split(",") if "=" in part)
    timestamp, digest = parts.get("t", ""), parts.get("v1", "")
    if not _TIMESTAMP.fullmatch(timestamp) or int(timestamp) > _LATEST_TIMESTAMP or not digest:
        raise InvalidWebhookError(
            f"the webhook signature header is malformed: t is unix seconds up to "
            f"{_LATEST_TIMESTAMP}, and v1 the signature"
        )
    return int(timestamp), digest


def _decode(body: bytes) -> PaymentNotification:
    """Only ever called on a body whose signature checked out: it is the provider's."""
    try:
        payload: dict[str, Any] = json.loads(body)
        data = payload["data"]
        metadata = data["metadata"]
        return PaymentNotification(
            webhook_id=str(payload["id"]),
            kind=NotificationKind(payload["type"]),
            intent_id=str(data["intent_id"]),
            order_id=UUID(metadata["order_id"]),
            tenant_id=str(metadata["tenant_id"]),
            amount=Money(data["amount"], data["currency"]),
            occurred_at=datetime.fromisoformat(payload["created"]),
            reason=data.get("failure_reason"),
        )
    except (KeyError, TypeError, ValueError, DomainError) as error:
        raise InvalidWebhookError(f"the webhook body is malformed: {error}") from None
