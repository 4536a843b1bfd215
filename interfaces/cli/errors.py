"""How every `mercato` command says it cannot do what was asked: one red line, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

err_console = Console(stderr=True)


def refuse(message: str, *, code: int = 2) -> NoReturn:
    """Print `error: <message>` on stderr and exit with `code` (2: the command was asked
    wrongly; 1: it ran and failed)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)
