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


class ReadModelBehindError(ApplicationError):
    """A query asked for a read model at least at `min_position` (a command's consistency token)
    and the read model had not reached it within the wait allowed (503 with `Retry-After`): the
    caller retries rather than reading stale data without knowing it."""

    def __init__(self, projection: str, min_position: int, reached: int, lag_events: int) -> None:
        self.projection = projection
        self.min_position = min_position
        self.reached = reached
        self.lag_events = lag_events
        super().__init__(
            f"read model {projection} is at position {reached}, not yet at {min_position} "
            f"({lag_events} event(s) behind the log); retry shortly"
        )


class ReadModelUnavailableError(ApplicationError):
    """The read model has no live target yet (its projection never ran): 503."""

    def __init__(self, projection: str) -> None:
        self.projection = projection
        super().__init__(f"read model {projection} is not built yet; retry shortly")
