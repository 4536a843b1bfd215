"""`/admin/sagas`: a tenant's admin sees, retries and skips its own tenant's parked sagas only;
`/metrics` counts them (embedded profile)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from application.ports.event_store import LogFilter, RecordedEvent
from application.sagas.checkout import checkout_saga_id
from application.sagas.inputs import topic
from domain.order import Order
from tests.e2e.http_support import (
    User,
    call,
    container_of,
    create_product,
    embedded_settings,
    place_order,
    promoted_to_admin,
    running,
    signed_up,
    until_order_is,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running(embedded_settings(tmp_path / "state")) as client:
        yield client


@pytest.fixture
def admin(client: TestClient) -> User:
    return promoted_to_admin(client, signed_up(client, "admin@example.org"))


def delivered_order(client: TestClient) -> tuple[UUID, RecordedEvent]:
    """An order whose checkout is done, and the event that placed it."""
    creator = signed_up(client, f"creator-{uuid4().hex[:6]}@example.org", roles=("creator",))
    buyer = signed_up(client, f"buyer-{uuid4().hex[:6]}@example.org")
    order_id = place_order(client, buyer, create_product(client, creator))
    until_order_is(client, buyer, order_id, "delivered")
    placed = LogFilter(event_types=frozenset({topic(Order, "Placed")}))
    events = call(client, container_of(client).event_store.read_all, 0, 10_000, placed)
    [event] = [e for e in events if e.stream_id == str(order_id)]
    return order_id, event


def park(client: TestClient, saga_id: str, event: RecordedEvent, *, tenant: str) -> None:
    """Park a saga as the runner does when its input fails for good."""
    marketplace = container_of(client).marketplace

    async def parked() -> None:
        await marketplace.saga_store.park(
            marketplace.saga_group,
            saga_id,
            saga_type="checkout",
            tenant_id=tenant,
            record=event,
            error="RuntimeError: a bug in a step",
        )

    call(client, parked)


def test_a_tenant_admin_lists_and_shows_only_its_own_tenants_parked_sagas(
    client: TestClient, admin: User
) -> None:
    order_id, placed = delivered_order(client)
    saga_id = str(checkout_saga_id(order_id))
    park(client, saga_id, placed, tenant=admin.tenant)
    park(client, "unrouted:elsewhere", placed, tenant="another-tenant")

    listed = client.get("/admin/sagas", headers=admin.headers)
    shown = client.get(f"/admin/sagas/{saga_id}", headers=admin.headers)
    foreign = client.get("/admin/sagas/unrouted:elsewhere", headers=admin.headers)

    assert listed.status_code == 200, listed.text
    assert [(s["saga_id"], s["tenant_id"], s["letters"]) for s in listed.json()] == [
        (saga_id, admin.tenant, 1)
    ]
    assert shown.status_code == 200, shown.text
    assert [(d["kind"], d["position"]) for d in shown.json()["dead_letters"]] == [
        ("event", placed.position)
    ]
    assert shown.json()["error"] == "RuntimeError: a bug in a step"
    assert foreign.status_code == 404
    assert (
        client.post("/admin/sagas/unrouted:elsewhere/retry", headers=admin.headers).status_code
        == 404
    )


def test_parked_sagas_need_the_admin_role_and_a_well_formed_id(
    client: TestClient, admin: User
) -> None:
    buyer = signed_up(client, "buyer@example.org")

    assert client.get("/admin/sagas").status_code == 401
    assert client.get("/admin/sagas", headers=buyer.headers).status_code == 403
    assert client.post(f"/admin/sagas/{uuid4()}/retry", headers=buyer.headers).status_code == 403
    assert client.get("/admin/sagas/%20bad%20id", headers=admin.headers).status_code == 422
    assert client.get(f"/admin/sagas/{'x' * 201}", headers=admin.headers).status_code == 422
    assert client.post(f"/admin/sagas/{uuid4()}/skip", headers=admin.headers).status_code == 404


def test_a_retried_saga_resumes_and_leaves_the_parked_gauge(
    client: TestClient, admin: User
) -> None:
    order_id, placed = delivered_order(client)
    saga_id = str(checkout_saga_id(order_id))
    park(client, saga_id, placed, tenant=admin.tenant)
    gauge = f'mercato_sagas_parked{{saga="checkout",tenant="{admin.tenant}"}} 1.0'
    assert gauge in client.get("/metrics").text

    retried = client.post(f"/admin/sagas/{saga_id}/retry", headers=admin.headers)

    assert retried.status_code == 200, retried.text
    assert retried.json() == {
        "saga_id": saga_id,
        "fed": 1,
        "skipped": False,
        "resumed": True,
        "error": None,
    }
    assert client.get("/admin/sagas", headers=admin.headers).json() == []
    assert "mercato_sagas_parked{" not in client.get("/metrics").text


def test_skip_drops_the_first_letter_unfed(client: TestClient, admin: User) -> None:
    order_id, placed = delivered_order(client)
    saga_id = str(checkout_saga_id(order_id))
    park(client, saga_id, placed, tenant=admin.tenant)

    skipped = client.post(f"/admin/sagas/{saga_id}/skip", headers=admin.headers)

    assert skipped.status_code == 200, skipped.text
    assert (skipped.json()["skipped"], skipped.json()["fed"], skipped.json()["resumed"]) == (
        True,
        0,
        True,
    )
