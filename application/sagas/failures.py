"""Which failures of a saga's input pass by themselves, and which park the saga.

A *transient* failure is the world, not the input: a store or the payment provider cannot be
reached, a call timed out, another runner moved the saga meanwhile. The same input is tried
again after a backoff. Anything else (a key the store refuses, a bug, a saga that loops) would
fail the same way every time: the saga is parked with the input, and the log flows on.
"""

from __future__ import annotations

from application.ports.event_store import ConcurrencyError, EventStoreUnavailableError
from application.ports.payment_gateway import PaymentGatewayError

ERROR_MAX_LENGTH = 500

TRANSIENT_FAILURES: tuple[type[BaseException], ...] = (
    EventStoreUnavailableError,
    ConcurrencyError,
    PaymentGatewayError,
    OSError,  # ConnectionError and its kin among them
    TimeoutError,  # asyncio.TimeoutError too (the same class since Python 3.11)
)
"""What every profile treats as transient; an adapter adds its own client's connection errors
(`Marketplace.transient_failures`)."""


def is_transient(error: BaseException, transient: tuple[type[BaseException], ...]) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return all(is_transient(inner, transient) for inner in error.exceptions)
    return isinstance(error, transient)


def describe(error: BaseException) -> str:
    """The error in a line an operator reads in `mercato sagas list`."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:ERROR_MAX_LENGTH]


class TransientFailure(Exception):
    """Some saga of a batch failed transiently: the runner tries the batch again."""
