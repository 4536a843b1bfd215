"""`mercato bench`: every scenario in one run, then the summary — the goals side by side, the
memory table, the PNG charts and the README's "Performance" section.

Scenarios run one after the other (never two at once: they would measure each other). One that
fails is reported and the others still run; the run then exits non-zero, so the quick run in
the test command catches a benchmark that rotted.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mercato_bench import charts, report

SCENARIOS = ("append", "commands", "lag", "rebuild", "queries")
QUICK_DIR = "quick"
"""Quick results go to a folder of their own, so a CI-sized run never replaces the figures the
README quotes."""
PROJECTOR_RSS_GOAL_MIB = 300.0
README_START = "<!-- performance:start (written by `mercato bench --readme README.md`) -->"
README_END = "<!-- performance:end -->"


@dataclass
class SuiteOptions:
    quick: bool
    dsn: str
    results_dir: Path
    scenarios: tuple[str, ...] = SCENARIOS
    command_line: str = "mercato bench"


@dataclass
class Scenario:
    """How the suite runs, prints and judges one scenario."""

    name: str
    run: Callable[[SuiteOptions, dict[str, Any]], Awaitable[dict[str, Any]]]
    """Runs it; the dict is shared by the run's scenarios (the seeded data set of rebuild and
    queries lives there)."""
    table: Callable[[dict[str, Any]], Table]
    goals: Callable[[dict[str, Any]], list[report.Goal]]


@dataclass
class SuiteRun:
    options: SuiteOptions
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


async def run_suite(
    options: SuiteOptions, scenarios: dict[str, Scenario], console: Console
) -> SuiteRun:
    """Run the chosen scenarios in order, printing each one's tables as it ends."""
    run = SuiteRun(options)
    shared: dict[str, Any] = {}
    try:
        for name in options.scenarios:
            scenario = scenarios[name]
            report.progress(f"[bold]— {name} —[/]")
            begun = time.monotonic()
            try:
                result = await scenario.run(options, shared)
            except Exception as error:  # report it, carry on with the others
                run.failures[name] = f"{type(error).__name__}: {error}"
                report.progress(f"[bold red]{name} failed:[/] {run.failures[name]}")
                report.progress(traceback.format_exc())
                continue
            finally:
                run.seconds[name] = round(time.monotonic() - begun, 1)
            run.results[name] = result
            console.print(scenario.table(result))
            console.print(report.goals_table(scenario.goals(result)))
    finally:
        for closer in reversed(shared.get("closers", [])):
            await closer()
    return run


def all_goals(run: SuiteRun, scenarios: dict[str, Scenario]) -> list[tuple[str, report.Goal]]:
    goals = [
        (name, goal)
        for name, result in run.results.items()
        for goal in scenarios[name].goals(result)
    ]
    # A rebuild child is a projector too (the same code, fed from the store instead of Kafka).
    projectors = [
        row for row in memory_rows(run) if row["process"].startswith(("projector", "rebuild"))
    ]
    if projectors:
        largest = max(projectors, key=lambda row: row["peak_rss_mib"] or 0.0)
        goals.append(
            (
                "memory",
                report.Goal(
                    f"Projector peak RSS ({largest['process']}, {largest['scenario']})",
                    largest["peak_rss_mib"],
                    PROJECTOR_RSS_GOAL_MIB,
                    higher_is_better=False,
                    unit=" MiB",
                ),
            )
        )
    return goals


def memory_rows(run: SuiteRun) -> list[dict[str, Any]]:
    """Every process's peak RSS, from each scenario's "memory" list."""
    return [
        {**row, "scenario": name}
        for name, result in run.results.items()
        for row in result.get("memory", [])
    ]


def memory_table(rows: Sequence[dict[str, Any]]) -> Table:
    return report.table(
        "Peak RSS per process (VmHWM)",
        ("process", "scenario", "peak RSS MiB", "processes"),
        [
            (
                row["process"],
                row["scenario"],
                report.format_ms(row["peak_rss_mib"]),
                str(row.get("processes", 1)),
            )
            for row in rows
        ],
    )


