"""The embedded twin of the Redis document sink: documents in one SQLite file in WAL mode.

It behaves as `RedisDocumentSink` does, merging in Python with `documents.merge`: `apply` reads
the documents a batch touches, merges the writes into them, writes back those that changed and
raises the checkpoints, all in one transaction. A document is stored as `Document.to_json()` in
JSON, as in Redis; Python's json keeps integers of any size exact.

All writes go through one writer thread holding one connection; reads (the query side) run on a
small pool of reader threads with their own connections, so a long `apply` never holds a query
up, and no SQLite call blocks the event loop. Open with `await SqliteDocumentSink.open(path)`;
`close()` when done.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

from application.ports.read_model_sink import Checkpoints, Entry, EntryKey, Routing, Write
from application.read_models.documents import (
    Document,
    document_entries,
    group_by_document,
    merge,
)
from infrastructure.sqlite_schema import apply_migrations, transaction

_T = TypeVar("_T")

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE read_model_routing (projection TEXT PRIMARY KEY, live TEXT, building TEXT)"
        " WITHOUT ROWID",
        "CREATE TABLE read_model_targets (projection TEXT NOT NULL, target TEXT NOT NULL,"
        " base INTEGER NOT NULL, complete INTEGER NOT NULL, PRIMARY KEY (projection, target))"
        " WITHOUT ROWID",
        "CREATE TABLE read_model_checkpoints (projection TEXT NOT NULL, target TEXT NOT NULL,"
        " partition TEXT NOT NULL, position INTEGER NOT NULL,"
        " PRIMARY KEY (projection, target, partition)) WITHOUT ROWID",
        "CREATE TABLE read_model_documents (projection TEXT NOT NULL, target TEXT NOT NULL,"
        " doc_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (projection, target, doc_id))"
        " WITHOUT ROWID",
    ),
]

_IN_CHUNK = 500
"""Document ids per `IN (…)` list, well below SQLite's limit on bound parameters."""


class SqliteDocumentSink:
    """`ReadModelSink` for `SetFields` and `Contribute` writes on one SQLite file."""

    def __init__(
        self, path: str | Path, *, reader_threads: int = 2, busy_timeout: float = 5.0
    ) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-read-model-writer")
        self._readers = ThreadPoolExecutor(
            reader_threads, thread_name_prefix="sqlite-read-model-reader"
        )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    @classmethod
    async def open(cls, path: str | Path, **options: Any) -> Self:
        """Create the file if needed and apply pending migrations."""
        sink = cls(path, **options)
        try:
            await asyncio.to_thread(sink._path.parent.mkdir, parents=True, exist_ok=True)
            await sink._write(_migrate)
        except BaseException:
            await sink.close()
            raise
        return sink

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown)

    # -- routing and targets ----------------------------------------------------------------

    async def routing(self, projection: str) -> Routing:
        return await self._read(_routing, projection)

    async def create_target(self, projection: str, target: str) -> None:
        await self._write(_create_target, projection, target)

    async def promote(self, projection: str, target: str) -> None:
        await self._write(_promote, projection, target)

    async def drop_target(self, projection: str, target: str) -> None:
        await self._write(_drop_target, projection, target)

    async def targets(self, projection: str) -> list[str]:
        rows = await self._read(
            _select,
            "SELECT target FROM read_model_targets WHERE projection = ? ORDER BY target",
            (projection,),
        )
        return [target for (target,) in rows]

    # -- writes -----------------------------------------------------------------------------

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        grouped = group_by_document(writes)  # refuses an InsertRow before anything is written
        await self._write(_apply, projection, target, grouped, dict(checkpoints))

    async def set_base(self, projection: str, target: str, base: int, *, complete: bool) -> None:
        await self._write(_set_base, projection, target, base, complete)

    # -- reads ------------------------------------------------------------------------------

    async def checkpoints(self, projection: str, target: str) -> Checkpoints:
        return await self._read(_checkpoints, projection, target)

    async def entries(self, projection: str, target: str) -> dict[EntryKey, Entry]:
        return await self._read(_entries, projection, target)

    async def document(self, projection: str, target: str, doc_id: str) -> Document | None:
        return (await self.documents(projection, target, [doc_id]))[0]

    async def documents(
        self, projection: str, target: str, doc_ids: Sequence[str]
    ) -> list[Document | None]:
        """The documents in the order asked, None for each that does not exist."""
        bodies = await self._read(_bodies, projection, target, list(doc_ids))
        return [None if d not in bodies else _document(bodies[d]) for d in doc_ids]

    async def live_document(self, projection: str, doc_id: str) -> Document | None:
        """The document in the projection's live target; None without one."""
        live = (await self.routing(projection)).live
        return None if live is None else await self.document(projection, live, doc_id)

    # -- threads and connections -------------------------------------------------------------

    async def _write(self, function: Callable[..., _T], *args: Any) -> _T:
        return await self._run(self._writer, function, False, *args)

    async def _read(self, function: Callable[..., _T], *args: Any) -> _T:
        return await self._run(self._readers, function, True, *args)

    async def _run(
        self, executor: ThreadPoolExecutor, function: Callable[..., _T], read_only: bool, *args: Any
    ) -> _T:
        call = functools.partial(self._with_connection, function, read_only, *args)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    def _with_connection(self, function: Callable[..., _T], read_only: bool, *args: Any) -> _T:
        """Run `function` with this thread's own connection (opened on first use)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # check_same_thread is off only so that close() can close every connection.
            connection = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            if read_only:
                connection.execute("PRAGMA query_only = ON")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return function(connection, *args)

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


# -- the statements, run on the sink's threads ---------------------------------------------


def _migrate(db: sqlite3.Connection) -> None:
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"the read-model file cannot use WAL journaling (got {mode})")
    # NORMAL may lose the last commits on a power cut, never tear one: data and checkpoints
    # commit together, so a lost commit loses both and the feed sends those events again.
    db.execute("PRAGMA synchronous = NORMAL")
    apply_migrations(db, "read_model_schema_migrations", MIGRATIONS)


def _select(db: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[Any]:
    return db.execute(sql, params).fetchall()


def _routing(db: sqlite3.Connection, projection: str) -> Routing:
    row = db.execute(
        "SELECT live, building FROM read_model_routing WHERE projection = ?", (projection,)
    ).fetchone()
    return Routing(live=None) if row is None else Routing(live=row[0], building=row[1])


def _require_target(db: sqlite3.Connection, projection: str, target: str) -> tuple[int, bool]:
    """The target's (base, complete); LookupError when it does not exist."""
    row = db.execute(
        "SELECT base, complete FROM read_model_targets WHERE projection = ? AND target = ?",
        (projection, target),
    ).fetchone()
    if row is None:
        raise LookupError(f"no target {target} for {projection}")
    return int(row[0]), bool(row[1])


