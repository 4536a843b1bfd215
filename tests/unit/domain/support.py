"""Helpers shared by the domain tests: fixed moments, money, and event inspection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate

from domain.money import Money

T = TypeVar("T", bound=Aggregate)

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


def recorded(aggregate: Aggregate) -> list[str]:
    """The names of the events recorded since the last call (collects them)."""
    return [type(event).__name__ for event in aggregate.collect_events()]


def replayed(events: Sequence[Any]) -> Any:
    """The aggregate rebuilt from its events alone, as the application will load it."""
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def assert_replays_identically(aggregate: T, events: Sequence[Any]) -> None:
    """The event bodies alone rebuild the very state the commands produced."""
    assert replayed(events) == aggregate
