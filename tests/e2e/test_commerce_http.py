"""The commerce command side over HTTP, on the embedded profile (sagas run in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from application.ports.payment_gateway import NotificationKind, PaymentNotification
from domain.ids import payment_id_for
from domain.money import Money
from infrastructure.payments import signing
from infrastructure.payments.simulator import IntentScript
from tests.e2e.http_support import (
    User,
    assert_the_capture_came_over_http,
    call,
    caused_by,
    container_of,
    create_product,
    embedded_settings,
    eventually,
    head_position,
    login,
    order_status,
    place_order,
    placed_order,
    position_of,
    promoted_to_admin,
    running,
    signed_up,
    until_order_is,
    webhooks_over_http,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running(embedded_settings(tmp_path / "state")) as client:
        yield client


@pytest.fixture
def creator(client: TestClient) -> User:
    return signed_up(client, "creator@example.org", roles=("creator",))


@pytest.fixture
def buyer(client: TestClient) -> User:
    return signed_up(client, "buyer@example.org")


@pytest.fixture
def admin(client: TestClient) -> User:
    return promoted_to_admin(client, signed_up(client, "admin@example.org"))


def stream_version(client: TestClient, stream_id: UUID) -> int:
    return call(client, container_of(client).event_store.stream_version, str(stream_id))


def wallet_balance(
    client: TestClient, user: User, *, min_position: int | None = None
) -> int | None:
    """The balance of the user's EUR wallet, from its view (None: no wallet); with
    `min_position`, from a view that reflects it."""
    params = {} if min_position is None else {"min_position": min_position}
    response = client.get("/wallets/EUR", params=params, headers=user.headers)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    balance: int = response.json()["balance"]["amount"]
    return balance


def euro_totals(
    client: TestClient, user: User, seller_id: UUID, min_position: int
) -> dict[str, int]:
    """The seller's dashboard in EUR, amounts as plain numbers, as `user` reads it."""
    response = client.get(
        f"/sellers/{seller_id}/dashboard",
        params={"min_position": min_position},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    [totals] = response.json()["currencies"]
    assert totals.pop("currency") == "EUR"
    return {
        name: value["amount"] if isinstance(value, dict) else value
        for name, value in totals.items()
    }


# -- products -------------------------------------------------------------------------------


def test_a_creator_creates_a_product_and_gets_its_etag(client: TestClient, creator: User) -> None:
    response = client.post(
        "/products",
        json={"title": "Night drive", "kind": "track", "price": {"amount": 990, "currency": "EUR"}},
        headers=creator.headers,
    )

    assert response.status_code == 201
    body = response.json()
    assert response.headers["ETag"] == '"1"'
    assert body["version"] == 1
    assert body["position"] == head_position(client)
    shown = client.get(
        f"/products/{body['product_id']}",
        params={"min_position": body["position"]},
        headers=creator.headers,
    )
    assert shown.headers["ETag"] == '"1"'
    assert shown.json()["price"] == {"amount": 990, "currency": "EUR"}
    assert shown.json()["published"] is False


def test_a_buyer_cannot_create_products(client: TestClient, buyer: User) -> None:
    position = head_position(client)

    response = client.post(
        "/products",
        json={"title": "Mine", "kind": "track", "price": {"amount": 990, "currency": "EUR"}},
        headers=buyer.headers,
    )

    assert response.status_code == 403
    assert response.json()["code"] == "missing_role"
    assert head_position(client) == position


def test_an_edit_with_the_current_etag_changes_only_the_fields_given(
    client: TestClient, creator: User
) -> None:
    product_id = create_product(client, creator, publish=False)

    response = client.patch(
        f"/products/{product_id}",
        json={"title": "Night drive (extended)"},
        headers=creator.headers | {"If-Match": '"1"'},
    )

    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    shown = client.get(
        f"/products/{product_id}",
        params={"min_position": position_of(response)},
        headers=creator.headers,
    ).json()
    assert shown["title"] == "Night drive (extended)"
    assert shown["description"] == "A synthwave track"
    assert shown["tags"] == ["synthwave"]


def test_an_edit_based_on_a_stale_etag_fails_its_precondition(
    client: TestClient, creator: User
) -> None:
    product_id = create_product(client, creator, publish=False)
    client.patch(
        f"/products/{product_id}", json={"title": "First"}, headers=creator.headers
    ).raise_for_status()
    position = head_position(client)

    response = client.patch(
        f"/products/{product_id}",
        json={"title": "Second"},
        headers=creator.headers | {"If-Match": '"1"'},
    )

    assert response.status_code == 409
    assert response.json()["code"] == "concurrency_error"
    assert head_position(client) == position


def test_only_the_owner_edits_a_product(client: TestClient, creator: User) -> None:
    other = signed_up(client, "other@example.org", roles=("creator",))
    product_id = create_product(client, creator)

    for method, path, body in [
        ("PATCH", f"/products/{product_id}", {"title": "Stolen"}),
        ("POST", f"/products/{product_id}/unpublish", None),
        ("PUT", f"/products/{product_id}/price", {"price": {"amount": 1, "currency": "EUR"}}),
    ]:
        response = client.request(method, path, json=body, headers=other.headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "not_owner"


def test_publishing_unpublishing_and_repricing_move_the_etag(
    client: TestClient, creator: User
) -> None:
    product_id = create_product(client, creator, publish=False)
    path = f"/products/{product_id}"

    published = client.post(f"{path}/publish", headers=creator.headers | {"If-Match": '"1"'})
    again = client.post(f"{path}/publish", headers=creator.headers)
    repriced = client.put(
        f"{path}/price",
        json={"price": {"amount": 1_500, "currency": "EUR"}},
        headers=creator.headers | {"If-Match": '"2"'},
    )
    unpublished = client.post(f"{path}/unpublish", headers=creator.headers)

    assert [r.headers["ETag"] for r in (published, again, repriced, unpublished)] == [
        '"2"',
        '"2"',  # publishing a published product records nothing
        '"3"',
        '"4"',
    ]
    shown = client.get(
        path, params={"min_position": position_of(unpublished)}, headers=creator.headers
    )
    assert shown.headers["ETag"] == '"4"'
    assert shown.json()["price"]["amount"] == 1_500
    assert shown.json()["published"] is False


# -- orders ---------------------------------------------------------------------------------


def test_placing_an_order_needs_an_idempotency_key(
    client: TestClient, creator: User, buyer: User
) -> None:
    product_id = create_product(client, creator)
    position = head_position(client)

    response = client.post(
        "/orders",
        json={"lines": [{"product_id": str(product_id), "quantity": 1}]},
        headers=buyer.headers,
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert head_position(client) == position


def test_a_retried_order_answers_the_first_result_and_orders_nothing_twice(
    client: TestClient, creator: User, buyer: User
) -> None:
    product_id = create_product(client, creator)
    lines = {"lines": [{"product_id": str(product_id), "quantity": 1}]}
    key = {"Idempotency-Key": "order-1"}
    first = client.post("/orders", json=lines, headers=buyer.headers | key)
    position = head_position(client)
    retry_id = uuid4()

    retry = client.post(
        "/orders", json=lines, headers=buyer.headers | key | {"X-Request-ID": str(retry_id)}
    )

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert caused_by(client, retry_id, after=position) == []


def test_an_idempotency_key_reused_for_another_order_is_refused(
    client: TestClient, creator: User, buyer: User
) -> None:
    product_id = create_product(client, creator)
    place_order(client, buyer, product_id, key="order-1")
    position = head_position(client)
    request_id = uuid4()

    response = client.post(
        "/orders",
        json={"lines": [{"product_id": str(product_id), "quantity": 2}]},
        headers=buyer.headers | {"Idempotency-Key": "order-1", "X-Request-ID": str(request_id)},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert caused_by(client, request_id, after=position) == []


def test_an_unpublished_product_cannot_be_ordered(
    client: TestClient, creator: User, buyer: User
) -> None:
    product_id = create_product(client, creator, publish=False)

    response = client.post(
        "/orders",
        json={"lines": [{"product_id": str(product_id), "quantity": 1}]},
        headers=buyer.headers | {"Idempotency-Key": "k"},
    )

    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"


def test_an_order_is_paid_delivered_and_on_confirmation_the_seller_is_paid_minus_the_fee(
    client: TestClient, creator: User, buyer: User
) -> None:
    webhooks = webhooks_over_http(client)
    product_id = create_product(client, creator, price=1_000)

    order_id = place_order(client, buyer, product_id, quantity=2)
    until_order_is(client, buyer, order_id, "delivered")
    confirmed = client.post(f"/orders/{order_id}/confirm-receipt", headers=buyer.headers)

    assert confirmed.status_code == 200
    assert_the_capture_came_over_http(webhooks)
    assert order_status(client, buyer, order_id, min_position=position_of(confirmed)) == "completed"
    # 2 x 10.00 EUR, less the platform's 10 %.
    assert eventually(lambda: wallet_balance(client, creator), what="the seller is paid") == 1_800


def test_an_order_is_shown_to_its_buyer_and_seller_only(
    client: TestClient, creator: User, buyer: User, admin: User
) -> None:
    product_id = create_product(client, creator)
    order_id, position = placed_order(client, buyer, product_id)
    somebody = signed_up(client, "somebody@example.org")

    def shown_to(user: User) -> int:
        response = client.get(
            f"/orders/{order_id}", params={"min_position": position}, headers=user.headers
        )
        status: int = response.status_code
        return status

    assert shown_to(buyer) == shown_to(creator) == shown_to(admin) == 200
    assert shown_to(somebody) == 404


def test_an_order_is_read_as_it_stood_at_a_position_or_a_time(
    client: TestClient, creator: User, buyer: User
) -> None:
    product_id = create_product(client, creator)
    placed = client.post(
        "/orders",
        json={"lines": [{"product_id": str(product_id), "quantity": 1}]},
        headers=buyer.headers | {"Idempotency-Key": "k"},
    ).json()
    placed_by = datetime.now(UTC)
    until_order_is(client, buyer, UUID(placed["order_id"]), "delivered")
    path = f"/orders/{placed['order_id']}"

    at_position = client.get(path, params={"as_of": placed["position"]}, headers=buyer.headers)
    at_time = client.get(path, params={"as_of": placed_by.isoformat()}, headers=buyer.headers)
    malformed = client.get(path, params={"as_of": "yesterday"}, headers=buyer.headers)
    before = client.get(path, params={"as_of": "1"}, headers=buyer.headers)

    assert at_position.json()["status"] == "placed"
    assert at_position.json()["version"] == placed["version"] == 1
    assert at_time.json()["status"] in {"placed", "stock_reserved", "payment_requested"}
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["query", "as_of"]
    assert before.status_code == 404


def test_a_buyer_cancels_an_order_that_is_not_paid_yet(
    client: TestClient, creator: User, buyer: User
) -> None:
    container_of(client).payment_simulator.script_next(IntentScript(outcomes=()))
    product_id = create_product(client, creator, stock=5)
    order_id = place_order(client, buyer, product_id, quantity=2)
    until_order_is(client, buyer, order_id, "payment_requested")

    response = client.post(
        f"/orders/{order_id}/cancel", json={"reason": "changed my mind"}, headers=buyer.headers
    )

    assert response.status_code == 200
    assert order_status(client, buyer, order_id, min_position=position_of(response)) == "cancelled"
    product = f"/products/{product_id}"
    eventually(
        lambda: client.get(product, headers=creator.headers).json().get("available") == 5 or None,
        what="the reservation is released",
    )


def test_cancelling_a_paid_order_is_an_illegal_transition(
    client: TestClient, creator: User, buyer: User
) -> None:
    order_id = place_order(client, buyer, create_product(client, creator))
    until_order_is(client, buyer, order_id, "delivered")
    position = head_position(client)
    request_id = uuid4()

    response = client.post(
        f"/orders/{order_id}/cancel", headers=buyer.headers | {"X-Request-ID": str(request_id)}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"
    assert caused_by(client, request_id, after=position) == []


def test_only_the_buyer_acts_on_an_order(client: TestClient, creator: User, buyer: User) -> None:
    order_id = place_order(client, buyer, create_product(client, creator))
    until_order_is(client, buyer, order_id, "delivered")

    response = client.post(f"/orders/{order_id}/confirm-receipt", headers=creator.headers)

    assert response.status_code == 403
    assert response.json()["code"] == "not_owner"


# -- disputes -------------------------------------------------------------------------------


REFUNDED = {"sales_count": 0, "gross": 0, "net": 0, "fees": 0, "pending_escrow": 0}
RELEASED = {"sales_count": 1, "gross": 1_000, "net": 900, "fees": 100, "pending_escrow": 0}


@pytest.mark.parametrize(
    ("resolution", "final_status", "seller_balance", "dashboard"),
    [
        ("refund", "refunded", None, REFUNDED | {"refunds_count": 1, "refunded": 1_000}),
        ("release", "completed", 900, RELEASED | {"refunds_count": 0, "refunded": 0}),
    ],
)
def test_an_admin_settles_a_dispute(
    client: TestClient,
    creator: User,
    buyer: User,
    admin: User,
    resolution: str,
    final_status: str,
    seller_balance: int | None,
    dashboard: dict[str, int],
) -> None:
    order_id = place_order(client, buyer, create_product(client, creator, price=1_000))
    until_order_is(client, buyer, order_id, "delivered")
    disputed = client.post(
        f"/orders/{order_id}/dispute", json={"reason": "the file is empty"}, headers=buyer.headers
    )
    assert disputed.status_code == 200

    def resolved() -> bool | None:
        # The escrow saga freezes the escrow moments after the dispute; until then, 409.
        response = client.post(
            f"/disputes/{order_id}/resolve", json={"resolution": resolution}, headers=admin.headers
        )
        assert response.status_code in (200, 409), response.text
        return response.status_code == 200 or None

    eventually(resolved, what="the admin's resolution is accepted")
    until_order_is(client, buyer, order_id, final_status)
    if seller_balance is not None:
        assert eventually(lambda: wallet_balance(client, creator), what="paid") == seller_balance
    else:
        assert wallet_balance(client, creator, min_position=head_position(client)) is None
    assert euro_totals(client, creator, creator.account_id, head_position(client)) == dashboard


def test_only_an_admin_resolves_a_dispute(client: TestClient, creator: User, buyer: User) -> None:
    order_id = place_order(client, buyer, create_product(client, creator))
    position = head_position(client)

    for user in (buyer, creator):
        request_id = uuid4()
        response = client.post(
            f"/disputes/{order_id}/resolve",
            json={"resolution": "refund"},
            headers=user.headers | {"X-Request-ID": str(request_id)},
        )
        assert response.status_code == 403
        assert caused_by(client, request_id, after=position) == []


# -- the payment webhook --------------------------------------------------------------------


def test_a_redelivered_webhook_records_nothing_new(
    client: TestClient, creator: User, buyer: User
) -> None:
    simulator = container_of(client).payment_simulator
    order_id = place_order(client, buyer, create_product(client, creator))
    until_order_is(client, buyer, order_id, "delivered")
    [captured] = [n for n in simulator.delivered if n.order_id == order_id]
    body = signing.encode(captured)
    payment_version = stream_version(client, payment_id_for(order_id))

    response = client.post(
        "/payments/webhook", content=body, headers={"Payment-Signature": simulator.sign(body)}
    )

    assert response.status_code == 200
    assert response.json()["replayed"] is True
    assert stream_version(client, payment_id_for(order_id)) == payment_version


def a_capture_notification() -> bytes:
    return signing.encode(
        PaymentNotification(
            webhook_id=f"evt_{uuid4().hex}",
            kind=NotificationKind.CAPTURED,
            intent_id="pi_1",
            order_id=uuid4(),
            tenant_id="acme",
            amount=Money(1_000, "EUR"),
            occurred_at=datetime.now(UTC),
        )
    )


@pytest.mark.parametrize(
    "signature",
    ["", "t=1,v1=00", "nonsense", "t=9999999999,v1=" + "0" * 64],
    ids=["empty", "old and wrong", "nonsense", "wrong digest"],
)
def test_a_webhook_without_a_valid_signature_is_refused(client: TestClient, signature: str) -> None:
    position = head_position(client)

    response = client.post(
        "/payments/webhook",
        content=a_capture_notification(),
        headers={"Payment-Signature": signature},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_webhook_error"
    assert head_position(client) == position


def test_a_webhook_signed_with_another_key_is_refused(client: TestClient) -> None:
    body = a_capture_notification()
    position = head_position(client)

    response = client.post(
        "/payments/webhook",
        content=body,
        headers={"Payment-Signature": signing.sign(b"another key", body, datetime.now(UTC))},
    )

    assert response.status_code == 400
    assert head_position(client) == position


def test_a_webhook_signed_for_another_body_is_refused(client: TestClient) -> None:
    simulator = container_of(client).payment_simulator
    signature = simulator.sign(b'{"id": "evt_1"}')
    position = head_position(client)

    response = client.post(
        "/payments/webhook",
        content=b'{"id": "evt_2"}',
        headers={"Payment-Signature": signature},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_webhook_error"
    assert head_position(client) == position


# -- payouts --------------------------------------------------------------------------------


def test_a_seller_pays_out_once_per_key_and_never_beyond_the_balance(
    client: TestClient, creator: User, buyer: User
) -> None:
    order_id = place_order(client, buyer, create_product(client, creator, price=1_000))
    until_order_is(client, buyer, order_id, "delivered")
    client.post(f"/orders/{order_id}/confirm-receipt", headers=buyer.headers).raise_for_status()
    eventually(lambda: wallet_balance(client, creator), what="the seller is paid")

    def payout(amount: int, key: str) -> httpx.Response:
        response: httpx.Response = client.post(
            "/wallets/payouts",
            json={"amount": {"amount": amount, "currency": "EUR"}},
            headers=creator.headers | {"Idempotency-Key": key},
        )
        return response

    assert payout(600, "payout-1").status_code == 201
    again = payout(600, "payout-1")  # the same request again: nothing paid twice
    assert again.status_code == 201
    assert wallet_balance(client, creator, min_position=position_of(again)) == 300
    assert payout(600, "payout-2").status_code == 409
    last = payout(300, "payout-3")
    assert last.status_code == 201
    assert wallet_balance(client, creator, min_position=position_of(last)) == 0


def test_a_payout_without_a_wallet_is_not_found(client: TestClient, creator: User) -> None:
    response = client.post(
        "/wallets/payouts",
        json={"amount": {"amount": 1, "currency": "EUR"}},
        headers=creator.headers | {"Idempotency-Key": uuid4().hex},
    )

    assert response.status_code == 404


# -- read models ----------------------------------------------------------------------------


def test_an_unpublished_product_is_shown_to_its_creator_and_admins_only(
    client: TestClient, creator: User, buyer: User, admin: User
) -> None:
    product_id = create_product(client, creator, publish=False)
    path = f"/products/{product_id}"
    position = head_position(client)

    def shown_to(user: User, at: int) -> int:
        response = client.get(path, params={"min_position": at}, headers=user.headers)
        status: int = response.status_code
        return status

    assert (shown_to(creator, position), shown_to(admin, position)) == (200, 200)
    assert shown_to(buyer, position) == 404
    published = client.post(f"{path}/publish", headers=creator.headers)
    assert shown_to(buyer, position_of(published)) == 200


def test_a_product_page_shows_its_stock_and_the_units_orders_in_flight_hold(
    client: TestClient, creator: User, buyer: User
) -> None:
    simulator = container_of(client).payment_simulator
    product_id = create_product(client, creator, stock=5)

    def stock_and_available() -> tuple[int, int]:
        at = head_position(client)
        response = client.get(
            f"/products/{product_id}", params={"min_position": at}, headers=buyer.headers
        )
        assert response.status_code == 200, response.text
        return response.json()["stock"], response.json()["available"]

    simulator.script_next(IntentScript(outcomes=()))  # this payment never settles
    in_flight = place_order(client, buyer, product_id, quantity=2)
    until_order_is(client, buyer, in_flight, "payment_requested")
    assert stock_and_available() == (5, 3)

    sold = place_order(client, buyer, product_id, quantity=1)
    until_order_is(client, buyer, sold, "delivered")
    assert stock_and_available() == (4, 2)

    cancelled = client.post(f"/orders/{in_flight}/cancel", headers=buyer.headers)
    assert cancelled.status_code == 200
    eventually(lambda: stock_and_available() == (4, 4) or None, what="the reservation is released")


def test_a_buyer_lists_their_orders_newest_first_with_each_current_status(
    client: TestClient, creator: User, buyer: User
) -> None:
    product_id = create_product(client, creator)
    first = place_order(client, buyer, product_id)
    until_order_is(client, buyer, first, "delivered")
    second = place_order(client, buyer, product_id)
    third, position = placed_order(client, buyer, product_id)
    signed_up(client, "other@example.org")  # whose list is empty

    def page(user: User, **params: object) -> dict[str, Any]:
        response = client.get(
            "/me/orders", params={"min_position": position, **params}, headers=user.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    one = page(buyer, limit=2)
    two = page(buyer, limit=2, cursor=one["next_cursor"])

    assert [o["id"] for o in one["orders"] + two["orders"]] == [str(third), str(second), str(first)]
    assert two["next_cursor"] is None
    assert one["orders"][0]["total"] == {"amount": 1_000, "currency": "EUR"}
    assert two["orders"][0]["status"] == "delivered"
    assert page(login(client, "other@example.org")) == {"orders": [], "next_cursor": None}
    malformed = client.get("/me/orders", params={"cursor": "nonsense"}, headers=buyer.headers)
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_a_seller_sees_each_wallet_with_its_latest_movements_newest_first(
    client: TestClient, creator: User, buyer: User
) -> None:
    order_id = place_order(client, buyer, create_product(client, creator, price=1_000))
    until_order_is(client, buyer, order_id, "delivered")
    client.post(f"/orders/{order_id}/confirm-receipt", headers=buyer.headers).raise_for_status()
    eventually(lambda: wallet_balance(client, creator), what="the seller is paid")
    payout = client.post(
        "/wallets/payouts",
        json={"amount": {"amount": 500, "currency": "EUR"}},
        headers=creator.headers | {"Idempotency-Key": "payout-1"},
    )

    response = client.get(
        "/wallets/me", params={"min_position": position_of(payout)}, headers=creator.headers
    )

    assert response.status_code == 200, response.text
    [wallet] = response.json()["wallets"]
    assert wallet["owner_id"] == str(creator.account_id)
    assert [wallet[k]["amount"] for k in ("balance", "credited", "paid_out")] == [400, 900, 500]
    assert [(m["kind"], m["amount"]["amount"], m["reason"]) for m in wallet["movements"]] == [
        ("debit", 500, None),
        ("credit", 900, "sale"),
    ]
    assert wallet["version"] == 3  # opened, credited, debited
    nothing = client.get("/wallets/me", headers=buyer.headers)
    assert nothing.status_code == 200 and nothing.json() == {"wallets": []}


def test_a_seller_dashboard_adds_up_sales_earnings_and_pending_escrow(
    client: TestClient, creator: User, buyer: User, admin: User
) -> None:
    product_id = create_product(client, creator, price=1_000)
    completed = place_order(client, buyer, product_id, quantity=2)
    pending = place_order(client, buyer, product_id)
    for order_id in (completed, pending):
        until_order_is(client, buyer, order_id, "delivered")
    confirmed = client.post(f"/orders/{completed}/confirm-receipt", headers=buyer.headers)
    assert confirmed.status_code == 200
    eventually(lambda: wallet_balance(client, creator), what="the seller is paid")
    position = head_position(client)

    totals = euro_totals(client, creator, creator.account_id, position)

    assert totals == {
        "sales_count": 2,
        "gross": 3_000,
        "net": 1_800,
        "fees": 200,
        "pending_escrow": 1_000,
        "refunds_count": 0,
        "refunded": 0,
    }
    assert totals["gross"] == totals["net"] + totals["fees"] + totals["pending_escrow"]
    assert euro_totals(client, admin, creator.account_id, position) == totals
    path = f"/sellers/{creator.account_id}/dashboard"
    refused = client.get(path, params={"min_position": position}, headers=buyer.headers)
    assert refused.status_code == 404
    no_sales = client.get(f"/sellers/{buyer.account_id}/dashboard", headers=buyer.headers)
    assert no_sales.status_code == 404
