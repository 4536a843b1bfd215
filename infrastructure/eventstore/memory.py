"""The event store in memory: the SQLite store's contract without a file, for fast unit tests.

Nothing outlives the object. A store is ready once constructed and serves one event loop; each
operation runs whole between two awaits, so appends are atomic and serialised without locks, and
positions are 1, 2, 3, … with no gaps. `recorded_at` comes from the injected `Clock`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from bisect import bisect_left
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from uuid import uuid4

from application.ports.clock import Clock, SystemClock
from application.ports.event_store import (
    AppendResult,
    EventMetadata,
    EventStoreUnavailableError,
    ExpectedVersion,
    Idempotency,
    IdempotencyKeyReusedError,
    LogFilter,
    NewEvent,
    RecordedEvent,
    Snapshot,
    fingerprint_events,
)
from infrastructure.eventstore.append_checks import check_append_arguments, check_expected_version


class InMemoryEventStore:
    """`EventStore` in lists and dicts; see the module docstring."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._log: list[RecordedEvent] = []
        """The global log: the event at position p is `self._log[p - 1]`."""
        self._streams: dict[str, list[RecordedEvent]] = {}
        """Each stream's events: version v is at index v - 1."""
        self._keys: dict[tuple[str, str], tuple[str, AppendResult]] = {}
        """(tenant, key) -> (fingerprint, the first result, marked replayed)."""
        self._snapshots: dict[str, Snapshot] = {}
        self._appended = asyncio.Event()
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake_subscribers()

    # -- writes -----------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        metadata: EventMetadata,
        idempotency: Idempotency | None = None,
    ) -> AppendResult:
        check_append_arguments(stream_id, events, expected_version, idempotency)
        await self._enter()
        fingerprint = ""
        if idempotency is not None:
            # Checked before the version, as the SQLite store does: a retry of an append that
            # succeeded finds the stream moved on, and must still get its first result.
            fingerprint = idempotency.fingerprint or fingerprint_events(stream_id, events)
            earlier = self._keys.get((metadata.tenant_id, idempotency.key))
            if earlier is not None:
                earlier_fingerprint, earlier_result = earlier
                if earlier_fingerprint != fingerprint:
                    raise IdempotencyKeyReusedError(idempotency.key)
                return earlier_result
        version = len(self._streams.get(stream_id, ()))
        check_expected_version(stream_id, expected_version, version)
        recorded = self._record(stream_id, events, version, metadata)
        self._streams.setdefault(stream_id, []).extend(recorded)
        self._log.extend(recorded)
        result = AppendResult(
            stream_id=stream_id,
            stream_version=recorded[-1].stream_version,
            positions=tuple(event.position for event in recorded),
        )
        if idempotency is not None:
            replay = dataclasses.replace(result, replayed=True)
            self._keys[(metadata.tenant_id, idempotency.key)] = (fingerprint, replay)
        self._wake_subscribers()
        return result

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._enter()
        stored = dataclasses.replace(snapshot, taken_at=_utc(snapshot.taken_at))
        current = self._snapshots.get(snapshot.stream_id)
        if current is None or stored.stream_version >= current.stream_version:
            self._snapshots[snapshot.stream_id] = stored

    def _record(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        version: int,
        metadata: EventMetadata,
    ) -> list[RecordedEvent]:
        # Recorded times never decrease along the log, even if the clock steps back, so that
        # reading "as of a time" always cuts the log at one point (as the SQLite store does).
        recorded_at = _utc(self._clock.now())
        if self._log:
            recorded_at = max(recorded_at, self._log[-1].recorded_at)
        head = len(self._log)
        return [
            RecordedEvent(
                event_id=event.event_id or uuid4(),
                stream_id=stream_id,
                stream_version=version + offset,
                position=head + offset,
                type=event.type,
                schema_version=event.schema_version,
                tenant_id=metadata.tenant_id,
                recorded_at=recorded_at,
                correlation_id=metadata.correlation_id,
                causation_id=metadata.causation_id,
                traceparent=metadata.traceparent,
                payload=event.payload,
            )
            for offset, event in enumerate(events, start=1)
        ]

    # -- reads ------------------------------------------------------------------------------

    async def find_idempotent_result(self, tenant_id: str, key: str) -> AppendResult | None:
        await self._enter()
        stored = self._keys.get((tenant_id, key))
        return None if stored is None else stored[1]

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of_position: int | None = None,
        as_of_time: datetime | None = None,
    ) -> list[RecordedEvent]:
        cutoff_time = None if as_of_time is None else _utc(as_of_time)
        await self._enter()
        stream = self._streams.get(stream_id, [])
        first = max(from_version, 1)
        last = len(stream) if to_version is None else min(to_version, len(stream))
        return [
            event
            for event in stream[first - 1 : last]
            if (as_of_position is None or event.position <= as_of_position)
            and (cutoff_time is None or event.recorded_at <= cutoff_time)
        ]

    async def stream_version(self, stream_id: str) -> int:
        await self._enter()
        return len(self._streams.get(stream_id, ()))

    async def read_all(
        self, from_position: int = 0, limit: int = 1000, log_filter: LogFilter | None = None
    ) -> list[RecordedEvent]:
        _check_limit("limit", limit, minimum=0)
        await self._enter()
        return self._select(from_position, limit, log_filter)

    async def head_position(self) -> int:
        await self._enter()
        return len(self._log)

    async def count_between(self, after_position: int, up_to_position: int) -> int:
        await self._enter()
        return max(0, min(up_to_position, len(self._log)) - max(after_position, 0))

    async def position_before_time(self, time: datetime) -> int:
        start = _utc(time)
        await self._enter()
        index = bisect_left(self._log, start, key=lambda event: event.recorded_at)
        return self._log[index].position - 1 if index < len(self._log) else len(self._log)

    async def latest_snapshot(self, stream_id: str) -> Snapshot | None:
        await self._enter()
        return self._snapshots.get(stream_id)

    async def subscribe(
        self, from_position: int = 0, log_filter: LogFilter | None = None, batch_size: int = 500
    ) -> AsyncIterator[list[RecordedEvent]]:
        _check_limit("batch_size", batch_size, minimum=1)
        position = from_position
        while True:
            await self._enter()
            # Both taken before the yield: the consumer may append while it holds the batch,
            # and those appends must neither be skipped (head) nor slept through (appended).
            appended = self._appended
            head = len(self._log)
            batch = self._select(position, batch_size, log_filter)
            if batch:
                yield batch
            if len(batch) == batch_size:
                position = batch[-1].position
                continue
            # A short batch holds every matching event up to `head`, so a filtered subscriber
            # can skip the events that did not match.
            position = max(position, head)
            await appended.wait()

    def _select(
        self, from_position: int, limit: int, log_filter: LogFilter | None
    ) -> list[RecordedEvent]:
        start = max(from_position, 0)
        if log_filter is None or (not log_filter.event_types and log_filter.tenant_id is None):
            return self._log[start : start + limit]
        selected: list[RecordedEvent] = []
        for index in range(start, len(self._log)):
            if len(selected) == limit:
                break
            event = self._log[index]
            if _matches(event, log_filter):
                selected.append(event)
        return selected

    # -- life cycle -------------------------------------------------------------------------

    async def _enter(self) -> None:
        # One turn of the event loop per call, where a real store would wait on I/O: tasks
        # run with gather() interleave between a handler's read and its append, so unit tests
        # meet the same conflicts as they would on SQLite.
        await asyncio.sleep(0)
        if self._closed:
            raise EventStoreUnavailableError("the event store is closed")

    def _wake_subscribers(self) -> None:
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()


def _check_limit(name: str, value: int, *, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _matches(event: RecordedEvent, log_filter: LogFilter) -> bool:
    if log_filter.event_types and event.type not in log_filter.event_types:
        return False
    return log_filter.tenant_id is None or event.tenant_id == log_filter.tenant_id


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times given to the event store must be timezone-aware")
    return moment.astimezone(UTC)
