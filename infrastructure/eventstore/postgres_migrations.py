"""Versioned schema of the Postgres event store. Append new migrations; never edit old ones."""

from __future__ import annotations

import asyncpg

MIGRATIONS: list[str] = [
    # 1: events, idempotency keys, snapshots.
    """
    CREATE TABLE mercato_events (
        stream_id       text        NOT NULL,
        stream_version  bigint      NOT NULL,
        position        bigint      NOT NULL,
        event_id        uuid        NOT NULL,
        type            text        NOT NULL,
        schema_version  integer     NOT NULL,
        tenant_id       text        NOT NULL,
        recorded_at     timestamptz NOT NULL DEFAULT now(),
        correlation_id  uuid,
        causation_id    uuid,
        traceparent     text,
        payload         bytea       NOT NULL,
        PRIMARY KEY (stream_id, stream_version)
    );
    CREATE UNIQUE INDEX mercato_events_position ON mercato_events (position);
    CREATE TABLE mercato_idempotency_keys (
        tenant_id       text        NOT NULL,
        key             text        NOT NULL,
        stream_id       text        NOT NULL,
        fingerprint     text        NOT NULL,
        stream_version  bigint      NOT NULL,
        positions       bigint[]    NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, key)
    );
    CREATE TABLE mercato_snapshots (
        stream_id       text        NOT NULL,
        stream_version  bigint      NOT NULL,
        type            text        NOT NULL,
        state           bytea       NOT NULL,
        tenant_id       text        NOT NULL,
        taken_at        timestamptz NOT NULL,
        PRIMARY KEY (stream_id, stream_version)
    );
    """,
]

# Any constant shared by every Mercato process that migrates this database.
_MIGRATION_LOCK_KEY = 0x6D657263  # "merc"

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def migrate(connection: Connection) -> int:
    """Apply the event store's migrations this database has not seen; returns its version."""
    return await apply_migrations(
        connection, MIGRATIONS, table="mercato_schema_migrations", lock_key=_MIGRATION_LOCK_KEY
    )


async def apply_migrations(
    connection: Connection, migrations: list[str], *, table: str, lock_key: int
) -> int:
    """Apply, in order, the migrations not yet recorded in `table`; returns the schema version.

    An advisory lock makes concurrent starts (several API workers) take turns; each migration
    runs in one transaction with its record. `table` is a constant of the caller's, never input.
    """
    await connection.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = await connection.fetchval(f"SELECT coalesce(max(version), 0) FROM {table}")
        for version, sql in enumerate(migrations, start=1):
            if version <= applied:
                continue
            async with connection.transaction():
                await connection.execute(sql)
                await connection.execute(f"INSERT INTO {table} (version) VALUES ($1)", version)
        return len(migrations)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", lock_key)
