"""What every Mercato benchmark reports, and how: machine facts, latency percentiles, the JSON
result file, the rich table and the progress lines.

Benchmarks report; they never fail on a figure. Goals are evaluated and printed (`Goal`), so a
reader sees at once which are met on this machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from infrastructure.postgres_databases import redacted

DEFAULT_RESULTS_DIR = Path("benchmarks/results")

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)

# -- machine -----------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and Python of this machine."""
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "load_average": load_average(),
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def library_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the given distributions (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


_POSTGRES_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "commit_delay",
    "shared_buffers",
    "wal_buffers",
    "max_wal_size",
    "max_connections",
)


async def postgres_info(dsn: str) -> dict[str, Any]:
    """The server's version and the settings that move write figures."""
    connection = await asyncpg.connect(dsn)
    try:
        info: dict[str, Any] = {
            "version": await connection.fetchval("SELECT version()"),
        }
        rows = await connection.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            list(_POSTGRES_SETTINGS),
        )
        for row in rows:
            unit = row["unit"]
            info[row["name"]] = row["setting"] + (f" ({unit})" if unit else "")
        return info
    finally:
        await connection.close()


# -- figures -----------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The `fraction` (0..1) percentile of already sorted values, interpolating linearly
    between the two nearest ranks (numpy's default); NaN for no values."""
    if not sorted_values:
        return math.nan
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be within 0..1")
    rank = fraction * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    weight = rank - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


def latency_summary(seconds: Iterable[float]) -> dict[str, float]:
    """p50, p99, p99.9, mean and max, in milliseconds, of per-call latencies in seconds."""
    ordered = sorted(seconds)
    if not ordered:
        return {}
    return {
        "p50": percentile(ordered, 0.50) * 1000,
        "p99": percentile(ordered, 0.99) * 1000,
        "p99.9": percentile(ordered, 0.999) * 1000,
        "mean": sum(ordered) / len(ordered) * 1000,
        "max": ordered[-1] * 1000,
    }


@dataclass
class Measurement:
    """One scenario's run: `events` stored in `calls` calls by `writers` concurrent writers over
    `wall_seconds`, with each call's latency (seconds) when it makes sense per call."""

    scenario: str
    system: str
    workload: str
    writers: int
    events: int
    calls: int
    wall_seconds: float
    latencies: list[float] = field(default_factory=list, repr=False)
    notes: str = ""

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds > 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "system": self.system,
            "workload": self.workload,
            "writers": self.writers,
            "events": self.events,
            "calls": self.calls,
            "events_per_call": self.events // self.calls if self.calls else 0,
            "wall_seconds": round(self.wall_seconds, 4),
            "events_per_second": round(self.events_per_second, 1),
            "calls_per_second": round(self.calls / self.wall_seconds, 1)
            if self.wall_seconds > 0
            else None,
            "latency_ms": {
                name: round(value, 3) for name, value in latency_summary(self.latencies).items()
            },
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Goal:
    """A figure the project aims for, and whether this run met it."""

    name: str
    value: float | None
    threshold: float
    higher_is_better: bool = True
    unit: str = ""
    target: float | None = None

    @property
    def met(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value < self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 3),
            "threshold": self.threshold,
            "target": self.target,
            "comparison": ">=" if self.higher_is_better else "<",
            "unit": self.unit,
            "met": self.met,
        }


def result_header(
    benchmark: str,
    *,
    started: datetime,
    finished: datetime,
    database: str,
    server_dsn: str,
    load_at_start: list[float] | None,
    postgres: dict[str, Any],
    libraries: Sequence[str],
) -> dict[str, Any]:
    """What every Postgres-backed result begins with: when, where, on what machine and
    versions (`server_dsn` is printed redacted)."""
    return {
        "benchmark": benchmark,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_seconds": round((finished - started).total_seconds(), 1),
        "database": {"name": database, "server": redacted(server_dsn), "dropped": True},
        "machine": {**machine_info(), "load_average_at_start": load_at_start},
        "postgres": postgres,
        "libraries": library_versions(*libraries),
    }


