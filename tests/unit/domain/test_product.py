from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import (
    CurrencyMismatchError,
    IdempotencyMismatch,
    IllegalTransition,
    InsufficientStock,
    InvariantViolation,
    NotOwner,
)
from domain.money import Money
from domain.product import Product, ProductKind
from tests.unit.domain.support import assert_replays_identically, eur, recorded

pytestmark = pytest.mark.unit

CREATOR = uuid4()


def create(**overrides: Any) -> Product:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "tenant_id": "acme",
        "creator_id": CREATOR,
        "title": "Night Drive",
        "description": "A synthwave track.",
        "tags": ["synthwave"],
        "kind": ProductKind.TRACK,
        "price": eur(500),
        "stock": 10,
    }
    return Product.create(**(fields | overrides))


def published(stock: int | None = 10) -> Product:
    product = create(stock=stock)
    product.publish()
    product.collect_events()
    return product


# Creating and editing


def test_a_new_product_is_recorded_unpublished_with_its_stock_available() -> None:
    product = create(title="  Night Drive ", tags=[" Synthwave", "RETRO", "synthwave"])

    assert recorded(product) == ["Created"]
    assert product.title == "Night Drive"
    assert product.tags == ("synthwave", "retro")
    assert product.kind is ProductKind.TRACK
    assert not product.published
    assert (product.stock, product.reserved, product.available, product.sold) == (10, 0, 10, 0)


def test_a_product_without_a_stock_count_is_unlimited() -> None:
    product = create(stock=None)
    assert product.available is None


def test_a_description_may_be_empty() -> None:
    assert create(description="").description == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "  "),
        ("title", "x" * 201),
        ("description", "x" * 5001),
        ("tags", [f"tag{n}" for n in range(21)]),
        ("tags", ["x" * 41]),
        ("tags", [" "]),
        ("tags", "synthwave"),
        ("kind", "album"),
        ("price", eur(0)),
        ("price", eur(-1)),
        ("stock", -1),
        ("stock", 2.5),
    ],
)
def test_creating_refuses_invalid_details_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvariantViolation) as raised:
        create(**{field: value})
    assert raised.value.field == field


def test_the_limits_themselves_are_allowed() -> None:
    product = create(
        title="x" * 200,
        description="x" * 5000,
        tags=[f"{n:0>40}" for n in range(20)],
        stock=0,
    )
    assert len(product.tags) == 20


def test_only_the_creator_owns_the_product() -> None:
    product = create()
    product.ensure_owned_by(CREATOR)
    with pytest.raises(NotOwner):
        product.ensure_owned_by(uuid4())


def test_updating_details_records_them_normalised() -> None:
    product = create()
    product.collect_events()

    product.update_details(title="Night Drive (Remix)", description="", tags=["Remix"])

    assert recorded(product) == ["DetailsUpdated"]
    assert (product.title, product.description, product.tags) == (
        "Night Drive (Remix)",
        "",
        ("remix",),
    )


def test_updating_details_to_what_they_already_are_records_nothing() -> None:
    product = create()
    product.collect_events()

    product.update_details(
        title="Night Drive ", description="A synthwave track.", tags=["SYNTHWAVE"]
    )

    assert recorded(product) == []


def test_updating_details_refuses_an_empty_title() -> None:
    with pytest.raises(InvariantViolation):
        create().update_details(title="", description="", tags=[])


# Publishing


def test_publishing_and_unpublishing_each_record_once_and_repeats_record_nothing() -> None:
    product = create()
    product.collect_events()

    product.unpublish()
    product.publish()
    product.publish()
    product.unpublish()
    product.unpublish()

    assert recorded(product) == ["Published", "Unpublished"]
    assert not product.published


# Price


def test_changing_the_price_records_the_new_price() -> None:
    product = create()
    product.collect_events()

    product.change_price(eur(750))

    assert recorded(product) == ["PriceChanged"]
    assert product.price == eur(750)


def test_changing_the_price_to_the_same_price_records_nothing() -> None:
    product = create(price=eur(500))
    product.collect_events()
    product.change_price(eur(500))
    assert recorded(product) == []


def test_a_price_must_stay_above_zero() -> None:
    with pytest.raises(InvariantViolation):
        create().change_price(eur(0))


def test_a_price_stays_in_the_currency_the_product_was_created_with() -> None:
    with pytest.raises(CurrencyMismatchError):
        create().change_price(Money(500, "USD"))


# Reserving


def test_reserving_holds_units_for_an_order() -> None:
    product = published(stock=10)

    product.reserve(uuid4(), 3)

    assert recorded(product) == ["StockReserved"]
    assert (product.stock, product.reserved, product.available) == (10, 3, 7)


def test_a_reservation_for_the_same_order_twice_records_nothing() -> None:
    product = published(stock=10)
    order_id = uuid4()
    product.reserve(order_id, 3)
    product.collect_events()

    product.reserve(order_id, 3)

    assert recorded(product) == []
    assert product.available == 7


