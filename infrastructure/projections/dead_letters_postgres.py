"""The services profile's dead-letter store on Postgres (asyncpg).

Locking: a retry holds a transaction-level *advisory* lock on its (projection, stream) for as
long as it runs; `park` and `hold_back` take the same lock in shared mode before they write
letters of a parked stream. Shared holders never wait for each other, so workers of other
streams and other projections keep flowing; a worker whose batch has an event of the stream
being retried waits for the retry, then sees the stream as the retry left it.

Not `SELECT … FOR UPDATE` on the parked row: a row lock gives its transaction a transaction id,
and an open transaction with an id holds back the event store's read watermark
(`pg_snapshot_xmin`, see `infrastructure/eventstore/postgres_sql.py`) cluster-wide — every
subscriber would stall and every append wait (up to 5 s) for as long as an operator's retry
runs. An advisory lock needs no transaction id, and a retry writes only when it settles, at the
very end. Locks are keyed by a hash of (projection, stream): a collision only makes two
streams take turns.

Reads and the lock-taking statements are separate statements in READ COMMITTED, so each write
that follows a lock sees what the retry it waited for committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self

import asyncpg

from application.ports.dead_letters import DeadLetter, DeadLetterRetry, ParkedStream
from application.ports.event_store import RecordedEvent
from infrastructure.eventstore.postgres import recorded_event
from infrastructure.eventstore.postgres_migrations import Connection, apply_migrations
from infrastructure.projections.dead_letter_retry import StreamRetry

LOCK_CLASS = 0x646C
"""The first key of every stream's advisory lock ("dl"); the second hashes the stream."""
_MIGRATION_LOCK_KEY = 0x646C6574  # "dlet"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE mercato_projection_parked_streams (
        projection  text        NOT NULL,
        stream_id   text        NOT NULL,
        tenant_id   text        NOT NULL,
        error       text        NOT NULL,
        parked_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (projection, stream_id)
    );
    CREATE TABLE mercato_projection_dead_letters (
        projection      text        NOT NULL,
        position        bigint      NOT NULL,
        stream_id       text        NOT NULL,
        stream_version  bigint      NOT NULL,
        event_id        uuid        NOT NULL,
        type            text        NOT NULL,
        schema_version  integer     NOT NULL,
        tenant_id       text        NOT NULL,
        recorded_at     timestamptz NOT NULL,
        correlation_id  uuid,
        causation_id    uuid,
        traceparent     text,
        payload         bytea       NOT NULL,
        error           text,
        PRIMARY KEY (projection, position)
    );
    CREATE INDEX mercato_projection_dead_letters_stream
        ON mercato_projection_dead_letters (projection, stream_id, position);
    """,
]

_STREAM_KEY = "hashtext({projection} || '/' || {stream})"

_LOCK_FOR_RETRY = (
    f"SELECT pg_advisory_xact_lock($1, {_STREAM_KEY.format(projection='$2', stream='$3')})"
)

_LOCK_FOR_WRITING = (
    f"SELECT pg_advisory_xact_lock_shared($1, {_STREAM_KEY.format(projection='$2', stream='s')})"
    " FROM unnest($3::text[]) AS s"
)

_PARKED_AMONG = (
    "SELECT stream_id FROM mercato_projection_parked_streams"
    " WHERE projection = $1 AND stream_id = ANY($2::text[])"
)

_PARK = (
    "INSERT INTO mercato_projection_parked_streams (projection, stream_id, tenant_id, error)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
)

_LETTER_COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, tenant_id,"
    " recorded_at, correlation_id, causation_id, traceparent, payload"
)

# Stores the events of streams parked for the projection as letters, keeps what is already
# stored (idempotent), and returns the positions of every event of a parked stream.
_HOLD_BACK = f"""
WITH batch AS (
    SELECT * FROM unnest(
        $2::bigint[], $3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::integer[],
        $8::text[], $9::timestamptz[], $10::uuid[], $11::uuid[], $12::text[], $13::bytea[],
        $14::text[]
    ) AS b({_LETTER_COLUMNS}, error)
),
held AS (
    SELECT b.* FROM batch b
    WHERE EXISTS (SELECT 1 FROM mercato_projection_parked_streams p
                  WHERE p.projection = $1 AND p.stream_id = b.stream_id)
),
stored AS (
    INSERT INTO mercato_projection_dead_letters (projection, {_LETTER_COLUMNS}, error)
    SELECT $1, {_LETTER_COLUMNS}, error FROM held
    ON CONFLICT DO NOTHING
)
SELECT position FROM held
"""

_PARKED = """
SELECT p.projection, p.stream_id, p.tenant_id, p.error, p.parked_at,
       min(l.position) AS first_position, count(*) AS events
FROM mercato_projection_parked_streams p
JOIN mercato_projection_dead_letters l
  ON l.projection = p.projection AND l.stream_id = p.stream_id