def summary_of(run: SuiteRun, scenarios: dict[str, Scenario]) -> dict[str, Any]:
    finished = datetime.now(UTC)
    return {
        "benchmark": "suite",
        "quick": run.options.quick,
        "command": run.options.command_line,
        "started_at": run.started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_seconds": round((finished - run.started).total_seconds(), 1),
        "seconds_per_scenario": run.seconds,
        "machine": report.machine_info(),
        "scenarios": {name: result.get("result_file") for name, result in run.results.items()},
        "failures": run.failures,
        "goals": [{"scenario": name, **goal.as_dict()} for name, goal in all_goals(run, scenarios)],
        "memory": memory_rows(run),
    }


def render_charts(run: SuiteRun) -> list[Path]:
    directory = run.options.results_dir / "charts"
    return [
        path for result in run.results.values() for path in charts.render_result(result, directory)
    ]


# -- the README section ------------------------------------------------------------------------


def performance_markdown(
    run: SuiteRun,
    scenarios: dict[str, Scenario],
    summary: dict[str, Any],
    chart_files: Sequence[Path],
    root: Path,
) -> str:
    """The README's "Performance" section: machine, command, goals, each scenario's table and
    the charts."""
    machine = summary["machine"]
    lines = [
        "## Performance",
        "",
        f"Measured with `{summary['command']}` on {summary['started_at'][:10]}: "
        f"{machine.get('cores')} cores ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gib')} GiB, {machine.get('os')}, Python {machine.get('python')}; "
        f"the run took {summary['duration_seconds'] / 60:.1f} min. Every service ran on the same "
        "machine as the load. Figures are reported, never asserted; the JSON of each scenario "
        "(machine, versions, settings, every figure) is in `benchmarks/results/`.",
        "",
        "### Goals",
        "",
        *_markdown_table(
            ["scenario", "goal", "wanted", "measured", ""],
            [
                [
                    name,
                    goal.name,
                    f"{'≥' if goal.higher_is_better else '<'} {goal.threshold:g}{goal.unit}"
                    + ("" if goal.target is None else f" (target {goal.target:g}{goal.unit})"),
                    "—" if goal.value is None else f"{goal.value:,.2f}{goal.unit}",
                    {True: "met", False: "**missed**", None: "n/a"}[goal.met],
                ]
                for name, goal in all_goals(run, scenarios)
            ],
        ),
    ]
    for name, result in run.results.items():
        lines += ["", f"### {name}", "", *_rich_table_markdown(scenarios[name].table(result))]
    rows = memory_rows(run)
    if rows:
        lines += ["", "### memory", "", *_rich_table_markdown(memory_table(rows))]
    if chart_files:
        lines += ["", "### Charts", ""]
        lines += [f"![{path.stem}]({_relative(path, root)})" for path in chart_files]
    if run.failures:
        lines += ["", "Scenarios that failed in this run:", ""]
        lines += [f"- {name}: {failure}" for name, failure in run.failures.items()]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, section: str) -> None:
    """Replace the marked section of `readme` (or append it, with its markers)."""
    text = readme.read_text()
    block = f"{README_START}\n{section}{README_END}"
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


def _relative(path: Path, root: Path) -> str:
    """`path` as a link from a file in `root` (paths may be relative to the working folder)."""
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def _rich_table_markdown(table: Table) -> list[str]:
    headers = [str(column.header) for column in table.columns]
    cells = [[_plain(cell) for cell in column.cells] for column in table.columns]
    rows = [list(row) for row in zip(*cells, strict=True)]
    title = f"*{_plain(table.title)}*" if table.title else ""
    return ([title, ""] if title else []) + _markdown_table(headers, rows)


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _plain(value: Any) -> str:
    """Text of a rich table cell: a `Text` as it is, a string with its markup rendered away."""
    return value.plain if isinstance(value, Text) else Text.from_markup(str(value)).plain
