"""`mercato bench --only commands`: how many `POST /orders` one API process, then two,
answers — and how fast — on the services profile (Postgres event store), driven over HTTP by
the open-loop load generator (`mercato_bench.loadgen`) in a process of its own.

For each uvicorn worker count (1, then 2) on one fresh database:

1. a tenant is prepared (`mercato_bench.tenant`): buyers with tokens, one seller with many
   published products in unlimited stock;
2. `mercato serve --workers N` starts, and a warm-up runs at the lowest rate (not measured);
3. fixed arrival rates (250, 500, 1,000 req/s): each request is due at t0 + i/rate whatever
   happened to the earlier ones, and its latency counts from that moment (so a stall is not
   hidden by the generator waiting for it); the first seconds of each rate are a warm-up;
4. saturation: a closed loop of `concurrency` clients sending as fast as answers come — the
   most req/s the API gives at that concurrency.

Each request places one order: one line, quantity 1, the product and the buyer cycling through
the prepared ones, so no product or buyer stream is a hot spot; each carries a fresh
`Idempotency-Key`, as real clients do. Only the API runs: no relay, no projector, no saga
runner, so each command appends exactly one `Order.Placed` event and nothing else competes for
the two cores but Postgres and the load generator.

ClickHouse: with chdb, the services API runs the analytics projection in its own process (one
process per chdb folder), so `--workers 2` cannot start — the second worker fails to open the
folder and uvicorn stops the parent. For both worker counts the API is therefore given a
ClickHouse *server* URL nobody listens on: it then runs no projection in-process, and placing
orders never touches analytics (`/readyz` reports ClickHouse down, so readiness is taken from
`/healthz`). The two worker counts run the same code paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from infrastructure.postgres_databases import throwaway_database
from mercato_bench import report
from mercato_bench.cleanup import clean_namespace
from mercato_bench.database import dsn_parts, new_database_name
from mercato_bench.loadgen import run_in_process
from mercato_bench.processes import (
    BenchEnvironment,
    MercatoProcess,
    free_port,
    stopped_at_exit,
)
from mercato_bench.tenant import PreparedTenant, TenantSpec, prepare_tenant

LIBRARIES = ("uvicorn", "fastapi", "starlette", "asyncpg", "aiohttp", "uvloop", "httptools")
GOAL_RATE = 500
GOAL_P99_MS = 20.0


@dataclass(frozen=True)
class CommandSettings:
    rates: tuple[float, ...] = (250, 500, 1000)
    workers: tuple[int, ...] = (1, 2)
    duration: float = 20.0
    """Seconds measured at each rate (after `warmup`)."""
    warmup: float = 2.0
    """Seconds at each rate before its measurement."""
    initial_warmup: float = 3.0
    """Seconds at the lowest rate after the API starts, before anything is measured."""
    saturation_duration: float = 15.0
    saturation_concurrency: int = 32
    connections: int = 256
    """The open loop's keep-alive pool: the most requests in flight."""
    timeout: float = 10.0
    """A request not answered within this many seconds counts as an error (status 0)."""
    buyers: int = 100
    products: int = 500

    @classmethod
    def of(cls, quick: bool) -> CommandSettings:
        if not quick:
            return cls()
        # A smoke run (CI runs every scenario's quick mode in a few minutes): the goal's rate
        # and saturation only.
        return cls(
            rates=(GOAL_RATE,),
            duration=2.0,
            warmup=0.5,
            initial_warmup=0.5,
            saturation_duration=2.0,
            timeout=5.0,
            buyers=20,
            products=50,
        )


