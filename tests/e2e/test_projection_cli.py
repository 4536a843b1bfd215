"""`mercato projections …` and `mercato dlq …` on the embedded profile, through the real CLI:
the first rebuild creates a target, the next swaps and drops it, verify and replay agree, and
mistakes get one line and exit 2. (The runtime behind them is tested in
tests/integration/projections.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from interfaces.cli.main import app

pytestmark = pytest.mark.e2e

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MERCATO_PROFILE", "embedded")
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "data"


def mercato(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_status_rebuild_verify_and_replay_on_an_empty_store(data_dir: Path) -> None:
    code, out = mercato("projections", "status")
    assert code == 0 and "order_views" in out and "not started" in out
    code, out = mercato("projections", "rebuild", "order_views", "--drop-after", "0")
    assert code == 0, out
    assert "order_views_v1_1 is live" in out
    code, out = mercato("projections", "rebuild", "order_views", "--drop-after", "0")
    assert code == 0 and "order_views_v1_2 is live" in out and "dropped order_views_v1_1" in out
    code, out = mercato("projections", "verify", "order_views")
    assert code == 0 and "0 differences" in out
    code, out = mercato("projections", "replay", "order_views", "--from-position", "0")
    assert code == 0 and "re-applied 0 events" in out
    code, out = mercato("projections", "status")
    assert code == 0 and "order_views_v1_2" in out and "live" in out


def test_migrate_creates_the_schemas_and_can_run_again(data_dir: Path) -> None:
    for _ in range(2):
        code, out = mercato("migrate")
        assert code == 0 and "schemas are up to date (profile embedded)" in out
    assert (data_dir / "events.sqlite3").exists()
    assert (data_dir / "dead_letters.sqlite3").exists()


def test_mistakes_get_one_line_and_exit_2(data_dir: Path) -> None:
    code, out = mercato("projections", "rebuild", "nope")
    assert code == 2 and "no projection named 'nope'" in out and "Traceback" not in out
    code, out = mercato("projections", "replay", "order_views")
    assert code == 2 and "exactly one of --from-position, --from-time" in out
    code, out = mercato("dlq", "show", "order_views", "some-stream")
    assert code == 2 and "is not parked" in out
    code, out = mercato("dlq", "retry", "order_views", "some-stream")
    assert code == 2 and "not parked" in out
    code, out = mercato("worker", "projector", "order_views")
    assert code == 2 and "services profile" in out
    code, out = mercato("dlq", "list")
    assert code == 0
