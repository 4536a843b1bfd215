"""The embedded profile's saga store: checkpoints, timers, leadership and the parked sagas'
dead letters in one SQLite file.

Every call runs on one thread with one connection, so nothing blocks the event loop. Open with
`await SqliteSagaStore.open(path)`; `close()` when done.

Claiming timers needs no `FOR UPDATE SKIP LOCKED` here: `BEGIN IMMEDIATE` takes SQLite's one
write lock on the file (across processes too, https://sqlite.org/lang_transaction.html) before
the due timers are selected, so no other claimer can select them until this one has marked
them claimed and committed. There are no row locks to skip: claimers simply take turns, and
each claim is a few milliseconds long. The same lock makes `hold_back` (is the saga parked?
then store the letter) and `unpark_if_empty` (no letter left? then un-park) atomic with each
other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TypeVar

from application.ports.saga_store import (
    HeldInput,
    ParkedSaga,
    SagaInputRecord,
    SagaLetter,
    Timer,
    input_key,
)
from infrastructure.sagas import letters
from infrastructure.sqlite_schema import apply_migrations, transaction

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE saga_checkpoints (group_name TEXT PRIMARY KEY, position INTEGER NOT NULL)"
        " WITHOUT ROWID",
        """
        CREATE TABLE saga_timers (
            timer_id TEXT PRIMARY KEY,
            group_name TEXT NOT NULL,
            saga_type TEXT NOT NULL,
            saga_id TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            name TEXT NOT NULL,
            due_at INTEGER NOT NULL,
            claimed_by TEXT,
            claimed_until INTEGER
        ) WITHOUT ROWID
        """,
        "CREATE INDEX saga_timers_due ON saga_timers (group_name, due_at)",
        "CREATE TABLE saga_leaders (group_name TEXT PRIMARY KEY, owner TEXT NOT NULL,"
        " expires_at REAL NOT NULL) WITHOUT ROWID",
    ),
    (
        # With a rowid: it orders the parked sagas oldest first, whatever the wall clock did.
        """
        CREATE TABLE saga_parked (
            group_name TEXT NOT NULL,
            saga_id TEXT NOT NULL,
            saga_type TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            error TEXT NOT NULL,
            parked_at INTEGER NOT NULL,
            PRIMARY KEY (group_name, saga_id)
        )
        """,
        """
        CREATE TABLE saga_letters (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            group_name TEXT NOT NULL,
            saga_id TEXT NOT NULL,
            input_key TEXT NOT NULL,
            kind TEXT NOT NULL,
            document TEXT NOT NULL,
            payload BLOB,
            error TEXT,
            UNIQUE (group_name, saga_id, input_key)
        )
        """,
    ),
]

_INSERT_LETTER = (
    "INSERT INTO saga_letters (group_name, saga_id, input_key, kind, document, payload, error)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)

_PARKED = """
SELECT p.group_name, p.saga_id, p.saga_type, p.tenant_id, p.error, p.parked_at,
       (SELECT count(*) FROM saga_letters l
        WHERE l.group_name = p.group_name AND l.saga_id = p.saga_id)
