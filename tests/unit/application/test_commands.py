"""Commands refuse malformed input, naming the field, before any handler runs."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from application.commerce.commands import (
    CreateProduct,
    OrderLineRequest,
    PlaceOrder,
    Price,
    RequestPayout,
)
from application.context import fingerprint_command

pytestmark = pytest.mark.unit


def product(**changes: Any) -> dict[str, Any]:
    return {
        "title": "Loops",
        "kind": "track",
        "price": {"amount": 900, "currency": "EUR"},
        **changes,
    }


def refused_field(model: type[Any], data: dict[str, Any]) -> str:
    """The field named by the first error (an invalid line also makes `lines` too short)."""
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    first = raised.value.errors()[0]
    return ".".join(str(part) for part in first["loc"])


def test_a_well_formed_product_is_accepted_with_its_text_trimmed() -> None:
    command = CreateProduct.model_validate(product(title="  Loops  ", tags=[" lo-fi "]))

    assert (command.title, command.tags, command.stock) == ("Loops", ("lo-fi",), None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"description": "x" * 5001}, "description"),
        ({"tags": ["t"] * 21}, "tags"),
        ({"tags": ["x" * 41]}, "tags.0"),
        ({"kind": "vinyl"}, "kind"),
        ({"stock": -1}, "stock"),
        ({"stock": "5"}, "stock"),
        ({"price": {"amount": 0, "currency": "EUR"}}, "price.amount"),
        ({"price": {"amount": 9.5, "currency": "EUR"}}, "price.amount"),
        ({"price": {"amount": "900", "currency": "EUR"}}, "price.amount"),
        ({"price": {"amount": True, "currency": "EUR"}}, "price.amount"),
        ({"price": {"amount": 10**13, "currency": "EUR"}}, "price.amount"),
        ({"price": {"amount": 900, "currency": "eur"}}, "price.currency"),
        ({"price": {"amount": 900, "currency": "EURO"}}, "price.currency"),
        ({"owner": "someone"}, "owner"),
    ],
)
def test_a_malformed_product_is_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    assert refused_field(CreateProduct, product(**changes)) == field


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([{"product_id": str(uuid4()), "quantity": 1}] * 51, "lines"),
        ([{"product_id": str(uuid4()), "quantity": 0}], "lines.0.quantity"),
        ([{"product_id": str(uuid4()), "quantity": 101}], "lines.0.quantity"),
        ([{"product_id": str(uuid4()), "quantity": 1.0}], "lines.0.quantity"),
        ([{"product_id": "not-a-uuid", "quantity": 1}], "lines.0.product_id"),
    ],
)
def test_a_malformed_order_is_refused_naming_the_field(
    lines: list[dict[str, Any]], field: str
) -> None:
    assert refused_field(PlaceOrder, {"lines": lines}) == field


def test_commands_are_frozen() -> None:
    command = RequestPayout(amount=Price(amount=100, currency="EUR"))

    with pytest.raises(ValidationError):
        command.amount = Price(amount=1, currency="EUR")  # type: ignore[misc]


def test_equal_commands_have_equal_fingerprints_and_different_ones_do_not() -> None:
    product_id = uuid4()

    def order(quantity: int) -> PlaceOrder:
        return PlaceOrder(lines=(OrderLineRequest(product_id=product_id, quantity=quantity),))

    assert fingerprint_command(order(1)) == fingerprint_command(order(1))
    assert fingerprint_command(order(1)) != fingerprint_command(order(2))
