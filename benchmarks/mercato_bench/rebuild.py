"""`mercato bench` scenario "rebuild": blue/green rebuilds of every read model over a seeded store.

The data set. `SeededDataSet` is one fresh Postgres database (services profile) holding a
generated marketplace (`mercato_bench.seed`: ~1,000,000 events, ~20,000 quick) plus one
`BenchEnvironment` namespace (Redis key prefix, Elasticsearch index prefix, chdb folder, Kafka
topic prefix). The rebuild scenario fills the read models from it; the queries scenario
(`mercato_bench.queries`) then serves those read models. Within one `mercato bench` run the
two share it:

    data = await open_data_set(quick=quick, dsn=dsn)       # seeds (timed: events/s, COPY/s)
    try:
        rebuild = await run_rebuild_benchmark(quick=quick, results_dir=d, dsn=dsn, data=data)
        queries = await run_queries_benchmark(quick=quick, results_dir=d, dsn=dsn, data=data)
    finally:
        await data.close()     # drops the database, Redis keys, indexes, topics, chdb folder

(`async with seeded_data_set(...) as data:` does the same.) Called without `data`, each
scenario seeds and cleans up its own; `run_queries_benchmark` then rebuilds first (untimed).

What is measured. Each read-model store is rebuilt by a child process of its own (`python -m
mercato_bench.rebuild --store views|search|analytics`, with the scenario's settings), which
runs exactly what `mercato projections rebuild NAME` runs — `bootstrap(settings)`, then
`projections.rebuild.rebuild(applier, store, options)` — for each projection of that store in
turn. A child process, not the bench process, because chdb locks its folder to one process (the
API needs it next) and a process can open only one chdb folder; and so each store's peak RSS is
its own. Per projection: events applied and the *build* phase's wall time (from the start to the
last batch before the swap: the read-and-apply rate), plus the whole rebuild's time (swap and a
settle grace of `GRACE` s, shorter than the CLI's 3 s — no live worker runs here, the routing
cache is 1 s). Per store: the events of its projections over the sum of their build times.
Dead letters: each projection's parked streams after its rebuild (expected: none).

Yardsticks (in the bench process): the store's read API (`PostgresEventStore.read_all`, 5,000 a
batch — what a rebuild reads) over the whole log, without and with decoding each event
(`EventSerializer.to_domain_event`), and a raw `COPY (SELECT … ORDER BY position) TO STDOUT`.

When a store misses the goal (full mode only), its slowest projection is profiled: another child
applies the first `PROFILE_EVENTS` events into a scratch target under cProfile, and the result
keeps the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from rich.table import Table

from infrastructure.postgres_databases import drop_database, redacted, with_database
from mercato_bench import report
from mercato_bench.cleanup import clean_namespace
from mercato_bench.database import new_database_name
from mercato_bench.processes import BenchEnvironment, MercatoProcess
from mercato_bench.seed import SeedReport, SeedSpec, progress_printer, seed_event_store

FULL_EVENTS = 1_000_000
QUICK_EVENTS = 20_000
STORES = ("views", "search", "analytics")
GRACE = 1.2
"""Seconds of the settle phase (the CLI's default is 3 s; > the workers' 1 s routing cache)."""
BATCH_SIZE = 5000
"""Events read per batch, as `mercato projections rebuild` (its `--batch-size` default)."""
GOAL_EVENTS_PER_SECOND = 50_000.0
PROFILE_EVENTS = 100_000
PROFILE_BUDGET = 20.0
"""Seconds the profiling child may apply events for (it stops at PROFILE_EVENTS or then)."""
FULL_BUDGET = 60.0
QUICK_BUDGET = 40.0
"""Seconds one projection's rebuild may run before it is interrupted (as Ctrl-C would: the live
target is untouched, the new one stays unfinished) and reported as incomplete with the rate it
reached: a read model whose rebuild is superlinear must not hold the whole benchmark."""
CHILD_WITHIN = 1800.0
"""Seconds one store's rebuild may take before the scenario gives up on it."""
LIBRARIES = ("eventsourcing", "asyncpg", "redis", "elasticsearch", "chdb", "clickhouse-connect")


# -- the shared data set -----------------------------------------------------------------------


