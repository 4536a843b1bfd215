"""`GET /admin/projections` and the projection gauges, on the embedded profile, where the
projections run inside the API process: a real order reaches its view, and the status says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.e2e.http_support import (
    call,
    container_of,
    create_product,
    embedded_settings,
    eventually,
    head_position,
    place_order,
    promoted_to_admin,
    running,
    signed_up,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running(embedded_settings(tmp_path / "state")) as client:
        yield client


def test_an_admin_sees_each_projection_caught_up_after_an_order(client: TestClient) -> None:
    creator = signed_up(client, "creator@example.org", roles=("creator",))
    buyer = signed_up(client, "buyer@example.org")
    admin = promoted_to_admin(client, signed_up(client, "admin@example.org"))
    order_id = place_order(client, buyer, create_product(client, creator))
    head = head_position(client)

    def caught_up() -> dict[str, Any] | None:
        response = client.get("/admin/projections", headers=admin.headers)
        assert response.status_code == 200, response.text
        (views,) = [p for p in response.json() if p["name"] == "order_views"]
        # The sagas keep appending after `head` (reservation, payment): wait for a quiet log.
        return views if views["checkpoint"] >= head and views["lag_events"] == 0 else None

    views = eventually(caught_up, what="order_views to reach the head")
    assert views["state"] == "live"
    assert views["live_target"] == "order_views_v1_1"
    assert views["lag_events"] == 0 and views["parked_streams"] == 0

    container = container_of(client)
    sink: Any = call(client, container.sink, "views")
    document = call(client, sink.live_document, "order_views", f"{buyer.tenant}:order:{order_id}")
    assert document is not None and document.fields["id"] == str(order_id)

    def gauges_quiet() -> str | None:
        # The worker refreshes the gauges every few seconds on its own: a refresh between the
        # status call above and this scrape may count events the sagas appended since.
        metrics = client.get("/metrics").text
        lag = 'mercato_projection_lag_events{projection="order_views"} 0.0'
        return metrics if lag in metrics else None

    metrics = eventually(gauges_quiet, what="the lag gauge of order_views to read 0")
    assert 'mercato_dead_letters_parked{projection="order_views"} 0.0' in metrics


def test_only_admins_see_projection_status(client: TestClient) -> None:
    buyer = signed_up(client, "buyer@example.org")
    assert client.get("/admin/projections", headers=buyer.headers).status_code == 403
    assert client.get("/admin/projections").status_code == 401
