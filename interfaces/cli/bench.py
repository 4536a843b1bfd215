"""`mercato bench …`: benchmarks that report figures side by side with their yardsticks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from infrastructure.postgres_databases import redacted
from interfaces.bench import report
from interfaces.bench.database import default_dsn

app = typer.Typer(
    help=(
        "Benchmarks. Each run works in a fresh database it creates and drops, prints a table, "
        "and writes a JSON result file (machine, settings, every figure) to benchmarks/results/."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

QUICK_EVENTS = 1_000

APPEND_SHORT_HELP = (
    "Append throughput and latency: Mercato's event store vs stock eventsourcing vs raw asyncpg."
)
APPEND_HELP = (
    "Append throughput and latency: Mercato's Postgres event store, side by side with the stock "
    "eventsourcing Postgres recorder and raw asyncpg, in one run on one fresh database."
    "\n\n"
    "Scenarios: single-event appends to new streams (each --writers count); appends to one hot "
    "stream with exact expected versions; --batch-size events per append (each --batch-writers "
    "count); and the raw yardsticks (BEGIN/INSERT/COMMIT, bare INSERT, executemany, COPY)."
    "\n\n"
    "Reports events/s, p50/p99/p99.9 latency per call, and ratios to the yardsticks at the same "
    "writer count, then the event store's goals. Progress goes to stderr, the table to stdout, "
    "the JSON to --output-dir. Figures are reported, never asserted."
)


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        message = f"expected comma-separated counts like 1,8,16, got {text!r}"
        raise typer.BadParameter(message) from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("counts must be positive integers")
    return counts


def _systems(text: str) -> tuple[str, ...]:
    from interfaces.bench.append import SYSTEMS

    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(chosen) - set(SYSTEMS))
    if unknown or not chosen:
        raise typer.BadParameter(f"choose among {', '.join(SYSTEMS)} (got {text!r})")
    return chosen


def _server_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the server was unreachable, restarted or dropped the database."""
    import asyncpg
    from eventsourcing.persistence import OperationalError

    from application.ports.event_store import EventStoreUnavailableError

    return (
        OSError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.InterfaceError,
        asyncpg.exceptions.InvalidCatalogNameError,
        EventStoreUnavailableError,
        OperationalError,
    )


def _run_async(factory: Callable[[], Any], *, uvloop: bool) -> Any:
    loop_factory = None
    if uvloop:
        try:
            import uvloop as uvloop_module

            loop_factory = uvloop_module.new_event_loop
        except ImportError:
            report.progress("uvloop is not installed; using the standard asyncio event loop")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(factory())


