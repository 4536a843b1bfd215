"""`mercato sagas …` on the embedded profile, through the real CLI: a parked saga is listed,
shown and retried; mistakes get one line and exit 2. (The runtime behind them is tested in
tests/integration/commerce/test_parked_sagas.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from application.ports.saga_store import Timer
from infrastructure.sagas.sqlite import SqliteSagaStore
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


def park_a_deadline(data_dir: Path) -> str:
    """Park a saga whose deadline failed (the saga itself is long gone: firing it again does
    nothing, as for a saga that moved on)."""
    saga_id = str(uuid4())
    timer = Timer("sagas", "checkout", saga_id, "acme", "payment-deadline", datetime.now(UTC))

    async def park() -> None:
        store = await SqliteSagaStore.open(data_dir / "sagas.sqlite3")
        try:
            await store.park(
                "sagas",
                saga_id,
                saga_type="checkout",
                tenant_id="acme",
                record=timer,
                error="RuntimeError: cannot compensate",
            )
        finally:
            await store.close()

    asyncio.run(park())
    return saga_id


def test_a_parked_saga_is_listed_shown_and_resumed_by_a_retry(data_dir: Path) -> None:
    saga_id = park_a_deadline(data_dir)

    code, listed = mercato("sagas", "list")
    assert code == 0 and saga_id in listed and "RuntimeError: cannot compensate" in listed
    code, shown = mercato("sagas", "show", saga_id)
    assert code == 0 and "deadline payment-deadline" in shown
    code, retried = mercato("sagas", "retry", saga_id)
    assert code == 0 and "1 letters fed; resumed" in retried
    code, listed = mercato("sagas", "list", "--tenant", "acme")
    assert code == 0 and saga_id not in listed


def test_mistakes_get_one_line_and_exit_2(data_dir: Path) -> None:
    code, out = mercato("sagas", "show", "no-such-saga")
    assert code == 2 and "is not parked" in out and "Traceback" not in out
    code, out = mercato("sagas", "retry", "no-such-saga")
    assert code == 2 and "not parked" in out and "Traceback" not in out
    code, out = mercato("sagas", "skip", "no-such-saga")
    assert code == 2 and "not parked" in out
