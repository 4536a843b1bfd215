"""The embedded profile's event store: one SQLite file in WAL mode.

All writes go through one dedicated writer thread holding one connection; reads run on a small
pool of reader threads, each with its own connection, so no SQLite call blocks the event loop.

Life cycle: `store = await SqliteEventStore.open(path)` creates the file if needed and applies
pending migrations (the same as `SqliteEventStore(path)` then `await store.start()`);
`await store.close()` finishes queued work, stops the threads and closes every connection.
A store serves the event loop that started it: that is the loop its subscribers are woken on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TypeVar
from uuid import UUID, uuid4

from application.ports.event_store import (
    AppendResult,
    EventMetadata,
    EventStoreError,
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
from infrastructure.eventstore.append_checks import check_expected_version
from infrastructure.sqlite_schema import transaction

_T = TypeVar("_T")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# Applied in order, each in the same transaction as its row in `schema_migrations`. Append new
# migrations to the end; never edit one that has shipped.
MIGRATIONS: list[Migration] = [
    Migration(
        version=1,
        description="events, idempotency keys and snapshots",
        statements=(
            # The position is the rowid. SQLite lets one writer in at a time (BEGIN IMMEDIATE
            # takes the file's write lock, across processes too), so each transaction takes its
            # rowids after every earlier commit: commit order equals position order, and a
            # reader can never see position n+1 without n. AUTOINCREMENT keeps a deleted
            # newest row's position from being handed out again.
            """
            CREATE TABLE events (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT NOT NULL UNIQUE,
                stream_id TEXT NOT NULL,
                stream_version INTEGER NOT NULL,
                type TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                tenant_id TEXT NOT NULL,
                recorded_at INTEGER NOT NULL,
                correlation_id TEXT,
                causation_id TEXT,
                traceparent TEXT,
                payload BLOB NOT NULL
            )
            """,
            "CREATE UNIQUE INDEX events_stream_version ON events (stream_id, stream_version)",
            "CREATE INDEX events_tenant_position ON events (tenant_id, position)",
            "CREATE INDEX events_type_position ON events (type, position)",
            """
            CREATE TABLE idempotency_keys (
                tenant_id TEXT NOT NULL,
                key TEXT NOT NULL,
                stream_id TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                stream_version INTEGER NOT NULL,
                positions TEXT NOT NULL,
                PRIMARY KEY (tenant_id, key)
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE snapshots (
                stream_id TEXT PRIMARY KEY,
                stream_version INTEGER NOT NULL,
                type TEXT NOT NULL,
                state BLOB NOT NULL,
                tenant_id TEXT NOT NULL,
                taken_at INTEGER NOT NULL
            ) WITHOUT ROWID
            """,
        ),
    ),
]

_EVENT_COLUMNS = (
    "position, event_id, stream_id, stream_version, type, schema_version, tenant_id, "
    "recorded_at, correlation_id, causation_id, traceparent, payload"
)
_STREAM_VERSION = "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = ?"
_HEAD_POSITION = "SELECT coalesce(max(position), 0) FROM events"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SqliteEventStore:
    """`EventStore` on one SQLite file; see the module docstring for its life cycle."""

    def __init__(
        self,
        path: str | Path,
        *,
        reader_threads: int = 4,
        poll_interval: float = 0.5,
        busy_timeout: float = 5.0,
    ) -> None:
        """`poll_interval` bounds how late a subscriber sees appends made by other processes."""
        self._path = Path(path)
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-event-writer")
        self._readers = ThreadPoolExecutor(reader_threads, thread_name_prefix="sqlite-event-reader")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer_connection: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._appended = asyncio.Event()
        self._started = False
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path, **options: Any) -> Self:
        store = cls(path, **options)
        try:
            await store.start()
        except BaseException:
            await store.close()
            raise
        return store

    async def start(self) -> None:
        """Create the file if needed and apply pending migrations."""
        self._loop = asyncio.get_running_loop()
        await self._run(self._writer, self._open_writer)
        self._started = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown)
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
        if not events:
            raise ValueError("an append needs at least one event")
        if isinstance(expected_version, int) and expected_version < 0:
            raise ValueError(f"expected_version must not be negative, got {expected_version}")
        return await self._write(
            self._append, stream_id, tuple(events), expected_version, metadata, idempotency
        )

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._write(self._save_snapshot, snapshot)

    # -- reads ------------------------------------------------------------------------------

    async def find_idempotent_result(self, tenant_id: str, key: str) -> AppendResult | None:
        return await self._read(_find_idempotent_result, tenant_id, key)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        as_of_position: int | None = None,
        as_of_time: datetime | None = None,
    ) -> list[RecordedEvent]:
        clauses = ["stream_id = ?", "stream_version >= ?"]
        params: list[object] = [stream_id, from_version]
        if to_version is not None:
            clauses.append("stream_version <= ?")
            params.append(to_version)
        if as_of_position is not None:
            clauses.append("position <= ?")
            params.append(as_of_position)
        if as_of_time is not None:
            clauses.append("recorded_at <= ?")
            params.append(_to_micros(as_of_time))
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)}"
            " ORDER BY stream_version"
        )
        return await self._read(_select_events, sql, params)

    async def stream_version(self, stream_id: str) -> int:
        return await self._read(_select_int, _STREAM_VERSION, (stream_id,))

    async def read_all(
        self, from_position: int = 0, limit: int = 1000, log_filter: LogFilter | None = None
    ) -> list[RecordedEvent]:
        return await self._read(_read_all, from_position, limit, log_filter)

    async def head_position(self) -> int:
        return await self._read(_select_int, _HEAD_POSITION, ())

    async def count_between(self, after_position: int, up_to_position: int) -> int:
        sql = "SELECT count(*) FROM events WHERE position > ? AND position <= ?"
        return await self._read(_select_int, sql, (after_position, up_to_position))

    async def position_before_time(self, time: datetime) -> int:
        sql = "SELECT coalesce(min(position) - 1, -1) FROM events WHERE recorded_at >= ?"
        found = await self._read(_select_int, sql, (_to_micros(time),))
        return found if found >= 0 else await self.head_position()

    async def latest_snapshot(self, stream_id: str) -> Snapshot | None:
        return await self._read(_latest_snapshot, stream_id)

    async def subscribe(
        self, from_position: int = 0, log_filter: LogFilter | None = None, batch_size: int = 500
    ) -> AsyncIterator[list[RecordedEvent]]:
        position = from_position
        while True:
            # Taken before the read: an append committing after the read sets this very event,
            # so the wait below cannot miss it (no lost wake-up).
            appended = self._appended
            batch, head = await self._read(_read_batch_and_head, position, batch_size, log_filter)
            if batch:
                yield batch
            if len(batch) == batch_size:
                position = batch[-1].position
                continue
            # A short batch holds every matching event up to `head` (both come from one read
            # transaction), so a filtered subscriber can skip the events that did not match.
            position = max(position, head)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation (cpython #86296) and a cancelled subscriber would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await appended.wait()

    # -- threads and connections -------------------------------------------------------------

    async def _write(self, function: Callable[..., _T], *args: Any) -> _T:
        if not self._started:
            raise EventStoreUnavailableError("the event store has not been started")
        return await self._run(self._writer, function, *args)

    async def _read(self, function: Callable[..., _T], *args: Any) -> _T:
        if not self._started:
            raise EventStoreUnavailableError("the event store has not been started")
        return await self._run(self._readers, self._with_reader, function, *args)

    async def _run(
        self, executor: ThreadPoolExecutor, function: Callable[..., _T], *args: Any
    ) -> _T:
        if self._closed:
            raise EventStoreUnavailableError("the event store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, functools.partial(function, *args))
        except sqlite3.OperationalError as error:
            raise EventStoreUnavailableError(f"{self._path}: {error}") from error

    def _connect(self) -> sqlite3.Connection:
        # Each connection is only ever used by the thread that owns it; check_same_thread is
        # off so that close() can close the readers' connections after their pool has stopped.
        return sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )

    def _with_reader(self, function: Callable[..., _T], *args: Any) -> _T:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            connection.execute("PRAGMA query_only = ON")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return function(connection, *args)

    def _open_writer(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connect()
        with self._connections_lock:
            self._connections.append(connection)
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise EventStoreError(f"{self._path} cannot use WAL journaling (got {mode})")
        # In WAL mode NORMAL syncs only at checkpoints: a power cut could lose commits already
        # acknowledged. FULL syncs the WAL at every commit (https://sqlite.org/pragma.html).
        connection.execute("PRAGMA synchronous = FULL")
        _migrate(connection)
        self._writer_connection = connection

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def _wake_subscribers(self) -> None:
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()

    def _notify_commit(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_subscribers)

    # -- writer thread ------------------------------------------------------------------------

    def _append(
        self,
        stream_id: str,
        events: tuple[NewEvent, ...],
        expected_version: ExpectedVersion,
        metadata: EventMetadata,
        idempotency: Idempotency | None,
    ) -> AppendResult:
        connection = self._writer_connection
        assert connection is not None
        with transaction(connection):
            fingerprint = ""
            if idempotency is not None:
                # Checked before the version: a retry of an append that succeeded finds the
                # stream moved on, and must still get its first result rather than a conflict.
                fingerprint = idempotency.fingerprint or fingerprint_events(stream_id, events)
                earlier = _stored_idempotency(connection, metadata.tenant_id, idempotency.key)
                if earlier is not None:
                    earlier_fingerprint, earlier_result = earlier
                    if earlier_fingerprint != fingerprint:
                        raise IdempotencyKeyReusedError(idempotency.key)
                    return earlier_result
            actual = _select_int(connection, _STREAM_VERSION, (stream_id,))
            check_expected_version(stream_id, expected_version, actual)
            result = _insert_events(connection, stream_id, events, actual, metadata)
            if idempotency is not None:
                connection.execute(
                    "INSERT INTO idempotency_keys (tenant_id, key, stream_id, fingerprint,"
                    " stream_version, positions) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        metadata.tenant_id,
                        idempotency.key,
                        stream_id,
                        fingerprint,
                        result.stream_version,
                        json.dumps(result.positions),
                    ),
                )
        self._notify_commit()
        return result

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        connection = self._writer_connection
        assert connection is not None
        connection.execute(
            "INSERT INTO snapshots (stream_id, stream_version, type, state, tenant_id, taken_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version,"
            " type = excluded.type, state = excluded.state, tenant_id = excluded.tenant_id,"
            " taken_at = excluded.taken_at"
            " WHERE excluded.stream_version >= snapshots.stream_version",
            (
                snapshot.stream_id,
                snapshot.stream_version,
                snapshot.type,
                snapshot.state,
                snapshot.tenant_id,
                _to_micros(snapshot.taken_at),
            ),
        )


def _migrate(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, datetime.now(UTC).isoformat()),
            )


def _insert_events(
    connection: sqlite3.Connection,
    stream_id: str,
    events: tuple[NewEvent, ...],
    version: int,
    metadata: EventMetadata,
) -> AppendResult:
    # Recorded times never decrease along the log, even if the wall clock steps back, so that
    # reading "as of a time" always cuts the log at one point, like reading as of a position.
    newest = _select_int(
        connection,
        "SELECT coalesce((SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1), 0)",
        (),
    )
    recorded_at = max(_to_micros(datetime.now(UTC)), newest)
    positions = []
    for event in events:
        version += 1
        cursor = connection.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS.removeprefix('position, ')})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(event.event_id or uuid4()),
                stream_id,
                version,
                event.type,
                event.schema_version,
                metadata.tenant_id,
                recorded_at,
                _str_or_none(metadata.correlation_id),
                _str_or_none(metadata.causation_id),
                metadata.traceparent,
                event.payload,
            ),
        )
        assert cursor.lastrowid is not None
        positions.append(cursor.lastrowid)
    return AppendResult(stream_id=stream_id, stream_version=version, positions=tuple(positions))


# -- reader threads (each function takes the thread's own connection) --------------------------


def _select_int(connection: sqlite3.Connection, sql: str, params: Sequence[object]) -> int:
    value: int = connection.execute(sql, params).fetchone()[0]
    return value


def _select_events(
    connection: sqlite3.Connection, sql: str, params: Sequence[object]
) -> list[RecordedEvent]:
    return [_recorded_event(row) for row in connection.execute(sql, params)]


def _read_all(
    connection: sqlite3.Connection, from_position: int, limit: int, log_filter: LogFilter | None
) -> list[RecordedEvent]:
    clauses = ["position > ?"]
    params: list[object] = [from_position]
    if log_filter is not None and log_filter.event_types:
        clauses.append(f"type IN ({', '.join('?' * len(log_filter.event_types))})")
        params.extend(sorted(log_filter.event_types))
    if log_filter is not None and log_filter.tenant_id is not None:
        clauses.append("tenant_id = ?")
        params.append(log_filter.tenant_id)
    params.append(limit)
    sql = (
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)}"
        " ORDER BY position LIMIT ?"
    )
    return _select_events(connection, sql, params)


def _read_batch_and_head(
    connection: sqlite3.Connection, from_position: int, limit: int, log_filter: LogFilter | None
) -> tuple[list[RecordedEvent], int]:
    connection.execute("BEGIN")
    try:
        batch = _read_all(connection, from_position, limit, log_filter)
        head = _select_int(connection, _HEAD_POSITION, ())
    finally:
        connection.execute("COMMIT")
    return batch, head


def _find_idempotent_result(
    connection: sqlite3.Connection, tenant_id: str, key: str
) -> AppendResult | None:
    stored = _stored_idempotency(connection, tenant_id, key)
    return None if stored is None else stored[1]


def _stored_idempotency(
    connection: sqlite3.Connection, tenant_id: str, key: str
) -> tuple[str, AppendResult] | None:
    """The fingerprint stored with `key` and the result of the append that first used it."""
    row = connection.execute(
        "SELECT fingerprint, stream_id, stream_version, positions FROM idempotency_keys"
        " WHERE tenant_id = ? AND key = ?",
        (tenant_id, key),
    ).fetchone()
    if row is None:
        return None
    fingerprint, stream_id, stream_version, positions = row
    result = AppendResult(
        stream_id=stream_id,
        stream_version=stream_version,
        positions=tuple(json.loads(positions)),
        replayed=True,
    )
    return fingerprint, result


def _latest_snapshot(connection: sqlite3.Connection, stream_id: str) -> Snapshot | None:
    row = connection.execute(
        "SELECT stream_id, stream_version, type, state, tenant_id, taken_at FROM snapshots"
        " WHERE stream_id = ?",
        (stream_id,),
    ).fetchone()
    if row is None:
        return None
    stream_id, stream_version, type_, state, tenant_id, taken_at = row
    return Snapshot(
        stream_id=stream_id,
        stream_version=stream_version,
        type=type_,
        state=state,
        tenant_id=tenant_id,
        taken_at=_from_micros(taken_at),
    )


def _recorded_event(row: tuple[Any, ...]) -> RecordedEvent:
    (
        position,
        event_id,
        stream_id,
        stream_version,
        type_,
        schema_version,
        tenant_id,
        recorded_at,
        correlation_id,
        causation_id,
        traceparent,
        payload,
    ) = row
    return RecordedEvent(
        event_id=UUID(event_id),
        stream_id=stream_id,
        stream_version=stream_version,
        position=position,
        type=type_,
        schema_version=schema_version,
        tenant_id=tenant_id,
        recorded_at=_from_micros(recorded_at),
        correlation_id=None if correlation_id is None else UUID(correlation_id),
        causation_id=None if causation_id is None else UUID(causation_id),
        traceparent=traceparent,
        payload=bytes(payload),
    )


def _to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times given to the event store must be timezone-aware")
    return (moment - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _str_or_none(value: UUID | None) -> str | None:
    return None if value is None else str(value)
