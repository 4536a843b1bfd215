"""Errors the application layer raises, for the interfaces to map to HTTP statuses once."""

from __future__ import annotations


class ApplicationError(Exception):
    """Base class of the application layer's errors."""


class AggregateNotFoundError(ApplicationError):
    """No such aggregate for this tenant (404).

    Also raised when the aggregate exists but belongs to another tenant, so that a caller
    cannot tell the two cases apart.
    """

    def __init__(self, aggregate_type: type, aggregate_id: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        super().__init__(f"{aggregate_type.__name__} {aggregate_id} not found")
