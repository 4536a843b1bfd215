"""`mercato bench append`: how fast Mercato's Postgres event store appends, side by side with the
stock `eventsourcing` Postgres recorder and with raw asyncpg, in one run and one fresh database.

Scenarios (every one stores the same JSON payload size, after a warm-up at the same concurrency):

- ``mercato.new-streams`` — `PostgresEventStore.append` of one event to a new stream
  (`NO_STREAM`) by 1/8/16 asyncio tasks sharing one store, as request handlers of one API process
  do; ``mercato.hot-stream`` — one writer appending to one stream with exact expected versions;
  ``mercato.batched`` — 100 events per append to new streams by 1 and 8 tasks.
- ``stock.*`` — the same work through `eventsourcing.postgres.PostgresApplicationRecorder`
  (built by the `PERSISTENCE_MODULE=eventsourcing.postgres` infrastructure factory, as an
  `eventsourcing` application would), `insert_events([StoredEvent])` from 1/8/16 threads (it is a
  synchronous library).
- ``raw.*`` — the physical yardsticks on a table of similar width (uuid, text, bigint, bytea):
  ``raw.txn`` BEGIN + one INSERT + COMMIT per call on 1/8/16 connections, ``raw.autocommit``
  one bare INSERT per call, ``raw.executemany`` 100 rows per transaction, ``raw.copy`` one COPY.

Events/s is events ÷ wall time of the measured phase; latency is `time.perf_counter()` around each
call. Nothing here asserts a figure: the goals are evaluated and reported.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from rich.table import Table

from application.ports.event_store import NO_STREAM, EventMetadata, NewEvent
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.postgres_databases import throwaway_database
from mercato_bench import report
from mercato_bench.database import dsn_parts, new_database_name

T = TypeVar("T")

SYSTEMS = ("mercato", "stock", "raw")
LIBRARIES = ("eventsourcing", "asyncpg", "psycopg", "psycopg-pool", "uvloop")
EVENT_TYPE = "BenchAppended"
STOCK_TOPIC = "mercato_bench.append:BenchAppended"
RAW_TABLE = "bench_raw_events"
RAW_COPY_TABLE = "bench_raw_copy"
RAW_COLUMNS = ("event_id", "stream_id", "version", "payload")
RAW_INSERT = (
    f"INSERT INTO {RAW_TABLE} (event_id, stream_id, version, payload) VALUES ($1, $2, $3, $4)"
)
RAW_SCHEMA = f"""
CREATE TABLE {RAW_TABLE} (
    event_id  uuid   NOT NULL,
    stream_id text   NOT NULL,
    version   bigint NOT NULL,
    payload   bytea  NOT NULL,
    PRIMARY KEY (stream_id, version)
);
CREATE TABLE {RAW_COPY_TABLE} (LIKE {RAW_TABLE} INCLUDING ALL);
"""

WORKLOADS = {
    "new-streams": "1 event/call, new stream each",
    "hot-stream": "1 event/call, one stream, exact version",
    "batched": "{batch} events/call, new stream each",
    "txn": "BEGIN; INSERT 1 row; COMMIT",
    "autocommit": "INSERT 1 row (autocommit)",
    "executemany": "BEGIN; executemany {batch} rows; COMMIT",
    "copy": "COPY {rows} rows in one call",
}


@dataclass(frozen=True)
class AppendSettings:
    """What one run measures. `None` sizes derive from `events` (see `resolved`)."""

    events: int = 20_000
    """Events per single-event scenario (measured, after the warm-up)."""
    batch_events: int | None = None
    """Events per batched scenario; default 5 x `events` (batches are ~50x faster per event)."""
    warmup: int | None = None
    """Calls before each measurement, at the same concurrency; default events ÷ 20, 20…500."""
    writers: tuple[int, ...] = (1, 8, 16)
    batch_writers: tuple[int, ...] = (1, 8)
    batch_size: int = 100
    payload_bytes: int = 200
    copy_rows: int | None = None
    """Rows of the COPY yardstick; default 5 x `events`; 0 skips it."""
    systems: tuple[str, ...] = SYSTEMS
    store_writers: int = 8
    """`PostgresEventStore(writers=…)`: writer tasks grouping concurrent appends."""
    store_max_batch_events: int = 500
    """`PostgresEventStore(max_batch_events=…)`: events one grouped statement may carry."""
    store_pool_size: int = 16
    """`PostgresEventStore.connect(max_size=…)`."""
    checkpoint: bool = True
    """CHECKPOINT before each scenario, so each starts from the same WAL state."""

    def resolved(self) -> AppendSettings:
        if self.events < 1 or self.batch_size < 1 or self.payload_bytes < 16:
            raise ValueError("events and batch size must be positive, payload at least 16 bytes")
        if not self.writers or min(self.writers) < 1 or min(self.batch_writers or (1,)) < 1:
            raise ValueError("writer counts must be positive")
        unknown = set(self.systems) - set(SYSTEMS)
        if unknown:
            raise ValueError(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
        batch_events = self.batch_events or 5 * self.events
        batch_events = max(self.batch_size, batch_events - batch_events % self.batch_size)
        warmup = self.warmup if self.warmup is not None else min(500, max(20, self.events // 20))
        return AppendSettings(
            events=self.events,
            batch_events=batch_events,
            warmup=warmup,
            writers=tuple(sorted(set(self.writers))),
            batch_writers=tuple(sorted(set(self.batch_writers))),
            batch_size=self.batch_size,
            payload_bytes=self.payload_bytes,
            copy_rows=5 * self.events if self.copy_rows is None else self.copy_rows,
            systems=tuple(system for system in SYSTEMS if system in self.systems),
            store_writers=self.store_writers,
            store_max_batch_events=self.store_max_batch_events,
            store_pool_size=self.store_pool_size,
            checkpoint=self.checkpoint,
        )


def make_payload(size: int) -> bytes:
    """A JSON object of exactly `size` bytes, shaped like a small commerce event."""
    head = {"order_id": str(uuid.UUID(int=42)), "amount_cents": 129900, "currency": "EUR"}
    text = json.dumps({**head, "note": ""}, separators=(",", ":"))
    padding = size - len(text)
    if padding < 0:
        raise ValueError(f"payload must be at least {len(text)} bytes")
    return json.dumps({**head, "note": "x" * padding}, separators=(",", ":")).encode()


# -- drivers: run `calls` calls over `writers` concurrent workers, timing each call ------------


async def drive_tasks(
    writers: int,
    calls: int,
    prepare: Callable[[int], T],
    call: Callable[[int, T], Awaitable[object]],
) -> tuple[float, list[float]]:
    """`writers` asyncio tasks take call numbers from one counter until `calls` are done.
    `prepare(n)` builds call n's input outside the timed part; `call(worker, input)` is timed."""
    counter = itertools.count()
    latencies: list[float] = []
    clock = time.perf_counter

    async def worker(index: int) -> None:
        while (number := next(counter)) < calls:
            item = prepare(number)
            start = clock()
            await call(index, item)
            latencies.append(clock() - start)

    begin = clock()
    await asyncio.gather(*(worker(index) for index in range(writers)))
    return clock() - begin, latencies


