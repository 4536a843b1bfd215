"""The event store port: the source of truth that every other part of Mercato depends on.

Vocabulary
- A *stream* is the history of one aggregate (or saga); its events have versions 1, 2, 3, …
- The *global log* orders every event of every stream by *position*. Positions only ever grow
  in the order readers see them, but they are not contiguous: do not count events by
  subtracting positions (`count_between` does that).
- A *position* returned by `append` is a consistency token: a read model whose checkpoint has
  reached it reflects that append.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

ANY: Literal["any"] = "any"
NO_STREAM: Literal["no_stream"] = "no_stream"

ExpectedVersion = int | Literal["any", "no_stream"]
"""`ANY` (no check), `NO_STREAM` (the stream must not exist), or the exact current version
(0 is the same as `NO_STREAM`)."""


class EventStoreError(Exception):
    """Base class of the event store's errors."""


class ConcurrencyError(EventStoreError):
    """The stream's version was not the one the writer expected (HTTP 409)."""

    def __init__(self, stream_id: str, expected: ExpectedVersion, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id} is at version {actual}, the append expected {expected}"
        )


class IdempotencyKeyReusedError(EventStoreError):
    """An idempotency key came back with a different request than the one first stored (422)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different request")


class EventStoreUnavailableError(EventStoreError):
    """The store cannot be reached (after bounded retries for transient faults)."""


@dataclass(frozen=True)
class EventMetadata:
    """What every event of one append shares: whose it is and what caused it."""

    tenant_id: str
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class NewEvent:
    """An event about to be stored. `payload` is the serialised (JSON) event state."""

    type: str
    payload: bytes
    schema_version: int = 1
    event_id: UUID | None = None
    """Left empty, the store assigns a random UUID."""


@dataclass(frozen=True)
class RecordedEvent:
    event_id: UUID
    stream_id: str
    stream_version: int
    position: int
    type: str
    schema_version: int
    tenant_id: str
    recorded_at: datetime
    correlation_id: UUID | None
    causation_id: UUID | None
    traceparent: str | None
    payload: bytes


@dataclass(frozen=True)
class AppendResult:
    stream_id: str
    stream_version: int
    """The stream's version after the append (the last event's version)."""
    positions: tuple[int, ...]
    """The global position of each appended event, in order."""
    replayed: bool = False
    """True when an idempotency key matched an earlier append and nothing new was stored."""

    @property
    def position(self) -> int:
        """The consistency token: the position of the last event appended."""
        return self.positions[-1]


@dataclass(frozen=True)
class Idempotency:
    """An idempotency key, and the fingerprint of the request it stands for.

    A retried request with the same key and fingerprint gets the first result; the same key
    with another fingerprint is `IdempotencyKeyReusedError`. Command handlers pass a
    fingerprint of the command; left empty, the store fingerprints the stream and events.
    """

    key: str
    fingerprint: str | None = None


@dataclass(frozen=True)
class LogFilter:
    """Narrows `read_all`; empty fields match everything."""

    event_types: frozenset[str] = field(default_factory=frozenset)
    tenant_id: str | None = None


@dataclass(frozen=True)
class Snapshot:
    stream_id: str
    stream_version: int
    type: str
    state: bytes
    tenant_id: str
    taken_at: datetime


class EventStore(Protocol):
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        metadata: EventMetadata,
        idempotency: Idempotency | None = None,
    ) -> AppendResult:
        """Store `events` at the end of the stream in one transaction, or nothing at all.

        Raises `ConcurrencyError` when the stream is not at `expected_version`.
        """
        ...

    async def find_idempotent_result(self, tenant_id: str, key: str) -> AppendResult | None:
        """The result of the append that first used `key`, if any (for handlers to short-cut)."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of_position: int | None = None,
        as_of_time: datetime | None = None,
    ) -> list[RecordedEvent]:
        """The stream's events in version order, within the bounds (all inclusive)."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""
        ...

    async def read_all(
        self, from_position: int = 0, limit: int = 1000, log_filter: LogFilter | None = None
    ) -> list[RecordedEvent]:
        """Events after `from_position` (exclusive) in position order, only those that are
        final: no event can later appear at a position at or below the last one returned."""
        ...

    async def head_position(self) -> int:
        """The position of the newest final event (0 when the log is empty)."""
        ...

    async def count_between(self, after_position: int, up_to_position: int) -> int:
        """How many events have positions in (after_position, up_to_position]."""
        ...

    async def position_before_time(self, time: datetime) -> int:
        """A position just below the first final event recorded at or after `time`, so that
        `read_all(from_position=…)` starts with it (the head when there is none)."""
        ...

    def subscribe(
        self, from_position: int = 0, log_filter: LogFilter | None = None, batch_size: int = 500
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Catch up from `from_position` (exclusive), then follow the log live, in batches.

        Never skips an event and never yields one twice.
        """
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def latest_snapshot(self, stream_id: str) -> Snapshot | None: ...

    async def close(self) -> None: ...


def fingerprint_events(stream_id: str, events: Iterable[NewEvent]) -> str:
    """The default idempotency fingerprint: a hash of the stream and the events' types and data."""
    digest = hashlib.sha256(stream_id.encode())
    for event in events:
        digest.update(b"\x00" + event.type.encode() + b"\x00" + event.payload)
    return digest.hexdigest()
