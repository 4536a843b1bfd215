"""Money conservation across payments, escrows and wallets, per currency.

Money enters the platform when the payment provider captures a payment and leaves it when a
payment is refunded or a wallet pays out. In between it sits in an escrow or in a wallet.
So, per currency:

    received (captured, not refunded)  ==  in escrow  +  in wallets  +  paid out of wallets

This holds whenever no flow is half-way through (between a capture and the escrow hold, the
money is in transit); application tests check it at the end of every scenario.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from domain.escrow import Escrow
from domain.payment import Payment
from domain.wallet import Wallet


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    """Amounts in minor units of one currency."""

    currency: str
    received: int
    in_escrow: int
    in_wallets: int
    paid_out: int

    @property
    def held_by_platform(self) -> int:
        """The money in the system right now: in escrows and wallets."""
        return self.in_escrow + self.in_wallets

    @property
    def accounted_for(self) -> int:
        return self.held_by_platform + self.paid_out

    @property
    def is_conserved(self) -> bool:
        return self.received == self.accounted_for


class MoneyNotConserved(AssertionError):
    """Money was created or lost: a bug, never a rule a user can break."""

    def __init__(self, unbalanced: list[CurrencyTotals]) -> None:
        self.unbalanced = unbalanced
        details = "; ".join(
            f"{totals.currency}: received {totals.received}, accounted for "
            f"{totals.accounted_for} (escrow {totals.in_escrow}, wallets {totals.in_wallets}, "
            f"paid out {totals.paid_out})"
            for totals in unbalanced
        )
        super().__init__(f"money is not conserved: {details}")


def money_totals(
    *, wallets: Iterable[Wallet], escrows: Iterable[Escrow], payments: Iterable[Payment]
) -> dict[str, CurrencyTotals]:
    """Where the money is, per currency, for every currency any of the aggregates uses."""
    received: Counter[str] = Counter()
    in_escrow: Counter[str] = Counter()
    in_wallets: Counter[str] = Counter()
    paid_out: Counter[str] = Counter()
    currencies: set[str] = set()
    for payment in payments:
        currencies.add(payment.amount.currency)
        received[payment.amount.currency] += payment.net_captured.amount
    for escrow in escrows:
        currencies.add(escrow.amount.currency)
        in_escrow[escrow.amount.currency] += escrow.held.amount
    for wallet in wallets:
        currencies.add(wallet.currency)
        in_wallets[wallet.currency] += wallet.balance.amount
        paid_out[wallet.currency] += wallet.debited.amount
    return {
        currency: CurrencyTotals(
            currency=currency,
            received=received[currency],
            in_escrow=in_escrow[currency],
            in_wallets=in_wallets[currency],
            paid_out=paid_out[currency],
        )
        for currency in sorted(currencies)
    }


def assert_money_conserved(
    *, wallets: Iterable[Wallet], escrows: Iterable[Escrow], payments: Iterable[Payment]
) -> dict[str, CurrencyTotals]:
    """The totals, or `MoneyNotConserved` naming every currency that does not balance."""
    totals = money_totals(wallets=wallets, escrows=escrows, payments=payments)
    unbalanced = [
        currency_totals for currency_totals in totals.values() if not currency_totals.is_conserved
    ]
    if unbalanced:
        raise MoneyNotConserved(unbalanced)
    return totals
