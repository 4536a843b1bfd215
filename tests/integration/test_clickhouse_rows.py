"""The analytics row sinks against their contract: the in-memory reference and ClickHouse
(on the chdb engine, in this process's folder, a database per test); then what only the
ClickHouse sink has: its table layout, state shared by every client of the database, and one
chdb folder per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from application.ports.read_model_sink import Checkpoints, ReadModelSink, Routing
from application.read_models.memory_sink import InMemorySink
from infrastructure.read_models.clickhouse_engine import (
    ChdbFolderConflictError,
    ChdbFolderInUseError,
    chdb_folder,
    refuse_if_locked,
)
from infrastructure.read_models.clickhouse_rows import ClickHouseRowSink
from infrastructure.settings import load_settings
from tests.contract.read_model_sink_contract import created, live, new_projection
from tests.contract.row_sink_contract import (
    CONTRACT_TABLES,
    RowSinkContract,
    RowStoreContract,
    move,
    sale,
    sale_entry,
)

pytestmark = pytest.mark.integration


async def open_sink(database: str | None = None) -> ClickHouseRowSink:
    settings = load_settings()
    return await ClickHouseRowSink.connect(
        settings.clickhouse_target,
        database=database or settings.clickhouse_database,
        tables=CONTRACT_TABLES,
    )


@pytest.fixture
async def clickhouse_sink() -> AsyncIterator[ClickHouseRowSink]:
    sink = await open_sink()
    yield sink
    await sink.close()


class TestInMemoryRowSink(RowSinkContract):
    @pytest.fixture
    async def sink(self) -> AsyncIterator[ReadModelSink]:
        yield InMemorySink()


class TestClickHouseRowSink(RowStoreContract):
    @pytest.fixture
    async def sink(self, clickhouse_sink: ClickHouseRowSink) -> AsyncIterator[ReadModelSink]:
        yield clickhouse_sink


# -- ClickHouse only ------------------------------------------------------------------------


async def test_fact_tables_replace_by_position_are_keyed_by_tenant_first_and_split_by_month(
    clickhouse_sink: ClickHouseRowSink,
) -> None:
    projection = new_projection()
    target = await created(clickhouse_sink, projection)

    rows = await clickhouse_sink.select(
        "SELECT engine_full FROM system.tables"
        " WHERE database = {db:String} AND name = {table:String}",
        clickhouse_sink.fact_table(projection, target, "sales"),
    )

    [(engine,)] = rows
    assert engine.startswith("ReplacingMergeTree(position) PARTITION BY toYYYYMM(at)")
    assert "ORDER BY (tenant, order_id, line_no)" in engine


async def test_every_client_of_the_database_sees_the_same_routing_rows_and_checkpoints(
    clickhouse_sink: ClickHouseRowSink,
) -> None:
    projection = new_projection()
    first = await live(clickhouse_sink, projection, 1)
    write = sale("o1", 4)
    await clickhouse_sink.apply(projection, first, [write, move("o1", 5)], {"p0": 5})
    second = await created(clickhouse_sink, projection, 2)

    other = await open_sink()
    try:
        assert await other.routing(projection) == Routing(live=first, building=second)
        assert await other.targets(projection) == [first, second]
        assert await other.checkpoints(projection, first) == Checkpoints(0, {"p0": 5}, False)
        assert sale_entry(write) in (await other.entries(projection, first)).items()
        await other.promote(projection, second)
    finally:
        await other.close()

    assert await clickhouse_sink.routing(projection) == Routing(live=second)


async def test_databases_keep_their_read_models_apart(clickhouse_sink: ClickHouseRowSink) -> None:
    projection = new_projection()
    target = await live(clickhouse_sink, projection)
    await clickhouse_sink.apply(projection, target, [sale("o1", 1)], {"p0": 1})

    other = await open_sink(f"{clickhouse_sink.database}_other")
    try:
        assert await other.routing(projection) == Routing(live=None)
        assert await other.targets(projection) == []
    finally:
        await other.close()


async def test_a_second_chdb_folder_in_the_same_process_is_refused_naming_both(
    tmp_path: Path,
) -> None:
    elsewhere = chdb_folder(f"chdb://{tmp_path}")
    opened = await open_sink()  # the process's folder (the tests' one)
    try:
        with pytest.raises(ChdbFolderConflictError) as refused:
            await ClickHouseRowSink.connect(f"chdb://{tmp_path}", database="elsewhere")
    finally:
        await opened.close()

    folder = chdb_folder(load_settings().clickhouse_target)
    assert refused.value.opened == folder
    assert refused.value.asked == elsewhere
    assert f"{folder}" in str(refused.value) and f"{elsewhere}" in str(refused.value)


@contextmanager
def chdb_folder_held(folder: Path) -> Iterator[Path]:
    """`folder` opened by chdb in a child process until the block ends (as a running
    `mercato serve` holds its data dir's engine)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, clickhouse_connect
                client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
                print("ready", flush=True)
                sys.stdin.read()
                """
            ),
            str(folder),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield folder
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_folder_another_process_holds_is_recognised(tmp_path: Path) -> None:
    with (
        chdb_folder_held(tmp_path / "held") as held,
        pytest.raises(ChdbFolderInUseError, match="in use by another process"),
    ):
        refuse_if_locked(str(held))
    free = tmp_path / "free"
    free.mkdir()
    refuse_if_locked(str(free))  # nobody holds it (no status file yet)