FROM saga_parked p
WHERE p.group_name = ?1 AND (?2 IS NULL OR p.tenant_id = ?2)
ORDER BY p.rowid
"""

_TIMER_COLUMNS = "group_name, saga_type, saga_id, tenant_id, name, due_at"


class SqliteSagaStore:
    """Implements `application.ports.saga_store.SagaStore` on one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-saga-store")
        self._connection: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str | Path, **options: Any) -> Self:
        store = cls(path, **options)
        await store._run(store._open)
        return store

    async def close(self) -> None:
        await self._run(self._close)
        self._thread.shutdown(wait=True)

    # -- checkpoints -------------------------------------------------------------------------

    async def checkpoint(self, group: str) -> int:
        return await self._run(self._checkpoint, group)

    async def save_checkpoint(self, group: str, position: int) -> None:
        await self._run(
            self._execute,
            "INSERT INTO saga_checkpoints (group_name, position) VALUES (?, ?)"
            " ON CONFLICT (group_name) DO UPDATE SET position = max(position, excluded.position)",
            (group, position),
        )

    # -- timers ------------------------------------------------------------------------------

    async def schedule(self, timer: Timer) -> None:
        await self._run(
            self._execute,
            f"INSERT INTO saga_timers (timer_id, {_TIMER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (timer_id) DO UPDATE SET due_at = excluded.due_at,"
            # Moving a timer voids its claim; scheduling it again as it was keeps the claim.
            " claimed_by = CASE WHEN due_at = excluded.due_at THEN claimed_by END,"
            " claimed_until = CASE WHEN due_at = excluded.due_at THEN claimed_until END",
            (
                timer.timer_id,
                timer.group,
                timer.saga_type,
                timer.saga_id,
                timer.tenant_id,
                timer.name,
                _micros(timer.due_at),
            ),
        )

    async def unschedule(self, timer_id: str) -> None:
        await self._run(self._execute, "DELETE FROM saga_timers WHERE timer_id = ?", (timer_id,))

    async def claim_due(
        self, group: str, *, now: datetime, owner: str, limit: int, lease: timedelta
    ) -> list[Timer]:
        return await self._run(self._claim_due, group, _micros(now), owner, limit, lease)

    async def complete(self, timer: Timer, *, owner: str) -> None:
        await self._run(
            self._execute,
            "DELETE FROM saga_timers WHERE timer_id = ? AND claimed_by = ? AND due_at = ?",
            (timer.timer_id, owner, _micros(timer.due_at)),
        )

    async def count_timers(self, group: str) -> int:
        return await self._run(self._count_timers, group)

    # -- leadership --------------------------------------------------------------------------

    async def try_lead(self, group: str, owner: str, *, lease: timedelta) -> bool:
        return await self._run(self._try_lead, group, owner, lease.total_seconds())

    async def resign(self, group: str, owner: str) -> None:
        await self._run(
            self._execute,
            "DELETE FROM saga_leaders WHERE group_name = ? AND owner = ?",
            (group, owner),
        )

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
        await self._run(self._park, group, saga_id, saga_type, tenant_id, record, error)

    async def hold_back(self, group: str, inputs: Sequence[HeldInput]) -> set[str]:
        if not inputs:
            return set()
        return await self._run(self._hold_back, group, tuple(inputs))

    async def parked(self, group: str, *, tenant_id: str | None = None) -> list[ParkedSaga]:
        return await self._run(self._parked, group, tenant_id)

    async def letters(self, group: str, saga_id: str) -> list[SagaLetter]:
        return await self._run(self._letters, group, saga_id)

    async def drop_letter(self, group: str, saga_id: str, key: str) -> None:
        await self._run(
            self._execute,
            "DELETE FROM saga_letters WHERE group_name = ? AND saga_id = ? AND input_key = ?",
            (group, saga_id, key),
        )

    async def record_failure(self, group: str, saga_id: str, key: str, error: str) -> None:
        await self._run(self._record_failure, group, saga_id, key, error)

    async def unpark_if_empty(self, group: str, saga_id: str) -> bool:
        return await self._run(self._unpark_if_empty, group, saga_id)

    # -- the store's thread ------------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(function, *args))

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        self._connection = connection
        apply_migrations(connection, "saga_schema_migrations", MIGRATIONS)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        if connection is None:
            raise RuntimeError("the saga store is closed")
        with transaction(connection):
            yield connection

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        with self._transaction() as db:
            db.execute(sql, params)

    def _checkpoint(self, group: str) -> int:
        with self._transaction() as db:
            row = db.execute(
                "SELECT position FROM saga_checkpoints WHERE group_name = ?", (group,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def _count_timers(self, group: str) -> int:
        with self._transaction() as db:
            row = db.execute(
                "SELECT count(*) FROM saga_timers WHERE group_name = ?", (group,)
            ).fetchone()
        return int(row[0])

    def _claim_due(
        self, group: str, now: int, owner: str, limit: int, lease: timedelta
    ) -> list[Timer]:
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT timer_id, {_TIMER_COLUMNS} FROM saga_timers"
                " WHERE group_name = ? AND due_at <= ?"
                " AND (claimed_until IS NULL OR claimed_until <= ?)"
                " ORDER BY due_at LIMIT ?",
                (group, now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE saga_timers SET claimed_by = ?, claimed_until = ? WHERE timer_id = ?",
                [(owner, now + lease // _MICROSECOND, row[0]) for row in rows],
            )
        return [
            Timer(group_name, saga_type, saga_id, tenant_id, name, _from_micros(due_at))
            for _, group_name, saga_type, saga_id, tenant_id, name, due_at in rows
        ]

    def _try_lead(self, group: str, owner: str, lease_seconds: float) -> bool:
        # Wall-clock time, not the saga clock: a lease is about whether a process is alive.
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT owner, expires_at FROM saga_leaders WHERE group_name = ?", (group,)
            ).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False
            db.execute(
                "INSERT INTO saga_leaders (group_name, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (group_name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at",
                (group, owner, now + lease_seconds),
            )
        return True

    def _park(
        self,
        group: str,
        saga_id: str,
        saga_type: str,
        tenant_id: str,
        record: SagaInputRecord,
        error: str,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO saga_parked (group_name, saga_id, saga_type, tenant_id, error,"
                " parked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (group, saga_id, saga_type, tenant_id, error, _micros(datetime.now(UTC))),
            )
            db.execute(_INSERT_LETTER, _letter_row(group, saga_id, record, error))

    def _hold_back(self, group: str, inputs: tuple[HeldInput, ...]) -> set[str]:
        saga_ids = sorted({held.saga_id for held in inputs})
        # The common case, nothing parked, is one read that takes no write lock; a saga is
        # only parked by the runner that follows the log (or a timer), so the write below
        # re-reads under the lock what is parked before it stores anything.
        if not self._parked_among(group, saga_ids):
            return set()
        with self._transaction() as db:
            parked = self._parked_among(group, saga_ids)
            held = [entry for entry in inputs if entry.saga_id in parked]
            db.executemany(
                _INSERT_LETTER,
                [_letter_row(group, entry.saga_id, entry.input, None) for entry in held],
            )
        return {input_key(entry.input) for entry in held}

    def _parked_among(self, group: str, saga_ids: list[str]) -> set[str]:
        """Which of the sagas are parked: one statement, in the caller's transaction if there
        is one, else in an implicit read transaction of its own (no write lock)."""
        connection = self._connection
        if connection is None:
            raise RuntimeError("the saga store is closed")
        marks = ", ".join("?" * len(saga_ids))
        sql = f"SELECT saga_id FROM saga_parked WHERE group_name = ? AND saga_id IN ({marks})"
        return {row[0] for row in connection.execute(sql, (group, *saga_ids)).fetchall()}

    def _parked(self, group: str, tenant_id: str | None) -> list[ParkedSaga]:
        with self._transaction() as db:
            rows = db.execute(_PARKED, (group, tenant_id)).fetchall()
        return [
            ParkedSaga(
                group=group_name,
                saga_id=saga_id,
                saga_type=saga_type,
                tenant_id=tenant,
                error=error,
                letters=count,
                parked_at=_from_micros(parked_at),
            )
            for group_name, saga_id, saga_type, tenant, error, parked_at, count in rows
        ]

    def _letters(self, group: str, saga_id: str) -> list[SagaLetter]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT input_key, kind, document, payload, error FROM saga_letters"
                " WHERE group_name = ? AND saga_id = ? ORDER BY seq",
                (group, saga_id),
            ).fetchall()
        return [
            SagaLetter(key=key, input=letters.decode(kind, document, payload), error=error)
            for key, kind, document, payload, error in rows
        ]

    def _record_failure(self, group: str, saga_id: str, key: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE saga_parked SET error = ? WHERE group_name = ? AND saga_id = ?",
                (error, group, saga_id),
            )
            db.execute(
                "UPDATE saga_letters SET error = ?"
                " WHERE group_name = ? AND saga_id = ? AND input_key = ?",
                (error, group, saga_id, key),
            )

    def _unpark_if_empty(self, group: str, saga_id: str) -> bool:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM saga_parked WHERE group_name = ?1 AND saga_id = ?2 AND NOT EXISTS"
                " (SELECT 1 FROM saga_letters WHERE group_name = ?1 AND saga_id = ?2)",
                (group, saga_id),
            )
            row = db.execute(
                "SELECT 1 FROM saga_parked WHERE group_name = ? AND saga_id = ?",
                (group, saga_id),
            ).fetchone()
        return row is None


def _letter_row(
    group: str, saga_id: str, record: SagaInputRecord, error: str | None
) -> tuple[object, ...]:
    kind, document, payload = letters.encode(record)
    return (group, saga_id, input_key(record), kind, document, payload, error)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("saga times must be timezone-aware")
    return (moment - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
