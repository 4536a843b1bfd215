"""The services profile's saga store on Postgres (asyncpg), next to the event store's tables.

- Timers are claimed with `SELECT … FOR UPDATE SKIP LOCKED` inside one short `UPDATE`: rows
  another runner is claiming at that instant are skipped, not waited for. The claim is then a
  committed lease (`claimed_by`, `claimed_until`), not a lock held while the saga step runs:
  a transaction that holds row locks has a transaction id, and an open one would hold back the
  event store's read watermark (`pg_snapshot_xmin`, see `infrastructure/eventstore/
  postgres_sql.py`) for as long as the step takes, delaying every subscriber, this runner's
  included.
- Leadership is a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its
  own: held as long as that session lives, released by Postgres the moment the process dies or
  its connection drops (https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS).
- Dead letters: `park`, `hold_back` (for a parked saga) and `unpark_if_empty` take a
  transaction-level advisory lock on (group, saga) first, so an input is either stored as a
  letter before the saga is un-parked, or sees it un-parked: never a letter left behind a
  saga nobody will retry. The transactions are a few statements long (see the watermark note
  above for why nothing here holds a transaction open while a saga step runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Self

import asyncpg

from application.ports.saga_store import (
    HeldInput,
    ParkedSaga,
    SagaInputRecord,
    SagaLetter,
    Timer,
    input_key,
)
from infrastructure.eventstore.postgres_migrations import apply_migrations
from infrastructure.sagas import letters

LOCK_CLASS = 0x7361
"""The first key of every saga-group advisory lock ("sa"); the second is the group's hash."""
PARKED_LOCK_CLASS = 0x736C
"""The first key of every parked saga's advisory lock ("sl"); the second hashes the saga."""
_MIGRATION_LOCK_KEY = 0x73616761  # "saga"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE mercato_saga_checkpoints (
        group_name  text PRIMARY KEY,
        position    bigint NOT NULL
    );
    CREATE TABLE mercato_saga_timers (
        timer_id      text PRIMARY KEY,
        group_name    text NOT NULL,
        saga_type     text NOT NULL,
        saga_id       text NOT NULL,
        tenant_id     text NOT NULL,
        name          text NOT NULL,
        due_at        timestamptz NOT NULL,
        claimed_by    text,
        claimed_until timestamptz
    );
    CREATE INDEX mercato_saga_timers_due ON mercato_saga_timers (group_name, due_at);
    """,
    """
    CREATE TABLE mercato_saga_parked (
        group_name  text        NOT NULL,
        saga_id     text        NOT NULL,
        saga_type   text        NOT NULL,
        tenant_id   text        NOT NULL,
        error       text        NOT NULL,
        parked_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
        seq         bigint      GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (group_name, saga_id)
    );
    CREATE TABLE mercato_saga_letters (
        seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        group_name  text   NOT NULL,
        saga_id     text   NOT NULL,
        input_key   text   NOT NULL,
        kind        text   NOT NULL,
        document    text   NOT NULL,
        payload     bytea,
        error       text,
        UNIQUE (group_name, saga_id, input_key)
    );
    """,
]

_LOCK_SAGAS = (
    "SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || s))"
    " FROM unnest($3::text[]) AS s ORDER BY s"
)

_PARKED_AMONG = (
    "SELECT saga_id FROM mercato_saga_parked WHERE group_name = $1 AND saga_id = ANY($2::text[])"
)

_INSERT_LETTERS = """
INSERT INTO mercato_saga_letters (group_name, saga_id, input_key, kind, document, payload, error)
SELECT $1, l.saga_id, l.input_key, l.kind, l.document, l.payload, l.error
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[])
     WITH ORDINALITY AS l(saga_id, input_key, kind, document, payload, error, n)
ORDER BY l.n
ON CONFLICT DO NOTHING
"""

_PARKED = """
SELECT p.group_name, p.saga_id, p.saga_type, p.tenant_id, p.error, p.parked_at,
       (SELECT count(*) FROM mercato_saga_letters l
        WHERE l.group_name = p.group_name AND l.saga_id = p.saga_id) AS letters
FROM mercato_saga_parked p
WHERE p.group_name = $1 AND ($2::text IS NULL OR p.tenant_id = $2)
ORDER BY p.seq
"""

_TIMER_COLUMNS = "group_name, saga_type, saga_id, tenant_id, name, due_at"

_CLAIM_DUE = f"""
WITH due AS (
    SELECT timer_id FROM mercato_saga_timers
    WHERE group_name = $1 AND due_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2)
    ORDER BY due_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE mercato_saga_timers AS t SET claimed_by = $4, claimed_until = $5