@dataclass
class SeededDataSet:
    """One seeded event store and the namespace its read models live in (see the module doc)."""

    quick: bool
    admin_dsn: str
    database: str
    environment: BenchEnvironment
    seed: SeedReport
    keep: bool = False
    rebuilt: bool = False
    """True once every read model has been rebuilt from the store."""
    incomplete: set[str] = field(default_factory=set)
    """Projections whose rebuild ran out of its time budget (no live target to query)."""
    closed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return self.environment.postgres_dsn

    @property
    def spec_events(self) -> int:
        return QUICK_EVENTS if self.quick else FULL_EVENTS

    async def close(self) -> None:
        """Drop everything the data set made, unless it was opened with `keep`."""
        if self.closed:
            return
        self.closed = True
        if self.keep:
            report.progress(
                f"kept the data set: database {self.database}, namespace "
                f"{self.environment.namespace}, folder {self.environment.run_dir}"
            )
            return
        await clean_namespace(self.environment)
        shutil.rmtree(self.environment.run_dir, ignore_errors=True)
        await drop_database(self.admin_dsn, self.database)

    def description(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "dsn": redacted(self.dsn),
            "namespace": self.environment.namespace,
            "seed": self.seed.as_dict(),
        }


async def open_data_set(
    *, quick: bool, dsn: str, keep: bool = False, events: int | None = None
) -> SeededDataSet:
    """Create a fresh database next to `dsn`'s and seed it (~20,000 events quick, ~1,000,000
    full, or `events`). Close it with `await data.close()`."""
    name = new_database_name()
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    run_dir = Path(tempfile.mkdtemp(prefix="mercato-bench-seeded-"))
    environment = BenchEnvironment("services", run_dir, postgres_dsn=with_database(dsn, name))
    events = events or (QUICK_EVENTS if quick else FULL_EVENTS)
    report.progress(f"seeding {events:,} events into {name}")
    try:
        seeded = await seed_event_store(
            environment.postgres_dsn, SeedSpec(events=events), on_chunk=progress_printer(events)
        )
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        await drop_database(dsn, name)
        raise
    report.progress(
        f"seeded {seeded.events:,} events in {seeded.wall_seconds:.1f} s "
        f"(generation {seeded.events / seeded.generate_seconds:,.0f}/s, "
        f"COPY {seeded.events / seeded.copy_seconds:,.0f}/s)"
    )
    return SeededDataSet(quick, dsn, name, environment, seeded, keep=keep)


@contextlib.asynccontextmanager
async def seeded_data_set(
    *, quick: bool, dsn: str, keep: bool = False
) -> AsyncIterator[SeededDataSet]:
    data = await open_data_set(quick=quick, dsn=dsn, keep=keep)
    try:
        yield data
    finally:
        await data.close()


# -- the scenario ------------------------------------------------------------------------------


async def run_rebuild_benchmark(
    *,
    quick: bool,
    results_dir: Path,
    dsn: str,
    keep: bool = False,
    data: SeededDataSet | None = None,
) -> dict[str, Any]:
    """Seed (unless `data` is given), scan, rebuild every read model; write and return the
    result. `keep` keeps a data set this call opens (database, keys, indexes, folder)."""
    own = data is None
    if data is None:
        data = await open_data_set(quick=quick, dsn=dsn, keep=keep)
    started = time.monotonic()
    try:
        result: dict[str, Any] = {
            "scenario": "rebuild",
            "quick": quick,
            "started_at": report.utc_timestamp(),
            "machine": report.machine_info(),
            "libraries": report.library_versions(*LIBRARIES),
            "postgres": await report.postgres_info(data.dsn),
            "data_set": data.description(),
            "method": (
                "each store rebuilt by a child process running projections.rebuild.rebuild "
                "(what `mercato projections rebuild` runs), one projection after another; "
                f"batch {BATCH_SIZE}, settle grace {GRACE} s"
            ),
        }
        report.progress("scanning the store (yardsticks)")
        result["scan"] = await scan_store(data.dsn)
        stores, memory = await rebuild_all(data, profile=not quick)
        data.rebuilt = True
        result["stores"] = stores
        result["memory"] = [*memory, _own_memory_row()]
        result["charts"] = _charts(result)
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        result["seed_wall_seconds"] = round(data.seed.wall_seconds, 1)
        result["goals"] = [goal.as_dict() for goal in goals_of(result)]
        path = report.write_result("rebuild", result, results_dir)
        result["result_file"] = str(path)
        return result
    finally:
        if own:
            await data.close()


