"""The payment provider simulator and its signed webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from application.ports.clock import ManualClock
from application.ports.payment_gateway import (
    InvalidWebhookError,
    NotificationKind,
    PaymentGatewayError,
    PaymentNotification,
)
from domain.money import Money
from infrastructure.payments import signing
from infrastructure.payments.simulator import IntentScript, PaymentSimulator

pytestmark = pytest.mark.unit

SECRET = b"s" * 32
CAPTURED, FAILED = NotificationKind.CAPTURED, NotificationKind.FAILED


class Inbox:
    """A webhook endpoint that verifies what it receives, optionally failing at first."""

    def __init__(self, psp: PaymentSimulator, *, failures: int = 0) -> None:
        self.received: list[PaymentNotification] = []
        self._psp = psp
        self._failures = failures

    async def __call__(self, body: bytes, signature: str) -> None:
        if self._failures:
            self._failures -= 1
            raise RuntimeError("endpoint down")
        self.received.append(self._psp.verify_webhook(body, signature))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def psp(clock: ManualClock) -> PaymentSimulator:
    return PaymentSimulator(clock, secret=SECRET)


@pytest.fixture
def inbox(psp: PaymentSimulator) -> Inbox:
    inbox = Inbox(psp)
    psp.connect(inbox)
    return inbox


async def an_intent(psp: PaymentSimulator, order_id: UUID | None = None) -> str:
    return await psp.create_intent(
        tenant_id="tenant-1", order_id=order_id or uuid4(), amount=Money(1500, "EUR")
    )


# -- signatures ----------------------------------------------------------------------------


def a_notification(clock: ManualClock) -> PaymentNotification:
    return PaymentNotification(
        webhook_id="evt_1",
        kind=CAPTURED,
        intent_id="pi_1",
        order_id=uuid4(),
        tenant_id="tenant-1",
        amount=Money(1500, "EUR"),
        occurred_at=clock.now(),
    )


def test_a_signed_webhook_verifies_and_reads_back_as_the_notification(clock: ManualClock) -> None:
    notification = a_notification(clock)
    body = signing.encode(notification)

    verified = signing.verify(
        SECRET, body, signing.sign(SECRET, body, clock.now()), now=clock.now()
    )

    assert verified == notification


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, header: (body.replace(b"1500", b"1"), header),
        lambda body, header: (body, header.replace("v1=", "v1=0")),
        lambda body, header: (body, header.split(",")[1]),
        lambda body, header: (body, ""),
        lambda body, header: (body, "t=abc,v1=00"),
    ],
    ids=["altered body", "altered digest", "no timestamp", "no header", "malformed"],
)
def test_a_webhook_whose_signature_does_not_match_is_refused(clock: ManualClock, tamper) -> None:
    body = signing.encode(a_notification(clock))
    body, header = tamper(body, signing.sign(SECRET, body, clock.now()))

    with pytest.raises(InvalidWebhookError):
        signing.verify(SECRET, body, header, now=clock.now())


def test_a_webhook_signed_with_another_secret_is_refused(clock: ManualClock) -> None:
    body = signing.encode(a_notification(clock))

    with pytest.raises(InvalidWebhookError, match="does not match"):
        signing.verify(SECRET, body, signing.sign(b"x" * 32, body, clock.now()), now=clock.now())


def test_a_webhook_signed_too_long_ago_is_refused_as_a_replay(clock: ManualClock) -> None:
    body = signing.encode(a_notification(clock))
    header = signing.sign(SECRET, body, clock.now())

    clock.advance(timedelta(minutes=6))

    with pytest.raises(InvalidWebhookError, match="tolerance"):
        signing.verify(SECRET, body, header, now=clock.now())


@pytest.mark.parametrize(
    "timestamp", ["999999999999", "253402300800", "²", "-1", "1e9", "", "9" * 13]
)
def test_a_webhook_timestamp_no_clock_could_give_is_refused_with_a_reason(
    clock: ManualClock, timestamp: str
) -> None:
    # Signed for what it says: the signature checks out, only the time cannot be a time.
    body = signing.encode(a_notification(clock))
    digest = hmac.new(SECRET, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()

    with pytest.raises(InvalidWebhookError, match="unix seconds"):
        signing.verify(SECRET, body, f"t={timestamp},v1={digest}", now=clock.now())


def test_an_oversized_body_is_refused_before_anything_else(clock: ManualClock) -> None:
    body = b" " * (signing.MAX_BODY_BYTES + 1)

    with pytest.raises(InvalidWebhookError, match="over"):
        signing.verify(SECRET, body, signing.sign(SECRET, body, clock.now()), now=clock.now())


def test_a_correctly_signed_but_malformed_body_is_refused(clock: ManualClock) -> None:
    body = b'{"id": "evt_1", "type": "payment.captured"}'

    with pytest.raises(InvalidWebhookError, match="malformed"):
        signing.verify(SECRET, body, signing.sign(SECRET, body, clock.now()), now=clock.now())


# -- intents and deliveries ----------------------------------------------------------------


async def test_asking_twice_for_an_orders_intent_returns_the_same_intent(
    psp: PaymentSimulator,
) -> None:
    order_id = uuid4()

    assert await an_intent(psp, order_id) == await an_intent(psp, order_id)
    assert len(psp.intents) == 1


async def test_a_capture_is_delivered_signed_when_due(psp: PaymentSimulator, inbox: Inbox) -> None:
    intent_id = await an_intent(psp)

    assert await psp.deliver_due() == 1

    [notice] = inbox.received
    assert (notice.kind, notice.intent_id, notice.tenant_id) == (CAPTURED, intent_id, "tenant-1")
    assert psp.net_collected() == {"EUR": 1500}


async def test_a_delayed_webhook_waits_for_the_clock(
    psp: PaymentSimulator, inbox: Inbox, clock: ManualClock
) -> None:
    psp.script_next(IntentScript(delay=timedelta(minutes=3)))
    await an_intent(psp)

    assert await psp.deliver_due() == 0
    assert psp.net_collected() == {}
    clock.advance(timedelta(minutes=3))
    assert await psp.deliver_due() == 1


async def test_a_failing_script_sends_the_failure_with_its_reason(
    psp: PaymentSimulator, inbox: Inbox
) -> None:
    psp.script_next(IntentScript(outcomes=(FAILED,), failure_reason="insufficient funds"))
    await an_intent(psp)

    await psp.deliver_due()

    assert [(n.kind, n.reason) for n in inbox.received] == [(FAILED, "insufficient funds")]
    assert psp.net_collected() == {}


async def test_a_duplicating_script_delivers_the_same_webhook_twice(
    psp: PaymentSimulator, inbox: Inbox
) -> None:
    psp.script_next(IntentScript(duplicate=True))
    await an_intent(psp)

    await psp.deliver_due()

    [first, second] = inbox.received
    assert first == second


async def test_a_reversed_script_delivers_the_webhooks_out_of_order(
    psp: PaymentSimulator, inbox: Inbox
) -> None:
    psp.script_next(IntentScript(outcomes=(FAILED, CAPTURED), reverse=True))
    await an_intent(psp)

    await psp.deliver_due()

    assert [notice.kind for notice in inbox.received] == [CAPTURED, FAILED]


async def test_a_webhook_the_endpoint_refused_is_delivered_again_later(
    psp: PaymentSimulator,
) -> None:
    inbox = Inbox(psp, failures=1)
    psp.connect(inbox)
    await an_intent(psp)

    assert await psp.deliver_due() == 0
    await asyncio.sleep(0.05)
    assert await psp.deliver_due() == 1
    assert len(inbox.received) == 1


async def test_a_webhook_waiting_for_a_retry_holds_back_the_later_ones_of_its_intent(
    psp: PaymentSimulator,
) -> None:
    inbox = Inbox(psp, failures=1)
    psp.connect(inbox)
    psp.script_next(IntentScript(outcomes=(FAILED, CAPTURED), reverse=True))
    await an_intent(psp)

    assert await psp.deliver_due() == 0
    await asyncio.sleep(0.05)
    assert await psp.deliver_due() == 2
    assert [notice.kind for notice in inbox.received] == [CAPTURED, FAILED]


async def test_the_background_loop_delivers_without_being_asked(psp: PaymentSimulator) -> None:
    delivered = asyncio.Event()

    async def endpoint(body: bytes, signature: str) -> None:
        psp.verify_webhook(body, signature)
        delivered.set()

    psp.connect(endpoint)
    await psp.start()
    try:
        await an_intent(psp)
        await asyncio.wait_for(delivered.wait(), 2)
    finally:
        await psp.close()


async def test_a_refund_returns_captured_money_once(psp: PaymentSimulator, inbox: Inbox) -> None:
    intent_id = await an_intent(psp)
    await psp.deliver_due()

    await psp.refund(intent_id)
    await psp.refund(intent_id)

    assert psp.net_collected() == {}


async def test_nothing_captured_cannot_be_refunded(psp: PaymentSimulator) -> None:
    psp.script_next(IntentScript(outcomes=()))
    intent_id = await an_intent(psp)

    with pytest.raises(PaymentGatewayError, match="nothing captured"):
        await psp.refund(intent_id)


async def test_an_unavailable_provider_refuses_every_request(psp: PaymentSimulator) -> None:
    psp.unavailable = True

    with pytest.raises(PaymentGatewayError, match="unavailable"):
        await an_intent(psp)
