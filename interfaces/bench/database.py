"""A throwaway Postgres database per benchmark run, and the DSN helpers the benchmarks share."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

logger = logging.getLogger(__name__)

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "mercato_bench_"


def default_dsn() -> str:
    """MERCATO_POSTGRES_DSN, else the local superuser DSN of the development machine."""
    return os.environ.get("MERCATO_POSTGRES_DSN") or DEFAULT_DSN


@dataclass(frozen=True)
class DsnParts:
    """A DSN split into the fields libraries that take keyword settings want."""

    host: str
    port: int
    user: str
    password: str
    dbname: str


def dsn_parts(dsn: str) -> DsnParts:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// DSN: {redacted(dsn)}")
    return DsnParts(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
    )


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


def new_database_name() -> str:
    return f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def throwaway_database(admin_dsn: str, name: str | None = None) -> AsyncIterator[str]:
    """Create a fresh database next to `admin_dsn`'s, yield its DSN, and drop it afterwards
    (with FORCE, so connections a benchmark leaked cannot keep it alive)."""
    name = name or new_database_name()
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
        # Keep the benchmark's own error in front; the server may be why it failed.
        try:
            await drop_database(admin_dsn, name)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning("could not drop the benchmark database %s: %s", name, error)
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
