"""The domain's rules against wash trading and made-up currencies, over HTTP (embedded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from tests.e2e.http_support import (
    create_product,
    embedded_settings,
    head_position,
    running,
    signed_up,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running(embedded_settings(tmp_path / "state")) as client:
        yield client


def test_a_seller_ordering_their_own_product_is_refused_and_nothing_is_placed(
    client: TestClient,
) -> None:
    trader = signed_up(client, "trader@example.org", roles=("buyer", "creator"))
    own = create_product(client, trader)
    other = create_product(client, signed_up(client, "c@example.org", roles=("creator",)))
    position = head_position(client)

    for lines in ([own], [own, other], [other, own]):
        response = client.post(
            "/orders",
            json={"lines": [{"product_id": str(p), "quantity": 1} for p in lines]},
            headers=trader.headers | {"Idempotency-Key": uuid4().hex},
        )
        assert response.status_code in (403, 422), response.text
        assert head_position(client) == position
    alone = client.post(
        "/orders",
        json={"lines": [{"product_id": str(own), "quantity": 1}]},
        headers=trader.headers | {"Idempotency-Key": uuid4().hex},
    )
    assert alone.status_code == 403, alone.text
    assert alone.json()["code"] == "self_dealing"
    assert "cannot order it" in alone.json()["detail"]


@pytest.mark.parametrize("currency", ["ZZZ", "ABC", "XYZ"])
def test_a_price_in_a_currency_iso_4217_does_not_know_is_refused(
    client: TestClient, currency: str
) -> None:
    creator = signed_up(client, "c@example.org", roles=("creator",))
    position = head_position(client)

    response = client.post(
        "/products",
        json={
            "title": "Night drive",
            "kind": "track",
            "price": {"amount": 900, "currency": currency},
        },
        headers=creator.headers,
    )

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"][-1] == "currency"
    assert "ISO 4217" in problem["msg"]
    assert head_position(client) == position
