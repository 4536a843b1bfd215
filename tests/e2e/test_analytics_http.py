"""Analytics end to end on the embedded profile: orders driven through the real command side
(sagas, payment simulator, escrow) to completion, refund and cancellation; the analytics
projection runs in the API's process (chdb); the reports over HTTP and through the CLI.

The orders, all of one product at 10.00 EUR from one creator, platform fee 10 %:
- A: 2 units, paid, delivered, confirmed by the buyer → escrow released (net 1,800, fee 200);
- B: 1 unit, paid, delivered, disputed, refunded by an admin → escrow refunded;
- C: 1 unit, never paid (the payer never pays), cancelled by the buyer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from infrastructure.payments.simulator import IntentScript
from interfaces.cli.main import app as cli
from tests.e2e.http_support import (
    User,
    container_of,
    create_product,
    embedded_settings,
    eventually,
    head_position,
    place_order,
    promoted_to_admin,
    running,
    signed_up,
    until_order_is,
)
from tests.integration.test_clickhouse_rows import chdb_folder_held

pytestmark = pytest.mark.e2e

STARTED = datetime.now(UTC) - timedelta(hours=1)
UNTIL = datetime.now(UTC) + timedelta(days=1)
PERIOD = {"from": STARTED.isoformat(), "to": UNTIL.isoformat()}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running(embedded_settings(tmp_path / "state")) as client:
        yield client


@pytest.fixture
def creator(client: TestClient) -> User:
    return signed_up(client, "creator@example.org", roles=("creator",))


@pytest.fixture
def admin(client: TestClient) -> User:
    return promoted_to_admin(client, signed_up(client, "admin@example.org"))


def seller_balance(client: TestClient, creator: User) -> int | None:
    response = client.get("/wallets/EUR", headers=creator.headers)
    if response.status_code != 200:
        return None
    balance: int = response.json()["balance"]["amount"]
    return balance


def drive_the_three_orders(client: TestClient, creator: User, admin: User) -> User:
    """Orders A, B and C (see the module docstring), waited for until the sagas are done."""
    buyer = signed_up(client, "buyer@example.org")
    product = create_product(client, creator, price=1_000)

    a = place_order(client, buyer, product, quantity=2)
    until_order_is(client, buyer, a, "delivered")
    client.post(f"/orders/{a}/confirm-receipt", headers=buyer.headers).raise_for_status()
    eventually(lambda: seller_balance(client, creator) == 1_800 or None, what="A is paid out")

    b = place_order(client, buyer, product)
    until_order_is(client, buyer, b, "delivered")
    disputed = client.post(f"/orders/{b}/dispute", json={"reason": "empty"}, headers=buyer.headers)
    disputed.raise_for_status()

    def refunded() -> bool | None:
        response = client.post(
            f"/disputes/{b}/resolve", json={"resolution": "refund"}, headers=admin.headers
        )
        assert response.status_code in (200, 409), response.text
        return response.status_code == 200 or None

    eventually(refunded, what="the admin's refund is accepted")
    until_order_is(client, buyer, b, "refunded")

    container_of(client).payment_simulator.script_next(IntentScript(outcomes=()))
    c = place_order(client, buyer, product)
    until_order_is(client, buyer, c, "payment_requested")
    client.post(f"/orders/{c}/cancel", json={"reason": "no"}, headers=buyer.headers)
    until_order_is(client, buyer, c, "cancelled")
    return buyer


def report(client: TestClient, user: User, path: str, **params: Any) -> Any:
    """A report that reflects everything in the log now (read-your-writes)."""
    query = PERIOD | {"min_position": head_position(client)} | params
    response = client.get(f"/analytics/{path}", params=query, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def same_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with their bucket as a datetime (the API writes UTC as `Z`, the CLI as `+00:00`)."""
    return [row | {"bucket": datetime.fromisoformat(row["bucket"])} for row in rows]


def totals(buckets: list[dict[str, Any]], *fields: str) -> dict[str, int]:
    """Sums over the buckets (the test may straddle midnight or a month's end)."""
    return {field: sum(bucket[field] for bucket in buckets) for field in fields}


def test_the_reports_show_the_orders_driven_through_the_command_side(
    client: TestClient, creator: User, admin: User
) -> None:
    drive_the_three_orders(client, creator, admin)

    sales = report(client, admin, "sales", granularity="day")
    products = report(client, admin, "top-products", limit=5)
    sellers = report(client, admin, "top-sellers")
    [funnel] = report(client, admin, "funnel")["buckets"]
    [escrow] = report(client, admin, "escrow")["buckets"]

    assert {bucket["currency"] for bucket in sales["buckets"]} == {"EUR"}
    assert totals(sales["buckets"], "gmv", "net", "fees", "orders") == {
        "gmv": 3_000,
        "net": 1_800,
        "fees": 200,
        "orders": 2,
    }
    [product] = products["products"]
    assert (product["revenue"], product["units"], product["orders"]) == (3_000, 3, 2)
    assert product["seller_id"] == str(creator.account_id)
    assert sellers["sellers"] == [
        {"seller_id": str(creator.account_id), "currency": "EUR", "revenue": 3_000, "orders": 2}
    ]
    assert {name: value for name, value in funnel.items() if name != "bucket"} == {
        "placed": 3,
        "paid": 2,
        "completed": 1,
        "cancelled": 1,
        "disputed": 1,
        "refunded": 1,
        "cancellation_rate": 1 / 3,
        "refund_rate": 1 / 2,
    }
    assert (escrow["closed"], escrow["released"], escrow["refunded"]) == (2, 1, 1)
    assert escrow["disputes"] == 1
    assert 0 < escrow["p50_seconds"] <= escrow["p90_seconds"] <= escrow["p99_seconds"]


