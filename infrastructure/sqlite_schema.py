"""What every SQLite adapter needs: a transaction that rolls back on any error, and numbered
migrations applied once.

Each adapter keeps its own file and its own migrations table (they may share a file one day
without their version numbers colliding).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """`BEGIN IMMEDIATE` (the default) takes the file's write lock up front, so what is read
    cannot change before the transaction's writes commit (a DEFERRED one could fail to upgrade
    instead); a plain `BEGIN` gives a reader one consistent snapshot for several statements."""
    connection.execute(begin)
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def apply_migrations(
    connection: sqlite3.Connection, table: str, migrations: Sequence[Sequence[str]]
) -> None:
    """Run the statements of every migration not yet recorded in `table` (version = its
    1-based index in `migrations`), all in one write transaction."""
    with transaction(connection):
        connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY)")
        applied = connection.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchone()
        for version, statements in enumerate(migrations, start=1):
            if version <= applied[0]:
                continue
            for statement in statements:
                connection.execute(statement)
            connection.execute(f"INSERT INTO {table} (version) VALUES (?)", (version,))
