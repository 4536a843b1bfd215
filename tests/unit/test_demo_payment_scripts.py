"""The demo scripts each order's payment with the simulator, whatever the order intents come in."""

from __future__ import annotations

from uuid import uuid4

import pytest

from application.ports.clock import ManualClock
from application.ports.payment_gateway import NotificationKind, PaymentNotification
from domain.money import Money
from infrastructure.payments.simulator import PaymentSimulator
from interfaces.cli.demo import SimulatorScripts

pytestmark = pytest.mark.unit


async def test_each_order_gets_its_own_script_whatever_the_order_of_its_intent() -> None:
    simulator = PaymentSimulator(ManualClock())
    delivered: list[PaymentNotification] = []

    async def receive(body: bytes, signature: str) -> None:
        delivered.append(simulator.verify_webhook(body, signature))

    simulator.connect(receive)
    scripts = SimulatorScripts(simulator)
    declined, stalled, paid = uuid4(), uuid4(), uuid4()
    scripts.decline("t", declined, "insufficient funds")
    scripts.never_pay("t", stalled)

    # The intents arrive in another order than the scripts were given, as concurrent sagas
    # request them.
    for order_id in (paid, stalled, declined):
        await simulator.create_intent(tenant_id="t", order_id=order_id, amount=Money(999, "EUR"))
    await simulator.deliver_due()

    outcomes = {n.order_id: (n.kind, n.reason) for n in delivered}
    assert outcomes == {
        paid: (NotificationKind.CAPTURED, None),
        declined: (NotificationKind.FAILED, "insufficient funds"),
    }


async def test_a_script_is_used_once_then_the_default_applies_again() -> None:
    simulator = PaymentSimulator(ManualClock())
    order_id = uuid4()
    SimulatorScripts(simulator).never_pay("t", order_id)

    first = await simulator.create_intent(tenant_id="t", order_id=order_id, amount=Money(1, "EUR"))
    other = await simulator.create_intent(tenant_id="u", order_id=order_id, amount=Money(1, "EUR"))

    assert simulator.intents[first].script.outcomes == ()
    assert simulator.intents[other].script.outcomes == (NotificationKind.CAPTURED,)
