"""The saga census (saga instances by status, for the metrics) agrees with the sagas themselves,
through every path the checkout and escrow sagas take, read from a real event store a little
at a time as a metrics refresh would."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.utils import get_topic

from application.ports.event_store import EventMetadata
from application.repository import Repository
from application.sagas import census as census_module
from application.sagas.census import SAGA_EVENT_TYPES, SagaCensus
from application.sagas.checkout import CheckoutSaga
from application.sagas.escrow import EscrowSaga
from application.sagas.inputs import SAGA_TYPES
from application.sagas.saga import Saga
from application.serialization import EventSerializer
from domain.money import Money
from domain.order import OrderLine
from infrastructure.eventstore.sqlite import SqliteEventStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = "tenant-1"


@pytest.fixture
async def repository(tmp_path: Path) -> AsyncIterator[Repository]:
    store = await SqliteEventStore.open(tmp_path / "events.sqlite3")
    try:
        yield Repository(store, EventSerializer())
    finally:
        await store.close()


def take_every_step(saga: Saga) -> None:
    while (step := saga.next_step()) is not None:
        saga.complete_step(step.key)


def a_checkout() -> CheckoutSaga:
    lines = (OrderLine(uuid4(), uuid4(), "Loops", Money(500, "EUR"), 1),)
    return CheckoutSaga.start(
        order_id=uuid4(),
        tenant_id=TENANT,
        lines=lines,
        placed_at=NOW,
        payment_timeout=timedelta(minutes=15),
        position=1,
        correlation_id=uuid4(),
    )


def an_escrow() -> EscrowSaga:
    return EscrowSaga.start(
        order_id=uuid4(),
        tenant_id=TENANT,
        seller_id=uuid4(),
        amount=Money(1000, "EUR"),
        position=1,
        correlation_id=uuid4(),
    )


# Each path is a list of moves; the census is compared with the sagas after every move.
Move = Callable[[Saga], None]


def captured(saga: Saga) -> None:
    saga.on_payment_captured(position=100)  # type: ignore[attr-defined]


def failed(saga: Saga) -> None:
    saga.on_payment_failed(reason="declined", position=101)  # type: ignore[attr-defined]


def complete_next_step(saga: Saga) -> None:
    step = saga.next_step()
    assert step is not None
    saga.complete_step(step.key)


def refuse_next_step(saga: Saga) -> None:
    step = saga.next_step()
    assert step is not None
    saga.refuse_step(step.key, "refused")


def delivered(saga: Saga) -> None:
    saga.on_order_delivered(at=NOW, window=timedelta(hours=72), position=100)  # type: ignore[attr-defined]


def completed(saga: Saga) -> None:
    saga.on_order_completed(position=101)  # type: ignore[attr-defined]


def disputed(saga: Saga) -> None:
    saga.on_order_disputed(reason="not as described", position=101)  # type: ignore[attr-defined]


def escrow_released(saga: Saga) -> None:
    saga.on_escrow_released(  # type: ignore[attr-defined]
        seller_net=Money(900, "EUR"), platform_fee=Money(100, "EUR"), position=102
    )


def escrow_refunded(saga: Saga) -> None:
    saga.on_escrow_refunded(position=102)  # type: ignore[attr-defined]


PATHS: dict[str, tuple[Callable[[], Saga], list[Move]]] = {
    "checkout completed": (a_checkout, [take_every_step, captured, take_every_step]),
    "checkout cancelled, then refunded for a late capture": (
        a_checkout,
        [take_every_step, failed, take_every_step, captured, take_every_step],
    ),
    "checkout out of stock": (a_checkout, [refuse_next_step, take_every_step]),
    "checkout needs attention": (
        # Paid, then holding the funds is refused: nothing can compensate that.
        a_checkout,
        [take_every_step, captured, complete_next_step, complete_next_step, refuse_next_step],
    ),
    "escrow settled": (
        an_escrow,
        [delivered, take_every_step, completed, take_every_step, escrow_released, take_every_step],
    ),
    "escrow refunded after a dispute": (
        an_escrow,
        [delivered, take_every_step, disputed, take_every_step, escrow_refunded, take_every_step],
    ),
}


async def test_the_census_counts_every_saga_in_its_status_along_every_path(
    repository: Repository,
) -> None:
    store = repository._store
    census = SagaCensus(store, repository, EventSerializer(), batch_size=3)
    sagas = {name: start() for name, (start, _) in PATHS.items()}
    metadata = EventMetadata(tenant_id=TENANT)
    longest = max(len(moves) for _, moves in PATHS.values())
    for round_number in range(longest + 1):
        for name, (_, moves) in PATHS.items():
            if 0 < round_number <= len(moves):
                moves[round_number - 1](sagas[name])
            await repository.save(sagas[name], metadata=metadata)
        counted = {status: n for status, n in (await census.refresh()).items() if n}
        assert counted == statuses_of(sagas.values()), f"after round {round_number}"


async def test_a_saga_that_leaves_a_status_thought_final_is_still_counted_right(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend cancelled were final: the census forgets such sagas, and must read the status a
    # late capture moves one out of from its stream.
    monkeypatch.setattr(
        census_module, "FINAL_STATUSES", census_module.FINAL_STATUSES | {("checkout", "cancelled")}
    )
    census = SagaCensus(repository._store, repository, EventSerializer())
    saga = a_checkout()
    metadata = EventMetadata(tenant_id=TENANT)
    for move in (take_every_step, failed, take_every_step):
        move(saga)
    await repository.save(saga, metadata=metadata)
    assert (await census.refresh())[("checkout", "cancelled")] == 1
    assert census._open == {}  # forgotten, as a final one

    captured(saga)
    await repository.save(saga, metadata=metadata)
    counted = await census.refresh()

    assert (counted[("checkout", "cancelled")], counted[("checkout", "compensating")]) == (0, 1)


def test_every_event_a_saga_records_is_known_to_the_census() -> None:
    known = {get_topic(event_class) for event_class in recorded_event_classes()}
    assert known <= set(SAGA_EVENT_TYPES)


def recorded_event_classes() -> set[type[DomainEvent]]:
    """The event classes sagas record: each saga's own, and `Saga`'s (stored under its name)."""
    found: set[type[DomainEvent]] = set()
    saga_types: list[type[Saga]] = [Saga, *SAGA_TYPES.values()]
    for saga_type in saga_types:
        for name in dir(saga_type):
            value = getattr(saga_type, name)
            if (
                isinstance(value, type)
                and issubclass(value, DomainEvent)
                and value.__qualname__ == f"{saga_type.__name__}.{name}"
                and name not in {"Event", "Created"}
            ):
                found.add(value)
    return found


def statuses_of(sagas: object) -> dict[tuple[str, str], int]:
    counted: Counter[tuple[str, str]] = Counter()
    for saga in sagas:  # type: ignore[attr-defined]
        assert isinstance(saga, Aggregate)
        counted[(saga.kind, str(saga.status))] += 1  # type: ignore[attr-defined]
    return dict(counted)