def drive_threads(
    writers: int,
    calls: int,
    prepare: Callable[[int], T],
    call: Callable[[T], object],
) -> tuple[float, list[float]]:
    """The same for synchronous libraries: `writers` threads, started together."""
    counter = itertools.count()
    lock = threading.Lock()
    per_thread: list[list[float]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []
    start_line = threading.Barrier(writers + 1)
    clock = time.perf_counter

    def worker(latencies: list[float]) -> None:
        start_line.wait()
        try:
            while True:
                with lock:
                    number = next(counter)
                if number >= calls:
                    return
                item = prepare(number)
                start = clock()
                call(item)
                latencies.append(clock() - start)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(lst,), daemon=True) for lst in per_thread]
    for thread in threads:
        thread.start()
    start_line.wait()
    begin = clock()
    for thread in threads:
        thread.join()
    wall = clock() - begin
    if errors:
        raise errors[0]
    return wall, [latency for latencies in per_thread for latency in latencies]


# -- the systems under test --------------------------------------------------------------------


class _Run:
    """One benchmark run: the clients of the three systems on one fresh database."""

    def __init__(
        self, dsn: str, settings: AppendSettings, on_progress: Callable[[str], None]
    ) -> None:
        self.dsn = dsn
        self.settings = settings
        self.on_progress = on_progress
        self.payload = make_payload(settings.payload_bytes)
        self.metadata = EventMetadata(tenant_id="bench", correlation_id=uuid.uuid4())
        self.measurements: list[report.Measurement] = []
        self.checkpoints_skipped = False
        self._admin: asyncpg.Connection | None = None

    async def run(self) -> None:
        s = self.settings
        self._admin = await asyncpg.connect(self.dsn)
        try:
            store = await self._mercato() if "mercato" in s.systems else None
            stock = await asyncio.to_thread(self._stock) if "stock" in s.systems else None
            raw = await self._raw() if "raw" in s.systems else None
            try:
                for writers in s.writers:
                    if raw is not None:
                        await self._raw_single(raw, writers, autocommit=False)
                        await self._raw_single(raw, writers, autocommit=True)
                    if stock is not None:
                        await self._stock_new_streams(stock, writers)
                    if store is not None:
                        await self._mercato_new_streams(store, writers)
                if stock is not None:
                    await self._stock_hot_stream(stock)
                if store is not None:
                    await self._mercato_hot_stream(store)
                for writers in s.batch_writers:
                    if raw is not None:
                        await self._raw_executemany(raw, writers)
                    if stock is not None:
                        await self._stock_batched(stock, writers)
                    if store is not None:
                        await self._mercato_batched(store, writers)
                if raw is not None and s.copy_rows:
                    await self._raw_copy(raw)
            finally:
                if store is not None:
                    await store.close()
                if stock is not None:
                    await asyncio.to_thread(stock.close)
                if raw is not None:
                    await raw.close()
        finally:
            await self._admin.close()

    async def _before_scenario(self) -> None:
        if not self.settings.checkpoint or self.checkpoints_skipped:
            return
        assert self._admin is not None
        try:
            await self._admin.execute("CHECKPOINT")
        except asyncpg.exceptions.InsufficientPrivilegeError:
            self.checkpoints_skipped = True

    def _record(self, measurement: report.Measurement) -> None:
        self.measurements.append(measurement)
        summary = report.latency_summary(measurement.latencies)
        latency = f", p50 {summary['p50']:.2f} ms, p99 {summary['p99']:.2f} ms" if summary else ""
        self.on_progress(
            f"{measurement.scenario} x{measurement.writers}: {measurement.events:,} events in "
            f"{measurement.wall_seconds:.2f} s → {measurement.events_per_second:,.0f} events/s"
            f"{latency}"
        )

    async def _measure_tasks(
        self,
        scenario: str,
        workload: str,
        writers: int,
        events_per_call: int,
        calls: int,
        prepare: Callable[[int], T],
        call: Callable[[int, T], Awaitable[object]],
    ) -> None:
        warmup = self.settings.warmup or 0
        await drive_tasks(writers, warmup, prepare, call)
        await self._before_scenario()
        wall, latencies = await drive_tasks(writers, calls, lambda n: prepare(warmup + n), call)
        self._record(
            report.Measurement(
                scenario, scenario.split(".")[0], workload, writers,
                calls * events_per_call, calls, wall, latencies,
            )
        )  # fmt: skip

    async def _measure_threads(
        self,
        scenario: str,
        workload: str,
        writers: int,
        events_per_call: int,
        calls: int,
        prepare: Callable[[int], T],
        call: Callable[[T], object],
    ) -> None:
        warmup = self.settings.warmup or 0
        await asyncio.to_thread(drive_threads, writers, warmup, prepare, call)
        await self._before_scenario()
        wall, latencies = await asyncio.to_thread(
            drive_threads, writers, calls, lambda n: prepare(warmup + n), call
        )
        self._record(
            report.Measurement(
                scenario, "stock", workload, writers,
                calls * events_per_call, calls, wall, latencies,
            )
        )  # fmt: skip

    # Mercato ---------------------------------------------------------------------------------

    async def _mercato(self) -> PostgresEventStore:
        s = self.settings
        return await PostgresEventStore.connect(
            self.dsn,
            min_size=min(2, s.store_pool_size),
            max_size=s.store_pool_size,
            writers=s.store_writers,
            max_batch_events=s.store_max_batch_events,
        )

    async def _mercato_new_streams(self, store: PostgresEventStore, writers: int) -> None:
        event = [NewEvent(EVENT_TYPE, self.payload)]

        async def append(_: int, stream_id: str) -> object:
            return await store.append(stream_id, event, NO_STREAM, metadata=self.metadata)

        await self._measure_tasks(
            "mercato.new-streams", "new-streams", writers, 1, self.settings.events,
            _new_stream_id, append,
        )  # fmt: skip

    async def _mercato_hot_stream(self, store: PostgresEventStore) -> None:
        stream_id = _new_stream_id(0)
        event = [NewEvent(EVENT_TYPE, self.payload)]

        async def append(_: int, expected: int) -> object:
            return await store.append(stream_id, event, expected, metadata=self.metadata)

        await self._measure_tasks(
            "mercato.hot-stream", "hot-stream", 1, 1, self.settings.events,
            lambda n: n, append,
        )  # fmt: skip

    async def _mercato_batched(self, store: PostgresEventStore, writers: int) -> None:
        size = self.settings.batch_size
        payload = self.payload

        def prepare(_: int) -> tuple[str, list[NewEvent]]:
            return _new_stream_id(0), [NewEvent(EVENT_TYPE, payload) for _ in range(size)]

        async def append(_: int, item: tuple[str, list[NewEvent]]) -> object:
            return await store.append(item[0], item[1], NO_STREAM, metadata=self.metadata)

        await self._measure_tasks(
            "mercato.batched", "batched", writers, size, self._batch_calls(), prepare, append
        )

    # stock eventsourcing ---------------------------------------------------------------------

    def _stock(self) -> Any:
        """The stock recorder as `eventsourcing` builds it from its environment variables."""
        from eventsourcing.persistence import InfrastructureFactory
        from eventsourcing.utils import Environment

        parts = dsn_parts(self.dsn)
        pool = self._most_writers()
        env = Environment(
            "bench",
            {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": parts.dbname,
                "POSTGRES_HOST": parts.host,
                "POSTGRES_PORT": str(parts.port),
                "POSTGRES_USER": parts.user,
                "POSTGRES_PASSWORD": parts.password,
                "POSTGRES_POOL_SIZE": str(pool),  # one connection per thread: no pool waits
                "POSTGRES_MAX_OVERFLOW": "0",
                "POSTGRES_CONNECT_TIMEOUT": "10",  # fail sooner if the server goes away
            },
        )
        return _StockRecorder(InfrastructureFactory.construct(env))

    async def _stock_new_streams(self, stock: _StockRecorder, writers: int) -> None:
        payload = self.payload
        await self._measure_threads(
            "stock.new-streams", "new-streams", writers, 1, self.settings.events,
            lambda _: [stock.stored_event(uuid.uuid4(), 1, payload)], stock.insert,
        )  # fmt: skip

    async def _stock_hot_stream(self, stock: _StockRecorder) -> None:
        originator, payload = uuid.uuid4(), self.payload
        await self._measure_threads(
            "stock.hot-stream", "hot-stream", 1, 1, self.settings.events,
            lambda n: [stock.stored_event(originator, n + 1, payload)], stock.insert,
        )  # fmt: skip

    async def _stock_batched(self, stock: _StockRecorder, writers: int) -> None:
        size, payload = self.settings.batch_size, self.payload

        def prepare(_: int) -> list[Any]:
            originator = uuid.uuid4()
            return [stock.stored_event(originator, v, payload) for v in range(1, size + 1)]

        await self._measure_threads(
            "stock.batched", "batched", writers, size, self._batch_calls(), prepare, stock.insert
        )

    # raw asyncpg -----------------------------------------------------------------------------

    async def _raw(self) -> asyncpg.Pool:
        await _execute(self.dsn, RAW_SCHEMA)
        size = self._most_writers()
        pool = await asyncpg.create_pool(self.dsn, min_size=size, max_size=size)
        assert pool is not None
        return pool

    async def _raw_single(self, pool: asyncpg.Pool, writers: int, *, autocommit: bool) -> None:
        payload = self.payload
        async with _HeldConnections(pool, writers) as connections:

            async def insert(worker: int, stream_id: str) -> object:
                connection = connections[worker]
                if autocommit:
                    return await connection.execute(RAW_INSERT, uuid.uuid4(), stream_id, 1, payload)
                async with connection.transaction():
                    return await connection.execute(RAW_INSERT, uuid.uuid4(), stream_id, 1, payload)

            workload = "autocommit" if autocommit else "txn"
            await self._measure_tasks(
                f"raw.{workload}", workload, writers, 1, self.settings.events,
                _new_stream_id, insert,
            )  # fmt: skip

    async def _raw_executemany(self, pool: asyncpg.Pool, writers: int) -> None:
        size, payload = self.settings.batch_size, self.payload

        def prepare(_: int) -> list[tuple[uuid.UUID, str, int, bytes]]:
            stream_id = _new_stream_id(0)
            return [(uuid.uuid4(), stream_id, v, payload) for v in range(1, size + 1)]

        async with _HeldConnections(pool, writers) as connections:

            async def insert(worker: int, rows: list[tuple[uuid.UUID, str, int, bytes]]) -> None:
                connection = connections[worker]
                async with connection.transaction():
                    await connection.executemany(RAW_INSERT, rows)

            await self._measure_tasks(
                "raw.executemany", "executemany", writers, size, self._batch_calls(),
                prepare, insert,
            )  # fmt: skip

    async def _raw_copy(self, pool: asyncpg.Pool) -> None:
        rows_count = self.settings.copy_rows or 0
        stream_id, payload = _new_stream_id(0), self.payload
        rows = [(uuid.uuid4(), stream_id, v, payload) for v in range(1, rows_count + 1)]
        await self._before_scenario()
        async with pool.acquire() as connection:
            start = time.perf_counter()
            await connection.copy_records_to_table(
                RAW_COPY_TABLE, records=rows, columns=list(RAW_COLUMNS)
            )
            wall = time.perf_counter() - start
        self._record(
            report.Measurement(
                "raw.copy", "raw", "copy", 1, rows_count, 1, wall,
                notes="one COPY call: no per-call latency distribution",
            )
        )  # fmt: skip

    def _most_writers(self) -> int:
        return max((*self.settings.writers, *self.settings.batch_writers))

    def _batch_calls(self) -> int:
        return (self.settings.batch_events or 0) // self.settings.batch_size


