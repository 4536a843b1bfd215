from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.errors import CurrencyMismatchError, InvariantViolation
from domain.money import Money
from tests.unit.domain.support import eur

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("amount", [1.5, 10.0, True, "100"])
def test_an_amount_must_be_an_integer_number_of_minor_units(amount: Any) -> None:
    with pytest.raises(InvariantViolation, match="integer number of minor units"):
        Money(amount, "EUR")


@pytest.mark.parametrize("currency", ["eur", "EURO", "EU", "E1R", "", "ÉUR"])
def test_a_currency_is_a_three_letter_upper_case_iso_code(currency: str) -> None:
    with pytest.raises(InvariantViolation) as raised:
        Money(100, currency)
    assert raised.value.field == "currency"


def test_amounts_in_one_currency_add_subtract_and_multiply_by_a_quantity() -> None:
    assert eur(700) + eur(300) == eur(1000)
    assert eur(700) - eur(300) == eur(400)
    assert eur(300) - eur(700) == eur(-400)
    assert eur(250) * 3 == eur(750)


def test_money_multiplies_only_by_a_whole_number() -> None:
    with pytest.raises(InvariantViolation):
        eur(100) * 1.5  # type: ignore[operator]


def test_amounts_in_one_currency_compare_by_amount() -> None:
    assert eur(1) < eur(2) <= eur(2) < eur(3)
    assert eur(3) > eur(2) >= eur(2)
    assert Money(100, "EUR") != Money(100, "USD")


@pytest.mark.parametrize(
    "combine",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
    ids=["add", "subtract", "lt", "le", "gt", "ge"],
)
def test_combining_or_comparing_two_currencies_is_a_currency_mismatch(
    combine: Callable[[Money, Money], object],
) -> None:
    with pytest.raises(CurrencyMismatchError, match="expected an amount in EUR, got one in USD"):
        combine(eur(100), Money(100, "USD"))


@pytest.mark.parametrize(
    ("amount", "bps", "fee"),
    [
        (1010, 250, 25),  # 25.25 rounds down
        (1020, 250, 26),  # 25.5 rounds half up
        (1030, 250, 26),  # 25.75 rounds up
        (1, 5000, 1),  # 0.5 rounds half up
        (1, 4999, 0),
        (0, 250, 0),
        (999, 0, 0),
        (999, 10_000, 999),
    ],
)
def test_a_fee_in_basis_points_is_rounded_half_up_to_the_minor_unit(
    amount: int, bps: int, fee: int
) -> None:
    assert eur(amount).fee(bps) == eur(fee)


def test_fee_and_net_of_a_split_always_add_up_to_the_total() -> None:
    for amount in range(0, 2_000, 7):
        for bps in (0, 1, 99, 250, 333, 1_250, 5_000, 9_999, 10_000):
            split = eur(amount).split(bps)
            assert split.fee + split.net == eur(amount)
            assert split.total == eur(amount)
            assert split.fee == eur(amount).fee(bps)


@pytest.mark.parametrize("bps", [-1, 10_001, 2.5, True])
def test_a_fee_rate_is_whole_basis_points_from_0_to_10000(bps: Any) -> None:
    with pytest.raises(InvariantViolation, match="basis points"):
        eur(1000).fee(bps)


def test_there_is_no_fee_on_a_negative_amount() -> None:
    with pytest.raises(InvariantViolation, match="negative"):
        eur(-100).fee(250)


def test_money_reads_as_minor_units_of_its_currency() -> None:
    assert str(eur(1234)) == "1234 minor units of EUR"
    assert Money.zero("JPY") == Money(0, "JPY")
