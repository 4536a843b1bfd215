"""The analytics facts' handlers, pure: real domain events, stored and read back as the runtime
does, turned into rows of the fact tables."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate

from application.ports.event_store import RecordedEvent
from application.ports.read_model_sink import InsertRow, Write
from application.read_models.analytics import (
    FACT_TABLES,
    ColumnKind,
    from_utc_text,
    nearest_rank,
    utc_text,
)
from application.read_models.memory_sink import InMemorySink
from application.serialization import EventSerializer
from domain.dispute import Resolution
from domain.escrow import Escrow
from domain.ids import escrow_id_for, payment_id_for
from domain.money import Money
from domain.order import Order, OrderLine
from domain.payment import Payment
from projections.analytics_facts import ANALYTICS_FACTS
from projections.definition import event_type

pytestmark = pytest.mark.unit

SERIALIZER = EventSerializer()
TENANT = "acme"
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SELLER, BUYER, PRODUCT, OTHER_PRODUCT = (UUID(int=n) for n in (1, 2, 3, 4))
TABLES = {table.name: table for table in FACT_TABLES}


class Log:
    """The events of aggregates as the store records them (positions 10, 20, …)."""

    def __init__(self) -> None:
        self.records: list[RecordedEvent] = []

    def append(self, aggregate: Aggregate, *timestamps: datetime) -> list[RecordedEvent]:
        events: list[Any] = list(aggregate.collect_events())
        if timestamps:
            events = [
                dataclasses.replace(e, timestamp=t) for e, t in zip(events, timestamps, strict=True)
            ]
        added: list[RecordedEvent] = []
        for event in events:
            stored = SERIALIZER.to_new_event(event)
            added.append(
                RecordedEvent(
                    event_id=uuid4(),
                    stream_id=str(event.originator_id),
                    stream_version=event.originator_version,
                    position=(len(self.records) + len(added) + 1) * 10,
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
        self.records += added
        return added


def rows(records: list[RecordedEvent]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for record in records:
        for write in ANALYTICS_FACTS.writes(record, SERIALIZER):
            operation = write.operation
            assert isinstance(operation, InsertRow)
            found.append((operation.table, dict(operation.row)))
    return found


def placed_order() -> Order:
    lines = [
        OrderLine(PRODUCT, SELLER, "Night drive", Money(1_000, "EUR"), 2),
        OrderLine(OTHER_PRODUCT, SELLER, "Pack", Money(250, "EUR"), 1),
    ]
    return Order.place(id=uuid4(), tenant_id=TENANT, buyer_id=BUYER, lines=lines, at=AT)


def held_escrow(order: Order) -> Escrow:
    return Escrow.hold(
        id=escrow_id_for(order.id),
        tenant_id=TENANT,
        order_id=order.id,
        buyer_id=BUYER,
        seller_id=SELLER,
        amount=order.total,
        platform_fee_bps=1_000,
    )


def test_a_placed_order_gives_one_row_per_line_and_its_first_transition() -> None:
    order = placed_order()

    found = rows(Log().append(order))

    common = {"tenant": TENANT, "order_id": str(order.id), "seller_id": str(SELLER)}
    assert found == [
        (
            "order_lines",
            common
            | {
                "line_no": 1,
                "buyer_id": str(BUYER),
                "product_id": str(PRODUCT),
                "title": "Night drive",
                "quantity": 2,
                "unit_price": 1_000,
                "amount": 2_000,
                "currency": "EUR",
                "placed_at": "2025-03-01T12:00:00.000000+00:00",
            },
        ),
        (
            "order_lines",
            common
            | {
                "line_no": 2,
                "buyer_id": str(BUYER),
                "product_id": str(OTHER_PRODUCT),
                "title": "Pack",
                "quantity": 1,
                "unit_price": 250,
                "amount": 250,
                "currency": "EUR",
                "placed_at": "2025-03-01T12:00:00.000000+00:00",
            },
        ),
        (
            "order_transitions",
            common | {"seq": 1, "event": "Placed", "status": "placed", "at": utc_text(AT)},
        ),
    ]


def test_every_order_event_records_the_status_it_entered_at_its_time() -> None:
    log = Log()
    order = placed_order()
    steps: list[Callable[[datetime], None]] = [
        lambda at: order.mark_stock_reserved(at=at),
        lambda at: order.request_payment(payment_intent_id="pi", at=at),
        lambda at: order.mark_paid(at=at),
        lambda at: order.confirm(at=at),
        lambda at: order.deliver(at=at),
        lambda at: order.dispute(reason="broken", at=at),
        lambda at: order.resolve_dispute(resolution=Resolution.REFUND, at=at),
    ]
    for minutes, step in enumerate(steps, start=1):
        step(AT + timedelta(minutes=minutes))

    transitions = [row for table, row in rows(log.append(order)) if table == "order_transitions"]

    assert [(r["seq"], r["event"], r["status"], r["at"]) for r in transitions] == [
        (1, "Placed", "placed", utc_text(AT)),
        (2, "StockReserved", "stock_reserved", utc_text(AT + timedelta(minutes=1))),
        (3, "PaymentRequested", "payment_requested", utc_text(AT + timedelta(minutes=2))),
        (4, "Paid", "paid", utc_text(AT + timedelta(minutes=3))),
        (5, "Confirmed", "confirmed", utc_text(AT + timedelta(minutes=4))),
        (6, "Delivered", "delivered", utc_text(AT + timedelta(minutes=5))),
        (7, "Disputed", "disputed", utc_text(AT + timedelta(minutes=6))),
        (8, "DisputeResolved", "refunded", utc_text(AT + timedelta(minutes=7))),
    ]
    assert {r["seller_id"] for r in transitions[1:]} == {""}


def test_a_dispute_resolved_by_release_completes_the_order() -> None:
    log = Log()
    order = placed_order()
    order.mark_stock_reserved(at=AT)
    order.request_payment(payment_intent_id="pi", at=AT)
    order.mark_paid(at=AT)
    order.confirm(at=AT)
    order.deliver(at=AT)
    order.dispute(reason="late", at=AT)
    log.append(order)
    order.resolve_dispute(resolution=Resolution.RELEASE, at=AT + timedelta(days=1))

    [(table, row)] = rows(log.append(order))

    assert table == "order_transitions"
    assert (row["seq"], row["event"], row["status"]) == (8, "DisputeResolved", "completed")


def test_every_order_event_has_a_handler() -> None:
    events = [
        name
        for name, value in vars(Order).items()
        if isinstance(value, type) and issubclass(value, Aggregate.Event) and name != "Event"
    ]
    handled = {event_type(Order, name) for name in events if name != "Created"}

    assert handled <= ANALYTICS_FACTS.event_types
    assert len(handled) == 10


def test_escrow_movements_take_the_event_time_and_name_the_order_only_when_held() -> None:
    order = placed_order()
    escrow = held_escrow(order)
    escrow.release()
    held_at, released_at = AT, AT + timedelta(days=3, microseconds=5)

    [(_, held), (_, released)] = rows(Log().append(escrow, held_at, released_at))

    empty = {"order_id": "", "seller_id": "", "buyer_id": "", "resolution": ""}
    assert held == {
        "tenant": TENANT,
        "escrow_id": str(escrow.id),
        "seq": 1,
        "kind": "held",
        "order_id": str(order.id),
        "seller_id": str(SELLER),
        "buyer_id": str(BUYER),
        "currency": "EUR",
        "amount": 2_250,
        "seller_net": 0,
        "platform_fee": 0,
        "platform_fee_bps": 1_000,
        "resolution": "",
        "at": utc_text(held_at),
    }
    assert released == empty | {
        "tenant": TENANT,
        "escrow_id": str(escrow.id),
        "seq": 2,
        "kind": "released",
        "currency": "EUR",
        "amount": 2_250,
        "seller_net": 2_025,
        "platform_fee": 225,
        "platform_fee_bps": 0,
        "at": "2025-03-04T12:00:00.000005+00:00",
    }


def test_a_disputed_escrow_refunded_by_an_admin() -> None:
    escrow = held_escrow(placed_order())
    escrow.collect_events()
    escrow.dispute(reason="broken")
    escrow.resolve(resolution=Resolution.REFUND, resolved_by=uuid4())

    found = rows(Log().append(escrow, AT, AT + timedelta(hours=1), AT + timedelta(hours=1)))

    assert [
        (r["seq"], r["kind"], r["resolution"], r["amount"], r["currency"]) for _, r in found
    ] == [
        (2, "disputed", "", 0, ""),
        (3, "resolved", "refund", 0, ""),
        (4, "refunded", "", 2_250, "EUR"),
    ]


def test_payment_events_become_payment_rows() -> None:
    order_id = uuid4()
    payment = Payment.create_intent(
        id=payment_id_for(order_id),
        tenant_id=TENANT,
        order_id=order_id,
        provider_intent_id="pi-1",
        amount=Money(700, "USD"),
    )
    payment.capture()
    payment.refund()
    failed = Payment.create_intent(
        id=uuid4(),
        tenant_id=TENANT,
        order_id=order_id,
        provider_intent_id="pi-2",
        amount=Money(1, "USD"),
    )
    failed.fail(reason="card declined")
    log = Log()

    found = rows(log.append(payment, AT, AT, AT) + log.append(failed, AT, AT))

    assert [
        (r["kind"], r["order_id"], r["amount"], r["currency"], r["reason"]) for _, r in found
    ] == [
        ("intent_created", str(order_id), 700, "USD", ""),
        ("captured", "", 0, "", ""),
        ("refunded", "", 0, "", ""),
        ("intent_created", str(order_id), 1, "USD", ""),
        ("failed", "", 0, "", "card declined"),
    ]


def full_history() -> Log:
    log = Log()
    order = placed_order()
    order.mark_stock_reserved(at=AT)
    order.request_payment(payment_intent_id="pi", at=AT)
    order.mark_paid(at=AT)
    log.append(order)
    escrow = held_escrow(order)
    escrow.release()
    log.append(escrow, AT, AT + timedelta(hours=2))
    payment = Payment.create_intent(
        id=payment_id_for(order.id),
        tenant_id=TENANT,
        order_id=order.id,
        provider_intent_id="pi",
        amount=order.total,
    )
    payment.capture()
    log.append(payment, AT, AT)
    return log


def test_every_row_fits_its_table_and_is_keyed_by_it() -> None:
    writes = [w for r in full_history().records for w in ANALYTICS_FACTS.writes(r, SERIALIZER)]

    assert {w.operation.table for w in writes if isinstance(w.operation, InsertRow)} == set(TABLES)
    for write in writes:
        operation = write.operation
        assert isinstance(operation, InsertRow)
        table = TABLES[operation.table]
        assert list(operation.row) == list(table.column_names)
        assert operation.key == table.key_of(operation.row)
        assert operation.row["tenant"] == write.tenant_id
        for column in table.columns:
            value = operation.row[column.name]
            if column.kind is ColumnKind.INT:
                assert type(value) is int
            else:
                assert isinstance(value, str)
            if column.kind is ColumnKind.TIME:
                assert from_utc_text(value).tzinfo is UTC


async def test_redelivered_in_any_order_the_facts_are_the_same() -> None:
    writes = [w for r in full_history().records for w in ANALYTICS_FACTS.writes(r, SERIALIZER)]
    once, shuffled = InMemorySink(), InMemorySink()
    for sink in (once, shuffled):
        await sink.create_target("a", "a_v1_1")
    await once.apply("a", "a_v1_1", writes, {})
    rng = random.Random(3)
    for _ in range(3):
        batch: list[Write] = rng.sample(writes, len(writes))
        await shuffled.apply("a", "a_v1_1", batch, {})

    assert await shuffled.entries("a", "a_v1_1") == await once.entries("a", "a_v1_1")


def test_times_have_one_text_form() -> None:
    moment = datetime(2025, 3, 1, 13, 0, tzinfo=UTC) + timedelta(microseconds=7)

    assert utc_text(moment) == "2025-03-01T13:00:00.000007+00:00"
    assert from_utc_text(utc_text(moment)) == moment
    for other in ("2025-03-01T13:00:00+00:00", "2025-03-01T14:00:00.000007+01:00", "x"):
        with pytest.raises(ValueError):
            from_utc_text(other)
    with pytest.raises(ValueError):
        utc_text(datetime(2025, 3, 1))


@pytest.mark.parametrize(
    ("count", "percent", "rank"),
    [(1, 50, 1), (1, 99, 1), (4, 50, 2), (4, 90, 4), (10, 90, 9), (100, 99, 99), (101, 99, 100)],
)
def test_percentiles_by_nearest_rank(count: int, percent: int, rank: int) -> None:
    assert nearest_rank(count, percent) == rank
