"""The embedded profile's dead-letter store on one SQLite file.

Every call runs on one thread with one connection, so nothing blocks the event loop (as in
`infrastructure/sagas/sqlite.py`). Open with `await SqliteDeadLetterStore.open(path)`.

Locking: SQLite has one write lock per file, not row locks, and holding it for a whole retry
would stop every other stream's letters (of every projection) and time them out. So a retry
takes a *lease* on its parked stream instead: a committed owner and expiry on the stream's
row. `park`, `hold_back` and other retries of the stream wait (polling) while it is leased,
then write in one `BEGIN IMMEDIATE` transaction that re-reads what is parked; a retry settles
in one such transaction too, and un-parks only when no letter is left at that moment.

The lease lets a crashed retry block workers at most until it expires (`retry_lease`); past
it, a retry still running loses nothing: the events held back meanwhile stay parked for the
next retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar
from uuid import UUID

from application.ports.dead_letters import DeadLetter, DeadLetterRetry, ParkedStream
from application.ports.event_store import RecordedEvent
from infrastructure.projections.dead_letter_retry import StreamRetry
from infrastructure.sqlite_schema import apply_migrations, transaction

_T = TypeVar("_T")

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        # With a rowid: it orders the parked streams oldest first, whatever the wall clock did.
        """
        CREATE TABLE projection_parked_streams (
            projection TEXT NOT NULL,
            stream_id TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            error TEXT NOT NULL,
            parked_at TEXT NOT NULL,
            retry_owner TEXT,
            retry_until REAL,
            PRIMARY KEY (projection, stream_id)
        )
        """,
        """
        CREATE TABLE projection_dead_letters (
            projection TEXT NOT NULL,
            position INTEGER NOT NULL,
            stream_id TEXT NOT NULL,
            stream_version INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            tenant_id TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            correlation_id TEXT,
            causation_id TEXT,
            traceparent TEXT,
            payload BLOB NOT NULL,
            error TEXT,
            PRIMARY KEY (projection, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX projection_dead_letters_stream"
        " ON projection_dead_letters (projection, stream_id, position)",
    ),
]

_LETTER_COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, tenant_id,"
    " recorded_at, correlation_id, causation_id, traceparent, payload"
)

