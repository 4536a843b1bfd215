"""The scenarios of `mercato bench`, in the order they run, each with its quick and full size.

Every scenario module offers `results_table(result)` and `goals_of(result)`; modules are
imported when their scenario first needs them, so `mercato bench --help` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mercato_bench.suite import Scenario, SuiteOptions

QUICK_APPEND_EVENTS = 1_000
FULL_APPEND_EVENTS = 20_000


def _lazy(module: str, attribute: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        imported = importlib.import_module(f"mercato_bench.{module}")
        return getattr(imported, attribute)(*args, **kwargs)

    return call


def _scenario(name: str, module: str, run: Callable[..., Any]) -> Scenario:
    return Scenario(name, run, _lazy(module, "results_table"), _lazy(module, "goals_of"))


async def _append(options: SuiteOptions, shared: dict[str, Any]) -> dict[str, Any]:
    run: Callable[..., Any] = _lazy("append", "run_append_benchmark")
    result: dict[str, Any] = await run(
        options.dsn,
        QUICK_APPEND_EVENTS if options.quick else FULL_APPEND_EVENTS,
        results_dir=options.results_dir,
    )
    return result


async def _commands(options: SuiteOptions, shared: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await _lazy("commands", "run_commands_benchmark")(
        quick=options.quick, results_dir=options.results_dir, dsn=options.dsn
    )
    return result


async def _lag(options: SuiteOptions, shared: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await _lazy("lag", "run_lag_benchmark")(
        quick=options.quick, results_dir=options.results_dir, dsn=options.dsn
    )
    return result


async def _rebuild(options: SuiteOptions, shared: dict[str, Any]) -> dict[str, Any]:
    """Seeds the data set the queries scenario then serves (closed when the suite ends)."""
    data = await _lazy("rebuild", "open_data_set")(quick=options.quick, dsn=options.dsn)
    shared.setdefault("closers", []).append(data.close)
    shared["data_set"] = data
    result: dict[str, Any] = await _lazy("rebuild", "run_rebuild_benchmark")(
        quick=options.quick, results_dir=options.results_dir, dsn=options.dsn, data=data
    )
    return result


async def _queries(options: SuiteOptions, shared: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await _lazy("queries", "run_queries_benchmark")(
        quick=options.quick,
        results_dir=options.results_dir,
        dsn=options.dsn,
        data=shared.get("data_set"),
    )
    return result


SCENARIOS: dict[str, Scenario] = {
    "append": _scenario("append", "append", _append),
    "commands": _scenario("commands", "commands", _commands),
    "lag": _scenario("lag", "lag", _lag),
    "rebuild": _scenario("rebuild", "rebuild", _rebuild),
    "queries": _scenario("queries", "queries", _queries),
}
