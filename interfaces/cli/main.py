"""The `mercato` command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infrastructure.settings import Profile
from interfaces.cli import analytics, bench, demo, projections, sagas, tenants, worker
from interfaces.cli.errors import err_console, refuse
from interfaces.cli.settings import settings_or_exit

app = typer.Typer(
    name="mercato",
    help=(
        "Mercato, the event-sourced commerce backend of a creator marketplace.\n\n"
        "Settings come from MERCATO_* environment variables (or a .env file); "
        "`mercato settings` shows the ones in force."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("bench", context_settings=bench.CONTEXT_SETTINGS, add_help_option=False)(bench.bench)
app.add_typer(worker.app, name="worker")
app.add_typer(projections.app, name="projections")
app.add_typer(projections.dlq_app, name="dlq")
app.add_typer(sagas.app, name="sagas")
app.add_typer(demo.app, name="demo")
app.add_typer(analytics.app, name="analytics")
app.add_typer(tenants.app, name="tenants")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Number of uvicorn worker processes.", min=1)] = 1,
    seed_demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="On first start (empty event store), seed a demo in the background: tenant "
            "'demo', 5 sellers, 30 buyers, 300 orders (`mercato demo seed`). Needs --workers 1.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (commands, queries, /docs, /healthz, /readyz) with uvicorn.

    On the embedded profile (the default) all state lives under MERCATO_DATA_DIR (./.mercato);
    delete that folder to start afresh.
    """
    import uvicorn

    settings = settings_or_exit()
    if seed_demo and workers > 1:
        refuse("--demo needs --workers 1 (one process seeds)")
    if workers > 1 and settings.profile is Profile.EMBEDDED:
        refuse(
            "--workers > 1 needs the services profile: the embedded profile's SQLite stores "
            "and projections belong to one process"
        )
    if workers > 1 and settings.clickhouse_target.startswith("chdb://"):
        refuse(
            "--workers > 1 needs a ClickHouse server (MERCATO_CLICKHOUSE_URL=http://…): the "
            "chdb engine locks its folder to one process, and each worker would open it"
        )
    err_console.print(
        f"Mercato on http://{host}:{port} (profile {settings.profile.value}); "
        f"API docs at http://{host}:{port}/docs",
        highlight=False,
    )
    from infrastructure.telemetry.logging import logging_config
    from infrastructure.telemetry.tracing import process_tracing

    # uvicorn's own lines become our JSON lines too, in every worker process it starts.
    log_config = logging_config(settings.log_level)
    log_level = settings.log_level.lower()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again, with the
    # handlers it found, to die of it. Found these, the process exits 0 instead, as the workers
    # do, and the spans still queued are exported on the way out (`process_tracing`).
    import signal
    from types import FrameType

    def exit_cleanly(number: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, exit_cleanly)
    if workers == 1:
        from interfaces.http.app import create_app

        api = create_app(settings)
        if seed_demo:
            demo.seed_on_first_start(api)
        with process_tracing("mercato-api"):
            uvicorn.run(
                api,
                host=host,
                port=port,
                log_config=log_config,
                log_level=log_level,
            )
    else:
        uvicorn.run(
            "interfaces.http.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_config=log_config,
            log_level=log_level,
        )


@app.command()
def migrate() -> None:
    """Create or upgrade every schema of the profile (event store, saga store, projection dead
    letters) and exit. Safe to run any number of times, from several processes at once (each
    schema migrates under a lock): the Kubernetes Job and the compose `migrate` service run it
    before the API and the workers start, which also migrate on start-up."""
    import asyncio

    from interfaces.bootstrap import bootstrap

    settings = settings_or_exit()

    async def run() -> None:
        container = bootstrap(settings)
        await container.start(background=False)
        try:
            await container.dead_letters()
        finally:
            await container.close()

    asyncio.run(run())
    err_console.print(f"schemas are up to date (profile {settings.profile.value})", highlight=False)


@app.command("settings")
def show_settings() -> None:
    """Show the settings in force (secrets masked)."""
    settings = settings_or_exit()
    table = Table("setting", "value", title="Mercato settings (MERCATO_* variables)")
    for name, value in settings.model_dump().items():
        table.add_row(f"MERCATO_{name.upper()}", str(value))
    Console().print(table)


if __name__ == "__main__":
    app()