def _create_target(db: sqlite3.Connection, projection: str, target: str) -> None:
    with transaction(db):
        db.execute(
            "INSERT INTO read_model_targets (projection, target, base, complete)"
            " VALUES (?, ?, 0, 0) ON CONFLICT DO NOTHING",
            (projection, target),
        )
        db.execute(
            "INSERT INTO read_model_routing (projection, building) VALUES (?, ?)"
            " ON CONFLICT (projection) DO UPDATE SET building = excluded.building",
            (projection, target),
        )


def _promote(db: sqlite3.Connection, projection: str, target: str) -> None:
    with transaction(db):
        _require_target(db, projection, target)
        db.execute(
            "INSERT INTO read_model_routing (projection, live) VALUES (?, ?)"
            " ON CONFLICT (projection) DO UPDATE SET live = excluded.live, building = NULL",
            (projection, target),
        )


def _drop_target(db: sqlite3.Connection, projection: str, target: str) -> None:
    with transaction(db):
        if _routing(db, projection).live == target:
            raise ValueError(f"{target} is live: promote another target first")
        for table in ("read_model_documents", "read_model_checkpoints", "read_model_targets"):
            db.execute(
                f"DELETE FROM {table} WHERE projection = ? AND target = ?", (projection, target)
            )
        db.execute(
            "UPDATE read_model_routing SET building = NULL WHERE projection = ? AND building = ?",
            (projection, target),
        )


def _apply(
    db: sqlite3.Connection,
    projection: str,
    target: str,
    grouped: dict[str, list[Write]],
    checkpoints: dict[str, int],
) -> None:
    with transaction(db):
        _require_target(db, projection, target)
        stored = _bodies(db, projection, target, list(grouped))
        changed = []
        for doc_id, writes in grouped.items():
            before = stored.get(doc_id)
            document = Document() if before is None else _document(before)
            merge(document, writes)
            # Unchanged documents (a redelivered batch) are not written again.
            after = _json(document.to_json())
            if after != before:
                changed.append((projection, target, doc_id, after))
        db.executemany(
            "INSERT INTO read_model_documents (projection, target, doc_id, body)"
            " VALUES (?, ?, ?, ?)"
            " ON CONFLICT (projection, target, doc_id) DO UPDATE SET body = excluded.body",
            changed,
        )
        db.executemany(
            "INSERT INTO read_model_checkpoints (projection, target, partition, position)"
            " VALUES (?, ?, ?, ?)"
            " ON CONFLICT (projection, target, partition)"
            " DO UPDATE SET position = max(position, excluded.position)",
            [(projection, target, p, position) for p, position in checkpoints.items()],
        )


def _set_base(
    db: sqlite3.Connection, projection: str, target: str, base: int, complete: bool
) -> None:
    with transaction(db):
        _require_target(db, projection, target)
        db.execute(
            "UPDATE read_model_targets SET base = ?, complete = ?"
            " WHERE projection = ? AND target = ?",
            (base, complete, projection, target),
        )


def _checkpoints(db: sqlite3.Connection, projection: str, target: str) -> Checkpoints:
    with transaction(db, "BEGIN"):
        base, complete = _require_target(db, projection, target)
        rows = db.execute(
            "SELECT partition, position FROM read_model_checkpoints"
            " WHERE projection = ? AND target = ?",
            (projection, target),
        ).fetchall()
    return Checkpoints(base=base, partitions=dict(rows), complete=complete)


def _entries(db: sqlite3.Connection, projection: str, target: str) -> dict[EntryKey, Entry]:
    entries: dict[EntryKey, Entry] = {}
    with transaction(db, "BEGIN"):
        _require_target(db, projection, target)
        rows = db.execute(
            "SELECT doc_id, body FROM read_model_documents WHERE projection = ? AND target = ?",
            (projection, target),
        )
        for doc_id, body in rows:
            entries.update(document_entries(doc_id, _document(body)))
    return entries


def _bodies(
    db: sqlite3.Connection, projection: str, target: str, doc_ids: list[str]
) -> dict[str, str]:
    """doc id -> stored JSON, for those of `doc_ids` that exist."""
    bodies: dict[str, str] = {}
    for start in range(0, len(doc_ids), _IN_CHUNK):
        chunk = doc_ids[start : start + _IN_CHUNK]
        rows = db.execute(
            "SELECT doc_id, body FROM read_model_documents WHERE projection = ? AND target = ?"
            f" AND doc_id IN ({', '.join('?' * len(chunk))})",
            (projection, target, *chunk),
        )
        bodies.update(rows)
    return bodies


def _document(body: str) -> Document:
    return Document.from_json(json.loads(body))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