WHERE $1::text IS NULL OR p.projection = $1
GROUP BY p.projection, p.stream_id
ORDER BY p.parked_at, p.projection, p.stream_id
"""

_LETTERS = (
    f"SELECT {_LETTER_COLUMNS}, error FROM mercato_projection_dead_letters"
    " WHERE projection = $1 AND stream_id = $2 ORDER BY position"
)

_IS_PARKED = (
    "SELECT EXISTS (SELECT 1 FROM mercato_projection_parked_streams"
    " WHERE projection = $1 AND stream_id = $2)"
)


class PostgresDeadLetterStore:
    """Implements `application.ports.dead_letters.DeadLetterStore`. Create with `connect()`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 4) -> Self:
        """`max_size` bounds the retries and waiting workers one store serves at once: a
        retry keeps its connection for as long as it runs."""
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        async with pool.acquire() as connection:
            await migrate(connection)
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def park(self, projection: str, event: RecordedEvent, error: str) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(_LOCK_FOR_WRITING, LOCK_CLASS, projection, [event.stream_id])
            await connection.execute(_PARK, projection, event.stream_id, event.tenant_id, error)
            await connection.execute(_HOLD_BACK, projection, *_columns([event], error))

    async def hold_back(self, projection: str, events: Sequence[RecordedEvent]) -> set[int]:
        if not events:
            return set()
        streams = sorted({event.stream_id for event in events})
        # The common case, nothing parked, costs this one round trip. A stream not parked
        # here cannot be under retry either, so its events are the caller's to apply.
        parked = await self._pool.fetch(_PARKED_AMONG, projection, streams)
        if not parked:
            return set()
        async with self._pool.acquire() as connection, connection.transaction():
            locked = sorted(row["stream_id"] for row in parked)
            await connection.execute(_LOCK_FOR_WRITING, LOCK_CLASS, projection, locked)
            rows = await connection.fetch(_HOLD_BACK, projection, *_columns(events, None))
        return {row["position"] for row in rows}

    async def parked(self, projection: str | None = None) -> list[ParkedStream]:
        rows = await self._pool.fetch(_PARKED, projection)
        return [
            ParkedStream(
                projection=row["projection"],
                stream_id=row["stream_id"],
                tenant_id=row["tenant_id"],
                error=row["error"],
                first_position=row["first_position"],
                events=row["events"],
                parked_at=row["parked_at"],
            )
            for row in rows
        ]

    async def letters(self, projection: str, stream_id: str) -> list[DeadLetter]:
        return [_letter(row) for row in await self._pool.fetch(_LETTERS, projection, stream_id)]

    @asynccontextmanager
    async def retrying(self, projection: str, stream_id: str) -> AsyncIterator[DeadLetterRetry]:
        # Leaving the transaction by an exception rolls back whatever was written (nothing
        # before the settle) and releases the lock.
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(_LOCK_FOR_RETRY, LOCK_CLASS, projection, stream_id)
            if not await connection.fetchval(_IS_PARKED, projection, stream_id):
                raise LookupError(f"stream {stream_id} is not parked for {projection}")
            letters = await connection.fetch(_LETTERS, projection, stream_id)
            retry = StreamRetry([_letter(row) for row in letters])
            yield retry
            await _settle(connection, projection, stream_id, retry)


async def migrate(connection: Connection) -> int:
    """Apply the dead-letter store's migrations this database has not seen; returns its
    version."""
    return await apply_migrations(
        connection,
        MIGRATIONS,
        table="mercato_dead_letter_schema_migrations",
        lock_key=_MIGRATION_LOCK_KEY,
    )


async def _settle(
    connection: Connection, projection: str, stream_id: str, retry: StreamRetry
) -> None:
    """Apply a retry's outcome; one statement at a time, so each sees the one before."""
    stream = (projection, stream_id)
    if retry.through_position is not None:
        await connection.execute(
            "DELETE FROM mercato_projection_dead_letters"
            " WHERE projection = $1 AND stream_id = $2 AND position <= $3",
            *stream,
            retry.through_position,
        )
    if retry.error is not None:
        await connection.execute(
            "UPDATE mercato_projection_parked_streams SET error = $3"
            " WHERE projection = $1 AND stream_id = $2",
            *stream,
            retry.error,
        )
        await connection.execute(
            "UPDATE mercato_projection_dead_letters SET error = $3"
            " WHERE projection = $1 AND position = $2",
            projection,
            retry.next_position(retry.through_position),
            retry.error,
        )
        return
    await connection.execute(
        "DELETE FROM mercato_projection_parked_streams p"
        " WHERE projection = $1 AND stream_id = $2 AND NOT EXISTS ("
        "   SELECT 1 FROM mercato_projection_dead_letters l"
        "   WHERE l.projection = p.projection AND l.stream_id = p.stream_id)",
        *stream,
    )


def _columns(events: Sequence[RecordedEvent], error: str | None) -> list[list[Any]]:
    """`events` as the column arrays `_HOLD_BACK` unnests, every letter with `error`."""
    return [
        [event.position for event in events],
        [event.stream_id for event in events],
        [event.stream_version for event in events],
        [event.event_id for event in events],
        [event.type for event in events],
        [event.schema_version for event in events],
        [event.tenant_id for event in events],
        [event.recorded_at for event in events],
        [event.correlation_id for event in events],
        [event.causation_id for event in events],
        [event.traceparent for event in events],
        [event.payload for event in events],
        [error] * len(events),
    ]


def _letter(row: asyncpg.Record) -> DeadLetter:
    return DeadLetter(event=recorded_event(row), error=row["error"])