def test_a_repeated_reservation_with_another_quantity_is_refused() -> None:
    product = published()
    order_id = uuid4()
    product.reserve(order_id, 3)

    with pytest.raises(IdempotencyMismatch, match="3 unit"):
        product.reserve(order_id, 4)


def test_a_repeated_reservation_records_nothing_even_once_sold_out_or_unpublished() -> None:
    product = published(stock=2)
    order_id = uuid4()
    product.reserve(order_id, 2)
    product.unpublish()
    product.collect_events()

    product.reserve(order_id, 2)

    assert recorded(product) == []


def test_reserving_more_than_is_available_is_insufficient_stock() -> None:
    product = published(stock=5)
    product.reserve(uuid4(), 4)
    product.collect_events()

    with pytest.raises(InsufficientStock, match=r"1 unit.* available, 2 requested"):
        product.reserve(uuid4(), 2)
    assert recorded(product) == []
    assert product.available == 1


def test_the_last_units_can_be_reserved_down_to_zero_available() -> None:
    product = published(stock=5)
    product.reserve(uuid4(), 5)
    assert product.available == 0


def test_unlimited_stock_never_runs_out() -> None:
    product = published(stock=None)
    product.reserve(uuid4(), 1_000_000)
    assert product.available is None


def test_an_unpublished_product_cannot_be_reserved() -> None:
    product = create()
    with pytest.raises(IllegalTransition, match="cannot reserve when unpublished"):
        product.reserve(uuid4(), 1)


@pytest.mark.parametrize("quantity", [0, -1, 1.5])
def test_a_reservation_is_for_at_least_one_whole_unit(quantity: Any) -> None:
    with pytest.raises(InvariantViolation):
        published().reserve(uuid4(), quantity)


def test_an_order_cannot_reserve_again_after_its_reservation_was_released() -> None:
    product = published()
    order_id = uuid4()
    product.reserve(order_id, 1)
    product.release(order_id)

    with pytest.raises(IllegalTransition, match="is released"):
        product.reserve(order_id, 1)


# Releasing


def test_releasing_gives_the_units_back_and_says_how_many() -> None:
    product = published(stock=10)
    order_id = uuid4()
    product.reserve(order_id, 3)
    product.collect_events()

    assert product.release(order_id) == 3

    assert recorded(product) == ["StockReleased"]
    assert (product.reserved, product.available) == (0, 10)


def test_releasing_twice_records_nothing_the_second_time() -> None:
    product = published()
    order_id = uuid4()
    product.reserve(order_id, 3)
    product.release(order_id)
    product.collect_events()

    assert product.release(order_id) == 0
    assert recorded(product) == []


def test_releasing_what_was_never_reserved_records_nothing() -> None:
    product = published()
    assert product.release(uuid4()) == 0
    assert recorded(product) == []


def test_a_sold_reservation_cannot_be_released() -> None:
    product = published()
    order_id = uuid4()
    product.reserve(order_id, 1)
    product.commit(order_id)

    with pytest.raises(IllegalTransition, match=r"cannot release when .* is committed"):
        product.release(order_id)


# Committing


def test_committing_turns_a_reservation_into_a_sale() -> None:
    product = published(stock=10)
    order_id = uuid4()
    product.reserve(order_id, 3)
    product.collect_events()

    product.commit(order_id)

    assert recorded(product) == ["StockCommitted"]
    assert (product.stock, product.reserved, product.available, product.sold) == (7, 0, 7, 3)


def test_committing_twice_records_nothing_the_second_time() -> None:
    product = published()
    order_id = uuid4()
    product.reserve(order_id, 3)
    product.commit(order_id)
    product.collect_events()

    product.commit(order_id)

    assert recorded(product) == []
    assert product.sold == 3


def test_a_reservation_made_before_unpublishing_can_still_be_committed() -> None:
    product = published()
    order_id = uuid4()
    product.reserve(order_id, 1)
    product.unpublish()

    product.commit(order_id)

    assert product.sold == 1


def test_an_unlimited_product_counts_its_sales() -> None:
    product = published(stock=None)
    order_id = uuid4()
    product.reserve(order_id, 4)
    product.commit(order_id)
    assert (product.stock, product.sold) == (None, 4)


@pytest.mark.parametrize("released", [False, True], ids=["never reserved", "released"])
def test_nothing_can_be_committed_without_a_live_reservation(released: bool) -> None:
    product = published()
    order_id = uuid4()
    if released:
        product.reserve(order_id, 1)
        product.release(order_id)

    with pytest.raises(IllegalTransition, match="cannot commit"):
        product.commit(order_id)


def test_replaying_a_products_events_rebuilds_the_same_product() -> None:
    product = create(stock=10)
    product.publish()
    product.update_details(title="New", description="d", tags=["a"])
    product.change_price(eur(900))
    orders: list[UUID] = [uuid4(), uuid4(), uuid4()]
    for order_id in orders:
        product.reserve(order_id, 2)
    product.release(orders[0])
    product.commit(orders[1])
    product.unpublish()

    assert_replays_identically(product, product.collect_events())
    assert (product.stock, product.reserved, product.available, product.sold) == (8, 2, 6, 2)
