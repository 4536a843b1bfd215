"""Create, drop and name Postgres databases: throwaway databases for tests and benchmarks, and
DSN helpers (another database on the same server, a DSN fit for logs)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

logger = logging.getLogger(__name__)


def with_database(dsn: str, dbname: str) -> str:
    """The same DSN pointing at another database (query options kept)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def redacted(dsn: str) -> str:
    """The DSN without its password, fit for output and result files."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}"))


@asynccontextmanager
async def throwaway_database(admin_dsn: str, name: str) -> AsyncIterator[str]:
    """Create a fresh database next to `admin_dsn`'s, yield its DSN, and drop it afterwards
    (with FORCE, so connections a benchmark or test leaked cannot keep it alive)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_dsn, name)
    except BaseException:
        # Keep the caller's own error in front; the server may be why it failed.
        try:
            await drop_database(admin_dsn, name)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning("could not drop the throwaway database %s: %s", name, error)
        raise
    await drop_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def database_exists(admin_dsn: str, name: str) -> bool:
    admin = await asyncpg.connect(admin_dsn)
    try:
        return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await admin.close()
