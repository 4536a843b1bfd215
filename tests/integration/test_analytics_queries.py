"""The analytics reports on ClickHouse (chdb), over a small history whose figures are worked out
by hand below: real aggregates record the events, the real projection turns them into rows,
the real sink stores them (each delivered about 1⅓ times, shuffled), the real SQL answers.

The history, in tenant `acme` (D = 2025-03-01, UTC; fee rate 10 %):

| order | seller | lines | placed | paid | then |
|---|---|---|---|---|---|
| O1 | S1 | P1 x2 @1000, P2 x1 @250 = 2250 EUR | D 10:00 | D 10:05 | completed D+1 09:00 |
| O2 | S2 | P3 x1 @500 = 500 EUR | D 11:00 | D 11:05 | disputed D 12:00, refunded D+1 08:00 |
| O3 | S1 | P2 x4 @250 = 1000 EUR | D 13:00 | — | cancelled D 13:30 |
| O4 | S2 | P4 x1 @700 = 700 USD | D+1 10:00 | D+1 10:05 | completed D+1 10:06:29 |
| O6 | S2 | P3 x2 @500 = 1000 EUR | D-1 23:00 | D 00:10 | delivered, waiting |

| escrow | held | ended | hold |
|---|---|---|---|
| E1 (O1) | D 10:06:00 | released D+1 09:00:30 (net 2025, fee 225) | 82,470 s |
| E2 (O2) | D 11:06:00 | disputed D 12:00:10; refunded D+1 08:00:01 | 75,241 s |
| E4 (O4) | D+1 10:06:00 | released D+1 10:06:30.5 (net 630, fee 70) | 30.5 s |
| E6 (O6) | D 00:11:00 | — | |

Tenant `other` has a large order paid on D that no `acme` report may show.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.ports.event_store import RecordedEvent
from application.ports.read_model_sink import Write
from application.read_models.analytics import (
    EscrowBucket,
    FunnelBucket,
    Granularity,
    ProductRevenue,
    ReportScope,
    SalesBucket,
    SellerRevenue,
)
from application.serialization import EventSerializer
from domain.dispute import Resolution
from domain.escrow import Escrow
from domain.ids import escrow_id_for, payment_id_for
from domain.money import Money
from domain.order import Order, OrderLine
from domain.payment import Payment
from infrastructure.read_models.clickhouse_analytics import ClickHouseAnalytics
from infrastructure.read_models.clickhouse_rows import ClickHouseRowSink
from infrastructure.settings import load_settings
from projections.analytics_facts import ANALYTICS_FACTS
from projections.targets import ensure_live_target
from tests.contract.read_model_sink_contract import redelivered

pytestmark = pytest.mark.integration

SERIALIZER = EventSerializer()
D = datetime(2025, 3, 1, tzinfo=UTC)
FEE_BPS = 1_000
S1, S2, B1, B2 = (UUID(int=n) for n in (0x51, 0x52, 0xB1, 0xB2))
P1, P2, P3, P4 = (UUID(int=n) for n in (0x1, 0x2, 0x3, 0x4))
ADMIN = uuid4()


def at(days: int, hours: int, minutes: int = 0, seconds: float = 0) -> datetime:
    return D + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


class History:
    """Events as the store would hold them: positions in the order recorded."""

    def __init__(self) -> None:
        self.records: list[RecordedEvent] = []

    def record(self, aggregate: Any, tenant: str, *timestamps: datetime) -> None:
        """The aggregate's new events; escrow and payment events get `timestamps` (their only
        time), one per event, in order."""
        events = aggregate.collect_events()
        if timestamps:
            assert len(timestamps) == len(events)
            events = [
                dataclasses.replace(e, timestamp=t) for e, t in zip(events, timestamps, strict=True)
            ]
        for event in events:
            new = SERIALIZER.to_new_event(event)
            assert new.event_id is not None
            self.records.append(
                RecordedEvent(
                    event_id=new.event_id,
                    stream_id=str(aggregate.id),
                    stream_version=event.originator_version,
                    position=len(self.records) + 1,
                    type=new.type,
                    schema_version=new.schema_version,
                    tenant_id=tenant,
                    recorded_at=datetime.now(UTC),
                    correlation_id=None,
                    causation_id=None,
                    traceparent=None,
                    payload=new.payload,
                )
            )

    def writes(self) -> list[Write]:
        return [w for record in self.records for w in ANALYTICS_FACTS.writes(record, SERIALIZER)]


def line(
    product: UUID,
    seller: UUID,
    price: int,
    quantity: int,
    *,
    currency: str = "EUR",
    title: str | None = None,
) -> OrderLine:
    title = title or f"product {product.int}"
    return OrderLine(product, seller, title, Money(price, currency), quantity)


def placed(
    history: History, tenant: str, buyer: UUID, lines: Sequence[OrderLine], when: datetime
) -> Order:
    order = Order.place(id=uuid4(), tenant_id=tenant, buyer_id=buyer, lines=lines, at=when)
    history.record(order, tenant)
    return order


def paid(history: History, order: Order, tenant: str, when: datetime) -> None:
    order.mark_stock_reserved(at=when - timedelta(minutes=4))
    order.request_payment(payment_intent_id=f"pi-{order.id}", at=when - timedelta(minutes=3))
    payment = Payment.create_intent(
        id=payment_id_for(order.id),
        tenant_id=tenant,
        order_id=order.id,
        provider_intent_id=f"pi-{order.id}",
        amount=order.total,
    )
    payment.capture()
    order.mark_paid(at=when)
    history.record(order, tenant)
    history.record(payment, tenant, when - timedelta(minutes=3), when)


def held(history: History, order: Order, tenant: str, when: datetime) -> Escrow:
    escrow = Escrow.hold(
        id=escrow_id_for(order.id),
        tenant_id=tenant,
        order_id=order.id,
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
        amount=order.total,
        platform_fee_bps=FEE_BPS,
    )
    order.confirm(at=when)
    order.deliver(at=when + timedelta(seconds=1))
    history.record(order, tenant)
    history.record(escrow, tenant, when)
    return escrow


def acme_history() -> History:
    history = History()
    # O6: placed the day before, paid on D, still in escrow.
    o6 = placed(history, "acme", B1, [line(P3, S2, 500, 2, title="Pack (old)")], at(-1, 23))
    paid(history, o6, "acme", at(0, 0, 10))
    held(history, o6, "acme", at(0, 0, 11))
    # O1: completed, released.
    o1 = placed(history, "acme", B1, [line(P1, S1, 1000, 2), line(P2, S1, 250, 1)], at(0, 10))
    paid(history, o1, "acme", at(0, 10, 5))
    e1 = held(history, o1, "acme", at(0, 10, 6))
    # Tenant `other`: must never show.
    x = placed(history, "other", B1, [line(P1, S1, 99_000, 3)], at(0, 10, 30))
    paid(history, x, "other", at(0, 10, 35))
    # O2: disputed, refunded.
    o2 = placed(history, "acme", B2, [line(P3, S2, 500, 1, title="Pack")], at(0, 11))
    paid(history, o2, "acme", at(0, 11, 5))
    e2 = held(history, o2, "acme", at(0, 11, 6))
    o2.dispute(reason="empty file", at=at(0, 12))
    history.record(o2, "acme")
    e2.dispute(reason="empty file")
    history.record(e2, "acme", at(0, 12, 0, 10))
    # O3: cancelled before payment.
    o3 = placed(history, "acme", B1, [line(P2, S1, 250, 4)], at(0, 13))
    o3.cancel(reason="changed my mind", at=at(0, 13, 30))
    history.record(o3, "acme")
    # The next day: E2 refunded, O1 completed and E1 released, O4 in USD through to release.
    e2.resolve(resolution=Resolution.REFUND, resolved_by=ADMIN)
    history.record(e2, "acme", at(1, 8), at(1, 8, 0, 1))
    o2.resolve_dispute(resolution=Resolution.REFUND, at=at(1, 8))
    history.record(o2, "acme")
    o1.complete(at=at(1, 9))
    history.record(o1, "acme")
    e1.release()
    history.record(e1, "acme", at(1, 9, 0, 30))
    o4 = placed(history, "acme", B2, [line(P4, S2, 700, 1, currency="USD")], at(1, 10))
    paid(history, o4, "acme", at(1, 10, 5))
    e4 = held(history, o4, "acme", at(1, 10, 6))
    o4.complete(at=at(1, 10, 6, 29))
    history.record(o4, "acme")
    e4.release()
    history.record(e4, "acme", at(1, 10, 6, 30.5))
    return history


@pytest.fixture
async def analytics() -> AsyncIterator[ClickHouseAnalytics]:
    settings = load_settings()
    sink = await ClickHouseRowSink.connect(
        settings.clickhouse_target, database=settings.clickhouse_database
    )
    try:
        target = await ensure_live_target(sink, ANALYTICS_FACTS)
        rng = random.Random(6)
        for batch in redelivered(rng, acme_history().writes()):
            await sink.apply(ANALYTICS_FACTS.name, target, batch, {"log": 1})
        yield ClickHouseAnalytics(sink, ANALYTICS_FACTS.name, target)
    finally:
        await sink.close()


def scope(*, seller: UUID | None = None, days: int = 2, granularity: Any = None) -> ReportScope:
    return ReportScope.of(
        "acme",
        D,
        D + timedelta(days=days),
        granularity=granularity,
        seller_id=str(seller) if seller else None,
    )


# -- sales ------------------------------------------------------------------------------------


async def test_sales_by_day_count_orders_by_paid_time_and_escrow_money_by_release_time(
    analytics: ClickHouseAnalytics,
) -> None:
    buckets = await analytics.sales(scope(), Granularity.DAY)

    assert buckets == [
        SalesBucket(at(0, 0), "EUR", gmv=3_750, net=0, fees=0, orders=3),
        SalesBucket(at(1, 0), "EUR", gmv=0, net=2_025, fees=225, orders=0),
        SalesBucket(at(1, 0), "USD", gmv=700, net=630, fees=70, orders=1),
    ]


async def test_sales_of_one_seller_by_hour(analytics: ClickHouseAnalytics) -> None:
    buckets = await analytics.sales(scope(seller=S1), Granularity.HOUR)

    assert buckets == [
        SalesBucket(at(0, 10), "EUR", gmv=2_250, net=0, fees=0, orders=1),
        SalesBucket(at(1, 9), "EUR", gmv=0, net=2_025, fees=225, orders=0),
    ]


async def test_sales_by_month_and_a_period_that_cuts_the_day(
    analytics: ClickHouseAnalytics,
) -> None:
    by_month = await analytics.sales(scope(), Granularity.MONTH)
    morning = ReportScope.of("acme", D, at(0, 11, 5))  # O2's payment is at the end: excluded

    assert by_month == [
        SalesBucket(D, "EUR", gmv=3_750, net=2_025, fees=225, orders=3),
        SalesBucket(D, "USD", gmv=700, net=630, fees=70, orders=1),
    ]
    assert await analytics.sales(morning, Granularity.DAY) == [
        SalesBucket(D, "EUR", gmv=3_250, net=0, fees=0, orders=2)
    ]


async def test_another_tenant_sees_only_its_own_sales(analytics: ClickHouseAnalytics) -> None:
    other = ReportScope.of("other", D, D + timedelta(days=2))

    assert await analytics.sales(other, Granularity.DAY) == [
        SalesBucket(D, "EUR", gmv=297_000, net=0, fees=0, orders=1)
    ]
    nobody = ReportScope.of("nobody", D, D + timedelta(days=2))
    assert await analytics.sales(nobody, Granularity.DAY) == []


# -- top products and sellers -----------------------------------------------------------------


async def test_top_products_by_revenue_of_paid_orders(analytics: ClickHouseAnalytics) -> None:
    products = await analytics.top_products(scope(), limit=10)

    assert products == [
        ProductRevenue(str(P1), str(S1), "EUR", "product 1", 2_000, units=2, orders=1),
        ProductRevenue(str(P3), str(S2), "EUR", "Pack", 1_500, units=3, orders=2),
        ProductRevenue(str(P4), str(S2), "USD", "product 4", 700, units=1, orders=1),
        ProductRevenue(str(P2), str(S1), "EUR", "product 2", 250, units=1, orders=1),
    ]
    assert await analytics.top_products(scope(), limit=2) == products[:2]
    assert await analytics.top_products(scope(seller=S2), limit=10) == products[1:3]


async def test_top_sellers_by_revenue_per_currency(analytics: ClickHouseAnalytics) -> None:
    sellers = await analytics.top_sellers(scope(), limit=10)

    assert sellers == [
        SellerRevenue(str(S1), "EUR", 2_250, orders=1),
        SellerRevenue(str(S2), "EUR", 1_500, orders=2),
        SellerRevenue(str(S2), "USD", 700, orders=1),
    ]
    assert await analytics.top_sellers(scope(), limit=1) == sellers[:1]


# -- funnel -----------------------------------------------------------------------------------


async def test_funnel_follows_the_orders_placed_in_the_period(
    analytics: ClickHouseAnalytics,
) -> None:
    [whole] = await analytics.funnel(scope(), None)
    by_day = await analytics.funnel(scope(), Granularity.DAY)

    assert whole == FunnelBucket(
        D, placed=4, paid=3, completed=2, cancelled=1, disputed=1, refunded=1
    )
    assert (whole.cancellation_rate, whole.refund_rate) == (1 / 4, 1 / 3)
    assert by_day == [
        FunnelBucket(at(0, 0), placed=3, paid=2, completed=1, cancelled=1, disputed=1, refunded=1),
        FunnelBucket(at(1, 0), placed=1, paid=1, completed=1, cancelled=0, disputed=0, refunded=0),
    ]
    assert await analytics.funnel(scope(seller=S1), None) == [
        FunnelBucket(D, placed=2, paid=1, completed=1, cancelled=1, disputed=0, refunded=0)
    ]


# -- escrow -----------------------------------------------------------------------------------


async def test_escrow_hold_percentiles_by_nearest_rank_and_disputes(
    analytics: ClickHouseAnalytics,
) -> None:
    [whole] = await analytics.escrow(scope(), None)
    by_day = await analytics.escrow(scope(), Granularity.DAY)
    [of_s2] = await analytics.escrow(scope(seller=S2), None)

    # Durations sorted: 30.5, 75,241, 82,470 s. Ranks: p50 ceil(1.5) = 2, p90 ceil(2.7) = 3.
    assert whole == EscrowBucket(
        D,
        closed=3,
        released=2,
        refunded=1,
        p50_seconds=75_241.0,
        p90_seconds=82_470.0,
        p99_seconds=82_470.0,
        disputes=1,
    )
    assert by_day == [
        EscrowBucket(at(0, 0), 0, 0, 0, None, None, None, disputes=1),
        EscrowBucket(at(1, 0), 3, 2, 1, 75_241.0, 82_470.0, 82_470.0, disputes=0),
    ]
    # S2's holds: 30.5 and 75,241 s. p50 ceil(1.0) = 1, p90 ceil(1.8) = 2.
    assert of_s2 == EscrowBucket(
        D,
        closed=2,
        released=1,
        refunded=1,
        p50_seconds=30.5,
        p90_seconds=75_241.0,
        p99_seconds=75_241.0,
        disputes=1,
    )
