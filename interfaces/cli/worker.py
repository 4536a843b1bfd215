"""`mercato worker …`: the background processes of the services profile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Annotated

import typer
from rich.console import Console

from application.sagas.cancellation import cancel_and_wait
from infrastructure.settings import Profile, Settings
from interfaces.bootstrap import bootstrap

logger = logging.getLogger("mercato.worker")

app = typer.Typer(
    help=(
        "Background workers for the services profile. Each runs until SIGTERM or SIGINT, "
        "then stops gracefully and exits 0."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True)

SAGAS_SHORT_HELP = "Run the checkout and escrow sagas (services profile only)."
SAGAS_HELP = (
    "Run the checkout and escrow sagas: follow the global log from the group's durable "
    "checkpoint, fire due deadlines (payment timeout, dispute window), and issue the sagas' "
    "commands. Payments this worker requests are settled by its payment simulator."
    "\n\n"
    "Services profile only (MERCATO_PROFILE=services, MERCATO_POSTGRES_DSN). On the embedded "
    "profile `mercato serve` runs the sagas in its own process, so this command refuses "
    "(exit 2)."
    "\n\n"
    "Run as many workers as you like, on one machine or several: they elect a leader that "
    "follows the log (another takes over within the leadership lease if it dies), every worker "
    "fires due deadlines, and no step is ever taken twice."
    "\n\n"
    "On SIGTERM or SIGINT the worker stops its runner (waiting at most --grace seconds), "
    "closes its connections and exits 0. A step cut short is safe: it is taken again, with "
    "the same idempotency keys, by the next runner. Logs go to stderr at MERCATO_LOG_LEVEL."
)


@app.command("sagas", help=SAGAS_HELP, short_help=SAGAS_SHORT_HELP)
def sagas(
    grace: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for the runner to stop after SIGTERM/SIGINT.", min=0.1, max=60
        ),
    ] = 5.0,
) -> None:
    from interfaces.cli.main import settings_or_exit  # main imports this module

    settings = settings_or_exit()
    if settings.profile is not Profile.SERVICES:
        err_console.print(
            f"[bold red]error:[/] `mercato worker sagas` is for the services profile; on the "
            f"{settings.profile.value} profile `mercato serve` runs the sagas in its own process "
            f"(set MERCATO_PROFILE=services to run them in workers)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=2)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not asyncio.run(run_sagas(settings, grace=grace)):
        raise typer.Exit(code=1)


async def run_sagas(settings: Settings, *, grace: float) -> bool:
    """Run the saga runner until SIGTERM/SIGINT; False if it failed on its own."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    container = bootstrap(settings)
    try:
        # The services profile starts no runner in `start()`: this worker runs the only one.
        if not await _until_stopped(asyncio.create_task(container.start()), stop, grace):
            logger.info("saga worker stopped before it started")
            return True
        runner = container.marketplace.saga_runner()
        logger.info(
            "saga worker started: profile %s, runner group %s, owner %s",
            settings.profile.value,
            runner.group,
            runner.owner,
        )
        running = asyncio.create_task(runner.run(), name=f"saga-runner-{runner.owner}")
        failed = await _until_stopped(running, stop, grace)
        if failed:
            logger.error("saga worker %s: the runner stopped on its own", runner.owner)
        logger.info(
            "saga worker stopped: profile %s, runner group %s, owner %s",
            settings.profile.value,
            runner.group,
            runner.owner,
        )
        return not failed
    except Exception:
        logger.exception("saga worker failed")
        return False
    finally:
        await container.close()
        for number in signals:
            loop.remove_signal_handler(number)


async def _until_stopped(task: asyncio.Task[None], stop: asyncio.Event, grace: float) -> bool:
    """Wait for `task` or `stop`; True if `task` finished first (its exception is raised),
    False if `stop` came first (then `task` is cancelled, waiting at most `grace` seconds)."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        task.result()
        return True
    try:
        async with asyncio.timeout(grace):
            await cancel_and_wait(task)
    except TimeoutError:
        logger.warning("the saga runner did not stop within %.1f s; closing anyway", grace)
    with contextlib.suppress(asyncio.CancelledError):
        if task.done():
            task.result()
    return False
