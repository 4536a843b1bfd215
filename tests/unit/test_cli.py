from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from interfaces.cli.main import app

pytestmark = pytest.mark.unit

runner = CliRunner()


def test_mercato_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "settings", "bench", "worker", "projections", "dlq"):
        assert command in result.output


@pytest.mark.parametrize(
    "command",
    [
        "serve",
        "settings",
        "bench",
        "bench append",
        "bench charts",
        "worker",
        "worker sagas",
        "migrate",
        "worker relay",
        "worker projector",
        "projections",
        "projections status",
        "projections rebuild",
        "projections replay",
        "projections verify",
        "dlq",
        "dlq list",
        "dlq show",
        "dlq retry",
        "dlq skip",
        "sagas",
        "sagas list",
        "sagas show",
        "sagas retry",
        "sagas skip",
    ],
)
def test_every_command_explains_itself(command: str) -> None:
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_bad_settings_print_one_line_and_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "production")
    monkeypatch.setenv("MERCATO_JWT_SECRET", "x" * 10)
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0
    assert "MERCATO_JWT_SECRET must be at least 32 characters" in result.output


def test_settings_are_shown_with_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_JWT_SECRET", "a-very-secret-value-that-is-long-enough-1234")
    result = runner.invoke(app, ["settings"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "MERCATO_PROFILE" in result.output
    assert "a-very-secret-value" not in result.output


@pytest.mark.parametrize(
    ("profile", "clickhouse", "reason"),
    [
        ("embedded", "chdb:///tmp/unused", "needs the services profile"),
        ("services", "chdb:///tmp/unused", "needs a ClickHouse server"),
    ],
)
def test_serve_refuses_several_workers_where_state_belongs_to_one_process(
    monkeypatch: pytest.MonkeyPatch, profile: str, clickhouse: str, reason: str
) -> None:
    monkeypatch.setenv("MERCATO_PROFILE", profile)
    monkeypatch.setenv("MERCATO_CLICKHOUSE_URL", clickhouse)
    result = runner.invoke(app, ["serve", "--workers", "2"], env={"COLUMNS": "300"})

    assert result.exit_code == 2
    assert reason in result.output and "Traceback" not in result.output


def test_bench_without_the_harness_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry makes the import fail as if the bench group were not installed.
    monkeypatch.setitem(sys.modules, "mercato_bench", None)
    monkeypatch.setitem(sys.modules, "mercato_bench.cli", None)
    result = runner.invoke(app, ["bench", "--quick"])
    assert result.exit_code == 2
    assert "uv sync --group bench" in result.output


def test_the_product_cli_never_imports_the_benchmark_harness() -> None:
    code = (
        "import sys, interfaces.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'mercato_bench', 'matplotlib', 'psycopg', 'psycopg_pool'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
