"""`mercato projections …` and `mercato dlq …`: operating the read models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from interfaces.bootstrap import Container, bootstrap
from interfaces.cli.errors import err_console, refuse
from interfaces.cli.settings import settings_or_exit
from projections.dead_letter_retry import retry_parked_stream
from projections.rebuild import Progress as RebuildProgress
from projections.rebuild import RebuildOptions, rebuild, replay
from projections.status import projection_status
from projections.verify import verify

app = typer.Typer(
    help=(
        "Inspect and operate the projections (read models): status and lag, blue/green "
        "rebuilds, replays of a range, and verification against the event store."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(
    help=(
        "Dead letters: streams parked because a projection's handler kept failing on one of "
        "their events. Later events of a parked stream wait with it; other streams flow. Fix "
        "the handler, then `retry` (or `skip` the poison event)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
T = TypeVar("T")

NameArgument = Annotated[
    str, typer.Argument(help="The projection's name (`mercato projections status` lists them).")
]


def _run(work: Callable[[Container], Awaitable[T]]) -> T:
    """Run `work` with a started container (no background workers), exiting 2 with a one-line
    reason on a bad projection name or missing target."""
    settings = settings_or_exit()

    async def main() -> T:
        container = bootstrap(settings)
        await container.start(background=False)
        try:
            return await work(container)
        finally:
            await container.close()

    try:
        return asyncio.run(main())
    except LookupError as error:
        refuse(str(error))


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} ev/s" if speed else "… ev/s", style="cyan")


@contextmanager
def _progress_bar(title: str) -> Iterator[Callable[[RebuildProgress], None]]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(title, total=None)

        def update(progress: RebuildProgress) -> None:
            bar.update(
                task,
                completed=progress.events,
                total=max(progress.total, progress.events) or None,
                description=f"{title} [{progress.phase}] → {progress.target}",
            )

        yield update


@app.command("status")
def status() -> None:
    """A table of every projection: live target, checkpoint, head, lag in events and seconds,
    and state (live / rebuilding / parked streams)."""

    async def work(container: Container) -> list[Any]:
        now = datetime.now(UTC)
        return [
            await projection_status(
                p,
                await container.sink(p.sink),
                container.event_store,
                await container.dead_letters(),
                container.partitioning,
                now,
            )
            for p in container.projections
        ]

    table = Table(
        "projection", "live target", "checkpoint", "head", "lag (events)", "lag (s)", "state"
    )
    for row in _run(work):
        table.add_row(
            row.name,
            row.live_target or "—",
            str(row.checkpoint),
            str(row.head),
            f"{row.lag_events:,}",
            f"{row.lag_seconds:.1f}",
            row.state,
        )
    console.print(table)


@app.command("rebuild")
def rebuild_command(
    name: NameArgument,
    batch_size: Annotated[int, typer.Option(help="Events read per batch.", min=1)] = 5000,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the previous target instead of dropping it.")
    ] = False,
    drop_after: Annotated[
        float, typer.Option(help="Seconds to wait after the swap before dropping the old target.")
    ] = 10.0,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart", help="Discard an interrupted rebuild's target instead of resuming it."
        ),
    ] = False,
) -> None:
    """Blue/green rebuild: fill a new versioned target straight from the event store while the
    live one keeps serving, catch up, swap atomically, then drop the old target.

    Safe to interrupt (Ctrl-C): the live target is untouched until the swap, and a rerun
    resumes the unfinished target (or --restart begins again).
    """
    options = RebuildOptions(
        batch_size=batch_size, drop_after=drop_after, keep_previous=keep_old, restart=restart
    )

    async def work(container: Container) -> Any:
        applier = await container.applier(container.projection(name))
        with _progress_bar(f"rebuild {name}") as progress:
            return await rebuild(applier, container.event_store, options, progress)

    report = _run(work)
    rate = report.events / report.seconds if report.seconds else 0
    console.print(
        f"{name}: {report.target} is live at position {report.position} — {report.events:,} "
        f"events in {report.seconds:.1f} s ({rate:,.0f}/s)"
        + (", resumed" if report.resumed else "")
        + (f"; dropped {report.previous}" if report.dropped_previous else "")
        + (f"; kept {report.previous}" if report.previous and not report.dropped_previous else ""),
        highlight=False,
    )


@app.command("replay")
def replay_command(
    name: NameArgument,
    from_position: Annotated[
        int | None, typer.Option(help="Re-apply events after this position.", min=0)
    ] = None,
    from_time: Annotated[
        datetime | None,
        typer.Option(
            help="Re-apply events recorded at or after this time (ISO 8601, UTC if no zone).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    to_position: Annotated[
        int | None, typer.Option(help="Stop after this position (default: the head).")
    ] = None,
) -> None:
    """Re-apply a range of the log to the live target with the current handlers (after a
    handler fix). Idempotent: newer writes are never overwritten; checkpoints do not move."""
    if (from_position is None) == (from_time is None):
        refuse("give exactly one of --from-position, --from-time")

    async def work(container: Container) -> Any:
        start = from_position
        if from_time is not None:
            moment = from_time if from_time.tzinfo else from_time.replace(tzinfo=UTC)
            start = await container.event_store.position_before_time(moment)
        assert start is not None
        applier = await container.applier(container.projection(name))
        with _progress_bar(f"replay {name}") as progress:
            return await replay(
                applier,
                container.event_store,
                from_position=start,
                to_position=to_position,
                progress=progress,
            )

    report = _run(work)
    console.print(
        f"{name}: re-applied {report.events:,} events (positions {report.first_position} to "
        f"{report.last_position}) to {report.target} in {report.seconds:.1f} s",
        highlight=False,
    )


@app.command("verify")
def verify_command(
    name: NameArgument,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the live target to reach the head.")
    ] = 30.0,
    limit: Annotated[int, typer.Option(help="Differences to print at most.", min=1)] = 50,
) -> None:
    """Recompute the read model from the event store in memory and report every difference
    with the live target (exit 1 when there is any)."""

    async def work(container: Container) -> Any:
        projection = container.projection(name)
        applier = await container.applier(projection)
        with _progress_bar(f"verify {name}") as progress:
            return await verify(
                applier,
                container.event_store,
                container.partitioning.partitions_of(projection),
                wait=wait,
                progress=progress,
            )

    report = _run(work)
    table = Table("entry", "live", "expected", "kind", title=f"{name} vs the event store")
    for difference in report.differences[:limit]:
        table.add_row(
            " / ".join(difference.key),
            repr(difference.live.value) if difference.live else "—",
            repr(difference.expected.value) if difference.expected else "—",
            difference.kind,
        )
    if report.differences:
        console.print(table)
    console.print(
        f"{name}: {report.target} compared with the store up to position {report.position}: "
        f"{report.compared:,} entries, {len(report.differences)} differences, "
        f"{report.parked_streams} parked streams"
        + (
            f"; the live target only reached {report.live_watermark}"
            if report.live_watermark < report.position
            else ""
        )
        + (f"; handlers now fail on {', '.join(report.would_park)}" if report.would_park else ""),
        highlight=False,
    )
    if not report.clean:
        raise typer.Exit(code=1)


@dlq_app.command("list")
def dlq_list(
    name: Annotated[str | None, typer.Argument(help="Only this projection.")] = None,
) -> None:
    """Parked streams, oldest first, with the error that parked them."""

    async def work(container: Container) -> Any:
        return await (await container.dead_letters()).parked(name)

    table = Table("projection", "stream", "tenant", "letters", "first position", "since", "error")
    for parked in _run(work):
        table.add_row(
            parked.projection,
            parked.stream_id,
            parked.tenant_id,
            str(parked.events),
            str(parked.first_position),
            parked.parked_at.isoformat(timespec="seconds"),
            parked.error,
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(name: NameArgument, stream: Annotated[str, typer.Argument()]) -> None:
    """The letters of one parked stream, in order."""

    async def work(container: Container) -> Any:
        return await (await container.dead_letters()).letters(name, stream)

    letters = _run(work)
    if not letters:
        refuse(f"{stream} is not parked for {name}")
    table = Table("position", "version", "type", "recorded", "error")
    for letter in letters:
        event = letter.event
        table.add_row(
            str(event.position),
            str(event.stream_version),
            event.type,
            event.recorded_at.isoformat(timespec="seconds"),
            letter.error or "(waiting)",
        )
    console.print(table)


def _retry(name: str, stream: str, *, skip_first: bool) -> None:
    async def work(container: Container) -> Any:
        applier = await container.applier(container.projection(name))
        return await retry_parked_stream(applier, stream, skip_first=skip_first)

    outcome = _run(work)
    console.print(
        f"{name} / {stream}: {outcome.applied} applied, {outcome.skipped} skipped, "
        f"{outcome.remaining} still parked" + (f" — {outcome.error}" if outcome.error else ""),
        highlight=False,
    )
    if outcome.error:
        raise typer.Exit(code=1)


@dlq_app.command("retry")
def dlq_retry(name: NameArgument, stream: Annotated[str, typer.Argument()]) -> None:
    """Re-run the handler over the stream's letters in order; the stream is un-parked when all
    succeed (exit 1 and it stays parked when one fails again)."""
    _retry(name, stream, skip_first=False)


@dlq_app.command("skip")
def dlq_skip(name: NameArgument, stream: Annotated[str, typer.Argument()]) -> None:
    """Drop the poison event without applying it, then retry the letters after it."""
    _retry(name, stream, skip_first=True)


def _reflow(text: str) -> str:
    """A docstring as --help text: paragraphs kept, the line breaks inside them dropped."""
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


for _command in (*app.registered_commands, *dlq_app.registered_commands):
    if _command.callback is not None and _command.callback.__doc__:
        _command.help = _reflow(_command.callback.__doc__)
