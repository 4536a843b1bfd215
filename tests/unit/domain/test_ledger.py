from __future__ import annotations

from uuid import uuid4

import pytest

from domain.dispute import Resolution
from domain.escrow import Escrow
from domain.ids import escrow_id_for, payment_id_for, platform_wallet_id_for, wallet_id_for
from domain.ledger import CurrencyTotals, MoneyNotConserved, assert_money_conserved, money_totals
from domain.money import Money
from domain.payment import Payment
from domain.wallet import CreditReason, Wallet, WalletKind
from tests.unit.domain.support import eur

pytestmark = pytest.mark.unit

SELLER = uuid4()


class Marketplace:
    """One order's money, moved by the domain commands the sagas will call."""

    def __init__(self, amount: Money, fee_bps: int = 250) -> None:
        self.order_id = uuid4()
        self.amount = amount
        self.fee_bps = fee_bps
        self.payment = Payment.create_intent(
            id=payment_id_for(self.order_id),
            tenant_id="acme",
            order_id=self.order_id,
            provider_intent_id="pi_1",
            amount=amount,
        )
        self.escrows: list[Escrow] = []
        self.seller = Wallet.open(
            id=wallet_id_for(SELLER, amount.currency),
            tenant_id="acme",
            kind=WalletKind.ACCOUNT,
            owner_id=SELLER,
            currency=amount.currency,
        )
        self.platform = Wallet.open(
            id=platform_wallet_id_for("acme", amount.currency),
            tenant_id="acme",
            kind=WalletKind.PLATFORM,
            owner_id=None,
            currency=amount.currency,
        )

    def capture_and_hold(self) -> Escrow:
        self.payment.capture()
        escrow = Escrow.hold(
            id=escrow_id_for(self.order_id),
            tenant_id="acme",
            order_id=self.order_id,
            buyer_id=uuid4(),
            seller_id=SELLER,
            amount=self.amount,
            platform_fee_bps=self.fee_bps,
        )
        self.escrows.append(escrow)
        return escrow

    def release(self, escrow: Escrow) -> None:
        settlement = escrow.release()
        reference = f"escrow:{escrow.id}"
        self.seller.credit(
            amount=settlement.seller_net, reason=CreditReason.SALE, reference=reference
        )
        self.platform.credit(
            amount=settlement.platform_fee, reason=CreditReason.PLATFORM_FEE, reference=reference
        )

    def totals(self) -> dict[str, CurrencyTotals]:
        return assert_money_conserved(
            wallets=[self.seller, self.platform], escrows=self.escrows, payments=[self.payment]
        )


def test_with_no_aggregates_there_is_nothing_to_account_for() -> None:
    assert money_totals(wallets=[], escrows=[], payments=[]) == {}


def test_captured_money_held_in_escrow_is_conserved() -> None:
    market = Marketplace(eur(1020))
    market.capture_and_hold()

    assert market.totals()["EUR"] == CurrencyTotals(
        currency="EUR", received=1020, in_escrow=1020, in_wallets=0, paid_out=0
    )


def test_released_money_is_split_between_seller_and_platform_wallets_and_conserved() -> None:
    market = Marketplace(eur(1020))
    market.release(market.capture_and_hold())

    totals = market.totals()["EUR"]
    assert (totals.in_escrow, totals.in_wallets) == (0, 1020)
    assert (market.seller.balance, market.platform.balance) == (eur(994), eur(26))


def test_a_payout_leaves_the_platform_but_stays_accounted_for() -> None:
    market = Marketplace(eur(1020))
    market.release(market.capture_and_hold())
    market.seller.debit(amount=eur(994), reference="payout-1")

    totals = market.totals()["EUR"]
    assert (totals.held_by_platform, totals.paid_out, totals.accounted_for) == (26, 994, 1020)


def test_a_refund_after_a_dispute_leaves_no_money_behind() -> None:
    market = Marketplace(eur(1020))
    escrow = market.capture_and_hold()
    escrow.dispute(reason="never arrived")
    escrow.resolve(resolution=Resolution.REFUND, resolved_by=uuid4())
    market.payment.refund()

    assert market.totals()["EUR"] == CurrencyTotals(
        currency="EUR", received=0, in_escrow=0, in_wallets=0, paid_out=0
    )


def test_captured_money_that_never_reached_escrow_is_not_conserved() -> None:
    market = Marketplace(eur(1020))
    market.payment.capture()

    with pytest.raises(MoneyNotConserved, match="EUR: received 1020, accounted for 0"):
        market.totals()


def test_money_credited_from_nowhere_is_not_conserved() -> None:
    market = Marketplace(eur(1020))
    market.seller.credit(amount=eur(1), reason=CreditReason.SALE, reference="oops")

    with pytest.raises(MoneyNotConserved) as raised:
        market.totals()
    assert [totals.currency for totals in raised.value.unbalanced] == ["EUR"]


def test_each_currency_is_accounted_for_on_its_own() -> None:
    euros, dollars = Marketplace(eur(1020)), Marketplace(Money(500, "USD"))
    euros.release(euros.capture_and_hold())
    dollars.capture_and_hold()

    totals = assert_money_conserved(
        wallets=[euros.seller, euros.platform, dollars.seller, dollars.platform],
        escrows=[*euros.escrows, *dollars.escrows],
        payments=[euros.payment, dollars.payment],
    )

    assert sorted(totals) == ["EUR", "USD"]
    assert (totals["EUR"].in_wallets, totals["USD"].in_escrow) == (1020, 500)
