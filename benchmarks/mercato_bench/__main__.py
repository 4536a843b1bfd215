"""`python -m mercato_bench …`, the same as `mercato-bench …`."""

from mercato_bench.cli import app

app(prog_name="mercato-bench")