class _StockRecorder:
    """The stock `eventsourcing` application recorder (untyped library) behind typed calls."""

    def __init__(self, factory: Any) -> None:
        from eventsourcing.persistence import StoredEvent

        self._factory = factory
        self._recorder = factory.application_recorder()  # creates its table
        self._stored_event = StoredEvent

    def stored_event(self, originator_id: uuid.UUID, version: int, state: bytes) -> object:
        return self._stored_event(
            originator_id=originator_id, originator_version=version, topic=STOCK_TOPIC, state=state
        )

    def insert(self, stored_events: list[Any]) -> None:
        self._recorder.insert_events(stored_events)

    def close(self) -> None:
        self._factory.close()


class _HeldConnections:
    """Hold `count` connections of `pool` for one scenario (each worker keeps its own)."""

    def __init__(self, pool: asyncpg.Pool, count: int) -> None:
        self._pool, self._count = pool, count
        self._held: list[Any] = []

    async def __aenter__(self) -> list[Any]:
        self._held = [await self._pool.acquire() for _ in range(self._count)]
        return self._held

    async def __aexit__(self, *_: object) -> None:
        for connection in self._held:
            await self._pool.release(connection)


def _new_stream_id(_: int) -> str:
    return f"bench-{uuid.uuid4().hex}"