async def rebuild_all(
    data: SeededDataSet, *, profile: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Rebuild each store in its own child process; (per-store results, memory rows)."""
    stores: dict[str, Any] = {}
    memory: list[dict[str, Any]] = []
    budget = QUICK_BUDGET if data.quick else FULL_BUDGET
    for store in STORES:
        report.progress(f"rebuilding the {store} read models")
        outcome, process = await _run_child(
            data.environment, ["--store", store, "--budget", str(budget)], f"rebuild {store}"
        )
        memory.append(process.memory_row())
        projections = outcome["projections"]
        events = sum(p["events"] for p in projections)
        build = sum(p["build_seconds"] for p in projections)
        total = sum(p["rebuild_seconds"] for p in projections)
        stores[store] = {
            "projections": projections,
            "events": events,
            "build_seconds": round(build, 3),
            "events_per_second": _rate(events, build),
            "rebuild_seconds": round(total, 3),
            "events_per_second_with_settle": _rate(events, total),
            "child_wall_seconds": outcome["wall_seconds"],
            "parked_streams": sum(p["parked_streams"] for p in projections),
            "incomplete": [p["name"] for p in projections if not p["complete"]],
        }
        data.incomplete.update(stores[store]["incomplete"])
        report.progress(
            f"{store}: {events:,} events in {build:.1f} s "
            f"({stores[store]['events_per_second'] or 0:,.0f}/s), "
            f"peak RSS {process.peak_rss_mib or 0:.0f} MiB"
        )
        if profile and (stores[store]["events_per_second"] or 0) < GOAL_EVENTS_PER_SECOND:
            slowest = min(projections, key=lambda p: p["events_per_second"] or 0)
            report.progress(f"profiling {slowest['name']} ({PROFILE_EVENTS:,} events)")
            profiled, profiler = await _run_child(
                data.environment,
                [
                    *("--profile", slowest["name"]),
                    *("--profile-events", str(PROFILE_EVENTS)),
                    *("--budget", str(PROFILE_BUDGET)),
                ],
                f"profile {slowest['name']}",
            )
            stores[store]["profile"] = profiled
            memory.append(profiler.memory_row())
    return stores, memory


async def _run_child(
    environment: BenchEnvironment, arguments: list[str], name: str
) -> tuple[dict[str, Any], MercatoProcess]:
    """Run `python -m mercato_bench.rebuild ARGUMENTS` with the scenario's settings; its
    JSON line, and the process (stopped, so its peak RSS is recorded)."""
    environment.run_dir.mkdir(parents=True, exist_ok=True)
    log = environment.run_dir / f"{name.replace(' ', '-')}.log"
    with log.open("ab") as output:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "mercato_bench.rebuild", *arguments),
            env=environment.environ(),
            cwd=environment.run_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=output,
            start_new_session=True,
        )
    process = MercatoProcess(name=name, process=child, log=log)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), CHILD_WITHIN)
        if not line:
            await child.wait()
            raise RuntimeError(
                f"{name} exited with {child.returncode}; the end of {log}:\n{process.log_tail()}"
            )
        outcome: dict[str, Any] = json.loads(line)
    finally:
        await process.stop()  # records VmHWM, then SIGTERM (the child waits for it)
    return outcome, process


def _own_memory_row() -> dict[str, Any]:
    peak = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = round(int(line.split()[1]) / 1024, 1)
    return {"process": "bench (scans, HTTP client)", "peak_rss_mib": peak, "processes": 1}


def _rate(events: int, seconds: float) -> float | None:
    return round(events / seconds, 1) if seconds > 0 else None


# -- yardsticks --------------------------------------------------------------------------------


async def scan_store(dsn: str) -> dict[str, Any]:
    """Read the whole log through the store's read API (with and without decoding), and with a
    raw COPY out."""
    from application.serialization import EventSerializer
    from infrastructure.eventstore.postgres import PostgresEventStore

    store = await PostgresEventStore.connect(dsn, min_size=1, max_size=2)
    serializer = EventSerializer()
    events = 0
    read_seconds = decode_seconds = 0.0
    try:
        position = 0
        while True:
            began = time.perf_counter()
            batch = await store.read_all(position, BATCH_SIZE)
            read_seconds += time.perf_counter() - began
            if not batch:
                break
            began = time.perf_counter()
            for recorded in batch:
                serializer.to_domain_event(recorded)
            decode_seconds += time.perf_counter() - began
            events += len(batch)
            position = batch[-1].position
    finally:
        await store.close()
    connection = await asyncpg.connect(dsn)
    copied = 0
    try:

        async def count(chunk: bytes) -> None:
            nonlocal copied
            copied += len(chunk)

        began = time.perf_counter()
        await connection.copy_from_query(
            "SELECT * FROM mercato_events ORDER BY position", output=count, format="binary"
        )
        copy_seconds = time.perf_counter() - began
    finally:
        await connection.close()
    return {
        "events": events,
        "read_api_seconds": round(read_seconds, 3),
        "read_api_events_per_second": _rate(events, read_seconds),
        "read_api_decoded_seconds": round(read_seconds + decode_seconds, 3),
        "read_api_decoded_events_per_second": _rate(events, read_seconds + decode_seconds),
        "copy_out_seconds": round(copy_seconds, 3),
        "copy_out_events_per_second": _rate(events, copy_seconds),
        "copy_out_mib": round(copied / 1024 / 1024, 1),
    }


# -- the result --------------------------------------------------------------------------------


def goals_of(result: dict[str, Any]) -> list[report.Goal]:
    return [
        report.Goal(
            f"Rebuild {store} (events/s, {len(data['projections'])} projection(s))",
            data["events_per_second"],
            GOAL_EVENTS_PER_SECOND,
            unit=" ev/s",
        )
        for store, data in result.get("stores", {}).items()
    ]


def results_table(result: dict[str, Any]) -> Table:
    rows: list[tuple[str, ...]] = []
    for store, data in result.get("stores", {}).items():
        for projection in data["projections"]:
            rows.append(
                (
                    projection["name"],
                    store,
                    f"{projection['events']:,}",
                    f"{projection['build_seconds']:.2f}",
                    report.format_rate(projection["events_per_second"]),
                    str(projection["parked_streams"])
                    + ("" if projection.get("complete", True) else " (stopped: budget)"),
                )
            )
        rows.append(
            (
                f"[bold]{store}[/]",
                "store",
                f"{data['events']:,}",
                f"{data['build_seconds']:.2f}",
                report.format_rate(data["events_per_second"]),
                str(data["parked_streams"]),
            )
        )
    scan = result.get("scan", {})
    for label, key, seconds in (
        ("scan: read API", "read_api_events_per_second", "read_api_seconds"),
        (
            "scan: read API + decode",
            "read_api_decoded_events_per_second",
            "read_api_decoded_seconds",
        ),
        ("scan: COPY out", "copy_out_events_per_second", "copy_out_seconds"),
    ):
        if key in scan:
            rows.append(
                (
                    label,
                    "yardstick",
                    f"{scan['events']:,}",
                    f"{scan[seconds]:.2f}",
                    report.format_rate(scan[key]),
                    "",
                )
            )
    seed = result.get("data_set", {}).get("seed", {})
    title = "Rebuild from the event store"
    if seed:
        title += (
            f" — {seed['events']:,} events seeded in {seed['wall_seconds']:.0f} s "
            f"(generation {report.format_rate(seed['generate_events_per_second'])}/s, "
            f"COPY {report.format_rate(seed['copy_events_per_second'])}/s)"
        )
    return report.table(
        title, ("projection", "store", "events", "build s", "events/s", "parked"), rows
    )


def _charts(result: dict[str, Any]) -> list[dict[str, Any]]:
    scan = result["scan"]
    series: dict[str, list[list[float]]] = {
        f"rebuild {store}": [[data["events_per_second"] or 0.0]]
        for store, data in result["stores"].items()
    }
    series |= {
        "scan: read API + decode": [[scan["read_api_decoded_events_per_second"] or 0.0]],
        "scan: read API": [[scan["read_api_events_per_second"] or 0.0]],
        "scan: COPY out": [[scan["copy_out_events_per_second"] or 0.0]],
    }
    per_projection: dict[str, list[list[float]]] = {
        projection["name"]: [[projection["events_per_second"] or 0.0]]
        for data in result["stores"].values()
        for projection in data["projections"]
    }
    return [
        report.chart(
            "rebuild-stores",
            "Rebuild rate per read-model store vs scanning the store",
            "bars",
            series,
            y_label="events/s",
        ),
        report.chart(
            "rebuild-projections",
            "Rebuild rate per projection (build phase)",
            "bars",
            per_projection,
            y_label="events/s",
        ),
    ]


# -- the child process -------------------------------------------------------------------------


async def _child_rebuild(store: str, budget: float) -> dict[str, Any]:
    from infrastructure.settings import load_settings
    from interfaces.bootstrap import bootstrap
    from projections.rebuild import Progress, RebuildOptions, rebuild

    started = time.perf_counter()
    container = bootstrap(load_settings())
    await container.start(background=False)
    projections: list[dict[str, Any]] = []
    try:
        options = RebuildOptions(batch_size=BATCH_SIZE, grace=GRACE, drop_after=0.0)
        for projection in container.projections_named(store):
            applier = await container.applier(projection)
            marks: dict[str, float] = {}
            began = time.perf_counter()

            def on_progress(progress: Progress, marks: dict[str, float] = marks) -> None:
                if progress.phase == "build":
                    marks["built"] = time.perf_counter()
                    marks["events"] = progress.events

            work = asyncio.ensure_future(
                rebuild(applier, container.event_store, options, on_progress)
            )
            try:
                outcome = await asyncio.wait_for(work, budget)
            except TimeoutError:
                outcome = None
            finished = time.perf_counter()
            build = marks.get("built", finished) - began
            events = outcome.events if outcome else int(marks.get("events", 0))
            parked = await (await container.dead_letters()).parked(projection.name)
            projections.append(
                {
                    "name": projection.name,
                    "complete": outcome is not None,
                    "target": outcome.target if outcome else None,
                    "events": events,
                    "build_events": int(marks.get("events", events)),
                    "build_seconds": round(build, 3),
                    "events_per_second": _rate(events, build),
                    "rebuild_seconds": round(finished - began, 3),
                    "parked_streams": len(parked),
                }
            )
    finally:
        await container.close()
    return {
        "store": store,
        "projections": projections,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


async def _child_profile(name: str, events: int, budget: float) -> dict[str, Any]:
    """Apply the first `events` events the projection handles into a scratch target under
    cProfile (the rebuild's read-and-apply loop, without its checkpoints), then drop it."""
    from infrastructure.settings import load_settings
    from interfaces.bootstrap import bootstrap
    from projections.targets import next_target

    container = bootstrap(load_settings())
    await container.start(background=False)
    try:
        projection = container.projection(name)
        applier = await container.applier(projection)
        sink = applier.sink
        target = await next_target(sink, projection)
        await sink.create_target(projection.name, target)
        profiler = cProfile.Profile()
        applied = 0
        position = 0
        began = time.perf_counter()
        profiler.enable()
        try:
            while applied < events and time.perf_counter() - began < budget:
                batch = await container.event_store.read_all(
                    position, BATCH_SIZE, projection.log_filter
                )
                if not batch:
                    break
                outcome = await applier.apply(target, batch, {})
                applied += outcome.events
                position = batch[-1].position
        finally:
            profiler.disable()
        seconds = time.perf_counter() - began
        await sink.drop_target(projection.name, target)
    finally:
        await container.close()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(20)
    by_tottime = text.getvalue()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(25)
    return {
        "projection": name,
        "events": applied,
        "seconds_under_profiler": round(seconds, 2),
        "events_per_second_under_profiler": _rate(applied, seconds),
        "top_tottime": _trimmed(by_tottime),
        "top_cumulative": _trimmed(text.getvalue()),
    }


def _trimmed(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return [line.replace(str(Path.cwd()), ".") for line in lines[start:]]


def _child_main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mercato_bench.rebuild")
    parser.add_argument("--store", choices=STORES)
    parser.add_argument("--profile", metavar="PROJECTION")
    parser.add_argument("--profile-events", type=int, default=PROFILE_EVENTS)
    parser.add_argument("--budget", type=float, default=FULL_BUDGET)
    arguments = parser.parse_args()
    if arguments.profile:
        outcome = asyncio.run(
            _child_profile(arguments.profile, arguments.profile_events, arguments.budget)
        )
    elif arguments.store:
        outcome = asyncio.run(_child_rebuild(arguments.store, arguments.budget))
    else:
        parser.error("give --store or --profile")
    sys.stdout.write(json.dumps(outcome) + "\n")
    sys.stdout.flush()
    # Stay alive (holding nothing) until the parent has read the peak RSS and sends SIGTERM.
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    _child_main()
