"""A sale over HTTP on the services profile: Postgres event and saga stores, webhooks signed
by the payment simulator and delivered to the HTTP endpoint, sagas run by a runner as
`mercato worker sagas` would, and the hot views in Redis fed through Kafka by the relay and
projectors as `mercato worker relay` and `mercato worker projector` would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infrastructure.settings import load_settings
from tests.e2e.http_support import (
    CHEAP_ARGON2,
    assert_the_capture_came_over_http,
    create_product,
    eventually,
    head_position,
    order_status,
    place_order,
    position_of,
    running,
    sagas_running,
    signed_up,
    unique_topic_prefix,
    until_order_is,
    views_projected,
    webhooks_over_http,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(fresh_postgres_dsn: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        profile="services",
        data_dir=tmp_path,
        postgres_dsn=fresh_postgres_dsn,
        kafka_topic_prefix=unique_topic_prefix(),
        **CHEAP_ARGON2,
    )
    with running(settings) as client, views_projected(client), sagas_running(client):
        # On this profile the API process runs no sagas: a worker does. Run one here.
        yield client


def test_a_creator_sells_a_track_and_is_paid_minus_the_fee(client: TestClient) -> None:
    webhooks = webhooks_over_http(client)
    creator = signed_up(client, "creator@example.org", roles=("creator",))
    buyer = signed_up(client, "buyer@example.org")
    product_id = create_product(client, creator, price=2_500, stock=3)

    order_id = place_order(client, buyer, product_id, quantity=2)
    until_order_is(client, buyer, order_id, "delivered")
    confirmed = client.post(f"/orders/{order_id}/confirm-receipt", headers=buyer.headers)
    completed_at = position_of(confirmed)

    assert order_status(client, buyer, order_id, min_position=completed_at) == "completed"
    assert_the_capture_came_over_http(webhooks)

    def seller_balance() -> int | None:
        response = client.get("/wallets/EUR", headers=creator.headers)
        return response.json()["balance"]["amount"] if response.status_code == 200 else None

    # 2 x 25.00 EUR = 50.00 EUR, less the platform's 10 % fee.
    assert eventually(seller_balance, what="the seller is credited") == 4_500
    product = client.get(
        f"/products/{product_id}",
        params={"min_position": head_position(client)},
        headers=creator.headers,
    ).json()
    assert (product["stock"], product["available"]) == (1, 1)
    me = client.get("/me/orders", params={"min_position": completed_at}, headers=buyer.headers)
    assert [(o["id"], o["status"]) for o in me.json()["orders"]] == [(str(order_id), "completed")]
