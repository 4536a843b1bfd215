"""The analytics sink: `InsertRow` facts in ClickHouse, on a server or in chdb (same SQL).

Layout, in the sink's `database`:
- per target, one table per fact table, `<projection>__<target>__<fact table>`:
  `ReplacingMergeTree(position)` ordered by the fact table's key (tenant first) and partitioned
  by the month of its time column. A row written again (redelivery, a rebuild beside the live
  workers) is one more copy; the store keeps the copy with the highest position (the last
  written among equal positions), and every read says `FINAL`, so no copy counts twice;
- per target, `<projection>__<target>__checkpoints`: (partition, position),
  `ReplacingMergeTree(position)`, so a checkpoint never goes down whatever order writes land in;
- `read_model_targets`: each target's base and completeness, `ReplacingMergeTree(version,
  is_deleted)` (a dropped target is a deleted row); `read_model_routing`: each projection's live
  and building targets, `ReplacingMergeTree(version)`. Read with `FINAL`, a routing row is
  replaced in one insert: promoting is atomic for readers.

ClickHouse has no transactions: `apply` inserts the rows (one insert per table) and then the
checkpoints, as the port allows ("writes first, checkpoints last"); a crash in between leaves
rows whose events will be delivered again, which only writes the same rows again.

clickhouse-connect is synchronous: calls run in threads, one at a time per client. The sink
has two clients, so queries (`select`) never wait behind a projector's batch.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from clickhouse_connect.driver.exceptions import OperationalError

from application.ports.read_model_sink import (
    Checkpoints,
    Entry,
    EntryKey,
    InsertRow,
    JsonValue,
    Routing,
    Write,
)
from application.read_models.analytics import (
    FACT_TABLES,
    ColumnKind,
    FactTable,
    from_utc_text,
    utc_text,
)
from infrastructure.read_models.clickhouse_engine import SERVER_TIMEOUT, open_client
from infrastructure.read_models.outages import unavailable_on

_T = TypeVar("_T")

CLICKHOUSE_TYPES: Mapping[ColumnKind, str] = {
    ColumnKind.TEXT: "String",
    ColumnKind.LABEL: "LowCardinality(String)",
    ColumnKind.INT: "Int64",
    ColumnKind.TIME: "DateTime64(6, 'UTC')",
}
CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^[A-Za-z0-9_]{1,100}$")
_INT64 = range(-(2**63), 2**63)
_UINT64 = range(0, 2**64)

_SHARED_TABLES = (
    "CREATE TABLE IF NOT EXISTS {db:Identifier}.read_model_routing"
    " (`projection` String, `live` String, `building` String, `version` UInt64)"
    " ENGINE = ReplacingMergeTree(version) ORDER BY `projection`",
    "CREATE TABLE IF NOT EXISTS {db:Identifier}.read_model_targets"
    " (`projection` String, `target` String, `base` UInt64, `complete` UInt8,"
    " `version` UInt64, `is_deleted` UInt8) ENGINE = ReplacingMergeTree(version, is_deleted)"
    " ORDER BY (`projection`, `target`)",
)
_ROUTING = (
    "SELECT live, building FROM {db:Identifier}.read_model_routing FINAL"
    " WHERE projection = {projection:String}"
)
_TARGET = (
    "SELECT base, complete FROM {db:Identifier}.read_model_targets FINAL"
    " WHERE projection = {projection:String} AND target = {target:String}"
)
_TARGETS = (
    "SELECT target FROM {db:Identifier}.read_model_targets FINAL"
    " WHERE projection = {projection:String} ORDER BY target"
)
_LAST_VERSION = (
    "SELECT max(version) FROM {db:Identifier}.{table:Identifier}"
    " WHERE projection = {projection:String}"
)
_CHECKPOINTS = (
    "SELECT partition, max(position) FROM {db:Identifier}.{table:Identifier} GROUP BY partition"
)
_ROWS = "SELECT * FROM {db:Identifier}.{table:Identifier} FINAL"


class _Connection:
    """One client, used by one thread at a time (a chdb handle must not interleave calls)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(self._locked, function, *args)

    def _locked(self, function: Callable[..., _T], *args: Any) -> _T:
        with self._lock:
            return function(self.client, *args)