# -- CPU of the processes ----------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its direct children (uvicorn's workers)."""
    total = 0.0
    for member in (pid, *_children(pid)):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def reaped_children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have exited (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- one run -----------------------------------------------------------------------------------


def order_job(
    base_url: str,
    prepared: PreparedTenant,
    *,
    mode: str,
    duration: float,
    warmup: float,
    rate: float = 0.0,
    concurrency: int = 1,
    connections: int = 256,
    timeout: float = 10.0,
    follow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The load generator's job: `POST /orders`, one line of quantity 1, cycling through the
    prepared products and buyers, each with a fresh idempotency key."""
    job: dict[str, Any] = {
        "base_url": base_url,
        "method": "POST",
        "path": "/orders",
        "mode": mode,
        "rate": rate,
        "duration": duration,
        "warmup": warmup,
        "concurrency": concurrency,
        "connections": connections,
        "timeout": timeout,
        "bodies": prepared.order_bodies(),
        "tokens": prepared.buyer_tokens,
        "idempotency_prefix": f"bench-{uuid.uuid4().hex[:12]}",
    }
    if follow is not None:
        job["follow"] = follow
    return job


def ok_samples(result: dict[str, Any]) -> list[tuple[float, float]]:
    """(seconds since the measurement began, latency) of the measured 2xx answers."""
    records = result["records"]
    warmup = float(result["warmup"])
    return [
        (offset - warmup, latency)
        for offset, latency, status in zip(
            records["offsets"], records["latencies"], records["statuses"], strict=True
        )
        if offset >= warmup and 200 <= status < 300
    ]


async def _until_idle(base_url: str, *, within: float = 15.0) -> None:
    """Wait until the API answers /healthz quickly again: the backlog of an overloaded run
    must not spill into the next one."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        fast = 0
        while fast < 3 and time.monotonic() < deadline:
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                await client.get("/healthz")
            fast = fast + 1 if time.monotonic() - started < 0.02 else 0
            await asyncio.sleep(0.1)


async def _measured(
    api: MercatoProcess, job: dict[str, Any], work_dir: Path, name: str
) -> tuple[dict[str, Any], dict[str, float]]:
    api_cpu = process_tree_cpu_seconds(api.pid)
    children_cpu = reaped_children_cpu_seconds()
    began = time.monotonic()
    result = await run_in_process(job, work_dir, name=name)
    wall = time.monotonic() - began
    usage = {
        "api_cpu_seconds": process_tree_cpu_seconds(api.pid) - api_cpu,
        "loadgen_cpu_seconds": reaped_children_cpu_seconds() - children_cpu,
        "wall_seconds": wall,
    }
    await _until_idle(api.base_url)
    return result, usage


def run_row(
    workers: int, result: dict[str, Any], usage: dict[str, float]
) -> tuple[dict[str, Any], list[tuple[float, float]]]:
    """One run's figures for the result (no per-request records) and its latency samples."""
    summary = result["summary"]
    total = float(result["warmup"]) + float(result["duration"])
    requests_all = len(result["records"]["statuses"])
    cpu = usage["api_cpu_seconds"]
    row = {
        "workers": workers,
        "mode": result["mode"],
        "target_rate": result["rate"],
        "concurrency": result["concurrency"],
        "duration": result["duration"],
        **{key: summary[key] for key in ("requests", "ok", "achieved_rate", "error_count")},
        "errors": summary["errors"],
        "client_errors": result["records"]["client_errors"],
        "latency_ms": summary["latency_ms"],
        "latency_all_ms": summary["latency_all_ms"],
        "send_lag_ms": summary["send_lag_ms"],
        "api_cpu_cores": round(cpu / total, 2) if total else None,
        "api_cpu_ms_per_request": round(cpu / requests_all * 1000, 3) if requests_all else None,
        "loadgen_cpu_cores": round(usage["loadgen_cpu_seconds"] / usage["wall_seconds"], 2),
    }
    return row, ok_samples(result)


# -- the scenario ------------------------------------------------------------------------------


async def _one_api(
    environment: BenchEnvironment,
    prepared: PreparedTenant,
    workers: int,
    s: CommandSettings,
    on_progress: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, list[tuple[float, float]]], dict[str, Any]]:
    port = free_port()
    name = "api" if workers == 1 else f"api x{workers}"
    arguments = ["serve", "--port", str(port), "--workers", str(workers)]
    api = await MercatoProcess.start(name, arguments, environment, port=port)
    rows: list[dict[str, Any]] = []
    samples: dict[str, list[tuple[float, float]]] = {}
    work_dir = environment.run_dir / "loadgen"
    async with stopped_at_exit(api):
        await api.wait_http("/healthz")
        await asyncio.sleep(0.5)  # both workers of `--workers 2` past their start-up
        warm = order_job(
            api.base_url, prepared, mode="open", rate=min(s.rates), duration=s.initial_warmup,
            warmup=0.0, connections=s.connections, timeout=s.timeout,
        )  # fmt: skip
        await _measured(api, warm, work_dir, f"w{workers}-warmup")
        for rate in s.rates:
            job = order_job(
                api.base_url, prepared, mode="open", rate=rate, duration=s.duration,
                warmup=s.warmup, connections=s.connections, timeout=s.timeout,
            )  # fmt: skip
            result, usage = await _measured(api, job, work_dir, f"w{workers}-r{rate:g}")
            row, run_samples = run_row(workers, result, usage)
            rows.append(row)
            samples[f"{rate:g}"] = run_samples
            on_progress(_progress_line(row))
        job = order_job(
            api.base_url, prepared, mode="saturation", concurrency=s.saturation_concurrency,
            duration=s.saturation_duration, warmup=min(s.warmup, 1.0),
            connections=s.connections, timeout=s.timeout,
        )  # fmt: skip
        result, usage = await _measured(api, job, work_dir, f"w{workers}-saturation")
        row, run_samples = run_row(workers, result, usage)
        rows.append(row)
        samples["saturation"] = run_samples
        on_progress(_progress_line(row))
    return rows, samples, api.memory_row()


def _progress_line(row: dict[str, Any]) -> str:
    latency = row["latency_ms"]
    what = (
        f"{row['target_rate']:g} req/s offered"
        if row["mode"] == "open"
        else f"saturation x{row['concurrency']}"
    )
    return (
        f"commands, {row['workers']} worker(s), {what}: {row['achieved_rate']:,.0f} req/s ok, "
        f"p50 {latency.get('p50', float('nan')):.1f} ms, p99 {latency.get('p99', float('nan')):.1f}"
        f" ms, p99.9 {latency.get('p99.9', float('nan')):.1f} ms, errors {row['error_count']}"
    )


async def run_commands_benchmark(
    *,
    quick: bool,
    results_dir: Path,
    dsn: str,
    settings: CommandSettings | None = None,
    on_progress: Callable[[str], None] = report.progress,
) -> dict[str, Any]:
    """Run the scenario (see the module's docstring) in a fresh database next to `dsn`'s,
    write `commands-<timestamp>.json` and `commands-latest.json` to `results_dir`, and return
    the result."""
    s = settings or CommandSettings.of(quick)
    started = datetime.now(UTC)
    load_at_start = report.load_average()
    run_root = Path(tempfile.mkdtemp(prefix="mercato-bench-commands-"))
    rows: list[dict[str, Any]] = []
    samples: dict[int, dict[str, list[tuple[float, float]]]] = {}
    memory: list[dict[str, Any]] = []
    succeeded = False
    try:
        async with throwaway_database(dsn, new_database_name()) as bench_dsn:
            database = dsn_parts(bench_dsn).dbname
            postgres = await report.postgres_info(bench_dsn)
            environment = BenchEnvironment(
                "services",
                run_root,
                bench_dsn,
                # A ClickHouse server nobody runs: no analytics projection in the API (see the
                # module's docstring); orders never touch it.
                variables={"CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}"},
            )
            try:
                spec = TenantSpec(buyers=s.buyers, products=s.products)
                prepared = await prepare_tenant(environment, spec)
                on_progress(
                    f"commands: database {database}, {s.buyers} buyers and {s.products} "
                    f"products prepared in {prepared.seconds:.1f} s"
                )
                for workers in s.workers:
                    worker_rows, worker_samples, memory_row = await _one_api(
                        environment, prepared, workers, s, on_progress
                    )
                    rows += worker_rows
                    samples[workers] = worker_samples
                    memory.append(memory_row)
            finally:
                cleaned = await clean_namespace(environment)
        succeeded = True
    finally:
        if succeeded:
            shutil.rmtree(run_root, ignore_errors=True)
        else:
            report.progress(f"commands: logs kept in {run_root}")
    finished = datetime.now(UTC)
    goals = evaluate_goals(rows)
    result: dict[str, Any] = {
        **report.result_header(
            "commands",
            started=started,
            finished=finished,
            database=database,
            server_dsn=dsn,
            load_at_start=load_at_start,
            postgres=postgres,
            libraries=LIBRARIES,
        ),
        "quick": quick,
        "settings": asdict(s),
        "tenant": prepared.summary(),
        "notes": [
            "Profile services: Postgres event store. Only the API runs (no relay, projectors "
            "or saga runner): each command appends one Order.Placed event.",
            "Each request: POST /orders, one line of quantity 1, products and buyers cycled "
            "so no stream is hot, a fresh Idempotency-Key each.",
            "The load generator is a separate process (aiohttp, uvloop) on the same 2-core "
            "machine: its CPU is reported (loadgen_cpu_cores) and competes with the API's.",
            "Open loop: latency from each request's scheduled time (no coordinated omission); "
            "send_lag is how late the generator itself sent. Saturation: closed loop, latency "
            "from the actual send.",
            "ClickHouse URL set to an unused server address: chdb allows one process per "
            "folder and `serve --workers 2` with chdb on the services profile stops at start-up "
            "(the second worker cannot open the folder), so the analytics projection is kept "
            "out of the API for both worker counts; readiness is /healthz.",
        ],
        "runs": rows,
        "memory": memory,
        "cleanup": cleaned,
        "goals": [goal.as_dict() for goal in goals],
        "charts": _charts(samples, rows),
    }
    result["result_file"] = str(report.write_result("commands", result, results_dir))
    return result


def _charts(
    samples: dict[int, dict[str, list[tuple[float, float]]]], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    charts = []
    for workers, by_run in samples.items():
        charts.append(
            report.chart(
                f"commands-latency-w{workers}",
                f"POST /orders latency, {workers} uvicorn worker(s)",
                "quantiles",
                {
                    (f"{run} req/s" if run != "saturation" else run): report.quantile_curve(
                        latency for _, latency in run_samples
                    )
                    for run, run_samples in by_run.items()
                },
                x_label="quantile",
                y_label="ms",
            )
        )
    goal_rate = f"{GOAL_RATE:g}"
    charts.append(
        report.chart(
            "commands-timeline-500",
            f"POST /orders latency over time at {GOAL_RATE} req/s",
            "timeline",
            {
                f"{workers} worker(s)": report.latency_timeline(by_run[goal_rate])
                for workers, by_run in samples.items()
                if goal_rate in by_run
            },
            x_label="s",
            y_label="ms",
        )
    )
    charts.append(
        report.chart(
            "commands-throughput",
            "POST /orders answered per second",
            "bars",
            {
                f"{row['workers']} worker(s), "
                + (f"{row['target_rate']:g}/s" if row["mode"] == "open" else "saturation"): [
                    [row["achieved_rate"]]
                ]
                for row in rows
            },
            y_label="req/s",
        )
    )
    return charts


def evaluate_goals(rows: list[dict[str, Any]]) -> list[report.Goal]:
    goals = []
    for row in rows:
        if row["mode"] == "open" and row["target_rate"] == GOAL_RATE:
            goals.append(
                report.Goal(
                    f"POST /orders p99 at {GOAL_RATE} req/s, {row['workers']} worker(s)",
                    row["latency_ms"].get("p99"),
                    GOAL_P99_MS,
                    higher_is_better=False,
                    unit=" ms",
                )
            )
    return goals


goals_of = report.saved_goals
"""Rebuild the goals of a result (for printing)."""


def results_table(result: dict[str, Any]) -> Table:
    rows = []
    for row in result["runs"]:
        latency = row["latency_ms"]
        offered = f"{row['target_rate']:g}" if row["mode"] == "open" else "saturation"
        rows.append(
            (
                offered,
                f"{row['workers']}"
                + (f" (x{row['concurrency']} clients)" if row["concurrency"] else ""),
                report.format_rate(row["achieved_rate"]),
                report.format_ms(latency.get("p50")),
                report.format_ms(latency.get("p99")),
                report.format_ms(latency.get("p99.9")),
                str(row["error_count"]),
                f"{row['api_cpu_cores']:.2f}" if row["api_cpu_cores"] is not None else "—",
                f"{row['loadgen_cpu_cores']:.2f}",
            )
        )
    s = result["settings"]
    title = (
        f"POST /orders on the services profile (Postgres), {s['duration']:g} s per rate, "
        f"{s['saturation_duration']:g} s saturation; only the API runs"
    )
    headers = (
        "offered req/s", "uvicorn workers", "ok req/s", "p50 ms", "p99 ms", "p99.9 ms",
        "errors", "API cores", "loadgen cores",
    )  # fmt: skip
    return report.table(title, headers, rows)


__all__ = [
    "CommandSettings",
    "evaluate_goals",
    "goals_of",
    "order_job",
    "results_table",
    "run_commands_benchmark",
]
