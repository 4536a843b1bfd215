"""The sagas' statuses. They are stored in the sagas' events, so the serializer must know them;
they live here, below both, so that the serializer (`application.transcodings`) imports nothing
from the sagas."""

from __future__ import annotations

from enum import StrEnum


class CheckoutStatus(StrEnum):
    RESERVING = "reserving"
    AWAITING_PAYMENT = "awaiting_payment"
    FULFILLING = "fulfilling"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    CANCELLED = "cancelled"
    NEEDS_ATTENTION = "needs_attention"
    """A step after capture was refused: the saga stops and a person looks (it is logged)."""


class EscrowSagaStatus(StrEnum):
    HELD = "held"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    CLOSING_WINDOW = "closing_window"
    RELEASING = "releasing"
    DISPUTED = "disputed"
    SETTLING = "settling"
    SETTLED = "settled"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    NEEDS_ATTENTION = "needs_attention"
