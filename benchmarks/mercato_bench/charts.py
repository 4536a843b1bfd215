"""PNG charts of benchmark results, drawn from the JSON a scenario wrote (its "charts" list, see
`report.chart`), so any saved result can be drawn again: `mercato bench charts FILE…`.

Three kinds: "quantiles" (latency against percentile on a log-scaled tail axis, one line per
series), "timeline" (p50 and p99 per second during a run) and "bars" (one bar per label).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter

_TAIL_TICKS = (0.5, 0.9, 0.99, 0.999, 0.9999)


def render_result(result: dict[str, Any], directory: Path) -> list[Path]:
    """Draw every chart of `result` into `directory`; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in result.get("charts", []):
        path = directory / f"{spec['name']}.png"
        render_chart(spec, path, subtitle=_subtitle(result))
        written.append(path)
    return written


def render_chart(spec: dict[str, Any], path: Path, *, subtitle: str = "") -> None:
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    try:
        kind = spec["kind"]
        if kind == "quantiles":
            _quantiles(axes, spec["series"])
        elif kind == "timeline":
            _timeline(axes, spec["series"])
        elif kind == "bars":
            _bars(axes, spec["series"])
        else:
            raise ValueError(f"unknown chart kind {kind!r}")
        axes.set_title(spec["title"] + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
        axes.set_xlabel(spec.get("x_label") or _default_x_label(kind))
        axes.set_ylabel(spec.get("y_label") or "latency (ms)")
        axes.grid(True, which="major", alpha=0.3)
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)


def _default_x_label(kind: str) -> str:
    return {"quantiles": "percentile", "timeline": "seconds into the run", "bars": ""}[kind]


def _tail(fraction: float) -> float:
    """Percentiles on an axis that spreads the tail: -log10(1 - q)."""
    return -math.log10(max(1.0 - fraction, 1e-5))


def _quantiles(axes: Axes, series: dict[str, Sequence[Sequence[float]]]) -> None:
    for label, points in series.items():
        kept = [(q, ms) for q, ms in points if q < 1.0]  # the max has no place on a log tail
        if kept:
            axes.plot([_tail(q) for q, _ in kept], [ms for _, ms in kept], label=label)
    axes.xaxis.set_major_locator(FixedLocator([_tail(q) for q in _TAIL_TICKS]))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"p{100 * (1 - 10**-value):g}"))
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    _legend(axes, series)


def _timeline(axes: Axes, series: dict[str, Sequence[Sequence[float]]]) -> None:
    for label, points in series.items():
        seconds = [row[0] for row in points]
        line = axes.plot(seconds, [row[2] for row in points], label=f"{label} p99")[0]
        axes.plot(
            seconds,
            [row[1] for row in points],
            label=f"{label} p50",
            linestyle="--",
            color=line.get_color(),
        )
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    _legend(axes, series)


def _bars(axes: Axes, series: dict[str, Sequence[Sequence[float]]]) -> None:
    labels = list(series)
    values = [points[0][0] if points and points[0] else 0.0 for points in series.values()]
    bars = axes.bar(range(len(labels)), values, color="#4c72b0")
    axes.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    axes.bar_label(bars, labels=[f"{value:,.0f}" for value in values], fontsize=8)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


def _legend(axes: Axes, series: Iterable[str]) -> None:
    if len(list(series)) > 0:
        axes.legend(fontsize=8)


def _subtitle(result: dict[str, Any]) -> str:
    machine = result.get("machine") or {}
    parts = []
    if machine.get("cores"):
        parts.append(f"{machine['cores']} cores")
    if machine.get("cpu_model"):
        parts.append(str(machine["cpu_model"]))
    if result.get("started_at"):
        parts.append(str(result["started_at"])[:16])
    return " · ".join(parts)
