"""The domain's copy of ISO 4217 equals the maintained list (pycountry), and Money keeps to it.

When this fails after a pycountry upgrade, regenerate the list:
`.venv/bin/python -m tests.unit.domain.test_currencies` prints the new `ISO_4217_CODES` text
to paste into domain/currencies.py.
"""

from __future__ import annotations

import textwrap
from importlib.metadata import version

import pycountry
import pytest

from domain.currencies import ISO_4217_CODES
from domain.errors import InvariantViolation
from domain.money import Money, validate_currency

pytestmark = pytest.mark.unit

STILL_HELD_AFTER_WITHDRAWAL: frozenset[str] = frozenset()
"""Codes ISO withdrew that the domain keeps accepting, because stored events hold them."""


def maintained_codes() -> frozenset[str]:
    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


def generated_text() -> str:
    codes = " ".join(sorted(maintained_codes() | STILL_HELD_AFTER_WITHDRAWAL))
    lines = textwrap.wrap(codes, width=88)
    body = "\n".join(lines)
    return (
        f'ISO_4217_SOURCE = "pycountry {version("pycountry")}"\n'
        '"""Where `ISO_4217_CODES` was generated from."""\n\n'
        f'_CODES = """\n{body}\n"""\nISO_4217_CODES: frozenset[str] = frozenset(_CODES.split())\n'
    )


def test_the_domains_currencies_are_the_iso_4217_list_pycountry_maintains() -> None:
    missing = maintained_codes() - ISO_4217_CODES
    withdrawn = ISO_4217_CODES - maintained_codes() - STILL_HELD_AFTER_WITHDRAWAL
    assert not missing and not withdrawn, (
        f"domain/currencies.py is out of date (missing {sorted(missing)}, withdrawn "
        f"{sorted(withdrawn)}); run `python -m tests.unit.domain.test_currencies`"
    )


@pytest.mark.parametrize("code", ["ZZZ", "ABC", "EUX", "XYZ"])
def test_three_capital_letters_that_are_no_currency_are_refused(code: str) -> None:
    with pytest.raises(InvariantViolation, match="ISO 4217") as refused:
        Money(100, code)
    assert refused.value.field == "currency"


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "GBP", "CHF", "XOF"])
def test_iso_4217_currencies_are_accepted(code: str) -> None:
    assert validate_currency(code) == code


if __name__ == "__main__":
    print(generated_text())
