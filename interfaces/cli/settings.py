"""The settings a `mercato` command runs with, loaded once at its start."""

from __future__ import annotations

import typer

from infrastructure.settings import Settings, SettingsError, load_settings
from interfaces.cli.errors import err_console


def settings_or_exit() -> Settings:
    """Load settings, or print what is wrong in one line per problem and exit with status 2."""
    try:
        return load_settings()
    except SettingsError as error:
        for line in str(error).splitlines():
            err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
