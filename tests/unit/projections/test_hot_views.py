"""The hot views' handlers, pure: real domain events, stored and read back as the runtime does,
turned into writes, applied to the in-memory reference sink.

Convergence is the property every projection owes the runtime: the writes of a history, applied
in any order and any number of times, leave the same read model as applied once in log order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate

from application.ports.event_store import RecordedEvent
from application.ports.read_model_sink import JsonValue, Write
from application.read_models.memory_sink import InMemorySink
from application.serialization import EventSerializer
from domain.dispute import Resolution
from domain.escrow import Escrow
from domain.ids import escrow_id_for, platform_wallet_id_for, wallet_id_for
from domain.money import Money
from domain.order import Order, OrderLine
from domain.product import Product, ProductKind
from domain.wallet import CreditReason, Wallet, WalletKind
from interfaces.http.views import OrderView, SellerDashboardView, WalletView
from projections.definition import Projection, event_type
from projections.order_views import ORDER_VIEWS, buyer_orders_doc, order_doc
from projections.product_pages import PRODUCT_PAGES, product_doc
from projections.seller_dashboard import SELLER_DASHBOARD, seller_dashboard_doc
from projections.wallet_views import (
    RECENT_MOVEMENTS,
    WALLET_VIEWS,
    account_wallets_doc,
    recent_movements,
    wallet_doc,
)

pytestmark = pytest.mark.unit

SERIALIZER = EventSerializer()
TENANT = "acme"
TARGET = "t_v1_1"
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


@dataclass
class Log:
    """A global log built from aggregates' pending events, as the store would record them."""

    records: list[RecordedEvent] = field(default_factory=list)

    def append(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                stored = SERIALIZER.to_new_event(event)
                self.records.append(
                    RecordedEvent(
                        event_id=uuid4(),
                        stream_id=str(event.originator_id),
                        stream_version=event.originator_version,
                        # Positions grow but are not contiguous (see the event store port).
                        position=(len(self.records) + 1) * 16,
                        type=stored.type,
                        schema_version=stored.schema_version,
                        tenant_id=TENANT,
                        recorded_at=event.timestamp,
                        correlation_id=None,
                        causation_id=None,
                        traceparent=None,
                        payload=stored.payload,
                    )
                )

    def writes(self, projection: Projection) -> list[Write]:
        return [w for r in self.records for w in projection.writes(r, SERIALIZER)]


async def applied(projection: Projection, batches: list[list[Write]]) -> InMemorySink:
    sink = InMemorySink()
    await sink.create_target(projection.name, TARGET)
    for batch in batches:
        await sink.apply(projection.name, TARGET, batch, {})
    return sink


def fields(sink: InMemorySink, projection: Projection, doc: str) -> dict[str, JsonValue]:
    document = sink.document(projection.name, TARGET, doc)
    assert document is not None, f"no document {doc}"
    return document.fields


def shuffled_and_redelivered(rng: random.Random, writes: list[Write]) -> Iterator[list[Write]]:
    """The writes in a random order, some twice, in batches of random sizes."""
    delivered = writes + rng.sample(writes, k=len(writes) // 2)
    rng.shuffle(delivered)
    while delivered:
        size = rng.randint(1, 5)
        yield delivered[:size]
        delivered = delivered[size:]


# -- a history --------------------------------------------------------------------------------


@dataclass
class Sale:
    """A product with stock 10: order `sold` (2 units) completes and the seller is paid, then
    pays 500 out; `cancelled` (3) is cancelled and its units released; `refunded` (1) is
    refunded after a dispute; and an escrow in another currency is still held."""

    log: Log
    seller: UUID
    buyer: UUID
    product: UUID
    sold: UUID
    cancelled: UUID
    refunded: UUID


def a_sale() -> Sale:
    log = Log()
    seller, buyer = uuid4(), uuid4()
    sold, cancelled, refunded = uuid4(), uuid4(), uuid4()
    product = Product.create(
        id=uuid4(),
        tenant_id=TENANT,
        creator_id=seller,
        title="Night drive",
        description="A synthwave track",
        tags=["synthwave"],
        kind=ProductKind.TRACK,
        price=eur(1_000),
        stock=10,
    )
    product.publish()
    product.change_price(eur(1_200))
    log.append(product)
    for order_id, quantity in ((sold, 2), (cancelled, 3), (refunded, 1)):
        order = place(order_id, buyer, seller, product.id, quantity)
        product.reserve(order_id, quantity)
        order.mark_stock_reserved(at=at(1))
        log.append(order, product)
        if order_id == cancelled:
            product.release(order_id)
            order.cancel(reason="payment failed", at=at(2))
            log.append(product, order)
            continue
        product.commit(order_id)
        order.request_payment(payment_intent_id=f"pi_{order_id}", at=at(2))
        order.mark_paid(at=at(3))
        escrow = hold(order_id, buyer, seller, eur(1_000 * quantity))
        order.confirm(at=at(4))
        order.deliver(at=at(5))
        log.append(product, order, escrow)
        if order_id == sold:
            settlement = escrow.release()
            order.complete(at=at(6))
            log.append(escrow, order, *paid(seller, settlement.seller_net, settlement.platform_fee))
        else:
            order.dispute(reason="the file is empty", at=at(6))
            escrow.dispute(reason="the file is empty")
            escrow.resolve(resolution=Resolution.REFUND, resolved_by=uuid4())
            order.resolve_dispute(resolution=Resolution.REFUND, at=at(7))
            log.append(order, escrow)
    log.append(hold(uuid4(), buyer, seller, Money(700, "USD")))
    return Sale(log, seller, buyer, product.id, sold, cancelled, refunded)


def at(minutes: int) -> datetime:
    return AT + timedelta(minutes=minutes)


def place(order_id: UUID, buyer: UUID, seller: UUID, product_id: UUID, quantity: int) -> Order:
    line = OrderLine(
        product_id=product_id,
        seller_id=seller,
        title="Night drive",
        unit_price=eur(1_000),
        quantity=quantity,
    )
    return Order.place(id=order_id, tenant_id=TENANT, buyer_id=buyer, lines=[line], at=AT)


def hold(order_id: UUID, buyer: UUID, seller: UUID, amount: Money) -> Escrow:
    return Escrow.hold(
        id=escrow_id_for(order_id),
        tenant_id=TENANT,
        order_id=order_id,
        buyer_id=buyer,
        seller_id=seller,
        amount=amount,
        platform_fee_bps=1_000,
    )


def paid(seller: UUID, net: Money, fee: Money) -> tuple[Wallet, Wallet]:
    """The seller's wallet credited with the net and paid out 500; the platform's with the fee."""
    wallet = Wallet.open(
        id=wallet_id_for(seller, "EUR"),
        tenant_id=TENANT,
        kind=WalletKind.ACCOUNT,
        owner_id=seller,
        currency="EUR",
    )
    wallet.credit(amount=net, reason=CreditReason.SALE, reference="escrow-1")
    wallet.debit(amount=eur(500), reference="payout-1")
    platform = Wallet.open(
        id=platform_wallet_id_for(TENANT, "EUR"),
        tenant_id=TENANT,
        kind=WalletKind.PLATFORM,
        owner_id=None,
        currency="EUR",
    )
    platform.credit(amount=fee, reason=CreditReason.PLATFORM_FEE, reference="escrow-1")
    return wallet, platform


# -- convergence ------------------------------------------------------------------------------

HOT_VIEWS = [ORDER_VIEWS, WALLET_VIEWS, SELLER_DASHBOARD, PRODUCT_PAGES]


@pytest.mark.parametrize("projection", HOT_VIEWS, ids=lambda p: p.name)
async def test_a_view_is_the_same_whatever_the_order_and_however_often_its_writes_come(
    projection: Projection,
) -> None:
    writes = a_sale().log.writes(projection)
    assert writes, f"{projection.name} wrote nothing"
    in_log_order = await applied(projection, [writes])
    expected = await in_log_order.entries(projection.name, TARGET)

    for seed in range(25):
        rng = random.Random(seed)
        batches = list(shuffled_and_redelivered(rng, writes))
        sink = await applied(projection, batches)
        assert await sink.entries(projection.name, TARGET) == expected, f"seed {seed}"


# -- what each view shows ---------------------------------------------------------------------


async def test_an_order_view_shows_each_state_change_and_the_version_it_reflects() -> None:
    sale = a_sale()
    sink = await applied(ORDER_VIEWS, [sale.log.writes(ORDER_VIEWS)])

    view = OrderView.from_document(fields(sink, ORDER_VIEWS, order_doc(TENANT, str(sale.sold))))

    assert [change.status for change in view.timeline] == [
        "placed",
        "stock_reserved",
        "payment_requested",
        "paid",
        "confirmed",
        "delivered",
        "completed",
    ]
    assert view.status == "completed"
    for order_id in (sale.sold, sale.cancelled, sale.refunded):
        document = fields(sink, ORDER_VIEWS, order_doc(TENANT, str(order_id)))
        assert OrderView.from_document(document).version == stream_version(sale.log, order_id)
    listed = fields(sink, ORDER_VIEWS, buyer_orders_doc(TENANT, str(sale.buyer)))
    assert set(listed) == {str(sale.sold), str(sale.cancelled), str(sale.refunded)}


def test_every_order_event_enters_a_status_so_the_timeline_counts_the_stream_version() -> None:
    recorded_events = {
        name
        for name, value in vars(Order).items()
        if isinstance(value, type) and issubclass(value, Order.Event)
    } - {"Event", "Created"}  # the base classes, never recorded as such

    assert ORDER_VIEWS.event_types == {event_type(Order, name) for name in recorded_events}


async def test_a_product_page_holds_reserved_units_and_takes_sold_ones_from_stock() -> None:
    sale = a_sale()
    sink = await applied(PRODUCT_PAGES, [sale.log.writes(PRODUCT_PAGES)])

    page = fields(sink, PRODUCT_PAGES, product_doc(TENANT, str(sale.product)))

    # 10 units: 2 + 1 sold, 3 reserved then released.
    assert (page["stock"], page["available"]) == (7, 7)
    assert page["price"] == {"amount": 1_200, "currency": "EUR"}
    assert page["published"] is True
    assert page["version"] == stream_version(sale.log, sale.product)


async def test_a_product_page_shows_units_held_by_an_order_in_flight() -> None:
    log = Log()
    product = Product.create(
        id=uuid4(),
        tenant_id=TENANT,
        creator_id=uuid4(),
        title="Loops",
        description="",
        tags=[],
        kind=ProductKind.SAMPLE_PACK,
        price=eur(500),
        stock=4,
    )
    product.publish()
    product.reserve(uuid4(), 3)
    log.append(product)
    sink = await applied(PRODUCT_PAGES, [log.writes(PRODUCT_PAGES)])

    page = fields(sink, PRODUCT_PAGES, product_doc(TENANT, str(product.id)))

    assert (page["stock"], page["available"]) == (4, 1)


async def test_a_wallet_view_keeps_balance_totals_and_the_latest_movements_newest_first() -> None:
    sale = a_sale()
    sink = await applied(WALLET_VIEWS, [sale.log.writes(WALLET_VIEWS)])
    wallet_id = str(wallet_id_for(sale.seller, "EUR"))

    view = WalletView.from_document(fields(sink, WALLET_VIEWS, wallet_doc(TENANT, wallet_id)))

    assert (view.balance.amount, view.credited.amount, view.paid_out.amount) == (1_300, 1_800, 500)
    assert [(m.kind, m.amount.amount, m.reference) for m in view.movements] == [
        ("debit", 500, "payout-1"),
        ("credit", 1_800, "escrow-1"),
    ]
    assert view.version == 3
    assert fields(sink, WALLET_VIEWS, account_wallets_doc(TENANT, str(sale.seller))) == {
        "EUR": wallet_id
    }


def test_a_wallet_view_shows_only_the_latest_movements() -> None:
    movements: dict[str, JsonValue] = {
        f"movement.{position:020d}": {"position": position} for position in range(1, 31)
    }

    latest = recent_movements({"id": "w", **movements})

    assert [m["position"] for m in latest] == list(range(30, 30 - RECENT_MOVEMENTS, -1))


async def test_a_seller_dashboard_adds_up_to_net_plus_fees_plus_pending_in_each_currency() -> None:
    sale = a_sale()
    sink = await applied(SELLER_DASHBOARD, [sale.log.writes(SELLER_DASHBOARD)])
    doc = seller_dashboard_doc(TENANT, str(sale.seller))

    view = SellerDashboardView.from_document(fields(sink, SELLER_DASHBOARD, doc))

    euros, dollars = view.currencies
    assert (euros.currency, dollars.currency) == ("EUR", "USD")
    assert (euros.sales_count, euros.gross.amount) == (1, 2_000)  # the refunded one is out
    assert (euros.net.amount, euros.fees.amount, euros.pending_escrow.amount) == (1_800, 200, 0)
    assert (euros.refunds_count, euros.refunded.amount) == (1, 1_000)
    assert (dollars.sales_count, dollars.gross.amount, dollars.pending_escrow.amount) == (
        1,
        700,
        700,
    )
    for totals in view.currencies:
        assert totals.gross.amount == (
            totals.net.amount + totals.fees.amount + totals.pending_escrow.amount
        )
    assert view.sales_count == 2


# -- escrow events stored before they named the seller ----------------------------------------


def as_stored_by_version_1(record: RecordedEvent) -> RecordedEvent:
    """The record as class version 1 stored it: no seller, no order, no class version."""
    payload = json.loads(record.payload)
    for name in ("seller_id", "order_id", "class_version"):
        del payload[name]
    return replace(record, payload=json.dumps(payload).encode(), schema_version=1)


@pytest.mark.parametrize("settle", ["release", "refund"])
def test_an_escrow_settlement_stored_before_it_named_the_seller_is_left_out_of_dashboards(
    settle: str,
) -> None:
    log = Log()
    escrow = hold(uuid4(), uuid4(), uuid4(), eur(1_000))
    getattr(escrow, settle)()
    log.append(escrow)
    held, settled = log.records

    old = as_stored_by_version_1(settled)
    event: Any = SERIALIZER.to_domain_event(old)

    assert (event.seller_id, event.order_id) == (None, None)
    assert SELLER_DASHBOARD.writes(old, SERIALIZER) == []
    assert SELLER_DASHBOARD.writes(settled, SERIALIZER) != []
    replayed = None
    for record in (held, old):
        stored: Any = SERIALIZER.to_domain_event(record)
        replayed = stored.mutate(replayed)
    assert replayed is not None and replayed.status == escrow.status


def stream_version(log: Log, stream_id: UUID) -> int:
    return max(r.stream_version for r in log.records if r.stream_id == str(stream_id))
