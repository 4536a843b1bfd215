"""Checks of single values shared by the aggregates' factories and commands.

Each returns the value as it should be recorded (text is trimmed) or raises
`InvariantViolation` naming the field.
"""

from __future__ import annotations

from datetime import datetime

from domain.errors import InvariantViolation
from domain.money import Money

REASON_MAX_LENGTH = 500
REFERENCE_MAX_LENGTH = 200
TENANT_ID_MAX_LENGTH = 100


def text(value: str, *, field: str, max_length: int, allow_empty: bool = False) -> str:
    """`value` without surrounding whitespace, at most `max_length` characters long."""
    if not isinstance(value, str):
        raise InvariantViolation(f"{field} must be text, got {type(value).__name__}", field=field)
    trimmed = value.strip()
    if not trimmed and not allow_empty:
        raise InvariantViolation(f"{field} must not be empty", field=field)
    if len(trimmed) > max_length:
        raise InvariantViolation(
            f"{field} must be at most {max_length} characters, got {len(trimmed)}", field=field
        )
    return trimmed


def tenant_id(value: str) -> str:
    return text(value, field="tenant_id", max_length=TENANT_ID_MAX_LENGTH)


def reason(value: str, *, field: str = "reason") -> str:
    """A free-text reason (a cancellation, a dispute, a failure): non-empty, bounded."""
    return text(value, field=field, max_length=REASON_MAX_LENGTH)


def reference(value: str, *, field: str = "reference") -> str:
    """An idempotency reference chosen by the caller: non-empty, bounded."""
    return text(value, field=field, max_length=REFERENCE_MAX_LENGTH)


def positive(amount: Money, *, field: str) -> Money:
    if not amount.is_positive:
        raise InvariantViolation(f"{field} must be more than zero, got {amount}", field=field)
    return amount


def whole_number(value: int, *, field: str, minimum: int, maximum: int | None = None) -> int:
    """An `int` (not a `bool`, not a float) within the bounds, inclusive."""
    if type(value) is not int:
        raise InvariantViolation(f"{field} must be a whole number, got {value!r}", field=field)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise InvariantViolation(f"{field} must be {bounds}, got {value}", field=field)
    return value


def aware(at: datetime, *, field: str = "at") -> datetime:
    """A timezone-aware moment: naive datetimes are ambiguous once stored."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvariantViolation(f"{field} must be timezone-aware, got {at!r}", field=field)
    return at
