"""A full blue/green rebuild of every read model (hot views, search, analytics) changes no
answer: on a seeded marketplace, each projection is rebuilt into a new target, `verify` then
finds no difference, and every query endpoint answers exactly as before the rebuilds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from application.ports.read_model_sink import TargetName
from interfaces.cli.demo import SimulatorScripts
from interfaces.demo.plan import ADMIN_EMAIL, PASSWORD, WorkloadSpec, make_plan
from interfaces.demo.workload import DemoDriver
from projections.rebuild import RebuildOptions, rebuild
from projections.verify import verify
from tests.e2e.http_support import (
    bearer,
    call,
    container_of,
    embedded_settings,
    head_position,
    running,
)

TENANT = "rebuilt"
NOW = datetime.now(UTC)
PERIOD = {
    "from": (NOW - timedelta(days=365)).isoformat(),
    "to": (NOW + timedelta(days=30)).isoformat(),
    "granularity": "month",
}


def _seed(client: TestClient) -> None:
    container = container_of(client)

    async def seed() -> None:
        driver = DemoDriver(
            container.marketplace,
            container.accounts,
            container.tenants,
            tenant_id=TENANT,
            payments=SimulatorScripts(container.payment_simulator),
        )
        report = await driver.run(make_plan(WorkloadSpec(sellers=3, buyers=8, orders=40, seed=3)))
        assert not report.unexpected, report.unexpected

    call(client, seed)


def _token(client: TestClient, email: str) -> dict[str, str]:
    answer = client.post(
        "/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Tenant-ID": TENANT},
    )
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["access_token"])


def _answers(client: TestClient) -> dict[str, Any]:
    """Every query endpoint's answer, read once the read models reflect the whole log."""
    wait = {"Mercato-Min-Position": str(head_position(client))}
    admin = _token(client, ADMIN_EMAIL) | wait
    buyer = _token(client, "buyer0001@demo.mercato.test") | wait
    seller = _token(client, "seller001@demo.mercato.test") | wait
    seller_id = client.get("/auth/me", headers=seller).json()["id"]

    def get(path: str, headers: dict[str, str], **params: Any) -> Any:
        answer = client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    answers: dict[str, Any] = {
        "search": get("/products/search", buyer, limit=100),
        "search_text": get("/products/search", buyer, q="drums", sort="relevance", limit=100),
        "my_orders": get("/me/orders", buyer, limit=100),
        "wallets": get("/wallets/me", seller),
        "dashboard": get(f"/sellers/{seller_id}/dashboard", seller),
    }
    for order in answers["my_orders"]["orders"]:
        answers[f"order {order['id']}"] = get(f"/orders/{order['id']}", buyer)
    for hit in answers["search"]["hits"]:
        answers[f"product {hit['id']}"] = get(f"/products/{hit['id']}", buyer)
    for report in ("sales", "top-products", "top-sellers", "funnel", "escrow"):
        answers[report] = get(f"/analytics/{report}", admin, **PERIOD)
    return answers


def test_rebuilding_every_read_model_changes_no_answer(tmp_path: Path) -> None:
    with running(embedded_settings(tmp_path)) as client:
        _seed(client)
        before = _answers(client)
        assert before["my_orders"]["orders"] and before["search"]["hits"]
        assert before["sales"]["buckets"] and before["dashboard"]["currencies"]
        container = container_of(client)

        async def rebuild_and_verify() -> dict[str, tuple[str, str]]:
            moved = {}
            for projection in container.projections:
                applier = await container.applier(projection)
                old = (await applier.sink.routing(projection.name)).live
                report = await rebuild(
                    applier, container.event_store, RebuildOptions(grace=1.5, drop_after=0)
                )
                partitions = container.partitioning.partitions_of(projection)
                checked = await verify(applier, container.event_store, partitions)
                assert checked.clean, (projection.name, checked.differences[:5])
                moved[projection.name] = (str(old), report.target)
            return moved

        moved = call(client, rebuild_and_verify)
        assert set(moved) >= {
            "order_views",
            "wallet_views",
            "seller_dashboard",
            "product_pages",
            "catalog_search",
            "analytics_facts",
        }
        for name, (old, new) in moved.items():
            assert TargetName.parse(new).generation == TargetName.parse(old).generation + 1, name

        after = _answers(client)
        assert after.keys() == before.keys()
        for key in before:
            assert after[key] == before[key], key
