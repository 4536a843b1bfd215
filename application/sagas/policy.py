"""How long the sagas wait: the business's deadlines, configurable per deployment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from application.sagas.checkout import DEFAULT_PAYMENT_TIMEOUT
from application.sagas.escrow import DEFAULT_DISPUTE_WINDOW


@dataclass(frozen=True)
class SagaPolicy:
    payment_timeout: timedelta = DEFAULT_PAYMENT_TIMEOUT
    """From placing an order to the capture of its payment; then the order is cancelled."""
    dispute_window: timedelta = DEFAULT_DISPUTE_WINDOW
    """From delivery to automatic completion, unless the buyer confirms or disputes first."""

    def __post_init__(self) -> None:
        if self.payment_timeout <= timedelta(0) or self.dispute_window <= timedelta(0):
            raise ValueError("saga deadlines must be positive")