def test_a_seller_filter_and_another_tenant_narrow_the_reports(
    client: TestClient, creator: User, admin: User
) -> None:
    drive_the_three_orders(client, creator, admin)
    someone = signed_up(client, "someone@example.org", roles=("creator",))
    other_admin = promoted_to_admin(client, signed_up(client, "boss@example.org", tenant="globex"))

    mine = report(client, admin, "sales", seller=str(creator.account_id), granularity="month")
    nobody = report(client, admin, "sales", seller=str(someone.account_id))
    elsewhere = report(client, other_admin, "sales")

    assert totals(mine["buckets"], "gmv", "orders") == {"gmv": 3_000, "orders": 2}
    assert mine["seller_id"] == str(creator.account_id)
    assert nobody["buckets"] == []
    assert elsewhere["buckets"] == []


def test_only_admins_read_analytics(client: TestClient, creator: User) -> None:
    assert client.get("/analytics/sales", params=PERIOD).status_code == 401
    forbidden = client.get("/analytics/sales", params=PERIOD, headers=creator.headers)
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, ["query", "to"]),
        ({"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, ["query", "to"]),
        (
            {"from": "2025-01-01T00:00:00Z", "to": "2025-03-01T00:00:00Z", "granularity": "hour"},
            ["query", "from"],
        ),
        (
            {"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z", "granularity": "week"},
            ["query", "granularity"],
        ),
        ({"from": "2025-03-01T00:00:00", "to": "2025-03-02T00:00:00Z"}, ["query", "from"]),
        ({"from": "yesterday", "to": "2025-03-02T00:00:00Z"}, ["query", "from"]),
        ({"to": "2025-03-02T00:00:00Z"}, ["query", "from"]),
        ({"from": "1900-01-01T00:00:00Z", "to": "2025-03-02T00:00:00Z"}, ["query", "from"]),
        (
            {"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z", "seller": "x"},
            ["query", "seller"],
        ),
    ],
)
def test_bad_input_is_a_422_that_names_the_parameter(
    client: TestClient, admin: User, params: dict[str, str], where: list[str]
) -> None:
    response = client.get("/analytics/sales", params=params, headers=admin.headers)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == where


def test_a_ranking_limit_out_of_bounds_is_a_422(client: TestClient, admin: User) -> None:
    for limit in (0, 101):
        response = client.get(
            "/analytics/top-products", params=PERIOD | {"limit": limit}, headers=admin.headers
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "limit"]


# -- the CLI ----------------------------------------------------------------------------------

runner = CliRunner()


def mercato(data_dir: Path, *args: str) -> tuple[int, str]:
    """The CLI in this process, on the data dir the app wrote (and so, in a test, on this
    process's chdb folder and the test's database, from the environment)."""
    env = {"MERCATO_PROFILE": "embedded", "MERCATO_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    result = runner.invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def test_the_cli_prints_the_same_reports_as_the_api(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    with running(embedded_settings(data_dir)) as client:
        creator = signed_up(client, "creator@example.org", roles=("creator",))
        admin = promoted_to_admin(client, signed_up(client, "admin@example.org"))
        drive_the_three_orders(client, creator, admin)
        api = report(client, admin, "sales", granularity="day")["buckets"]
        api_funnel = report(client, admin, "funnel")["buckets"]
    period = ["--tenant", "acme", "--from", STARTED.isoformat(), "--to", UNTIL.isoformat()]

    code, as_json = mercato(
        data_dir, "analytics", "sales", *period, "--by", "day", "--format", "json"
    )
    assert code == 0, as_json
    assert same_times(json.loads(as_json)) == same_times(api)
    code, as_csv = mercato(data_dir, "analytics", "sales", *period, "--format", "csv")
    assert code == 0, as_csv
    header, *lines = as_csv.strip().splitlines()
    assert header == "bucket,currency,gmv,net,fees,orders"
    assert sum(int(line.split(",")[2]) for line in lines) == 3_000
    code, table = mercato(data_dir, "analytics", "sales", *period)
    assert code == 0 and "Sales by day, tenant acme" in table and "3000" in table.replace(",", "")
    code, funnel = mercato(data_dir, "analytics", "funnel", *period, "--format", "json")
    assert code == 0 and same_times(json.loads(funnel)) == same_times(api_funnel)
    for command in ("top-products", "top-sellers", "escrow"):
        code, out = mercato(data_dir, "analytics", command, *period)
        assert code == 0 and "Traceback" not in out, out


def test_the_cli_says_so_in_one_line_when_a_server_holds_the_engine(tmp_path: Path) -> None:
    env = os.environ | {
        "MERCATO_PROFILE": "embedded",
        "MERCATO_DATA_DIR": str(tmp_path / "state"),
        "MERCATO_CLICKHOUSE_URL": f"chdb://{tmp_path / 'engine'}",
    }
    command = [sys.executable, "-m", "interfaces.cli.main", "analytics", "sales"]

    with chdb_folder_held(tmp_path / "engine"):
        done = subprocess.run(
            [*command, "--tenant", "acme"], env=env, capture_output=True, text=True, timeout=120
        )

    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    assert "in use by another process" in lines[0]
    assert "GET /analytics/sales answers the same report" in lines[0]


def test_the_cli_refuses_a_backwards_period_in_one_line(tmp_path: Path) -> None:
    code, out = mercato(
        tmp_path,
        "analytics",
        "sales",
        "--tenant",
        "acme",
        "--from",
        "2025-03-02",
        "--to",
        "2025-03-01",
    )

    assert code == 2 and "to must be later than from" in out and "Traceback" not in out
