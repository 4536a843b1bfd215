"""What a projection is: a name, a version, and pure handlers from events to sink writes.

    orders = Projection(
        name="order_views",
        version=1,
        sink="views",
        handlers={
            event_type(Order, "Placed"): on_placed,
            event_type(Order, "Paid"): on_paid,
        },
    )

A handler gets a `ProjectedEvent` (the decoded domain event and its record) and returns
operations (`SetFields`, `Contribute`, `InsertRow`); the runtime stamps each with the event's
position and tenant. Handlers do no I/O, so a rebuild, a replay, `verify` and the live worker
all compute the same writes from the same events. Bump `version` when a handler's output
changes for events already stored: a rebuild then builds a target of the new version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.event_categories import category_of
from application.ports.event_store import LogFilter, RecordedEvent
from application.ports.read_model_sink import Operation, Write
from application.serialization import EventSerializer


@dataclass(frozen=True)
class ProjectedEvent:
    event: Any
    """The domain event, decoded (and upcast) from the record."""
    record: RecordedEvent

    @property
    def tenant_id(self) -> str:
        return self.record.tenant_id

    @property
    def stream_id(self) -> str:
        return self.record.stream_id

    @property
    def position(self) -> int:
        return self.record.position

    @property
    def recorded_at(self) -> datetime:
        return self.record.recorded_at

    @property
    def originator_id(self) -> UUID:
        return UUID(self.record.stream_id)


Handler = Callable[[ProjectedEvent], Sequence[Operation]]


def event_type(aggregate: type, event_name: str) -> str:
    """The stored type of an aggregate's event: `event_type(Order, "Placed")` is
    `domain.order:Order.Placed`."""
    return f"{get_topic(aggregate)}.{event_name}"


@dataclass(frozen=True)
class Projection:
    name: str
    version: int
    sink: str
    """Which sink stores it: `views` (Redis / embedded key-value), `search`, `analytics`, or a
    name a test wires up."""
    handlers: Mapping[str, Handler]
    """Event type (see `event_type`) → handler."""
    description: str = ""
    _by_type: dict[str, Handler] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or "__" in self.name:
            raise ValueError(f"projection names are identifiers: {self.name!r}")
        if self.version < 1:
            raise ValueError("projection versions start at 1")
        object.__setattr__(self, "_by_type", dict(self.handlers))

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._by_type)

    @property
    def categories(self) -> frozenset[str]:
        """The event categories (so the Kafka topics) this projection reads."""
        return frozenset(category_of(t) for t in self._by_type)

    @property
    def log_filter(self) -> LogFilter:
        return LogFilter(event_types=self.event_types)

    def handles(self, record: RecordedEvent) -> bool:
        return record.type in self._by_type

    def writes(self, record: RecordedEvent, serializer: EventSerializer) -> list[Write]:
        """The writes for one event (none for an event type it does not handle). Raises
        whatever the handler raises."""
        handler = self._by_type.get(record.type)
        if handler is None:
            return []
        projected = ProjectedEvent(serializer.to_domain_event(record), record)
        return [Write(op, record.position, record.tenant_id) for op in handler(projected)]