@app.command("append", help=APPEND_HELP, short_help=APPEND_SHORT_HELP)
def append(
    dsn: Annotated[
        str,
        typer.Option(
            help=(
                "Postgres to benchmark on. The run creates a database mercato_bench_<random> "
                "next to this DSN's (so the role needs CREATEDB) and drops it at the end. "
                "Defaults to MERCATO_POSTGRES_DSN, else the local superuser."
            ),
            envvar="MERCATO_POSTGRES_DSN",
            show_default=False,
        ),
    ] = "",
    events: Annotated[
        int,
        typer.Option(help="Events measured per single-event scenario (after the warm-up).", min=1),
    ] = 20_000,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help=f"A fast smoke run: {QUICK_EVENTS:,} events per scenario (overrides --events).",
        ),
    ] = False,
    batch_events: Annotated[
        int | None,
        typer.Option(
            help=(
                "Events per batched scenario (rounded to whole batches). "
                "Default: 5 x --events, since a batch stores ~50x more events per second."
            ),
            min=1,
            show_default=False,
        ),
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(
            help=(
                "Calls made before each measurement at the same concurrency, then discarded "
                "(connections, prepared statements, caches). Default: events ÷ 20, 20 to 500."
            ),
            min=0,
            show_default=False,
        ),
    ] = None,
    writers: Annotated[
        str,
        typer.Option(
            help=(
                "Concurrent writers of the single-event scenarios, comma-separated: asyncio "
                "tasks sharing one Mercato store, threads for the stock recorder, connections "
                "for raw asyncpg."
            )
        ),
    ] = "1,8,16",
    batch_writers: Annotated[
        str, typer.Option(help="Concurrent writers of the batched scenarios, comma-separated.")
    ] = "1,8",
    batch_size: Annotated[
        int, typer.Option(help="Events per call in the batched scenarios.", min=1)
    ] = 100,
    payload_bytes: Annotated[
        int, typer.Option(help="Size of every event's JSON payload, in bytes.", min=80)
    ] = 200,
    copy_rows: Annotated[
        int | None,
        typer.Option(
            help="Rows of the raw COPY yardstick (0 skips it). Default: 5 x --events.",
            min=0,
            show_default=False,
        ),
    ] = None,
    systems: Annotated[
        str,
        typer.Option(
            help=(
                "Which systems to run, comma-separated: mercato (PostgresEventStore), stock "
                "(eventsourcing.postgres recorder), raw (asyncpg yardsticks). Ratios need all."
            )
        ),
    ] = "mercato,stock,raw",
    store_writers: Annotated[
        int,
        typer.Option(
            help="PostgresEventStore(writers=…): writer tasks that group concurrent appends.",
            min=1,
        ),
    ] = 8,
    store_max_batch_events: Annotated[
        int,
        typer.Option(
            help="PostgresEventStore(max_batch_events=…): most events one grouped statement takes.",
            min=1,
        ),
    ] = 500,
    store_pool_size: Annotated[
        int,
        typer.Option(help="Connections of the Mercato store's pool (connect(max_size=…)).", min=1),
    ] = 16,
    checkpoint: Annotated[
        bool,
        typer.Option(
            help="Run CHECKPOINT before each measurement so every scenario starts alike "
            "(skipped silently without the privilege)."
        ),
    ] = True,
    uvloop: Annotated[
        bool,
        typer.Option(help="Run on uvloop, as `mercato serve` (uvicorn) does when installed."),
    ] = True,
    output_dir: Annotated[
        Path,
        typer.Option(help="Where append-<UTC timestamp>.json and append-latest.json go."),
    ] = report.DEFAULT_RESULTS_DIR,
) -> None:
    """See APPEND_HELP."""
    from interfaces.bench.append import goals_of, results_table, run_append_benchmark

    dsn = dsn or default_dsn()
    if quick:
        events = QUICK_EVENTS
    writer_counts, batch_writer_counts = _counts(writers), _counts(batch_writers)
    chosen_systems = _systems(systems)
    report.progress(f"mercato bench append on {redacted(dsn)}")

    def benchmark() -> Any:
        return run_append_benchmark(
            dsn,
            events,
            writer_counts,
            batch_writers=batch_writer_counts,
            batch_size=batch_size,
            batch_events=batch_events,
            warmup=warmup,
            payload_bytes=payload_bytes,
            copy_rows=copy_rows,
            systems=chosen_systems,
            store_writers=store_writers,
            store_max_batch_events=store_max_batch_events,
            store_pool_size=store_pool_size,
            checkpoint=checkpoint,
            results_dir=output_dir,
        )

    try:
        result: dict[str, Any] = _run_async(benchmark, uvloop=uvloop)
    except _server_errors() as error:
        report.progress(
            f"[bold red]error:[/] Postgres at {redacted(dsn)} was unreachable or went away "
            f"during the benchmark ({type(error).__name__}: {error}); no result was written"
        )
        raise typer.Exit(code=1) from None
    console = Console(width=max(Console().width, 160))
    console.print(results_table(result))
    console.print(report.goals_table(goals_of(result)))
    console.print(f"Result written to {result['result_file']}", highlight=False)
