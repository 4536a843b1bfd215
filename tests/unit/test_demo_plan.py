"""The demo's plan: the same seed gives the same plan, and the plan's fates cannot race."""

from __future__ import annotations

from collections import Counter

import pytest

from domain.order import OrderStatus
from domain.product import ProductKind
from interfaces.demo.plan import (
    COMMITS_STOCK,
    EMAIL_DOMAIN,
    Fate,
    Mix,
    Plan,
    WorkloadSpec,
    demo_id,
    make_plan,
)

pytestmark = pytest.mark.unit

SPEC = WorkloadSpec(sellers=4, buyers=25, orders=400, seed=7)


def units_ordered(plan: Plan, *, first_wave: bool) -> Counter[int]:
    units: Counter[int] = Counter()
    for order in plan.orders:
        if order.first_wave == first_wave:
            for line in order.lines:
                units[line.product] += line.quantity
    return units


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    assert make_plan(SPEC) == make_plan(WorkloadSpec(sellers=4, buyers=25, orders=400, seed=7))
    assert make_plan(SPEC) != make_plan(WorkloadSpec(sellers=4, buyers=25, orders=400, seed=8))


def test_every_fate_gets_its_share_of_the_orders_and_the_rest_complete() -> None:
    plan = make_plan(SPEC)
    fates = plan.fates()

    assert fates[Fate.PAYMENT_FAILED] == 16  # 4 % of 400
    assert fates[Fate.BUYER_CANCELLED] == 12
    assert fates[Fate.DISPUTE_RELEASED] == fates[Fate.DISPUTE_REFUNDED] == 6
    assert fates[Fate.SOLD_OUT] == 8
    assert fates[Fate.UNPUBLISHED] == 4  # attempts, on top of the orders placed
    assert len(plan.placed) == SPEC.orders
    assert plan.expected_statuses() == {
        OrderStatus.COMPLETED: 400 - 16 - 12 - 6 - 8,
        OrderStatus.CANCELLED: 16 + 12 + 8,
        OrderStatus.REFUNDED: 6,
    }


def test_a_workload_of_twenty_orders_or_more_has_every_fate_at_least_once() -> None:
    plan = make_plan(WorkloadSpec(sellers=2, buyers=5, orders=20, seed=3))

    assert set(plan.fates()) == set(Fate)


def test_without_a_scriptable_provider_no_order_depends_on_one() -> None:
    plan = make_plan(WorkloadSpec(sellers=4, buyers=25, orders=400, scripted_payments=False))

    assert plan.fates()[Fate.PAYMENT_FAILED] == plan.fates()[Fate.BUYER_CANCELLED] == 0


def test_an_order_buys_from_one_seller_each_product_once() -> None:
    plan = make_plan(SPEC)
    for order in plan.orders:
        products = [line.product for line in order.lines]
        assert len(set(products)) == len(products)
        assert {plan.products[p].seller for p in products} == {order.seller}
        assert all(1 <= line.quantity <= 100 for line in order.lines)


def test_first_wave_orders_that_release_their_stock_buy_only_unlimited_products() -> None:
    plan = make_plan(SPEC)
    releasing = [o for o in plan.first_wave if o.fate not in COMMITS_STOCK]

    assert releasing
    for order in releasing:
        assert all(plan.products[line.product].stock is None for line in order.lines)


def test_limited_stock_covers_the_first_wave_and_sold_out_orders_ask_for_more_than_is_left() -> (
    None
):
    plan = make_plan(SPEC)
    first = units_ordered(plan, first_wave=True)
    limited = [p for p in plan.products if p.stock is not None]

    assert limited
    for product in limited:
        assert product.stock is not None
        assert first[product.index] <= product.stock <= first[product.index] + 3
        assert not product.unpublished_after_first_wave
    for order in plan.second_wave:
        [line] = order.lines
        product = plan.products[line.product]
        if order.fate is Fate.SOLD_OUT:
            assert product.stock is not None
            assert line.quantity > product.stock - first[product.index]
        else:
            assert order.fate is Fate.UNPUBLISHED
            assert product.unpublished_after_first_wave and product.stock is None


def test_the_catalogue_mixes_kinds_prices_and_tags() -> None:
    plan = make_plan(SPEC)

    assert {p.kind for p in plan.products} == set(ProductKind)
    assert len({p.title for p in plan.products}) > len(plan.products) // 2
    assert all(p.price > 0 and p.tags and p.description for p in plan.products)
    emails = {s.email for s in plan.sellers} | {b.email for b in plan.buyers}
    assert len(emails) == 29
    assert all(email.endswith(f"@{EMAIL_DOMAIN}") for email in emails)


def test_sellers_sell_in_the_currencies_asked_for() -> None:
    plan = make_plan(WorkloadSpec(sellers=40, buyers=5, orders=10, currencies=("EUR", "USD")))

    assert {s.currency for s in plan.sellers} == {"EUR", "USD"}
    assert all(p.currency == plan.sellers[p.seller].currency for p in plan.products)


def test_tiny_workloads_are_plans_too() -> None:
    one = make_plan(WorkloadSpec(sellers=1, buyers=1, orders=1, products_per_seller=1))
    none = make_plan(WorkloadSpec(sellers=1, buyers=1, orders=0))

    assert [o.fate for o in one.orders] == [Fate.COMPLETED]
    assert none.orders == ()


def test_ids_are_derived_from_tenant_seed_kind_and_index() -> None:
    assert demo_id("demo", 1, "order", 5) == demo_id("demo", 1, "order", 5)
    assert len({demo_id("demo", 1, "order", 5), demo_id("other", 1, "order", 5)}) == 2
    assert len({demo_id("demo", 1, "order", 5), demo_id("demo", 2, "order", 5)}) == 2
    assert len({demo_id("demo", 1, "order", 5), demo_id("demo", 1, "product", 5)}) == 2


@pytest.mark.parametrize(
    "spec",
    [
        {"sellers": 0, "buyers": 1, "orders": 1},
        {"sellers": 1, "buyers": 0, "orders": 1},
        {"sellers": 1, "buyers": 1, "orders": -1},
        {"sellers": 1, "buyers": 1, "orders": 1, "products_per_seller": 0},
        {"sellers": 1, "buyers": 1, "orders": 1, "currencies": ("euro",)},
        {"sellers": 1, "buyers": 1, "orders": 1, "currencies": ("ZZZ",)},
        {"sellers": 1, "buyers": 1, "orders": 1, "currencies": ()},
    ],
)
def test_a_spec_that_cannot_be_planned_is_refused(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WorkloadSpec(**spec)  # type: ignore[arg-type]


def test_a_mix_that_leaves_too_few_orders_to_complete_is_refused() -> None:
    with pytest.raises(ValueError):
        Mix(payment_failures=0.5, buyer_cancellations=0.5)
    with pytest.raises(ValueError):
        Mix(sold_out=1.5)