async def _execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


# -- ratios, goals, table ----------------------------------------------------------------------

_RATIO_BASES: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    # (system, workload) -> [(ratio name, baseline scenario, baseline at 1 writer?)]
    ("mercato", "new-streams"): [
        ("vs_stock", "stock.new-streams", False),
        ("vs_raw_txn", "raw.txn", False),
    ],
    ("mercato", "hot-stream"): [
        ("vs_stock", "stock.hot-stream", True),
        ("vs_raw_txn", "raw.txn", True),
    ],
    ("mercato", "batched"): [
        ("vs_stock", "stock.batched", False),
        ("vs_raw_executemany", "raw.executemany", False),
    ],
    ("stock", "new-streams"): [("vs_raw_txn", "raw.txn", False)],
    ("stock", "hot-stream"): [("vs_raw_txn", "raw.txn", True)],
    ("stock", "batched"): [("vs_raw_executemany", "raw.executemany", False)],
    ("raw", "autocommit"): [("vs_raw_txn", "raw.txn", False)],
}


def with_ratios(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each scenario's rate divided by its yardsticks' at the same writer count."""
    rates = {(s["scenario"], s["writers"]): s["events_per_second"] for s in scenarios}
    for scenario in scenarios:
        ratios: dict[str, float | None] = {}
        for name, base, single in _RATIO_BASES.get((scenario["system"], scenario["workload"]), []):
            base_rate = rates.get((base, 1 if single else scenario["writers"]))
            ratios[name] = (
                round(scenario["events_per_second"] / base_rate, 3) if base_rate else None
            )
        scenario["ratios"] = ratios
    return scenarios


def _find(scenarios: list[dict[str, Any]], name: str, writers: int) -> dict[str, Any] | None:
    return next((s for s in scenarios if s["scenario"] == name and s["writers"] == writers), None)


def evaluate_goals(scenarios: list[dict[str, Any]]) -> list[report.Goal]:
    """The acceptance goals of the event store (issue 3), measured in this run."""
    at16 = _find(scenarios, "mercato.new-streams", 16)
    at8 = _find(scenarios, "mercato.new-streams", 8)
    batched = [s for s in scenarios if s["scenario"] == "mercato.batched"]
    widest_batch = max(batched, key=lambda s: s["writers"]) if batched else None

    def ratio(scenario: dict[str, Any] | None, name: str) -> float | None:
        return None if scenario is None else scenario["ratios"].get(name)

    batch_writers = widest_batch["writers"] if widest_batch else 8
    return [
        report.Goal(
            "Mercato ÷ stock eventsourcing, 16 writers",
            ratio(at16, "vs_stock"), 10.0, unit="x",
        ),
        report.Goal(
            "Mercato ÷ raw BEGIN/INSERT/COMMIT, 16 writers",
            ratio(at16, "vs_raw_txn"), 1.0, unit="x",
        ),
        report.Goal(
            "Mercato p99 single-event append, 8 writers",
            None if at8 is None else at8["latency_ms"].get("p99"),
            10.0, higher_is_better=False, unit=" ms",
        ),
        report.Goal(
            f"Mercato batched ÷ raw executemany, {batch_writers} writers",
            ratio(widest_batch, "vs_raw_executemany"), 0.8, unit="x",
        ),
    ]  # fmt: skip


def results_table(result: dict[str, Any]) -> Table:
    s = result["settings"]
    rows = []
    for scenario in result["scenarios"]:
        latency = scenario["latency_ms"]
        ratios = scenario["ratios"]
        workload = WORKLOADS[scenario["workload"]].format(
            batch=s["batch_size"], rows=f"{scenario['events']:,}"
        )
        rows.append(
            (
                scenario["scenario"],
                workload,
                str(scenario["writers"]),
                report.format_rate(scenario["events_per_second"]),
                report.format_ms(latency.get("p50")),
                report.format_ms(latency.get("p99")),
                report.format_ms(latency.get("p99.9")),
                report.format_ratio(ratios.get("vs_stock")),
                report.format_ratio(ratios.get("vs_raw_txn")),
                report.format_ratio(ratios.get("vs_raw_executemany")),
            )
        )
    title = (
        f"Appends, {s['payload_bytes']}-byte payloads, {s['events']:,} events per single-event "
        f"scenario, {s['batch_events']:,} per batched one "
        f"(store writers={s['store_writers']}, max_batch_events={s['store_max_batch_events']})"
    )
    headers = (
        "scenario", "workload", "writers", "events/s", "p50 ms", "p99 ms", "p99.9 ms",
        "x stock", "x raw txn", "x raw executemany",
    )  # fmt: skip
    return report.table(title, headers, rows)


# -- entry point -------------------------------------------------------------------------------


async def run_append_benchmark(
    dsn: str,
    events: int = 20_000,
    writers: Sequence[int] = (1, 8, 16),
    *,
    batch_writers: Sequence[int] = (1, 8),
    batch_size: int = 100,
    batch_events: int | None = None,
    warmup: int | None = None,
    payload_bytes: int = 200,
    copy_rows: int | None = None,
    systems: Sequence[str] = SYSTEMS,
    store_writers: int = 8,
    store_max_batch_events: int = 500,
    store_pool_size: int = 16,
    checkpoint: bool = True,
    results_dir: Path | None = None,
    on_progress: Callable[[str], None] = report.progress,
) -> dict[str, Any]:
    """Run every append scenario in a fresh database next to `dsn`'s (dropped afterwards) and
    return the result: machine, settings, one entry per scenario with its ratios, and the goals.
    With `results_dir`, also write `append-<UTC timestamp>.json` and `append-latest.json` there
    (the path is under "result_file")."""
    settings = AppendSettings(
        events=events,
        batch_events=batch_events,
        warmup=warmup,
        writers=tuple(writers),
        batch_writers=tuple(batch_writers),
        batch_size=batch_size,
        payload_bytes=payload_bytes,
        copy_rows=copy_rows,
        systems=tuple(systems),
        store_writers=store_writers,
        store_max_batch_events=store_max_batch_events,
        store_pool_size=store_pool_size,
        checkpoint=checkpoint,
    ).resolved()
    started = datetime.now(UTC)
    load_at_start = report.load_average()
    loop_type = type(asyncio.get_running_loop())
    async with throwaway_database(dsn, new_database_name()) as bench_dsn:
        database = dsn_parts(bench_dsn).dbname
        on_progress(
            f"benchmark database {database} created; systems: {', '.join(settings.systems)}"
        )
        postgres = await report.postgres_info(bench_dsn)
        run = _Run(bench_dsn, settings, on_progress)
        await run.run()
    on_progress(f"benchmark database {database} dropped")
    finished = datetime.now(UTC)
    scenarios = with_ratios([m.as_dict() for m in run.measurements])
    goals = evaluate_goals(scenarios)
    result: dict[str, Any] = {
        **report.result_header(
            "append",
            started=started,
            finished=finished,
            database=database,
            server_dsn=dsn,
            load_at_start=load_at_start,
            postgres=postgres,
            libraries=LIBRARIES,
        ),
        "settings": {
            **asdict(settings),
            "event_loop": f"{loop_type.__module__}.{loop_type.__qualname__}",
            "checkpoints_skipped": run.checkpoints_skipped,
            "payload_example": make_payload(settings.payload_bytes).decode(),
        },
        "scenarios": scenarios,
        "goals": [goal.as_dict() for goal in goals],
        "charts": append_charts(run.measurements),
    }
    if results_dir is not None:
        result["result_file"] = str(report.write_result("append", result, results_dir))
    return result


def append_charts(measurements: Sequence[report.Measurement]) -> list[dict[str, Any]]:
    """Latency per call of the single-event scenarios at the most writers, and events/s of
    every single-event scenario at that count."""
    single = [m for m in measurements if m.workload in ("new-streams", "txn", "autocommit")]
    if not single:
        return []
    widest = max(m.writers for m in single)
    at_widest = [m for m in single if m.writers == widest]
    return [
        report.chart(
            "append-latency",
            f"Append latency per call, {widest} writers",
            "quantiles",
            {m.scenario: report.quantile_curve(m.latencies) for m in at_widest if m.latencies},
        ),
        report.chart(
            "append-throughput",
            f"Events per second, {widest} writers",
            "bars",
            {m.scenario: [[m.events_per_second]] for m in at_widest},
            y_label="events/s",
        ),
    ]


goals_of = report.saved_goals
"""Rebuild the goals of a result (for printing)."""


__all__ = [
    "AppendSettings",
    "drive_tasks",
    "drive_threads",
    "evaluate_goals",
    "goals_of",
    "make_payload",
    "results_table",
    "run_append_benchmark",
    "with_ratios",
]
