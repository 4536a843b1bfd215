"""Benchmarks of Mercato against its yardsticks (`mercato bench …`).

Each benchmark is a module with an `async def run_…(…) -> dict` that tests call with small sizes,
and a typer command in `interfaces/cli/bench.py` that runs it at full size. The shared pieces
(machine facts, percentiles, the throwaway database, the result file, the table) live in
`report` and `database` so every benchmark reports the same way.
"""
