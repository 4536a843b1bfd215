"""`mercato-bench …` (also `mercato bench …`): benchmarks that report figures side by side with
their yardsticks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from infrastructure.postgres_databases import redacted
from interfaces.cli.errors import refuse
from mercato_bench import report
from mercato_bench.database import default_dsn

app = typer.Typer(
    help=(
        "Benchmarks: how fast Mercato is, side by side with its yardsticks. `mercato bench` "
        "runs every scenario (append, commands, lag, rebuild, queries; memory is measured "
        "throughout) against the local services, prints a table per scenario and the goals, "
        "writes a JSON result per scenario (machine, versions, settings, every figure) and PNG "
        "charts to benchmarks/results/ (benchmarks/results/quick/ with --quick). Each scenario "
        "works in a fresh database and namespace it creates and drops. Figures are reported, "
        "never asserted; the exit status is non-zero only when a scenario could not run."
    ),
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

QUICK_EVENTS = 1_000


@app.callback()
def suite(
    context: typer.Context,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="CI-sized runs of every scenario (about 2 minutes); results go to "
            "benchmarks/results/quick/ so they never replace a full run's.",
        ),
    ] = False,
    only: Annotated[
        str,
        typer.Option(
            help="Scenarios to run, comma-separated, in this order: append, commands, lag, "
            "rebuild, queries (queries needs rebuild's data set, so rebuild runs with it).",
        ),
    ] = "append,commands,lag,rebuild,queries",
    dsn: Annotated[
        str,
        typer.Option(
            help="Postgres admin DSN: each scenario creates its own database next to it and "
            "drops it. Defaults to MERCATO_POSTGRES_DSN, else the local superuser.",
            envvar="MERCATO_POSTGRES_DSN",
            show_default=False,
        ),
    ] = "",
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the JSON results and charts/ go. "
            "Default: benchmarks/results (benchmarks/results/quick with --quick).",
            show_default=False,
        ),
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(
            help="Write the summary as the 'Performance' section of this Markdown file "
            "(between its performance:start/end markers, or appended).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Every scenario, then the summary (see the group's help)."""
    if context.invoked_subcommand is not None:
        return
    from mercato_bench import suite as suite_module
    from mercato_bench.scenarios import SCENARIOS

    chosen = _scenario_names(only)
    results_dir = output_dir or (
        report.DEFAULT_RESULTS_DIR / suite_module.QUICK_DIR if quick else report.DEFAULT_RESULTS_DIR
    )
    options = suite_module.SuiteOptions(
        quick=quick,
        dsn=dsn or default_dsn(),
        results_dir=results_dir,
        scenarios=chosen,
        command_line="mercato bench" + (" --quick" if quick else ""),
    )
    console = Console(width=max(Console().width, 160))
    report.progress(
        f"mercato bench{' --quick' if quick else ''}: {', '.join(chosen)} "
        f"on {redacted(options.dsn)}"
    )
    run = _run_async(lambda: suite_module.run_suite(options, SCENARIOS, console), uvloop=True)
    summary = suite_module.summary_of(run, SCENARIOS)
    chart_files = suite_module.render_charts(run)
    summary["charts"] = [str(path) for path in chart_files]
    rows = suite_module.memory_rows(run)
    if rows:
        console.print(suite_module.memory_table(rows))
    console.print(report.goals_table(goal for _, goal in suite_module.all_goals(run, SCENARIOS)))
    summary_file = report.write_result("summary", summary, results_dir)
    console.print(f"Summary written to {summary_file}; charts in {results_dir / 'charts'}")
    if readme is not None:
        section = suite_module.performance_markdown(
            run, SCENARIOS, summary, chart_files, readme.resolve().parent
        )
        suite_module.update_readme(readme, section)
        console.print(f"'Performance' section of {readme} rewritten")
    if run.failures:
        for name, failure in run.failures.items():
            report.progress(f"[bold red]{name} could not run:[/] {failure}")
        raise typer.Exit(code=1)


def _scenario_names(text: str) -> tuple[str, ...]:
    from mercato_bench.suite import SCENARIOS as ORDER

    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(ORDER))
    if unknown or not chosen:
        raise typer.BadParameter(f"choose among {', '.join(ORDER)} (got {text!r})")
    if "queries" in chosen:
        chosen.add("rebuild")
    return tuple(name for name in ORDER if name in chosen)


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
    from mercato_bench.append import SYSTEMS

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
    from mercato_bench.append import goals_of, results_table, run_append_benchmark

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


@app.command("charts")
def draw_charts(
    results: Annotated[
        list[Path],
        typer.Argument(
            help="Result files (e.g. benchmarks/results/lag-latest.json).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    output_dir: Annotated[
        Path, typer.Option(help="Where the PNGs go.")
    ] = report.DEFAULT_RESULTS_DIR / "charts",
) -> None:
    """Draw the PNG charts of saved benchmark results again (after changing the chart code, or
    for a result copied from another machine)."""
    import json

    from mercato_bench.charts import render_result

    for path in results:
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            refuse(f"{path} is not a JSON result file ({error})")
        for written in render_result(result, output_dir):
            Console().print(f"{written}", highlight=False)
