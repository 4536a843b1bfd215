"""Checks every event store adapter makes the same way before and during an append."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports.event_store import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    ExpectedVersion,
    Idempotency,
    NewEvent,
)


def check_append_arguments(
    stream_id: str,
    events: Sequence[NewEvent],
    expected_version: ExpectedVersion,
    idempotency: Idempotency | None,
) -> None:
    """Refuse (`ValueError`) an append that could never be right, before touching the store."""
    if not events:
        raise ValueError("an append needs at least one event")
    if not stream_id:
        raise ValueError("an append needs a stream id")
    if isinstance(expected_version, int) and expected_version < 0:
        raise ValueError("an expected version cannot be negative")
    if idempotency is not None and not idempotency.key:
        raise ValueError("an idempotency key cannot be empty")


def check_expected_version(stream_id: str, expected: ExpectedVersion, actual: int) -> None:
    """`ConcurrencyError` unless the stream is at the version the writer expected."""
    if expected == ANY:
        return
    wanted = 0 if expected == NO_STREAM else expected
    if wanted != actual:
        raise ConcurrencyError(stream_id, expected, actual)
