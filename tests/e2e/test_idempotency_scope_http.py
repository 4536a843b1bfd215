"""Idempotency keys over HTTP belong to their caller: another user's key is a new key, and no key
a caller sends reaches the keys of the sagas, on both profiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid5

import httpx
import pytest
from fastapi.testclient import TestClient

from application.commerce.commands import Command
from application.commerce.process_commands import MarkStockReserved, RequestPayment, ReserveStock
from application.commerce.services import new_id
from application.context import Actor, CommandContext, fingerprint_command
from application.sagas.checkout import checkout_saga_id
from domain.ids import MERCATO_NAMESPACE
from infrastructure.settings import load_settings
from tests.e2e.http_support import (
    CHEAP_ARGON2,
    User,
    call,
    container_of,
    create_product,
    embedded_settings,
    eventually,
    place_order,
    running,
    sagas_running,
    signed_up,
    unique_topic_prefix,
    until_order_is,
    views_projected,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["embedded", "services"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The embedded profile (SQLite, sagas in the API), and the services profile (Postgres
    keys, sagas and views run beside the API as their workers would)."""
    if request.param == "embedded":
        with running(embedded_settings(tmp_path / "state")) as client:
            yield client
        return
    settings = load_settings(
        profile="services",
        data_dir=tmp_path,
        postgres_dsn=request.getfixturevalue("fresh_postgres_dsn"),
        kafka_topic_prefix=unique_topic_prefix(),
        **CHEAP_ARGON2,
    )
    with running(settings) as client, views_projected(client), sagas_running(client):
        yield client


@pytest.fixture
def creator(client: TestClient) -> User:
    return signed_up(client, "creator@example.org", roles=("creator",))


def order_request(
    client: TestClient, buyer: User, product_id: UUID, key: str, quantity: int = 1
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/orders",
        json={"lines": [{"product_id": str(product_id), "quantity": quantity}]},
        headers=buyer.headers | {"Idempotency-Key": key},
    )
    return response


def test_a_second_buyer_reusing_the_first_buyers_key_and_body_gets_an_order_of_their_own(
    client: TestClient, creator: User
) -> None:
    product_id = create_product(client, creator)
    first, second = (signed_up(client, f"buyer{n}@example.org") for n in (1, 2))
    mine = order_request(client, first, product_id, "order-1")

    theirs = order_request(client, second, product_id, "order-1")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.json()["order_id"] != mine.json()["order_id"]
    assert "Idempotent-Replayed" not in theirs.headers
    shown = client.get(f"/orders/{theirs.json()['order_id']}", headers=second.headers)
    assert shown.status_code in (200, 404)  # the view may lag; it is never the first buyer's


def test_a_second_buyer_reusing_the_key_with_another_body_is_not_refused(
    client: TestClient, creator: User
) -> None:
    product_id = create_product(client, creator)
    first, second = (signed_up(client, f"buyer{n}@example.org") for n in (1, 2))
    mine = order_request(client, first, product_id, "order-1")

    theirs = order_request(client, second, product_id, "order-1", quantity=2)

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.json()["order_id"] != mine.json()["order_id"]
    assert (
        order_request(client, second, product_id, "order-1", quantity=2).headers[
            "Idempotent-Replayed"
        ]
        == "true"
    )  # the second buyer's own retry is still a replay


def test_a_buyer_replaying_a_sellers_payout_key_learns_nothing_of_the_seller(
    client: TestClient, creator: User
) -> None:
    buyer = signed_up(client, "buyer@example.org")
    order_id = place_order(client, buyer, create_product(client, creator, price=1_000))
    until_order_is(client, buyer, order_id, "delivered")
    client.post(f"/orders/{order_id}/confirm-receipt", headers=buyer.headers).raise_for_status()

    def pay_out(user: User) -> httpx.Response:
        response: httpx.Response = client.post(
            "/wallets/payouts",
            json={"amount": {"amount": 100, "currency": "EUR"}},
            headers=user.headers | {"Idempotency-Key": "payout-1"},
        )
        return response

    paid = eventually(
        lambda: response if (response := pay_out(creator)).status_code == 201 else None,
        what="the seller is paid and pays out",
    )
    replayed = pay_out(buyer)

    assert replayed.status_code == 404  # the buyer's own wallet: there is none
    assert "Idempotent-Replayed" not in replayed.headers
    assert paid.json()["wallet_id"] not in replayed.text


def saga_keys(order_id: UUID, product_id: UUID) -> list[str]:
    """The keys the checkout saga of this order gives its first steps (`SagaDriver._context`)."""
    saga_id = checkout_saga_id(order_id)
    steps: list[tuple[str, Command]] = [
        (
            f"reserve:{product_id}",
            ReserveStock(product_id=product_id, order_id=order_id, quantity=1),
        ),
        ("mark-stock-reserved", MarkStockReserved(order_id=order_id)),
        ("request-payment", RequestPayment(order_id=order_id)),
    ]
    return [f"saga:{saga_id}:{step}:{fingerprint_command(c)[:16]}" for step, c in steps]


def test_a_buyer_sending_the_saga_keys_of_their_next_order_does_not_disturb_its_checkout(
    client: TestClient, creator: User
) -> None:
    product_id = create_product(client, creator)
    buyer = signed_up(client, "buyer@example.org")
    next_key = "my-next-order"
    # Where the order would be under the old rule (key as sent), and where it is now (the
    # key in the buyer's scope): the attacker knows both.
    old_order_id = uuid5(MERCATO_NAMESPACE, f"order:{buyer.tenant}:{next_key}")
    actor = Actor(account_id=buyer.account_id, tenant_id=buyer.tenant)
    new_order_id = new_id(CommandContext(actor, next_key), "order")
    for key in saga_keys(old_order_id, product_id) + saga_keys(new_order_id, product_id):
        assert order_request(client, buyer, product_id, key).status_code == 201

    order = order_request(client, buyer, product_id, next_key)

    assert order.status_code == 201
    order_id = UUID(order.json()["order_id"])
    assert order_id == new_order_id
    until_order_is(client, buyer, order_id, "delivered")
    parked = call(client, container_of(client).marketplace.parked_sagas().parked)
    assert parked == []
