"""The event store on Postgres through asyncpg (the `services` profile).

Appends from concurrent callers are grouped: a few writer tasks each take whatever appends are
waiting and store them with one statement (see `postgres_sql.APPEND_BATCH`), so sixteen
concurrent writers cost a handful of commits instead of sixteen. A group holds at most
`max_batch_events` (500) events, so large appends spread over several backends (both cores)
rather than one long statement. Each append still succeeds or fails on its own: a stale expected
version or a reused idempotency key affects only that append.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from application.ports.event_store import (
    ANY,
    NO_STREAM,
    AppendResult,
    ConcurrencyError,
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
from infrastructure.eventstore import postgres_sql as sql
from infrastructure.eventstore.append_checks import check_append_arguments
from infrastructure.eventstore.postgres_migrations import migrate
from infrastructure.postgres_databases import redacted

logger = logging.getLogger(__name__)

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_MAX_INT64 = (1 << 63) - 1
_FIRST_RETRY_DELAY = 0.001
_MAX_RETRY_DELAY = 0.1
_MAX_FINALITY_WAIT = 5.0

# Errors that mean "the server could not be reached or went away": worth retrying when nothing
# was sent yet (connecting), fatal to a write in flight (its outcome is unknown).
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.TooManyConnectionsError,
)


@dataclass
class _PendingAppend:
    stream_id: str
    events: Sequence[NewEvent]
    expected: ExpectedVersion
    metadata: EventMetadata
    idempotency: Idempotency | None
    fingerprint: str
    future: asyncio.Future[AppendResult] = field(repr=False)

    def resolve(self, result: AppendResult) -> None:
        # The caller may have been cancelled (client gone, SIGTERM) while its append was in a
        # batch: its events may still be stored, but nobody is waiting for the answer.
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    @property
    def expected_as_int(self) -> int:
        if self.expected == ANY:
            return -1
        if self.expected == NO_STREAM:
            return 0
        assert isinstance(self.expected, int)
        return self.expected


class PostgresEventStore:
    """Implements `application.ports.event_store.EventStore`. Create with `connect()`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        writers: int = 8,
        max_batch_events: int = 500,
        poll_interval: float = 1.0,
        ordering_safeguard: bool = True,
    ) -> None:
        self._pool = pool
        self._writer_count = writers
        self._max_batch_events = max_batch_events
        self._poll_interval = poll_interval
        self._safe = ordering_safeguard
        self._queue: asyncio.Queue[_PendingAppend] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []
        self._appended = asyncio.Event()  # wakes subscribers of this process at once
        self._notify_wanted = asyncio.Event()
        self._notifier: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 16,
        connect_timeout: float = 30.0,
        **options: Any,
    ) -> PostgresEventStore:
        """Open a pool (retrying while the server is starting or unreachable, up to
        `connect_timeout` seconds), apply migrations, and return a ready store."""
        pool = await _create_pool_with_retry(dsn, min_size, max_size, connect_timeout)
        async with pool.acquire() as connection:
            await migrate(connection)
        return cls(pool, **options)

    # -- writing -----------------------------------------------------------------------------

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
        if len(events) > sql.MAX_EVENTS_PER_TRANSACTION:
            raise ValueError(f"at most {sql.MAX_EVENTS_PER_TRANSACTION} events per append")
        if self._closed:
            raise EventStoreUnavailableError("the event store is closed")
        self._start_writers()
        fingerprint = ""
        if idempotency is not None:
            fingerprint = idempotency.fingerprint or fingerprint_events(stream_id, events)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(
            _PendingAppend(
                stream_id, events, expected_version, metadata, idempotency, fingerprint, future
            )
        )
        return await future

    def _start_writers(self) -> None:
        if not self._writers:
            self._writers = [
                asyncio.create_task(self._write_loop(), name=f"event-store-writer-{n}")
                for n in range(self._writer_count)
            ]
            self._notifier = asyncio.create_task(self._notify_loop(), name="event-store-notify")

    async def _write_loop(self) -> None:
        carried: list[_PendingAppend] = []
        while True:
            batch = carried or [await self._queue.get()]
            carried = []
            self._fill_batch(batch, carried)
            try:
                await self._write(batch)
            except Exception as error:  # never let one batch kill the writer
                logger.exception("event store writer failed a batch")
                for pending in batch:
                    pending.fail(error)

    def _fill_batch(self, batch: list[_PendingAppend], carried: list[_PendingAppend]) -> None:
        """Add waiting appends to `batch`, at most one per stream: a second append to the same
        stream waits for the next batch so it sees the first one's version."""
        streams = {pending.stream_id for pending in batch}
        size = sum(len(pending.events) for pending in batch)
        while not self._queue.empty() and size < self._max_batch_events:
            pending = self._queue.get_nowait()
            if pending.stream_id in streams:
                carried.append(pending)
                break
            batch.append(pending)
            streams.add(pending.stream_id)
            size += len(pending.events)

    async def _write(self, batch: list[_PendingAppend]) -> None:
        try:
            async with self._pool.acquire() as connection:
                rows = await connection.fetch(sql.APPEND_BATCH, *_batch_arguments(batch))
        except asyncpg.exceptions.UniqueViolationError:
            # Another transaction appended to one of these streams, or used one of these
            # idempotency keys, between our check and our insert. Settle each append alone.
            if len(batch) == 1:
                await self._settle_race(batch[0])
            else:
                await asyncio.gather(*(self._write([pending]) for pending in batch))
            return
        except _CONNECTION_ERRORS as error:
            # The statement may or may not have committed: say so rather than guess.
            failure = EventStoreUnavailableError(
                f"the event store connection failed during an append; its outcome is unknown, "
                f"retry with the same idempotency key ({type(error).__name__}: {error})"
            )
            for pending in batch:
                pending.fail(failure)
            return
        if rows:
            await self._wait_until_final(max(row["position"] for row in rows))
            self._appended.set()
            self._appended.clear()
            self._notify_wanted.set()
        await self._settle(batch, rows)

    async def _wait_until_final(self, position: int) -> None:
        """Acknowledge an append only once readers can see it: a transaction with a lower id
        that is still running (any writer in the cluster) keeps our events below the read
        watermark for a moment. Waiting here means a returned position is at once readable by
        `read_all` and reachable by every subscriber (read-your-writes on the global log).
        Bounded: past the bound the events are committed anyway, only not yet final."""
        if not self._safe:
            return
        delay, waited = _FIRST_RETRY_DELAY, 0.0
        while not await self._pool.fetchval(sql.IS_FINAL, position):
            if waited >= _MAX_FINALITY_WAIT:
                logger.warning(
                    "position %d is committed but still not final after %.1fs: a long-running "
                    "transaction is holding back the read watermark",
                    position,
                    waited,
                )
                return
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, _MAX_RETRY_DELAY)

    async def _settle(self, batch: list[_PendingAppend], rows: list[asyncpg.Record]) -> None:
        by_append: dict[int, list[tuple[int, int]]] = {}
        offsets = _append_offsets(batch)
        for row in rows:
            ordinal = row["position"] & sql.MAX_EVENTS_PER_TRANSACTION
            by_append.setdefault(_index_of(offsets, ordinal), []).append(
                (row["position"], row["stream_version"])
            )
        for index, pending in enumerate(batch):
            stored = sorted(by_append.get(index, ()))
            if stored:
                pending.resolve(
                    AppendResult(
                        pending.stream_id, stored[-1][1], tuple(position for position, _ in stored)
                    )
                )
            else:
                await self._explain_refusal(pending)

    async def _explain_refusal(self, pending: _PendingAppend) -> None:
        """The append inserted nothing: its key was used before, or its version was stale."""
        try:
            if pending.idempotency is not None:
                earlier = await self._stored_result(pending)
                if earlier is not None:
                    pending.resolve(earlier)
                    return
            actual = await self.stream_version(pending.stream_id)
            pending.fail(ConcurrencyError(pending.stream_id, pending.expected, actual))
        except Exception as error:
            pending.fail(error)

    async def _settle_race(self, pending: _PendingAppend) -> None:
        if pending.expected == ANY and pending.idempotency is None:
            await self._write([pending])  # "any" is safe to retry: recompute the version
            return
        await self._explain_refusal(pending)

    async def _stored_result(self, pending: _PendingAppend) -> AppendResult | None:
        assert pending.idempotency is not None
        row = await self._pool.fetchrow(
            sql.SELECT_IDEMPOTENCY_KEY, pending.metadata.tenant_id, pending.idempotency.key
        )
        if row is None:
            return None
        # The fingerprint alone decides: a retried "create" command makes a new aggregate id
        # (another stream) yet is the same request; the default fingerprint covers the stream.
        if row["fingerprint"] != pending.fingerprint:
            raise IdempotencyKeyReusedError(pending.idempotency.key)
        return _result_from_key_row(row)

    async def find_idempotent_result(self, tenant_id: str, key: str) -> AppendResult | None:
        row = await self._pool.fetchrow(sql.SELECT_IDEMPOTENCY_KEY, tenant_id, key)
        return None if row is None else _result_from_key_row(row)

    async def _notify_loop(self) -> None:
        """Wake subscribers in other processes. Runs outside the append's transaction on purpose:
        a NOTIFY inside it would take Postgres's global notify lock at commit and serialise every
        committing writer. Coalesced: one NOTIFY in flight at a time covers many batches, sent on
        a connection of its own with synchronous_commit off (a lost wake-up costs one poll)."""
        connection: asyncpg.pool.PoolConnectionProxy | None = None
        try:
            while True:
                await self._notify_wanted.wait()
                self._notify_wanted.clear()
                try:
                    if connection is None or connection.is_closed():
                        connection = await self._pool.acquire()
                        await connection.execute("SET synchronous_commit TO off")
                    assert connection is not None
                    await connection.execute(f"NOTIFY {sql.NOTIFY_CHANNEL}")
                except Exception:  # subscribers fall back to polling
                    logger.warning("could not notify subscribers of new events", exc_info=True)
                    await asyncio.sleep(self._poll_interval)
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.execute("RESET synchronous_commit")
                await self._pool.release(connection)

    # -- reading -----------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of_position: int | None = None,
        as_of_time: datetime | None = None,
    ) -> list[RecordedEvent]:
        rows = await self._pool.fetch(
            sql.SELECT_STREAM,
            stream_id,
            from_version,
            _MAX_INT64 if to_version is None else to_version,
            _MAX_INT64 if as_of_position is None else as_of_position,
            _FAR_FUTURE if as_of_time is None else as_of_time,
        )
        return [recorded_event(row) for row in rows]

    async def stream_version(self, stream_id: str) -> int:
        return int(await self._pool.fetchval(sql.SELECT_STREAM_VERSION, stream_id))

    async def read_all(
        self, from_position: int = 0, limit: int = 1000, log_filter: LogFilter | None = None
    ) -> list[RecordedEvent]:
        types, tenant = _filter_arguments(log_filter)
        rows = await self._pool.fetch(
            sql.select_log(safe=self._safe), from_position, limit, types, tenant
        )
        return [recorded_event(row) for row in rows]

    async def head_position(self) -> int:
        return int(await self._pool.fetchval(sql.select_head(safe=self._safe)))

    async def count_between(self, after_position: int, up_to_position: int) -> int:
        return int(await self._pool.fetchval(sql.COUNT_BETWEEN, after_position, up_to_position))

    async def position_before_time(self, time: datetime) -> int:
        first = await self._pool.fetchval(sql.FIRST_POSITION_AT_TIME, time)
        return int(first) - 1 if first is not None else await self.head_position()

    async def subscribe(
        self, from_position: int = 0, log_filter: LogFilter | None = None, batch_size: int = 500
    ) -> AsyncIterator[list[RecordedEvent]]:
        wake = asyncio.Event()
        listener = await self._pool.acquire()

        def on_notify(*_: object) -> None:
            wake.set()

        await listener.add_listener(sql.NOTIFY_CHANNEL, on_notify)
        local = asyncio.create_task(self._relay_local_appends(wake))
        try:
            position, retry_delay = from_position, _FIRST_RETRY_DELAY
            while True:
                wake.clear()
                events, final_head = await self._read_final(position, batch_size, log_filter)
                if events:
                    yield events
                if len(events) == batch_size:
                    position = events[-1].position
                    continue
                # Everything final up to final_head has been read (same snapshot).
                position = max(position, final_head)
                if await self._pool.fetchval(sql.SELECT_ANY_AFTER, position):
                    # Committed but not yet final: an older transaction is still open. Look
                    # again soon (backing off) rather than wait for the next append.
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancellation (cpython #86296) and a cancelled subscriber would hang.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(retry_delay):
                            await wake.wait()
                    retry_delay = min(retry_delay * 2, _MAX_RETRY_DELAY)
                    continue
                retry_delay = _FIRST_RETRY_DELAY
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval):
                        await wake.wait()
        finally:
            local.cancel()
            with contextlib.suppress(Exception):
                await listener.remove_listener(sql.NOTIFY_CHANNEL, on_notify)
            await self._pool.release(listener)

    async def _read_final(
        self, position: int, limit: int, log_filter: LogFilter | None
    ) -> tuple[list[RecordedEvent], int]:
        """Final events after `position`, and the final head, seen in one snapshot."""
        types, tenant = _filter_arguments(log_filter)
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await connection.fetch(
                sql.select_log(safe=self._safe), position, limit, types, tenant
            )
            head = await connection.fetchval(sql.select_head(safe=self._safe))
        return [recorded_event(row) for row in rows], int(head)

    async def _relay_local_appends(self, wake: asyncio.Event) -> None:
        while True:
            await self._appended.wait()
            wake.set()

    # -- snapshots ---------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._pool.execute(
            sql.UPSERT_SNAPSHOT,
            snapshot.stream_id,
            snapshot.stream_version,
            snapshot.type,
            snapshot.state,
            snapshot.tenant_id,
            snapshot.taken_at,
        )

    async def latest_snapshot(self, stream_id: str) -> Snapshot | None:
        row = await self._pool.fetchrow(sql.SELECT_LATEST_SNAPSHOT, stream_id)
        if row is None:
            return None
        return Snapshot(
            stream_id=row["stream_id"],
            stream_version=row["stream_version"],
            type=row["type"],
            state=bytes(row["state"]),
            tenant_id=row["tenant_id"],
            taken_at=row["taken_at"],
        )

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._writers, *([self._notifier] if self._notifier else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            pending.fail(EventStoreUnavailableError("the event store closed"))
        await self._pool.close()


def _filter_arguments(log_filter: LogFilter | None) -> tuple[list[str] | None, str | None]:
    """The log query's $3 (event types) and $4 (tenant); None matches everything."""
    if log_filter is None:
        return None, None
    return sorted(log_filter.event_types) or None, log_filter.tenant_id


def _batch_arguments(batch: list[_PendingAppend]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(13)]
    for pending in batch:
        meta = pending.metadata
        key = pending.idempotency.key if pending.idempotency else ""
        for offset, event in enumerate(pending.events, start=1):
            row = (
                pending.stream_id,
                offset,
                pending.expected_as_int,
                event.event_id or uuid.uuid4(),
                event.type,
                event.schema_version,
                meta.tenant_id,
                meta.correlation_id,
                meta.causation_id,
                meta.traceparent,
                event.payload,
                key,
                pending.fingerprint,
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
    return columns


def _append_offsets(batch: list[_PendingAppend]) -> list[int]:
    """The first ordinal (1-based, as in the statement) of each append of the batch."""
    offsets, next_ordinal = [], 1
    for pending in batch:
        offsets.append(next_ordinal)
        next_ordinal += len(pending.events)
    return offsets


def _index_of(offsets: list[int], ordinal: int) -> int:
    index = len(offsets) - 1
    while offsets[index] > ordinal:
        index -= 1
    return index


def _result_from_key_row(row: asyncpg.Record) -> AppendResult:
    return AppendResult(
        row["stream_id"], row["stream_version"], tuple(row["positions"]), replayed=True
    )


def recorded_event(row: asyncpg.Record) -> RecordedEvent:
    """An event from a row with the columns of `mercato_events` (also the dead letters')."""
    return RecordedEvent(
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        position=row["position"],
        type=row["type"],
        schema_version=row["schema_version"],
        tenant_id=row["tenant_id"],
        recorded_at=row["recorded_at"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        traceparent=row["traceparent"],
        payload=bytes(row["payload"]),
    )


async def _create_pool_with_retry(
    dsn: str, min_size: int, max_size: int, connect_timeout: float
) -> asyncpg.Pool:
    deadline = asyncio.get_running_loop().time() + connect_timeout
    delay = 0.2
    while True:
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=60,
                # The append statement is large: re-planning it per call cost 0.45 ms of a
                # 0.78 ms single-event append. Its CTEs are materialised, so the generic plan
                # is as good as a custom one.
                server_settings={"plan_cache_mode": "force_generic_plan"},
                reset=_leave_connection_as_is,
            )
        except _CONNECTION_ERRORS as error:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise EventStoreUnavailableError(
                    f"Postgres at {redacted(dsn)} is unreachable "
                    f"after {connect_timeout:g}s: {error}"
                ) from error
            logger.warning("Postgres not reachable yet (%s); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        except (asyncpg.exceptions.PostgresError, ValueError) as error:
            # Wrong password, unknown database, bad DSN: retrying will not help.
            raise EventStoreUnavailableError(
                f"Postgres at {redacted(dsn)} refused the connection: {error}"
            ) from error


async def _leave_connection_as_is(connection: asyncpg.Connection) -> None:
    """The pool's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a round trip per append. This pool is private to the store,
    whose code leaves nothing behind (listeners are removed, the notifier resets its setting,
    migrations unlock their lock), so there is nothing to reset."""