FROM due WHERE t.timer_id = due.timer_id
RETURNING {", ".join(f"t.{column.strip()}" for column in _TIMER_COLUMNS.split(","))}
"""

_SCHEDULE = f"""
INSERT INTO mercato_saga_timers (timer_id, {_TIMER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (timer_id) DO UPDATE SET
    due_at = excluded.due_at,
    claimed_by = CASE WHEN mercato_saga_timers.due_at = excluded.due_at
                      THEN mercato_saga_timers.claimed_by END,
    claimed_until = CASE WHEN mercato_saga_timers.due_at = excluded.due_at
                         THEN mercato_saga_timers.claimed_until END
"""


class PostgresSagaStore:
    """Implements `application.ports.saga_store.SagaStore`. Create with `connect()`."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._leaders: dict[tuple[str, str], asyncpg.Connection] = {}
        self._candidates: dict[tuple[str, str], asyncpg.Connection] = {}
        """Sessions of standby runners, kept between attempts rather than reopened each time."""

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 4) -> Self:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        async with pool.acquire() as connection:
            await migrate(connection)
        return cls(pool, dsn)

    async def close(self) -> None:
        for group, owner in list(self._leaders):
            self._drop_leader(group, owner)
        for connection in self._candidates.values():
            connection.terminate()
        self._candidates.clear()
        await self._pool.close()

    # -- checkpoints -------------------------------------------------------------------------

    async def checkpoint(self, group: str) -> int:
        position = await self._pool.fetchval(
            "SELECT position FROM mercato_saga_checkpoints WHERE group_name = $1", group
        )
        return 0 if position is None else int(position)

    async def save_checkpoint(self, group: str, position: int) -> None:
        await self._pool.execute(
            "INSERT INTO mercato_saga_checkpoints (group_name, position) VALUES ($1, $2)"
            " ON CONFLICT (group_name) DO UPDATE"
            " SET position = greatest(mercato_saga_checkpoints.position, excluded.position)",
            group,
            position,
        )

    # -- timers ------------------------------------------------------------------------------

    async def schedule(self, timer: Timer) -> None:
        await self._pool.execute(
            _SCHEDULE,
            timer.timer_id,
            timer.group,
            timer.saga_type,
            timer.saga_id,
            timer.tenant_id,
            timer.name,
            timer.due_at,
        )

    async def unschedule(self, timer_id: str) -> None:
        await self._pool.execute("DELETE FROM mercato_saga_timers WHERE timer_id = $1", timer_id)

    async def claim_due(
        self, group: str, *, now: datetime, owner: str, limit: int, lease: timedelta
    ) -> list[Timer]:
        rows = await self._pool.fetch(_CLAIM_DUE, group, now, limit, owner, now + lease)
        timers = [_timer(row) for row in rows]
        return sorted(timers, key=lambda timer: timer.due_at)

    async def complete(self, timer: Timer, *, owner: str) -> None:
        await self._pool.execute(
            "DELETE FROM mercato_saga_timers"
            " WHERE timer_id = $1 AND claimed_by = $2 AND due_at = $3",
            timer.timer_id,
            owner,
            timer.due_at,
        )

    async def count_timers(self, group: str) -> int:
        count = await self._pool.fetchval(
            "SELECT count(*) FROM mercato_saga_timers WHERE group_name = $1", group
        )
        return int(count)

    # -- dead letters ------------------------------------------------------------------------

    async def park(
        self,
        group: str,
        saga_id: str,
        *,
        saga_type: str,
        tenant_id: str,
        record: SagaInputRecord,
        error: str,
    ) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(_LOCK_SAGAS, PARKED_LOCK_CLASS, group, [saga_id])
            await connection.execute(
                "INSERT INTO mercato_saga_parked (group_name, saga_id, saga_type, tenant_id,"
                " error) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                group,
                saga_id,
                saga_type,
                tenant_id,
                error,
            )
            await connection.execute(
                _INSERT_LETTERS, group, *_letter_columns([(saga_id, record)], error)
            )

    async def hold_back(self, group: str, inputs: Sequence[HeldInput]) -> set[str]:
        if not inputs:
            return set()
        saga_ids = sorted({held.saga_id for held in inputs})
        # The common case, nothing parked, costs this one round trip. A saga not parked here
        # cannot be un-parked meanwhile either, so its inputs are the caller's to feed.
        if not await self._pool.fetch(_PARKED_AMONG, group, saga_ids):
            return set()
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(_LOCK_SAGAS, PARKED_LOCK_CLASS, group, saga_ids)
            rows = await connection.fetch(_PARKED_AMONG, group, saga_ids)
            parked = {row["saga_id"] for row in rows}
            held = [(entry.saga_id, entry.input) for entry in inputs if entry.saga_id in parked]
            if held:
                await connection.execute(_INSERT_LETTERS, group, *_letter_columns(held, None))
        return {input_key(record) for _, record in held}

    async def parked(self, group: str, *, tenant_id: str | None = None) -> list[ParkedSaga]:
        rows = await self._pool.fetch(_PARKED, group, tenant_id)
        return [
            ParkedSaga(
                group=row["group_name"],
                saga_id=row["saga_id"],
                saga_type=row["saga_type"],
                tenant_id=row["tenant_id"],
                error=row["error"],
                letters=row["letters"],
                parked_at=row["parked_at"],
            )
            for row in rows
        ]

    async def letters(self, group: str, saga_id: str) -> list[SagaLetter]:
        rows = await self._pool.fetch(
            "SELECT input_key, kind, document, payload, error FROM mercato_saga_letters"
            " WHERE group_name = $1 AND saga_id = $2 ORDER BY seq",
            group,
            saga_id,
        )
        return [
            SagaLetter(
                key=row["input_key"],
                input=letters.decode(row["kind"], row["document"], row["payload"]),
                error=row["error"],
            )
            for row in rows
        ]

    async def drop_letter(self, group: str, saga_id: str, key: str) -> None:
        await self._pool.execute(
            "DELETE FROM mercato_saga_letters"
            " WHERE group_name = $1 AND saga_id = $2 AND input_key = $3",
            group,
            saga_id,
            key,
        )

    async def record_failure(self, group: str, saga_id: str, key: str, error: str) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE mercato_saga_parked SET error = $3 WHERE group_name = $1 AND saga_id = $2",
                group,
                saga_id,
                error,
            )
            await connection.execute(
                "UPDATE mercato_saga_letters SET error = $4"
                " WHERE group_name = $1 AND saga_id = $2 AND input_key = $3",
                group,
                saga_id,
                key,
                error,
            )

    async def unpark_if_empty(self, group: str, saga_id: str) -> bool:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(_LOCK_SAGAS, PARKED_LOCK_CLASS, group, [saga_id])
            # A statement of its own after the lock: it sees every letter stored before it.
            await connection.execute(
                "DELETE FROM mercato_saga_parked p WHERE group_name = $1 AND saga_id = $2"
                " AND NOT EXISTS (SELECT 1 FROM mercato_saga_letters l"
                "   WHERE l.group_name = p.group_name AND l.saga_id = p.saga_id)",
                group,
                saga_id,
            )
            still_parked = await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM mercato_saga_parked"
                " WHERE group_name = $1 AND saga_id = $2)",
                group,
                saga_id,
            )
        return not still_parked

    # -- leadership --------------------------------------------------------------------------

    async def try_lead(self, group: str, owner: str, *, lease: timedelta) -> bool:
        """`lease` is not needed here: the lock lives exactly as long as its session."""
        connection = self._leaders.get((group, owner))
        if connection is not None:
            try:
                await connection.fetchval("SELECT 1")
                return True
            except Exception:
                # The session is gone (or cannot show it is alive), and the lock with it:
                # someone else may lead by now.
                self._drop_leader(group, owner)
                return False
        connection = self._candidates.pop((group, owner), None)
        if connection is None or connection.is_closed():
            connection = await asyncpg.connect(self._dsn)
        try:
            acquired = await connection.fetchval(
                "SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, group
            )
        except BaseException:
            connection.terminate()
            raise
        if acquired:
            self._leaders[(group, owner)] = connection
        else:
            self._candidates[(group, owner)] = connection
        return bool(acquired)

    async def resign(self, group: str, owner: str) -> None:
        self._drop_leader(group, owner)
        candidate = self._candidates.pop((group, owner), None)
        if candidate is not None:
            candidate.terminate()

    def _drop_leader(self, group: str, owner: str) -> None:
        """End the leader's session, which releases its lock. `terminate()` rather than an
        unlock and a polite close: a runner resigns when it is cancelled, possibly in the middle
        of a query on this connection, and waiting on such a connection can hang."""
        connection = self._leaders.pop((group, owner), None)
        if connection is not None:
            connection.terminate()


async def migrate(connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> int:
    """Apply the saga store's migrations this database has not seen; returns its version."""
    return await apply_migrations(
        connection,
        MIGRATIONS,
        table="mercato_saga_schema_migrations",
        lock_key=_MIGRATION_LOCK_KEY,
    )


def _timer(row: Any) -> Timer:
    return Timer(
        group=row["group_name"],
        saga_type=row["saga_type"],
        saga_id=row["saga_id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        due_at=row["due_at"],
    )


def _letter_columns(
    inputs: Sequence[tuple[str, SagaInputRecord]], error: str | None
) -> list[list[Any]]:
    """(saga id, input) pairs as the column arrays `_INSERT_LETTERS` unnests."""
    encoded = [(saga_id, input_key(record), *letters.encode(record)) for saga_id, record in inputs]
    return [
        [row[0] for row in encoded],
        [row[1] for row in encoded],
        [row[2] for row in encoded],
        [row[3] for row in encoded],
        [row[4] for row in encoded],
        [error] * len(encoded),
    ]
