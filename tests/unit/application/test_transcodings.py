"""Every event Mercato stores survives the trip to JSON and back with its exact types, and so
does every aggregate, replayed from its events or restored from a snapshot."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate, DomainEvent

from application.ports.event_store import NewEvent, RecordedEvent
from application.sagas.checkout import CheckoutSaga
from application.sagas.escrow import DISPUTE_WINDOW, EscrowSaga
from application.sagas.saga import Saga
from application.serialization import EventSerializer
from application.transcodings import EnumAsValue, TaggingJSONTranscoder, domain_transcoder
from domain.account import Account, Role
from domain.dispute import Resolution
from domain.escrow import Escrow
from domain.money import Money
from domain.order import Order, OrderLine
from domain.payment import Payment
from domain.product import Product
from domain.wallet import CreditReason, Wallet, WalletKind

pytestmark = pytest.mark.unit

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = "tenant-1"


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


# -- realistic histories, one list of aggregates per type -----------------------------------------


def accounts() -> list[Aggregate]:
    account = Account.register(
        id=uuid4(),
        tenant_id=TENANT,
        email="Ada@Example.org",
        display_name="Ada",
        roles=["buyer"],
        password_hash="argon2-hash",
    )
    account.change_roles([Role.BUYER, Role.CREATOR])
    account.revoke_all_sessions()
    account.change_password_hash("argon2-rehash")
    return [account]


def products() -> list[Aggregate]:
    product = Product.create(
        id=uuid4(),
        tenant_id=TENANT,
        creator_id=uuid4(),
        title="Loops",
        description="Eight bars",
        tags=["Lo-Fi", "drums"],
        kind="sample_pack",
        price=eur(900),
        stock=5,
    )
    product.update_details(title="Loops vol. 1", description="", tags=["lo-fi"])
    product.publish()
    product.change_price(eur(1200))
    sold, abandoned = uuid4(), uuid4()
    product.reserve(sold, 2)
    product.reserve(abandoned, 1)
    product.release(abandoned)
    product.commit(sold)
    product.unpublish()
    return [product]


def an_order() -> Order:
    line = OrderLine(uuid4(), uuid4(), "Loops", eur(900), 2)
    return Order.place(id=uuid4(), tenant_id=TENANT, buyer_id=uuid4(), lines=[line], at=AT)


def delivered(order: Order) -> Order:
    order.mark_stock_reserved(at=AT)
    order.request_payment(payment_intent_id="pi_1", at=AT)
    order.mark_paid(at=AT)
    order.confirm(at=AT)
    order.deliver(at=AT)
    return order


def orders() -> list[Aggregate]:
    refunded = delivered(an_order())
    refunded.dispute(reason="corrupt files", at=AT)
    refunded.resolve_dispute(resolution=Resolution.REFUND, at=AT)
    completed = delivered(an_order())
    completed.complete(at=AT)
    cancelled = an_order()
    cancelled.cancel(reason="changed my mind", at=AT)
    return [refunded, completed, cancelled]


def an_escrow() -> Escrow:
    return Escrow.hold(
        id=uuid4(),
        tenant_id=TENANT,
        order_id=uuid4(),
        buyer_id=uuid4(),
        seller_id=uuid4(),
        amount=eur(1010),
        platform_fee_bps=250,
    )


def escrows() -> list[Aggregate]:
    resolved = an_escrow()
    resolved.dispute(reason="not as described")
    resolved.resolve(resolution=Resolution.RELEASE, resolved_by=uuid4())
    refunded, released = an_escrow(), an_escrow()
    refunded.refund()
    released.release()
    return [resolved, refunded, released]


def wallets() -> list[Aggregate]:
    seller = Wallet.open(
        id=uuid4(), tenant_id=TENANT, kind=WalletKind.ACCOUNT, owner_id=uuid4(), currency="EUR"
    )
    seller.credit(amount=eur(900), reason=CreditReason.SALE, reference="escrow:1:sale")
    seller.debit(amount=eur(400), reference="payout:1")
    platform = Wallet.open(
        id=uuid4(), tenant_id=TENANT, kind=WalletKind.PLATFORM, owner_id=None, currency="EUR"
    )
    platform.credit(amount=eur(100), reason=CreditReason.PLATFORM_FEE, reference="escrow:1:fee")
    return [seller, platform]


def a_payment() -> Payment:
    return Payment.create_intent(
        id=uuid4(), tenant_id=TENANT, order_id=uuid4(), provider_intent_id="pi_1", amount=eur(500)
    )


def payments() -> list[Aggregate]:
    refunded, failed = a_payment(), a_payment()
    refunded.capture()
    refunded.refund()
    failed.fail(reason="card declined")
    return [refunded, failed]


def a_checkout() -> CheckoutSaga:
    lines = (OrderLine(uuid4(), uuid4(), "Loops", eur(900), 2),)
    return CheckoutSaga.start(
        order_id=uuid4(),
        tenant_id=TENANT,
        lines=lines,
        placed_at=AT,
        payment_timeout=timedelta(minutes=15),
        position=7,
        correlation_id=uuid4(),
    )


def take_every_step(saga: Saga) -> None:
    while (step := saga.next_step()) is not None:
        saga.complete_step(step.key)


def checkout_sagas() -> list[Aggregate]:
    fulfilled = a_checkout()
    take_every_step(fulfilled)
    fulfilled.on_payment_captured(position=9)
    take_every_step(fulfilled)
    refunded = a_checkout()
    take_every_step(refunded)
    refunded.on_timer("payment-deadline")
    take_every_step(refunded)
    refunded.on_payment_captured(position=11)
    step = refunded.next_step()
    assert step is not None
    refunded.refuse_step(step.key, "the provider said no")
    return [fulfilled, refunded]


def an_escrow_saga() -> EscrowSaga:
    return EscrowSaga.start(
        order_id=uuid4(),
        tenant_id=TENANT,
        seller_id=uuid4(),
        amount=eur(1000),
        position=3,
        correlation_id=uuid4(),
    )


def escrow_sagas() -> list[Aggregate]:
    settled = an_escrow_saga()
    settled.on_order_delivered(at=AT, window=timedelta(hours=72), position=4)
    take_every_step(settled)
    settled.on_timer(DISPUTE_WINDOW)
    settled.refuse_step("complete-order", "the buyer confirmed receipt at that moment")
    settled.on_order_completed(position=5)
    take_every_step(settled)
    settled.on_escrow_released(seller_net=eur(900), platform_fee=eur(100), position=6)
    take_every_step(settled)
    refunded = an_escrow_saga()
    refunded.on_order_delivered(at=AT, window=timedelta(hours=72), position=4)
    take_every_step(refunded)
    refunded.on_order_disputed(reason="corrupt", position=5)
    take_every_step(refunded)
    refunded.on_escrow_refunded(position=6)
    take_every_step(refunded)
    return [settled, refunded]


HISTORIES: dict[type[Aggregate], Callable[[], list[Aggregate]]] = {
    Account: accounts,
    Product: products,
    Order: orders,
    Escrow: escrows,
    Wallet: wallets,
    Payment: payments,
    CheckoutSaga: checkout_sagas,
    EscrowSaga: escrow_sagas,
}


# -- helpers ----------------------------------------------------------------------------------


def stored(serializer: EventSerializer, event: Any, version: int) -> RecordedEvent:
    new: NewEvent = serializer.to_new_event(event)
    return RecordedEvent(
        event_id=new.event_id or uuid4(),
        stream_id=str(event.originator_id),
        stream_version=version,
        position=version,
        type=new.type,
        schema_version=new.schema_version,
        tenant_id=TENANT,
        recorded_at=AT,
        correlation_id=None,
        causation_id=None,
        traceparent=None,
        payload=new.payload,
    )


def assert_same_types(original: Any, restored: Any, path: str = "") -> None:
    """Equal is not enough: `ProductKind.TRACK == "track"` and `(1,) != [1]` but both are
    easy to lose. Every value must come back as the very type it was."""
    assert type(restored) is type(original), (
        f"{path}: {type(original)} came back as {type(restored)}"
    )
    if isinstance(original, dict):
        assert original.keys() == restored.keys(), path
        for key in original:
            assert_same_types(key, next(k for k in restored if k == key), f"{path}[{key!r}]")
            assert_same_types(original[key], restored[key], f"{path}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        for index, (left, right) in enumerate(zip(original, restored, strict=True)):
            assert_same_types(left, right, f"{path}[{index}]")
    elif isinstance(original, frozenset):
        assert original == restored, path
        for item in original:
            assert_same_types(item, next(r for r in restored if r == item), f"{path}{{{item!r}}}")
    elif dataclasses.is_dataclass(original) and not isinstance(original, type):
        for field in dataclasses.fields(original):
            name = field.name
            assert_same_types(getattr(original, name), getattr(restored, name), f"{path}.{name}")
    elif isinstance(original, (Aggregate, DomainEvent)):
        assert_same_types(vars(original), vars(restored), path)


def event_names(aggregate_type: type[Aggregate]) -> set[str]:
    """The names of the events the aggregate (and its bases up to `Aggregate`) can record.

    eventsourcing also copies every inherited event class into each subclass, and gives every
    aggregate a generic `Event` and `Created`: names, not classes, are what counts.
    """
    names: set[str] = set()
    for cls in aggregate_type.__mro__:
        if cls is Aggregate:
            break
        names.update(
            name
            for name, value in vars(cls).items()
            if isinstance(value, type) and issubclass(value, DomainEvent)
        )
    return names - {"Event", "Created"}


@pytest.fixture
def serializer() -> EventSerializer:
    return EventSerializer()


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregate_type", HISTORIES, ids=lambda cls: cls.__name__)
def test_the_histories_record_every_event_type_of_the_aggregate(
    aggregate_type: type[Aggregate],
) -> None:
    recorded = {
        type(event).__name__
        for aggregate in HISTORIES[aggregate_type]()
        for event in aggregate.collect_events()
    }

    assert event_names(aggregate_type) - recorded == set()


@pytest.mark.parametrize("aggregate_type", HISTORIES, ids=lambda cls: cls.__name__)
def test_every_event_comes_back_equal_and_with_the_same_types(
    aggregate_type: type[Aggregate], serializer: EventSerializer
) -> None:
    for aggregate in HISTORIES[aggregate_type]():
        for version, event in enumerate(aggregate.collect_events(), start=1):
            back = serializer.to_domain_event(stored(serializer, event, version))

            assert back == event
            assert_same_types(event, back, type(event).__qualname__)


@pytest.mark.parametrize("aggregate_type", HISTORIES, ids=lambda cls: cls.__name__)
def test_an_aggregate_replayed_from_its_stored_events_is_the_same(
    aggregate_type: type[Aggregate], serializer: EventSerializer
) -> None:
    for aggregate in HISTORIES[aggregate_type]():
        records = [
            stored(serializer, event, version)
            for version, event in enumerate(aggregate.collect_events(), start=1)
        ]
        replayed: Any = None
        for record in records:
            replayed = serializer.to_domain_event(record).mutate(replayed)  # type: ignore[attr-defined]

        assert replayed == aggregate
        assert_same_types(aggregate, replayed, aggregate_type.__name__)


@pytest.mark.parametrize("aggregate_type", HISTORIES, ids=lambda cls: cls.__name__)
def test_an_aggregate_restored_from_a_snapshot_is_the_same(
    aggregate_type: type[Aggregate], serializer: EventSerializer
) -> None:
    for aggregate in HISTORIES[aggregate_type]():
        aggregate.collect_events()

        restored = serializer.from_snapshot(serializer.to_snapshot(aggregate, tenant_id=TENANT))

        assert restored == aggregate
        assert_same_types(aggregate, restored, aggregate_type.__name__)


def test_a_dict_keyed_by_uuids_is_stored_as_pairs_and_read_back_as_a_dict() -> None:
    transcoder = domain_transcoder()
    keys = (uuid4(), uuid4())
    value = {"reservations": {keys[0]: (1, "a"), keys[1]: (2, "b")}}

    back = transcoder.decode(transcoder.encode(value))

    assert back == value
    assert_same_types(value, back)


def test_a_frozenset_is_written_the_same_whatever_its_iteration_order() -> None:
    transcoder = domain_transcoder()
    roles = frozenset({Role.ADMIN, Role.BUYER, Role.CREATOR})

    written = json.loads(transcoder.encode({"roles": roles}))

    assert [item["_data_"] for item in written["roles"]["_data_"]] == ["admin", "buyer", "creator"]


def test_a_subclass_of_a_registered_type_is_stored_as_that_type() -> None:
    class DriverUUID(UUID):
        """Like asyncpg's own UUID class."""

    transcoder = domain_transcoder()
    value = DriverUUID(int=42)

    back = transcoder.decode(transcoder.encode({"id": value}))

    assert back == {"id": UUID(int=42)}


def test_a_type_nobody_registered_is_refused_loudly() -> None:
    class Colour(StrEnum):
        RED = "red"

    transcoder = domain_transcoder()

    with pytest.raises(TypeError):
        transcoder.encode({"when": timedelta(minutes=1)})
    assert transcoder.decode(transcoder.encode({"colour": Colour.RED})) == {"colour": "red"}


def test_two_transcodings_cannot_share_a_name() -> None:
    class Kind(Enum):
        A = "a"

    class Other(Enum):
        A = "a"

    Other.__name__ = "Kind"
    transcoder = TaggingJSONTranscoder()
    transcoder.register(EnumAsValue(Kind))

    with pytest.raises(ValueError, match="enum:Kind"):
        transcoder.register(EnumAsValue(Other))
