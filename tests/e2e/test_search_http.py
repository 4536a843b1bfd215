"""`GET /products/search` on the embedded profile: products a creator publishes over HTTP are
found on the first try with the command's `min_position`, vanish when unpublished, and carry the
seller's display name and their sales."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from tests.e2e.http_support import (
    User,
    embedded_settings,
    eventually,
    place_order,
    position_of,
    running,
    signed_up,
    until_order_is,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running(embedded_settings(tmp_path)) as client:
        yield client


def create(
    client: TestClient, creator: User, title: str, description: str, **fields: Any
) -> tuple[UUID, int]:
    """Create and publish a product; its id and the publish command's position."""
    body = {
        "title": title,
        "description": description,
        "tags": fields.pop("tags", ["synthwave"]),
        "kind": fields.pop("kind", "track"),
        "price": {"amount": fields.pop("price", 1_000), "currency": "EUR"},
        **fields,
    }
    created = client.post("/products", json=body, headers=creator.headers)
    product_id = UUID(created.json()["product_id"]) if created.status_code == 201 else None
    assert product_id is not None, created.text
    published = client.post(f"/products/{product_id}/publish", headers=creator.headers)
    return product_id, position_of(published)


def search(client: TestClient, user: User, **params: Any) -> dict[str, Any]:
    response = client.get("/products/search", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def hit_ids(body: dict[str, Any]) -> list[str]:
    return [hit["id"] for hit in body["hits"]]


def test_published_products_are_found_on_the_first_try_and_vanish_when_unpublished(
    client: TestClient,
) -> None:
    creator = signed_up(client, "ada@example.org", roles=("creator",))
    buyer = signed_up(client, "bo@example.org")
    drive, _ = create(client, creator, "Midnight Drive", "A synthwave track", price=1_500)
    loop, position = create(
        client, creator, "Sunrise Loop", "Recorded at midnight", tags=["ambient"], price=900
    )

    found = search(client, buyer, q="midnight", min_position=position)

    assert hit_ids(found) == [str(drive), str(loop)]  # the title hit first
    assert found["total"] == 2 and found["next_cursor"] is None
    assert found["facets"] == {
        "kind": [{"value": "track", "count": 2}],
        "tag": [{"value": "ambient", "count": 1}, {"value": "synthwave", "count": 1}],
    }
    first = found["hits"][0]
    assert first["seller"] == {"id": str(creator.account_id), "display_name": "ada"}
    assert first["price"] == {"amount": 1_500, "currency": "EUR"}
    assert (first["title"], first["kind"], first["tags"]) == (
        "Midnight Drive",
        "track",
        ["synthwave"],
    )
    assert first["sales_count"] == 0
    assert "email" not in str(found)

    unpublished = client.post(f"/products/{drive}/unpublish", headers=creator.headers)
    after = search(client, buyer, q="midnight", min_position=position_of(unpublished))

    assert hit_ids(after) == [str(loop)]
    assert after["total"] == 1


def test_filters_sorts_and_cursor_pages_over_http(client: TestClient) -> None:
    creator = signed_up(client, "ada@example.org", roles=("creator",))
    other = signed_up(client, "cy@example.org", roles=("creator",))
    prices = [700, 300, 300, 900, 500]  # a tie: the id decides
    packs = [
        create(client, creator, f"Pack {n}", "loops", kind="sample_pack", tags=["drums"], price=p)
        for n, p in enumerate(prices)
    ]
    _, position = create(client, other, "Licence", "loops", kind="licence", price=100)
    query = {"kind": "sample_pack", "sort": "price_asc", "limit": 2}

    pages = [search(client, creator, **query, min_position=position)]
    while pages[-1]["next_cursor"] is not None:
        pages.append(search(client, creator, **query, cursor=pages[-1]["next_cursor"]))
    by_seller = search(client, creator, seller=str(other.account_id))
    in_range = search(client, creator, min_price=300, max_price=500, tag="drums")
    two_kinds = search(client, creator, kind=["licence", "sample_pack"])

    ids = [str(product_id) for product_id, _ in packs]
    assert [hit_id for page in pages for hit_id in hit_ids(page)] == sorted(
        ids, key=lambda i: (prices[ids.index(i)], i)
    )
    assert [len(page["hits"]) for page in pages] == [2, 2, 1]
    assert [hit["seller"]["display_name"] for hit in by_seller["hits"]] == ["cy"]
    assert sorted(hit["price"]["amount"] for hit in in_range["hits"]) == [300, 300, 500]
    assert two_kinds["total"] == 6
    assert two_kinds["facets"]["kind"] == [
        {"value": "sample_pack", "count": 5},
        {"value": "licence", "count": 1},
    ]


def test_a_sale_counts_in_best_selling(client: TestClient) -> None:
    creator = signed_up(client, "ada@example.org", roles=("creator",))
    buyer = signed_up(client, "bo@example.org")
    popular, _ = create(client, creator, "Popular", "a hit")
    quiet, position = create(client, creator, "Quiet", "no sales")
    order_id = place_order(client, buyer, popular, quantity=2)
    until_order_is(client, buyer, order_id, "delivered")

    def sold() -> dict[str, Any] | None:
        body = search(client, buyer, sort="best_selling", min_position=position)
        return body if body["hits"][0]["sales_count"] == 2 else None

    body = eventually(sold, what="the sale reaches the search index")

    assert hit_ids(body) == [str(popular), str(quiet)]


def test_a_tenant_never_sees_another_tenant_s_products(client: TestClient) -> None:
    creator = signed_up(client, "ada@example.org", roles=("creator",))
    stranger = signed_up(client, "zed@example.org", tenant="globex")
    _, position = create(client, creator, "Midnight Drive", "A synthwave track")

    theirs = search(client, stranger, q="midnight", min_position=position)
    mine = search(client, creator, q="midnight", min_position=position)

    assert theirs["total"] == 0 and theirs["hits"] == [] and theirs["facets"]["kind"] == []
    assert mine["total"] == 1


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"min_price": 500, "max_price": 100}, "min_price"),
        ({"q": "x" * 201}, "q"),
        ({"kind": "vinyl"}, "kind"),
        ({"sort": "cheapest"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"currency": "eur"}, "currency"),
        ({"tag": "x" * 41}, "tag"),
        ({"seller": "not-a-uuid"}, "seller"),
    ],
)
def test_bad_input_is_a_422_naming_the_parameter(
    client: TestClient, params: dict[str, Any], where: str
) -> None:
    user = signed_up(client, "ada@example.org", roles=("creator",))
    _, position = create(client, user, "Anything", "at all")

    response = client.get(
        "/products/search", params={**params, "min_position": position}, headers=user.headers
    )

    assert response.status_code == 422, response.text
    assert [problem["loc"][:2] for problem in response.json()["detail"]] == [["query", where]]


def test_search_needs_a_caller(client: TestClient) -> None:
    response = client.get("/products/search")

    assert response.status_code == 401