_INSERT_LETTER = (
    f"INSERT INTO projection_dead_letters (projection, {_LETTER_COLUMNS}, error)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)

_LETTERS = (
    f"SELECT {_LETTER_COLUMNS}, error FROM projection_dead_letters"
    " WHERE projection = ? AND stream_id = ? ORDER BY position"
)

_PARKED = """
SELECT p.projection, p.stream_id, p.tenant_id, p.error, min(l.position), count(*), p.parked_at
FROM projection_parked_streams p
JOIN projection_dead_letters l ON l.projection = p.projection AND l.stream_id = p.stream_id
WHERE ?1 IS NULL OR p.projection = ?1
GROUP BY p.projection, p.stream_id
ORDER BY p.rowid
"""

_FIRST_POLL, _MAX_POLL = 0.01, 0.25
"""Seconds between looks at a leased stream (doubling up to the maximum)."""


class _Leased(Exception):
    """A stream the call needs is leased by a retry: wait, then try again."""


class SqliteDeadLetterStore:
    """Implements `application.ports.dead_letters.DeadLetterStore` on one SQLite file."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 5.0, retry_lease: float = 60.0
    ) -> None:
        """`retry_lease` (seconds) is how long a retry may keep workers waiting."""
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._retry_lease = retry_lease
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-dead-letters")
        self._connection: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str | Path, **options: Any) -> Self:
        store = cls(path, **options)
        await store._run(store._open)
        return store

    async def close(self) -> None:
        await self._run(self._close)
        self._thread.shutdown(wait=True)

    async def park(self, projection: str, event: RecordedEvent, error: str) -> None:
        await self._when_not_leased(self._park, projection, event, error)

    async def hold_back(self, projection: str, events: Sequence[RecordedEvent]) -> set[int]:
        if not events:
            return set()
        return await self._when_not_leased(self._hold_back, projection, tuple(events))

    async def parked(self, projection: str | None = None) -> list[ParkedStream]:
        return await self._run(self._parked, projection)

    async def letters(self, projection: str, stream_id: str) -> list[DeadLetter]:
        return await self._run(self._letters, projection, stream_id)

    @contextlib.asynccontextmanager
    async def retrying(self, projection: str, stream_id: str) -> AsyncIterator[DeadLetterRetry]:
        owner = uuid.uuid4().hex
        letters = await self._when_not_leased(self._take_lease, projection, stream_id, owner)
        retry = StreamRetry(letters)
        try:
            yield retry
        except BaseException:
            await self._run(self._release_lease, projection, stream_id, owner)
            raise
        await self._run(self._settle, projection, stream_id, owner, retry)

    # -- the event loop's side -----------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(function, *args))

    async def _when_not_leased(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run `function` on the store's thread until it no longer finds a leased stream."""
        delay = _FIRST_POLL
        while True:
            try:
                return await self._run(function, *args)
            except _Leased:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_POLL)

    # -- the store's thread ---------------------------------------------------------------------

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        self._connection = connection
        apply_migrations(connection, "dead_letter_schema_migrations", MIGRATIONS)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the dead-letter store is closed")
        return self._connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE`: take the file's write lock before reading, so what is read
        cannot change before this transaction's writes commit."""
        connection = self._db()
        with transaction(connection):
            yield connection

    def _park(self, projection: str, event: RecordedEvent, error: str) -> None:
        with self._transaction() as db:
            _refuse_leased(db, projection, [event.stream_id])
            db.execute(
                "INSERT INTO projection_parked_streams"
                " (projection, stream_id, tenant_id, error, parked_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (projection, event.stream_id, event.tenant_id, error, _now()),
            )
            db.execute(_INSERT_LETTER, _letter_row(projection, event, error))

    def _hold_back(self, projection: str, events: tuple[RecordedEvent, ...]) -> set[int]:
        streams = sorted({event.stream_id for event in events})
        # The common case, nothing parked, is this one read (no write lock).
        if not _parked_among(self._db(), projection, streams):
            return set()
        with self._transaction() as db:
            _refuse_leased(db, projection, streams)
            parked = _parked_among(db, projection, streams)
            held = [event for event in events if event.stream_id in parked]
            db.executemany(_INSERT_LETTER, [_letter_row(projection, e, None) for e in held])
        return {event.position for event in held}

    def _parked(self, projection: str | None) -> list[ParkedStream]:
        rows = self._db().execute(_PARKED, (projection,)).fetchall()
        return [
            ParkedStream(
                projection=projection,
                stream_id=stream_id,
                tenant_id=tenant_id,
                error=error,
                first_position=first_position,
                events=events,
                parked_at=datetime.fromisoformat(parked_at),
            )
            for projection, stream_id, tenant_id, error, first_position, events, parked_at in rows
        ]

    def _letters(self, projection: str, stream_id: str) -> list[DeadLetter]:
        rows = self._db().execute(_LETTERS, (projection, stream_id)).fetchall()
        return [_letter(row) for row in rows]

    def _take_lease(self, projection: str, stream_id: str, owner: str) -> list[DeadLetter]:
        with self._transaction() as db:
            _refuse_leased(db, projection, [stream_id])
            taken = db.execute(
                "UPDATE projection_parked_streams SET retry_owner = ?, retry_until = ?"
                " WHERE projection = ? AND stream_id = ?",
                (owner, time.time() + self._retry_lease, projection, stream_id),
            )
            if taken.rowcount == 0:
                raise LookupError(f"stream {stream_id} is not parked for {projection}")
            return self._letters(projection, stream_id)

    def _release_lease(self, projection: str, stream_id: str, owner: str) -> None:
        with self._transaction() as db:
            _clear_lease(db, projection, stream_id, owner)

    def _settle(self, projection: str, stream_id: str, owner: str, retry: StreamRetry) -> None:
        stream = (projection, stream_id)
        with self._transaction() as db:
            if retry.through_position is not None:
                db.execute(
                    "DELETE FROM projection_dead_letters"
                    " WHERE projection = ? AND stream_id = ? AND position <= ?",
                    (*stream, retry.through_position),
                )
            if retry.error is not None:
                db.execute(
                    "UPDATE projection_parked_streams SET error = ?"
                    " WHERE projection = ? AND stream_id = ?",
                    (retry.error, *stream),
                )
                db.execute(
                    "UPDATE projection_dead_letters SET error = ?"
                    " WHERE projection = ? AND position = ?",
                    (retry.error, projection, retry.next_position(retry.through_position)),
                )
            else:
                db.execute(
                    "DELETE FROM projection_parked_streams AS p"
                    " WHERE projection = ? AND stream_id = ? AND NOT EXISTS ("
                    "   SELECT 1 FROM projection_dead_letters l"
                    "   WHERE l.projection = p.projection AND l.stream_id = p.stream_id)",
                    stream,
                )
            _clear_lease(db, projection, stream_id, owner)


def _parked_among(db: sqlite3.Connection, projection: str, streams: list[str]) -> set[str]:
    # One JSON parameter rather than one `?` per stream: SQLite caps the number of parameters.
    rows = db.execute(
        "SELECT stream_id FROM projection_parked_streams"
        " WHERE projection = ? AND stream_id IN (SELECT value FROM json_each(?))",
        (projection, json.dumps(streams)),
    )
    return {stream_id for (stream_id,) in rows}


def _refuse_leased(db: sqlite3.Connection, projection: str, streams: list[str]) -> None:
    """Raise `_Leased` (rolling the caller's transaction back) if a retry holds one of
    `streams` of `projection` under a lease that has not expired."""
    leased = db.execute(
        "SELECT 1 FROM projection_parked_streams"
        " WHERE projection = ? AND stream_id IN (SELECT value FROM json_each(?))"
        " AND retry_until > ? LIMIT 1",
        (projection, json.dumps(streams), time.time()),
    ).fetchone()
    if leased is not None:
        raise _Leased


def _clear_lease(db: sqlite3.Connection, projection: str, stream_id: str, owner: str) -> None:
    """End `owner`'s lease (unless it expired and another retry took the stream since)."""
    db.execute(
        "UPDATE projection_parked_streams SET retry_owner = NULL, retry_until = NULL"
        " WHERE projection = ? AND stream_id = ? AND retry_owner = ?",
        (projection, stream_id, owner),
    )


def _letter_row(projection: str, event: RecordedEvent, error: str | None) -> tuple[object, ...]:
    return (
        projection,
        event.position,
        event.stream_id,
        event.stream_version,
        str(event.event_id),
        event.type,
        event.schema_version,
        event.tenant_id,
        # ISO 8601 keeps the time and its offset exactly (to the microsecond, like the events).
        event.recorded_at.isoformat(),
        _str_or_none(event.correlation_id),
        _str_or_none(event.causation_id),
        event.traceparent,
        event.payload,
        error,
    )


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    (
        position,
        stream_id,
        stream_version,
        event_id,
        type_,
        schema_version,
        tenant_id,
        recorded_at,
        correlation_id,
        causation_id,
        traceparent,
        payload,
        error,
    ) = row
    event = RecordedEvent(
        event_id=UUID(event_id),
        stream_id=stream_id,
        stream_version=stream_version,
        position=position,
        type=type_,
        schema_version=schema_version,
        tenant_id=tenant_id,
        recorded_at=datetime.fromisoformat(recorded_at),
        correlation_id=None if correlation_id is None else UUID(correlation_id),
        causation_id=None if causation_id is None else UUID(causation_id),
        traceparent=traceparent,
        payload=bytes(payload),
    )
    return DeadLetter(event=event, error=error)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _str_or_none(value: UUID | None) -> str | None:
    return None if value is None else str(value)
