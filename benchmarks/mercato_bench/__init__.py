"""Benchmarks of Mercato against its yardsticks (`mercato-bench …`, or `mercato bench …`).

Tooling, not product: this package lives beside its results (`benchmarks/results/`), is installed
by the `bench` dependency group, and nothing in Mercato imports it (an import-linter contract).

Each benchmark is a module with an `async def run_…(…) -> dict` that tests call with small sizes,
and a typer command in `cli.py` that runs it at full size. The shared pieces (machine facts,
percentiles, the throwaway database, the result file, the table) live in `report` and `database`
so every benchmark reports the same way. `cleanup` deletes what a run left on the shared services
under a prefix; the test session uses it too.
"""
