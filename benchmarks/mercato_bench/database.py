"""The benchmarks' Postgres settings (throwaway databases: infrastructure.postgres_databases)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from infrastructure.postgres_databases import redacted

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


def new_database_name() -> str:
    return f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
