"""`mercato bench append` end to end with tiny sizes: every scenario is measured and compared,
the result file is written, and the throwaway database is gone afterwards. No timing asserts:
benchmarks report, they do not fail."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infrastructure.postgres_databases import database_exists
from interfaces.cli.main import app
from mercato_bench.append import make_payload
from mercato_bench.report import latency_summary, percentile

pytestmark = pytest.mark.integration

EXPECTED = {
    # (scenario, writers): the ratios it must carry
    **{("mercato.new-streams", w): {"vs_stock", "vs_raw_txn"} for w in (1, 8, 16)},
    ("mercato.hot-stream", 1): {"vs_stock", "vs_raw_txn"},
    **{("mercato.batched", w): {"vs_stock", "vs_raw_executemany"} for w in (1, 8)},
    **{("stock.new-streams", w): {"vs_raw_txn"} for w in (1, 8, 16)},
    ("stock.hot-stream", 1): {"vs_raw_txn"},
    **{("stock.batched", w): {"vs_raw_executemany"} for w in (1, 8)},
    **{("raw.txn", w): set() for w in (1, 8, 16)},
    **{("raw.autocommit", w): {"vs_raw_txn"} for w in (1, 8, 16)},
    **{("raw.executemany", w): set() for w in (1, 8)},
    ("raw.copy", 1): set(),
}


def test_bench_append_runs_every_scenario_and_drops_its_database(
    postgres_admin_dsn: str, tmp_path: Path
) -> None:
    arguments = [
        "bench", "append", "--dsn", postgres_admin_dsn, "--events", "200",
        "--batch-events", "1000", "--warmup", "10", "--copy-rows", "2000",
        "--no-checkpoint", "--output-dir", str(tmp_path),
    ]  # fmt: skip
    outcome = CliRunner().invoke(app, arguments)

    assert outcome.exit_code == 0, outcome.output
    assert "mercato.new-streams" in outcome.output  # the table was printed
    latest = tmp_path / "append-latest.json"
    stamped = [path for path in tmp_path.glob("append-*.json") if path != latest]
    assert len(stamped) == 1
    result = json.loads(latest.read_text())
    assert result == json.loads(stamped[0].read_text())

    by_key = {(s["scenario"], s["writers"]): s for s in result["scenarios"]}
    assert set(by_key) == set(EXPECTED)
    for key, ratios in EXPECTED.items():
        scenario = by_key[key]
        assert scenario["events_per_second"] > 0, key
        assert set(scenario["ratios"]) == ratios, key
        for name, value in scenario["ratios"].items():
            assert value is not None and value > 0, (key, name)
        if key[0] != "raw.copy":
            latency = scenario["latency_ms"]
            assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"], key
    assert by_key[("mercato.new-streams", 16)]["events"] == 200
    assert by_key[("mercato.batched", 8)]["events"] == 1000
    assert by_key[("mercato.batched", 8)]["calls"] == 10

    assert {goal["name"] for goal in result["goals"]} >= {
        "Mercato ÷ stock eventsourcing, 16 writers",
        "Mercato p99 single-event append, 8 writers",
    }
    assert all(goal["value"] is not None for goal in result["goals"])
    assert result["machine"]["cores"] >= 1
    assert result["postgres"]["server_version"]
    assert result["libraries"]["eventsourcing"] and result["libraries"]["asyncpg"]
    assert result["settings"]["payload_bytes"] == 200

    database = result["database"]["name"]
    assert database.startswith("mercato_bench_")
    assert not asyncio.run(database_exists(postgres_admin_dsn, database))


def test_percentiles_and_payload() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0
    assert math.isnan(percentile([], 0.5))
    summary = latency_summary([0.001] * 999 + [0.101])
    assert summary["p50"] == pytest.approx(1.0)
    assert summary["max"] == pytest.approx(101.0)
    payload = make_payload(200)
    assert len(payload) == 200
    assert json.loads(payload)["currency"] == "EUR"
