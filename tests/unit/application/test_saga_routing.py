"""Which events drive which saga, and the runner's per-saga locks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from eventsourcing.domain import DomainEvent
from eventsourcing.utils import get_topic, resolve_topic

from application.sagas.checkout import CheckoutSaga
from application.sagas.escrow import EscrowSaga
from application.sagas.inputs import ROUTES, SAGA_TYPES
from application.sagas.policy import SagaPolicy
from application.sagas.runner import KeyedLocks
from domain.money import Money
from domain.order import Order, OrderLine

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("topic", sorted(ROUTES))
def test_every_routed_type_is_an_event_the_domain_records(topic: str) -> None:
    assert issubclass(resolve_topic(topic), DomainEvent)


def test_a_placed_order_is_stored_under_the_type_that_starts_a_checkout() -> None:
    line = OrderLine(uuid4(), uuid4(), "Loops", Money(100, "EUR"), 1)
    order = Order.place(
        id=uuid4(), tenant_id="t", buyer_id=uuid4(), lines=[line], at=datetime.now(UTC)
    )
    [placed] = order.collect_events()

    assert ROUTES[get_topic(type(placed))].saga_type is CheckoutSaga


def test_timers_name_their_saga_by_kind() -> None:
    kinds = dict(SAGA_TYPES)

    assert kinds == {"checkout": CheckoutSaga, "escrow": EscrowSaga}


def test_a_saga_policy_refuses_a_deadline_that_is_not_in_the_future() -> None:
    with pytest.raises(ValueError):
        SagaPolicy(payment_timeout=timedelta(0))


async def test_one_saga_at_a_time_holds_its_lock_and_the_lock_is_dropped_after() -> None:
    locks = KeyedLocks()
    saga_id, running, overlaps = uuid4(), [0], []

    async def work() -> None:
        async with locks.hold(saga_id):
            running[0] += 1
            overlaps.append(running[0])
            await asyncio.sleep(0.01)
            running[0] -= 1

    await asyncio.gather(*(work() for _ in range(5)))

    assert max(overlaps) == 1
    assert locks._locks == {}