def saved_goals(result: dict[str, Any]) -> list[Goal]:
    """The goals a result saved (`Goal.as_dict` each), as `Goal`s again, for printing."""
    return [
        Goal(
            name=goal["name"],
            value=goal["value"],
            threshold=goal["threshold"],
            higher_is_better=goal["comparison"] == ">=",
            unit=goal["unit"],
            target=goal["target"],
        )
        for goal in result["goals"]
    ]


# -- output ------------------------------------------------------------------------------------


def progress(message: str) -> None:
    """One line on stderr (stdout stays for the table)."""
    _stderr.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")


def utc_timestamp(moment: datetime | None = None) -> str:
    """A file-name-safe UTC timestamp, e.g. 20250101T120000Z."""
    return (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def write_result(name: str, result: dict[str, Any], directory: Path | None = None) -> Path:
    """Write `result` to `<directory>/<name>-<UTC timestamp>.json` and `<name>-latest.json`;
    returns the timestamped path."""
    directory = directory or DEFAULT_RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=False, default=str) + "\n"
    path = directory / f"{name}-{utc_timestamp()}.json"
    path.write_text(text)
    (directory / f"{name}-latest.json").write_text(text)
    return path


def format_rate(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.0f}"


def format_ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def format_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.2f}x"


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A results table; every column after the first two is right-aligned (figures)."""
    result = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        result.add_column(header, justify="left" if index < 2 else "right", no_wrap=index == 0)
    for row in rows:
        result.add_row(*row)
    return result


def goals_table(goals: Iterable[Goal]) -> Table:
    rows = []
    for goal in goals:
        comparison = "≥" if goal.higher_is_better else "<"
        wanted = f"{comparison} {goal.threshold:g}{goal.unit}"
        if goal.target is not None:
            wanted += f" (target {goal.target:g}{goal.unit})"
        value = "—" if goal.value is None else f"{goal.value:.2f}{goal.unit}"
        verdict = {True: "[green]met[/]", False: "[red]missed[/]", None: "[yellow]n/a[/]"}
        rows.append((goal.name, wanted, value, verdict[goal.met]))
    return table("Goals", ("goal", "wanted", "measured", ""), rows)


# -- chart data --------------------------------------------------------------------------------
# Scenarios put what their charts need into their JSON result under "charts" (a list of
# `chart(...)` dicts), so `charts.py` can draw the PNGs from any saved result.

QUANTILES = (
    *(index / 100 for index in range(100)),
    0.995,
    0.999,
    0.9995,
    0.9999,
    1.0,
)
"""Where a latency curve is sampled: every percentile, then the tail."""


def quantile_curve(seconds: Iterable[float]) -> list[list[float]]:
    """[[fraction, milliseconds], …] of per-call latencies in seconds, at `QUANTILES`."""
    ordered = sorted(seconds)
    if not ordered:
        return []
    return [[q, round(percentile(ordered, q) * 1000, 3)] for q in QUANTILES]


def latency_timeline(
    samples: Iterable[tuple[float, float]], *, window: float = 1.0
) -> list[list[float]]:
    """[[t, p50 ms, p99 ms, count], …] per `window` seconds of (seconds since start, latency
    in seconds) samples: how latency moved during the run."""
    buckets: dict[int, list[float]] = {}
    for at, latency in samples:
        buckets.setdefault(int(at // window), []).append(latency)
    timeline = []
    for index in sorted(buckets):
        ordered = sorted(buckets[index])
        timeline.append(
            [
                round(index * window, 3),
                round(percentile(ordered, 0.50) * 1000, 3),
                round(percentile(ordered, 0.99) * 1000, 3),
                len(ordered),
            ]
        )
    return timeline


def chart(
    name: str,
    title: str,
    kind: str,
    series: dict[str, list[list[float]]],
    *,
    x_label: str = "",
    y_label: str = "",
) -> dict[str, Any]:
    """One chart of a result: `kind` is "quantiles" (series of `quantile_curve`), "timeline"
    (series of `latency_timeline`) or "bars" (series of [[value]] per label); `name` becomes
    the PNG's file name."""
    if kind not in ("quantiles", "timeline", "bars"):
        raise ValueError(f"unknown chart kind {kind!r}")
    return {
        "name": name,
        "title": title,
        "kind": kind,
        "x_label": x_label,
        "y_label": y_label,
        "series": series,
    }
