"""`mercato sagas …`: the parked sagas (per-saga dead letters) and what to do about them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from application.ports.event_store import RecordedEvent
from application.sagas.dead_letters import ParkedSagas
from interfaces.bootstrap import bootstrap
from interfaces.cli.errors import refuse
from interfaces.cli.settings import settings_or_exit

app = typer.Typer(
    help=(
        "Parked sagas. A saga whose input (an event of the log, or a deadline) fails for good "
        "— a bug, a key the store refuses — is parked: that input is kept as its first dead "
        "letter, the saga's later inputs wait behind it in order, and every other saga flows "
        "on. Remove the cause, then `retry` (or `skip` the poison letter). Failures that pass "
        "by themselves (a store or the payment provider out of reach) are waited out, not "
        "parked."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
T = TypeVar("T")

SagaIdArgument = Annotated[
    str, typer.Argument(help="The parked saga's id (`mercato sagas list` shows them).")
]


@app.command("list")
def list_command(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's sagas.")] = None,
) -> None:
    """Parked sagas, oldest first: kind, tenant, letters waiting, and the error that parked
    them (or the last retry's)."""
    table = Table("saga", "kind", "tenant", "letters", "since", "error")
    for parked in _run(lambda sagas: sagas.parked(tenant_id=tenant)):
        table.add_row(
            parked.saga_id,
            parked.saga_type,
            parked.tenant_id,
            str(parked.letters),
            parked.parked_at.isoformat(timespec="seconds"),
            parked.error,
        )
    console.print(table)


@app.command("show")
def show_command(saga_id: SagaIdArgument) -> None:
    """The letters of one parked saga, in the order they are fed on retry."""
    letters = _run(lambda sagas: sagas.letters(saga_id))
    if not letters:
        refuse(f"saga {saga_id} is not parked")
    table = Table("letter", "input", "error", title=f"saga {saga_id}")
    for letter in letters:
        record = letter.input
        if isinstance(record, RecordedEvent):
            what = f"{record.type} of {record.stream_id} (position {record.position})"
        else:
            what = f"deadline {record.name} due {record.due_at.isoformat(timespec='seconds')}"
        table.add_row(letter.key, what, letter.error or "(waiting)")
    console.print(table)


@app.command("retry")
def retry_command(saga_id: SagaIdArgument) -> None:
    """Feed the saga's letters to it again, in order; it is un-parked when all go through
    (exit 1, and it stays parked, when one fails again)."""
    _retry(saga_id, skip_first=False)


@app.command("skip")
def skip_command(saga_id: SagaIdArgument) -> None:
    """Drop the first (poison) letter without feeding it, then retry the letters after it."""
    _retry(saga_id, skip_first=True)


def _retry(saga_id: str, *, skip_first: bool) -> None:
    outcome = _run(lambda sagas: sagas.retry(saga_id, skip_first=skip_first))
    console.print(
        f"saga {saga_id}: {outcome.fed} letters fed"
        + (", the first skipped" if outcome.skipped else "")
        + ("; resumed" if outcome.resumed else f"; still parked — {outcome.error}"),
        highlight=False,
    )
    if not outcome.resumed:
        raise typer.Exit(code=1)


def _reflow(text: str) -> str:
    """A docstring as --help text: paragraphs kept, the line breaks inside them dropped."""
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


for _command in app.registered_commands:
    if _command.callback is not None and _command.callback.__doc__:
        _command.help = _reflow(_command.callback.__doc__)


def _run(work: Callable[[ParkedSagas], Awaitable[T]]) -> T:
    """Run `work` on a started container (no background workers), exiting 2 with a one-line
    reason when the saga is not parked."""
    settings = settings_or_exit()

    async def main() -> Any:
        container = bootstrap(settings)
        await container.start(background=False)
        try:
            return await work(container.marketplace.parked_sagas())
        finally:
            await container.close()

    try:
        result: T = asyncio.run(main())
    except LookupError as error:
        refuse(str(error))
    return result
