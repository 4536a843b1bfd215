from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Transcoding
from eventsourcing.utils import get_topic

from application.ports.event_store import NewEvent, RecordedEvent
from application.serialization import EventSerializer
from tests.versioned_track import Track, v1_track_created

pytestmark = pytest.mark.unit


class Wallet(Aggregate):
    def __init__(self, owner: str, limit: Decimal) -> None:
        self.owner = owner
        self.limit = limit
        self.balance = Decimal(0)
        self.last_reference: UUID | None = None
        self.last_credited_at: datetime | None = None

    @event("Credited")
    def credit(self, amount: Decimal, reference: UUID, at: datetime) -> None:
        self.balance += amount
        self.last_reference = reference
        self.last_credited_at = at


class PriceSetV2(Aggregate.Event):
    class_version = 2
    cents: int
    currency: str


class PriceSetV3(Aggregate.Event):
    class_version = 3
    price: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["currency"] = "EUR"

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["price"] = f"{state.pop('cents')} {state.pop('currency')}"


@dataclass(frozen=True)
class Money:
    minor_units: int
    currency: str


class MoneyAsList(Transcoding):
    type = Money
    name = "money"

    def encode(self, obj: Money) -> list[object]:
        return [obj.minor_units, obj.currency]

    def decode(self, data: list[Any]) -> Money:
        return Money(data[0], data[1])


class Tip(Aggregate):
    def __init__(self, amount: Money) -> None:
        self.amount = amount


def recorded(new: NewEvent, stream_id: UUID, version: int) -> RecordedEvent:
    return RecordedEvent(
        event_id=new.event_id or uuid4(),
        stream_id=str(stream_id),
        stream_version=version,
        position=version,
        type=new.type,
        schema_version=new.schema_version,
        tenant_id="tenant",
        recorded_at=datetime.now(UTC),
        correlation_id=None,
        causation_id=None,
        traceparent=None,
        payload=new.payload,
    )


def v1_recorded_track_created(stream_id: UUID) -> RecordedEvent:
    return recorded(v1_track_created(), stream_id, 1)


@pytest.fixture
def serializer() -> EventSerializer:
    return EventSerializer()


def test_an_event_is_stored_under_its_topic_with_a_fresh_event_id(
    serializer: EventSerializer,
) -> None:
    wallet = Wallet(owner="ada", limit=Decimal("100.00"))
    [created] = wallet.collect_events()

    first = serializer.to_new_event(created)
    second = serializer.to_new_event(created)

    assert first.type == get_topic(Wallet.Created) == "tests.unit.test_serialization:Wallet.Created"
    assert first.schema_version == 1
    assert first.event_id is not None and second.event_id is not None
    assert first.event_id != second.event_id
    assert first.payload == second.payload


def test_events_round_trip_with_uuid_decimal_and_datetime_values(
    serializer: EventSerializer,
) -> None:
    wallet = Wallet(owner="ada", limit=Decimal("100.50"))
    wallet.credit(amount=Decimal("12.34"), reference=uuid4(), at=datetime.now(UTC))
    events = wallet.collect_events()

    back = [
        serializer.to_domain_event(recorded(serializer.to_new_event(e), wallet.id, version))
        for version, e in enumerate(events, start=1)
    ]

    assert back == events


def test_replaying_deserialised_events_rebuilds_the_aggregate(
    serializer: EventSerializer,
) -> None:
    wallet = Wallet(owner="ada", limit=Decimal(10))
    wallet.credit(amount=Decimal("1.5"), reference=uuid4(), at=datetime.now(UTC))
    stored = [
        recorded(serializer.to_new_event(e), wallet.id, version)
        for version, e in enumerate(wallet.collect_events(), start=1)
    ]

    rebuilt: Any = None
    for record in stored:
        rebuilt = serializer.to_domain_event(record).mutate(rebuilt)  # type: ignore[attr-defined]

    assert rebuilt == wallet


def test_the_schema_version_is_the_event_class_version(serializer: EventSerializer) -> None:
    track = Track(title="Loops", price_cents=900, currency="USD")
    [created] = track.collect_events()

    assert serializer.to_new_event(created).schema_version == 2


def test_a_stored_v1_event_is_upcast_into_the_v2_class(serializer: EventSerializer) -> None:
    stream_id = uuid4()

    created = serializer.to_domain_event(v1_recorded_track_created(stream_id))

    assert isinstance(created, Track.Created)
    assert (created.title, created.price_cents, created.currency) == ("Loops", 900, "EUR")


def test_a_stored_v2_event_is_not_upcast_again(serializer: EventSerializer) -> None:
    track = Track(title="Loops", price_cents=900, currency="USD")
    [created] = track.collect_events()

    back = serializer.to_domain_event(recorded(serializer.to_new_event(created), track.id, 1))

    assert isinstance(back, Track.Created)
    assert back.currency == "USD"


def test_a_stored_v2_event_is_upcast_from_v2_only_into_a_v3_class(
    serializer: EventSerializer,
) -> None:
    stream_id = uuid4()
    state: dict[str, Any] = {"cents": 900, "currency": "USD", "timestamp": datetime.now(UTC)}
    v2 = PriceSetV2(originator_id=stream_id, originator_version=2, **state)
    stored = serializer.to_new_event(v2)
    as_v3 = NewEvent(type=get_topic(PriceSetV3), payload=stored.payload, schema_version=2)

    back = serializer.to_domain_event(recorded(as_v3, stream_id, 2))

    assert isinstance(back, PriceSetV3)
    assert back.price == "900 USD"


def test_an_aggregate_round_trips_through_a_snapshot(serializer: EventSerializer) -> None:
    wallet = Wallet(owner="ada", limit=Decimal("100.00"))
    wallet.credit(amount=Decimal("3.21"), reference=uuid4(), at=datetime.now(UTC))
    wallet.collect_events()

    snapshot = serializer.to_snapshot(wallet, tenant_id="tenant")

    assert (snapshot.stream_id, snapshot.stream_version) == (str(wallet.id), 2)
    assert snapshot.tenant_id == "tenant"
    assert serializer.from_snapshot(snapshot) == wallet


def test_a_snapshot_of_a_v1_aggregate_is_upcast_into_the_v2_class(
    serializer: EventSerializer,
) -> None:
    track = Track(title="Loops", price_cents=900, currency="USD")
    track.collect_events()
    snapshot = serializer.to_snapshot(track, tenant_id="tenant")
    v1_state = snapshot.state.replace(b',"currency":"USD","class_version":2', b"")

    restored = serializer.from_snapshot(replace(snapshot, state=v1_state))

    assert isinstance(restored, Track)
    assert restored.currency == "EUR"


def test_extra_transcodings_serialise_value_objects() -> None:
    serializer = EventSerializer(transcodings=[MoneyAsList()])
    tip = Tip(amount=Money(250, "EUR"))
    [created] = tip.collect_events()

    back = serializer.to_domain_event(recorded(serializer.to_new_event(created), tip.id, 1))

    assert back == created
