"""The relay's Postgres side: its leader lock and its durable checkpoint, on one connection.

- Leadership is a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its
  own: Postgres holds it exactly as long as that session lives and drops it the moment the
  process dies or the connection breaks, so a crashed relay never blocks its successor.
- The checkpoint (the position of the last event Kafka acknowledged) is written on that same
  session: a write can only succeed while the lock is still held, and every write doubles as
  proof that it is. Writes only move it forward (`greatest`), so a late write from a relay that
  has just lost the lock cannot move it back under its successor.
- Any failure on this connection while leading is `LeadershipLostError`: the lock may be gone,
  and another relay may be publishing already.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from infrastructure.eventstore.postgres_migrations import apply_migrations

MIGRATIONS: list[str] = [
    """
    CREATE TABLE relay_checkpoints (
        name        text PRIMARY KEY,
        position    bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    """,
]
_MIGRATION_LOCK_KEY = 0x72656C61  # "rela"

_SAVE_CHECKPOINT = """
INSERT INTO relay_checkpoints (name, position, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO UPDATE
SET position = greatest(relay_checkpoints.position, excluded.position), updated_at = now()
"""

_QUERY_TIMEOUT = 5.0
"""How long a query on the leader's session may take before the session counts as lost."""

T = TypeVar("T")


class LeadershipLostError(Exception):
    """The leader's session failed or closed: the lock may belong to someone else by now."""


def lock_key(name: str) -> int:
    """The advisory lock key of a relay name: a stable signed 64-bit hash, the same in every
    process (Python's `hash()` is salted per process)."""
    digest = hashlib.blake2b(f"mercato.relay:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RelayLeadership:
    """One relay's session: a standby while `try_acquire` says no, the leader once it says yes."""

    def __init__(self, dsn: str, name: str) -> None:
        self._dsn = dsn
        self._name = name
        self._key = lock_key(name)
        self._connection: asyncpg.Connection | None = None
        self._closed = asyncio.Event()
        # asyncpg runs one query at a time per connection; the liveness check and checkpoint
        # writes come from different tasks.
        self._busy = asyncio.Lock()

    async def try_acquire(self) -> bool:
        """Try to take the lock once (connecting first if needed). Connection errors propagate:
        the caller backs off and tries again."""
        if self._connection is None or self._connection.is_closed():
            self._closed.clear()
            self._connection = await asyncpg.connect(self._dsn, timeout=_QUERY_TIMEOUT)
            self._connection.add_termination_listener(self._on_termination)
        try:
            acquired = await self._connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", self._key, timeout=_QUERY_TIMEOUT
            )
        except BaseException:
            self.abandon()
            raise
        return bool(acquired)

    async def load_checkpoint(self) -> int:
        """The last stored checkpoint, 0 when there is none (creating the table if needed)."""

        async def load(connection: asyncpg.Connection) -> int:
            await apply_migrations(
                connection,
                MIGRATIONS,
                table="relay_schema_migrations",
                lock_key=_MIGRATION_LOCK_KEY,
            )
            position = await connection.fetchval(
                "SELECT position FROM relay_checkpoints WHERE name = $1", self._name
            )
            return 0 if position is None else int(position)

        return await self._as_leader(load)

    async def save_checkpoint(self, position: int) -> None:
        async def save(connection: asyncpg.Connection) -> None:
            await connection.execute(_SAVE_CHECKPOINT, self._name, position)

        await self._as_leader(save)

    async def watch(self, interval: float) -> None:
        """Return never; raise `LeadershipLostError` as soon as the session closes (noticed at
        once) or stops answering (checked every `interval` seconds)."""

        async def ping(connection: asyncpg.Connection) -> None:
            await connection.fetchval("SELECT 1")

        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._closed.wait()
            await self._as_leader(ping)

    async def release(self) -> None:
        """Give the lock up by ending the session (closing it releases every session lock)."""
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed():
            return
        try:
            async with asyncio.timeout(_QUERY_TIMEOUT):
                await connection.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            connection.terminate()

    def abandon(self) -> None:
        """Drop the session without a word: for a session that failed or cannot be trusted
        (waiting on it could hang). The server releases the lock when it notices."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    def _on_termination(
        self, connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
    ) -> None:
        if connection is self._connection:  # not an earlier session, abandoned since
            self._closed.set()

    async def _as_leader(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        connection = self._connection
        if connection is None or self._closed.is_set():
            raise LeadershipLostError("its Postgres session closed")
        async with self._busy:
            # Shielded: a clean stop cancels the watchdog and the checkpoint writer, perhaps
            # mid-query, and asyncpg refuses the next query (the final checkpoint) on a session
            # still busy cancelling. Letting the short, bounded query finish keeps it usable.
            attempt = asyncio.ensure_future(self._bounded(query, connection))
            try:
                return await asyncio.shield(attempt)
            except asyncio.CancelledError:
                await asyncio.wait((attempt,))
                if not attempt.cancelled():
                    attempt.exception()  # seen: the caller is gone, its failure goes with it
                raise

    async def _bounded(
        self, query: Callable[[asyncpg.Connection], Awaitable[T]], connection: asyncpg.Connection
    ) -> T:
        try:
            async with asyncio.timeout(_QUERY_TIMEOUT):
                return await query(connection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            raise LeadershipLostError(
                f"its Postgres session failed: {type(error).__name__}: {error}"
            ) from error
