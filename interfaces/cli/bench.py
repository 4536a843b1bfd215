"""`mercato bench …`: hands over to the benchmark harness (`benchmarks/mercato_bench`, installed
by the `bench` dependency group). The harness is imported only when this command runs, so
`mercato --help` and the product never load it, and an image without it still starts."""

from __future__ import annotations

import typer

from interfaces.cli.errors import refuse

INSTALL_HINT = (
    "the benchmark harness is not installed: run `uv sync --group bench` "
    "(or `make install`) in a checkout of the repository"
)

# Every argument, --help included, belongs to the harness's own command line.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def bench(context: typer.Context) -> None:
    """Benchmarks against the local services (`mercato bench --help`; needs the bench group)."""
    try:
        from mercato_bench.cli import app
    except ModuleNotFoundError as error:
        if error.name != "mercato_bench" and not (error.name or "").startswith("mercato_bench."):
            raise
        refuse(INSTALL_HINT)
    app(args=context.args, prog_name="mercato bench")
