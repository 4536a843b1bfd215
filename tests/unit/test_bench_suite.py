"""The benchmark suite's own logic: chart data, charts, the summary and the README section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mercato_bench import charts, report
from mercato_bench.suite import (
    README_END,
    README_START,
    Scenario,
    SuiteOptions,
    SuiteRun,
    all_goals,
    memory_rows,
    performance_markdown,
    summary_of,
    update_readme,
)

pytestmark = pytest.mark.unit


def test_a_quantile_curve_runs_from_the_fastest_call_to_the_slowest_in_milliseconds() -> None:
    curve = report.quantile_curve([0.001 * n for n in range(1, 1001)])

    assert curve[0] == [0.0, 1.0]
    assert curve[-1] == [1.0, 1000.0]
    assert [q for q, _ in curve] == sorted(q for q, _ in curve)
    assert dict((q, ms) for q, ms in curve)[0.5] == pytest.approx(500.5)


def test_a_timeline_has_one_row_per_window_with_its_percentiles_and_count() -> None:
    samples = [(0.1, 0.001), (0.5, 0.003), (1.2, 0.010), (2.9, 0.002)]

    assert report.latency_timeline(samples) == [
        [0.0, 2.0, 2.98, 2],
        [1.0, 10.0, 10.0, 1],
        [2.0, 2.0, 2.0, 1],
    ]


def test_an_unknown_chart_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="pie"):
        report.chart("x", "X", "pie", {})


def _result() -> dict[str, Any]:
    curve = report.quantile_curve([0.001, 0.002])
    timeline = [[0, 1.0, 2.0, 5], [1, 1.5, 3.0, 5]]
    return {
        "machine": {"cores": 2, "cpu_model": "Test CPU"},
        "started_at": "2026-01-01T00:00:00+00:00",
        "result_file": "benchmarks/results/fake-1.json",
        "memory": [{"process": "projector views", "peak_rss_mib": 120.5, "processes": 1}],
        "charts": [
            report.chart("fake-latency", "Latency", "quantiles", {"a": curve}),
            report.chart("fake-timeline", "Over time", "timeline", {"a": timeline}),
            report.chart("fake-rates", "Rates", "bars", {"a": [[1000.0]], "b": [[2500.0]]}),
        ],
    }


def test_every_chart_of_a_result_becomes_a_png(tmp_path: Path) -> None:
    written = charts.render_result(_result(), tmp_path)

    assert [path.name for path in written] == [
        "fake-latency.png",
        "fake-timeline.png",
        "fake-rates.png",
    ]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _scenario() -> Scenario:
    async def run(options: SuiteOptions, shared: dict[str, Any]) -> dict[str, Any]:
        return _result()

    def table(result: dict[str, Any]) -> Any:
        return report.table("Fake figures", ("name", "kind", "rate"), [("a", "b|c", "1,000")])

    def goals(result: dict[str, Any]) -> list[report.Goal]:
        return [report.Goal("Fake rate", 1000.0, 500.0, unit=" ev/s")]

    return Scenario("fake", run, table, goals)


def _run(tmp_path: Path) -> tuple[SuiteRun, dict[str, Scenario]]:
    run = SuiteRun(SuiteOptions(quick=True, dsn="postgresql://x", results_dir=tmp_path))
    run.results["fake"] = _result()
    return run, {"fake": _scenario()}


def test_the_projector_memory_goal_joins_the_scenarios_goals(tmp_path: Path) -> None:
    run, scenarios = _run(tmp_path)

    goals = all_goals(run, scenarios)

    assert [(name, goal.name, goal.met) for name, goal in goals] == [
        ("fake", "Fake rate", True),
        ("memory", "Projector peak RSS (projector views, fake)", True),
    ]
    assert memory_rows(run)[0]["scenario"] == "fake"


def test_the_performance_section_replaces_only_its_own_part_of_the_readme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, scenarios = _run(tmp_path)
    summary = summary_of(run, scenarios)
    monkeypatch.chdir(tmp_path)  # charts are named relative to the working folder, as the CLI does
    section = performance_markdown(run, scenarios, summary, [Path("c/x.png")], tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_START}\nold figures\n{README_END}\n\n## After\n")

    update_readme(readme, section)
    update_readme(readme, section)  # twice: the second run replaces the first

    text = readme.read_text()
    assert text.startswith("# Title\n") and text.endswith("## After\n")
    assert "old figures" not in text and text.count(README_START) == 1
    assert "| fake | Fake rate | ≥ 500 ev/s | 1,000.00 ev/s | met |" in text
    assert "| a | b\\|c | 1,000 |" in text
    assert "![x](c/x.png)" in text