@unavailable_on("ClickHouse", OperationalError)
class ClickHouseRowSink:
    """`ReadModelSink` for `InsertRow` writes of the known fact tables. A ClickHouse server
    that refuses or does not answer is the port's `ReadStoreUnavailableError`."""

    def __init__(
        self,
        writer: Any,
        reader: Any,
        *,
        database: str,
        tables: Iterable[FactTable] = FACT_TABLES,
    ) -> None:
        self.database = _checked_name(database, "database")
        self.tables = {table.name: table for table in tables}
        if CHECKPOINTS in self.tables:
            raise ValueError(f"a fact table cannot be called {CHECKPOINTS!r}")
        self._writer = _Connection(writer)
        self._reader = _Connection(reader)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        database: str,
        tables: Iterable[FactTable] = FACT_TABLES,
        call_timeout: float = SERVER_TIMEOUT,
    ) -> Self:
        """Open the engine (`http(s)://…` or `chdb:///folder`) and create the database and the
        routing tables if needed."""
        writer = await asyncio.to_thread(open_client, dsn, timeout=call_timeout)
        try:
            reader = await asyncio.to_thread(open_client, dsn, timeout=call_timeout)
        except BaseException:
            await asyncio.to_thread(writer.close)
            raise
        sink = cls(writer, reader, database=database, tables=tables)
        try:
            await sink._writer.run(sink._create_database)
        except BaseException:
            await sink.close()
            raise
        return sink

    async def close(self) -> None:
        for connection in (self._writer, self._reader):
            await connection.run(lambda client: client.close())

    # -- routing and targets ----------------------------------------------------------------

    async def routing(self, projection: str) -> Routing:
        return await self._reader.run(self._routing, projection)

    async def create_target(self, projection: str, target: str) -> None:
        await self._writer.run(self._create_target, projection, target)

    async def promote(self, projection: str, target: str) -> None:
        await self._writer.run(self._promote, projection, target)

    async def drop_target(self, projection: str, target: str) -> None:
        await self._writer.run(self._drop_target, projection, target)

    async def targets(self, projection: str) -> list[str]:
        rows = await self._reader.run(self._select, _TARGETS, {"projection": projection})
        return [target for (target,) in rows]

    # -- writes -----------------------------------------------------------------------------

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        rows = self._rows_by_table(writes)  # refuses a bad write before anything is written
        points = [[partition, _position(p)] for partition, p in checkpoints.items()]
        await self._writer.run(self._apply, projection, target, rows, points)

    async def set_base(self, projection: str, target: str, base: int, *, complete: bool) -> None:
        await self._writer.run(self._set_base, projection, target, _position(base), complete)

    # -- reads ------------------------------------------------------------------------------

    async def checkpoints(self, projection: str, target: str) -> Checkpoints:
        return await self._reader.run(self._checkpoints, projection, target)

    async def entries(self, projection: str, target: str) -> dict[EntryKey, Entry]:
        return await self._reader.run(self._entries, projection, target)

    async def select(self, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of a parameterised query (`{name:Type}` placeholders, bound by the engine)."""
        return await self._reader.run(self._select, sql, dict(parameters))

    def fact_table(self, projection: str, target: str, table: str) -> dict[str, str]:
        """The `db` and `table` identifiers of a target's fact table, as query parameters
        (`{db:Identifier}.{table:Identifier}`)."""
        if table not in self.tables:
            raise LookupError(f"no fact table {table!r}")
        return {"db": self.database, "table": _table_name(projection, target, table)}

    # -- the statements, run on a client's thread --------------------------------------------

    def _select(self, client: Any, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        result = client.query(sql, parameters={"db": self.database, **parameters})
        return list(result.result_rows)

    def _create_database(self, client: Any) -> None:
        client.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", {"db": self.database})
        for statement in _SHARED_TABLES:
            client.command(statement, {"db": self.database})

    def _routing(self, client: Any, projection: str) -> Routing:
        rows = self._select(client, _ROUTING, {"projection": projection})
        if not rows:
            return Routing(live=None)
        live, building = rows[0]
        return Routing(live=live or None, building=building or None)

    def _target(self, client: Any, projection: str, target: str) -> tuple[int, bool] | None:
        rows = self._select(client, _TARGET, {"projection": projection, "target": target})
        return None if not rows else (int(rows[0][0]), bool(rows[0][1]))

    def _require_target(self, client: Any, projection: str, target: str) -> tuple[int, bool]:
        found = self._target(client, projection, target)
        if found is None:
            raise LookupError(f"no target {target} for {projection}")
        return found

    def _next_version(self, client: Any, table: str, projection: str) -> int:
        rows = self._select(client, _LAST_VERSION, {"table": table, "projection": projection})
        return int(rows[0][0]) + 1

    def _write_routing(self, client: Any, projection: str, routing: Routing) -> None:
        version = self._next_version(client, "read_model_routing", projection)
        client.insert(
            "read_model_routing",
            [[projection, routing.live or "", routing.building or "", version]],
            database=self.database,
            column_names=["projection", "live", "building", "version"],
            column_type_names=["String", "String", "String", "UInt64"],
        )

    def _write_target(
        self, client: Any, projection: str, target: str, base: int, complete: bool, deleted: bool
    ) -> None:
        version = self._next_version(client, "read_model_targets", projection)
        client.insert(
            "read_model_targets",
            [[projection, target, base, int(complete), version, int(deleted)]],
            database=self.database,
            column_names=["projection", "target", "base", "complete", "version", "is_deleted"],
            column_type_names=["String", "String", "UInt64", "UInt8", "UInt64", "UInt8"],
        )

    def _create_target(self, client: Any, projection: str, target: str) -> None:
        names = _target_tables(projection, target, self.tables)
        if self._target(client, projection, target) is None:
            # Tables left by a drop that died half-way belong to no target: start afresh.
            self._drop_tables(client, names)
            for table in self.tables.values():
                client.command(
                    _fact_table_ddl(table), {"db": self.database, "table": names[table.name]}
                )
            client.command(
                "CREATE TABLE IF NOT EXISTS {db:Identifier}.{table:Identifier}"
                " (`partition` String, `position` UInt64)"
                " ENGINE = ReplacingMergeTree(position) ORDER BY `partition`",
                {"db": self.database, "table": names[CHECKPOINTS]},
            )
            self._write_target(client, projection, target, 0, False, deleted=False)
        current = self._routing(client, projection)
        self._write_routing(client, projection, Routing(live=current.live, building=target))

    def _promote(self, client: Any, projection: str, target: str) -> None:
        self._require_target(client, projection, target)
        self._write_routing(client, projection, Routing(live=target))

    def _drop_target(self, client: Any, projection: str, target: str) -> None:
        routing = self._routing(client, projection)
        if routing.live == target:
            raise ValueError(f"{target} is live: promote another target first")
        if self._target(client, projection, target) is not None:
            # The target vanishes for readers first; its tables go after.
            self._write_target(client, projection, target, 0, False, deleted=True)
        self._drop_tables(client, _target_tables(projection, target, self.tables))
        if routing.building == target:
            self._write_routing(client, projection, Routing(live=routing.live))

    def _drop_tables(self, client: Any, names: Mapping[str, str]) -> None:
        for name in names.values():
            client.command(
                "DROP TABLE IF EXISTS {db:Identifier}.{table:Identifier} SYNC",
                {"db": self.database, "table": name},
            )

    def _apply(
        self,
        client: Any,
        projection: str,
        target: str,
        rows: Mapping[str, list[list[Any]]],
        checkpoints: list[list[Any]],
    ) -> None:
        self._require_target(client, projection, target)
        names = _target_tables(projection, target, self.tables)
        for table_name, data in rows.items():
            table = self.tables[table_name]
            client.insert(
                names[table_name],
                data,
                database=self.database,
                column_names=[*table.column_names, "position"],
                column_type_names=[*(CLICKHOUSE_TYPES[c.kind] for c in table.columns), "UInt64"],
            )
        if checkpoints:
            client.insert(
                names[CHECKPOINTS],
                checkpoints,
                database=self.database,
                column_names=["partition", "position"],
                column_type_names=["String", "UInt64"],
            )

    def _set_base(
        self, client: Any, projection: str, target: str, base: int, complete: bool
    ) -> None:
        self._require_target(client, projection, target)
        self._write_target(client, projection, target, base, complete, deleted=False)

    def _checkpoints(self, client: Any, projection: str, target: str) -> Checkpoints:
        base, complete = self._require_target(client, projection, target)
        table = _table_name(projection, target, CHECKPOINTS)
        rows = self._select(client, _CHECKPOINTS, {"table": table})
        return Checkpoints(base, {p: int(position) for p, position in rows}, complete)

    def _entries(self, client: Any, projection: str, target: str) -> dict[EntryKey, Entry]:
        self._require_target(client, projection, target)
        entries: dict[EntryKey, Entry] = {}
        for table in self.tables.values():
            name = _table_name(projection, target, table.name)
            result = client.query(_ROWS, parameters={"db": self.database, "table": name})
            columns = result.column_names
            for values in result.result_rows:
                stored = dict(zip(columns, values, strict=True))
                position = int(stored.pop("position"))
                row = {c.name: _from_store(c.kind, stored[c.name]) for c in table.columns}
                key = tuple(str(row[name]) for name in table.key)
                entries[(table.name, "row", *key)] = Entry(row, position)
        return entries

    # -- checking writes --------------------------------------------------------------------

    def _rows_by_table(self, writes: Sequence[Write]) -> dict[str, list[list[Any]]]:
        """Each table's rows to insert, in the store's types: per key only the write that wins
        (the highest position; the last among equal ones), as the store would keep."""
        winners: dict[tuple[str, tuple[Any, ...]], tuple[int, list[Any]]] = {}
        for write in writes:
            operation = write.operation
            if not isinstance(operation, InsertRow):
                raise TypeError(f"not an analytics row: {operation!r}")
            table = self.tables.get(operation.table)
            if table is None:
                known = ", ".join(sorted(self.tables))
                raise ValueError(f"no fact table {operation.table!r} (known: {known})")
            values = [*_stored_values(table, operation, write.tenant_id), _position(write.position)]
            identity = (table.name, tuple(operation.key))
            current = winners.get(identity)
            if current is None or write.position >= current[0]:
                winners[identity] = (write.position, values)
        rows: dict[str, list[list[Any]]] = {}
        for (table_name, _), (_, values) in winners.items():
            rows.setdefault(table_name, []).append(values)
        return rows


def _stored_values(table: FactTable, row: InsertRow, tenant_id: str) -> list[Any]:
    """The row's values in column order, converted for the store; ValueError if the row does
    not fit the table (the columns, the key, the tenant, a value's type)."""
    if set(row.row) != set(table.column_names):
        missing = sorted(set(table.column_names) - set(row.row))
        unknown = sorted(set(row.row) - set(table.column_names))
        raise ValueError(f"{table.name} row: missing {missing}, unknown {unknown}")
    if tuple(row.key) != table.key_of(row.row):
        raise ValueError(f"{table.name} row: key {row.key!r} is not the row's {table.key}")
    if row.row["tenant"] != tenant_id:
        raise ValueError(f"{table.name} row of tenant {row.row['tenant']!r} in {tenant_id!r}")
    return [
        _to_store(table, column.name, column.kind, row.row[column.name]) for column in table.columns
    ]


def _to_store(table: FactTable, name: str, kind: ColumnKind, value: JsonValue) -> Any:
    if kind is ColumnKind.TIME and isinstance(value, str):
        return from_utc_text(value)
    if kind is ColumnKind.INT and type(value) is int and value in _INT64:
        return value
    if kind in (ColumnKind.TEXT, ColumnKind.LABEL) and isinstance(value, str):
        return value
    raise ValueError(f"{table.name}.{name} holds {kind.value} values, got {value!r}")


def _from_store(kind: ColumnKind, value: Any) -> JsonValue:
    if kind is ColumnKind.TIME:
        moment: datetime = value
        # clickhouse-connect gives UTC columns back as naive datetimes in UTC.
        return utc_text(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    if kind is ColumnKind.INT:
        return int(value)
    return str(value)


def _position(position: int) -> int:
    if type(position) is not int or position not in _UINT64:
        raise ValueError(f"a position is an unsigned 64-bit integer, got {position!r}")
    return position


def _checked_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"a {what} name is letters, digits and '_', got {name!r}")
    return name


def _table_name(projection: str, target: str, table: str) -> str:
    return f"{_checked_name(projection, 'projection')}__{_checked_name(target, 'target')}__{table}"


def _target_tables(projection: str, target: str, tables: Mapping[str, FactTable]) -> dict[str, str]:
    """Every table of a target (its fact tables and checkpoints): name → table name."""
    return {name: _table_name(projection, target, name) for name in [*tables, CHECKPOINTS]}


def _fact_table_ddl(table: FactTable) -> str:
    """The CREATE statement of a fact table (`{db:Identifier}.{table:Identifier}` bound)."""
    columns = ", ".join(f"`{c.name}` {CLICKHOUSE_TYPES[c.kind]}" for c in table.columns)
    key = ", ".join(f"`{name}`" for name in table.key)
    return (
        "CREATE TABLE IF NOT EXISTS {db:Identifier}.{table:Identifier}"
        f" ({columns}, `position` UInt64)"
        " ENGINE = ReplacingMergeTree(position)"
        f" PARTITION BY toYYYYMM(`{table.time_column}`) ORDER BY ({key})"
    )
