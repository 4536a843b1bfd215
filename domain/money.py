"""Money: an integer amount of a currency's minor units (cents, pence, yen), never a float.

Amounts may be negative (a difference of two amounts is still Money); the aggregates decide
where an amount must be positive. Arithmetic and comparisons only combine the same currency.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.currencies import ISO_4217_CODES
from domain.errors import CurrencyMismatchError, InvariantViolation

BASIS_POINTS_PER_WHOLE = 10_000
"""100 % in basis points: a fee of 250 bps is 2.5 %."""


def validate_currency(currency: str) -> str:
    """An ISO 4217 code as given: `EUR`, not `eur`, and not `ZZZ` (no such currency)."""
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii()):
        raise InvariantViolation(
            f"currency must be a three-letter ISO 4217 code, got {currency!r}", field="currency"
        )
    if currency.isalpha() and not currency.isupper():
        raise InvariantViolation(f"currency must be upper case, got {currency!r}", field="currency")
    if currency not in ISO_4217_CODES:
        raise InvariantViolation(
            f"currency must be an ISO 4217 code, and {currency!r} is none", field="currency"
        )
    return currency


def validate_basis_points(bps: int) -> int:
    """A rate between 0 and 10,000 basis points (0 % to 100 %)."""
    if type(bps) is not int or not 0 <= bps <= BASIS_POINTS_PER_WHOLE:
        raise InvariantViolation(
            f"a rate must be a whole number of basis points from 0 to "
            f"{BASIS_POINTS_PER_WHOLE}, got {bps!r}",
            field="fee_bps",
        )
    return bps


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    """In the currency's minor units."""
    currency: str

    def __post_init__(self) -> None:
        # `bool` is an `int` subclass and a float would sneak rounding in: refuse both.
        if type(self.amount) is not int:
            raise InvariantViolation(
                f"an amount must be an integer number of minor units, got {self.amount!r}",
                field="amount",
            )
        validate_currency(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def __str__(self) -> str:
        return f"{self.amount} minor units of {self.currency}"

    def __add__(self, other: Money) -> Money:
        self._require_same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._require_same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise InvariantViolation(f"money can only be multiplied by an integer, got {factor!r}")
        return Money(self.amount * factor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._require_same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._require_same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._require_same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._require_same_currency(other)
        return self.amount >= other.amount

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    def fee(self, bps: int) -> Money:
        """`bps` basis points of this amount, rounded half up to the minor unit.

        2.5 % (250 bps) of 1,010 minor units is 25.25 → 25; of 1,020 it is 25.5 → 26.
        Only defined for amounts ≥ 0 (there is no fee on a negative amount).
        """
        validate_basis_points(bps)
        if self.amount < 0:
            raise InvariantViolation(f"no fee is defined on a negative amount ({self})")
        half = BASIS_POINTS_PER_WHOLE // 2
        return Money((self.amount * bps + half) // BASIS_POINTS_PER_WHOLE, self.currency)

    def split(self, bps: int) -> FeeSplit:
        """This amount as a fee of `bps` basis points and the net rest: `fee + net == self`.

        The net is the remainder rather than a second rounding, so no minor unit is ever
        created or lost by the split.
        """
        fee = self.fee(bps)
        return FeeSplit(fee=fee, net=self - fee)

    def _require_same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatchError(expected=self.currency, actual=other.currency)


@dataclass(frozen=True, slots=True)
class FeeSplit:
    fee: Money
    net: Money

    @property
    def total(self) -> Money:
        return self.fee + self.net
