"""A payment provider in-process: intents, refunds, and signed webhooks it delivers itself.

Each new intent follows a script (`IntentScript`): which notifications the provider sends
(captured, failed, or none), after what delay on the injected clock, whether each is delivered
twice, and whether they arrive in reverse order. `script_next` queues scripts for the next
intents, `script_order` sets the script of one order's intent; `script` is the default.
`unavailable = True` makes every request fail, like a provider outage.

Webhooks go to the callback given to `connect` (the composition root points it at the
application's webhook handler), signed with HMAC-SHA256. A callback that raises is retried
with backoff, as real providers do, up to `max_attempts`. Deliveries happen when due, from
`deliver_due()` or from the background loop of `start()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from application.backoff import Backoff
from application.ports.clock import Clock
from application.ports.payment_gateway import (
    NotificationKind,
    PaymentGatewayError,
    PaymentNotification,
    WebhookCallback,
)
from domain.money import Money
from infrastructure.payments import signing

logger = logging.getLogger(__name__)
# A provider tries a failed webhook again after 40 ms, doubling to at most 2 s.
_REDELIVERY_BACKOFF = Backoff(first=0.04, cap=2.0)


@dataclass(frozen=True)
class IntentScript:
    outcomes: tuple[NotificationKind, ...] = (NotificationKind.CAPTURED,)
    """The notifications the provider sends, in the order events happen at the provider.
    Empty: the payer never pays (the intent stays pending)."""
    delay: timedelta = timedelta(0)
    duplicate: bool = False
    """Deliver every notification twice (same webhook id)."""
    reverse: bool = False
    """Deliver the notifications in the reverse of the order they happened."""
    failure_reason: str = "card declined"


@dataclass
class SimulatedIntent:
    intent_id: str
    tenant_id: str
    order_id: UUID
    amount: Money
    script: IntentScript
    created_at: datetime
    refunded: bool = False

    def captured(self, now: datetime) -> bool:
        """Whether the provider holds the money (a capture happened, now or earlier)."""
        return (
            NotificationKind.CAPTURED in self.script.outcomes
            and now >= self.created_at + self.script.delay
        )


@dataclass
class _Delivery:
    sequence: int
    due_at: datetime
    notification: PaymentNotification
    attempts: int = 0
    retry_at: float = field(default=0.0)
    """Event-loop time before which a failed delivery is not tried again."""


class PaymentSimulator:
    """Implements `application.ports.payment_gateway.PaymentGateway`."""

    def __init__(
        self,
        clock: Clock,
        *,
        secret: bytes | None = None,
        script: IntentScript | None = None,
        poll_interval: float = 0.05,
        max_attempts: int = 20,
        tolerance: timedelta = signing.DEFAULT_TOLERANCE,
    ) -> None:
        self.script = script or IntentScript()
        self.unavailable = False
        self.intents: dict[str, SimulatedIntent] = {}
        self.delivered: list[PaymentNotification] = []
        """Every webhook the callback accepted, in delivery order (duplicates included)."""
        self._clock = clock
        self._secret = secret or secrets.token_bytes(32)
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._tolerance = tolerance
        self._callback: WebhookCallback | None = None
        self._scripts: deque[IntentScript] = deque()
        self._order_scripts: dict[tuple[str, UUID], IntentScript] = {}
        self._by_order: dict[tuple[str, UUID], str] = {}
        self._queue: list[_Delivery] = []
        self._sequence = itertools.count()
        self._delivering = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def connect(self, callback: WebhookCallback) -> None:
        self._callback = callback

    def script_next(self, *scripts: IntentScript) -> None:
        """Use these scripts, in order, for the next intents created."""
        self._scripts.extend(scripts)

    def script_order(self, tenant_id: str, order_id: UUID, script: IntentScript) -> None:
        """Use this script for the intent of this order, whenever it comes. Unlike
        `script_next`, it does not depend on the order in which concurrent intents arrive."""
        self._order_scripts[(tenant_id, order_id)] = script

    # -- the provider's API ------------------------------------------------------------------

    async def create_intent(self, *, tenant_id: str, order_id: UUID, amount: Money) -> str:
        self._check_available()
        existing = self._by_order.get((tenant_id, order_id))
        if existing is not None:
            return existing
        script = self._order_scripts.pop((tenant_id, order_id), None)
        if script is None:
            script = self._scripts.popleft() if self._scripts else self.script
        intent = SimulatedIntent(
            f"pi_{uuid4().hex}", tenant_id, order_id, amount, script, self._clock.now()
        )
        self.intents[intent.intent_id] = intent
        self._by_order[(tenant_id, order_id)] = intent.intent_id
        self._schedule_webhooks(intent)
        return intent.intent_id

    async def refund(self, intent_id: str) -> None:
        self._check_available()
        intent = self.intents.get(intent_id)
        if intent is None:
            raise PaymentGatewayError(f"no intent {intent_id}")
        if not intent.captured(self._clock.now()):
            raise PaymentGatewayError(f"intent {intent_id} has nothing captured to refund")
        intent.refunded = True

    def verify_webhook(self, body: bytes, signature: str) -> PaymentNotification:
        return signing.verify(
            self._secret, body, signature, now=self._clock.now(), tolerance=self._tolerance
        )

    # -- what tests look at ------------------------------------------------------------------

    def net_collected(self) -> dict[str, int]:
        """Per currency, the money the provider collected for the platform and kept."""
        now = self._clock.now()
        totals: dict[str, int] = {}
        for intent in self.intents.values():
            if intent.captured(now) and not intent.refunded:
                currency = intent.amount.currency
                totals[currency] = totals.get(currency, 0) + intent.amount.amount
        return totals

    @property
    def pending_deliveries(self) -> int:
        return len(self._queue)

    def sign(self, body: bytes) -> str:
        """A valid signature for `body` now (to test the receiving end)."""
        return signing.sign(self._secret, body, self._clock.now())

    # -- delivering webhooks -----------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Deliver every webhook due now, in order; returns how many were accepted.

        The webhooks of one intent keep the order of its script: one that waits for a retry
        holds back those behind it, so scripted scenarios play out the same every time.
        """
        async with self._delivering:
            if self._callback is None:
                return 0
            now, loop_now = self._clock.now(), asyncio.get_running_loop().time()
            held_back: set[str] = set()
            accepted = 0
            for delivery in sorted(self._queue, key=lambda d: (d.due_at, d.sequence)):
                intent_id = delivery.notification.intent_id
                if delivery.due_at > now or intent_id in held_back:
                    continue
                if delivery.retry_at > loop_now or not await self._deliver(
                    self._callback, delivery
                ):
                    held_back.add(intent_id)
                    continue
                accepted += 1
            return accepted

    async def start(self) -> None:
        """Deliver due webhooks in the background until `close()`."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._deliver_forever(), name="psp-simulator")

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    async def _deliver_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                logger.exception("the payment simulator failed to deliver webhooks")
            # `asyncio.timeout`, not `wait_for`, which can swallow a cancellation on 3.11.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()

    async def _deliver(self, callback: WebhookCallback, delivery: _Delivery) -> bool:
        body = signing.encode(delivery.notification)
        try:
            await callback(body, signing.sign(self._secret, body, self._clock.now()))
        except Exception as error:
            delivery.attempts += 1
            if delivery.attempts >= self._max_attempts:
                self._queue.remove(delivery)
                logger.error("webhook %s dropped: %s", delivery.notification.webhook_id, error)
            else:
                delay = _REDELIVERY_BACKOFF.delay(delivery.attempts)
                delivery.retry_at = asyncio.get_running_loop().time() + delay
            return False
        self._queue.remove(delivery)
        self.delivered.append(delivery.notification)
        return True

    def _schedule_webhooks(self, intent: SimulatedIntent) -> None:
        script = intent.script
        due_at = intent.created_at + script.delay
        kinds = tuple(reversed(script.outcomes)) if script.reverse else script.outcomes
        for kind in kinds:
            notification = PaymentNotification(
                webhook_id=f"evt_{uuid4().hex}",
                kind=kind,
                intent_id=intent.intent_id,
                order_id=intent.order_id,
                tenant_id=intent.tenant_id,
                amount=intent.amount,
                occurred_at=due_at,
                reason=script.failure_reason if kind is NotificationKind.FAILED else None,
            )
            for _ in range(2 if script.duplicate else 1):
                self._queue.append(_Delivery(next(self._sequence), due_at, notification))
        self._wake.set()

    def _check_available(self) -> None:
        if self.unavailable:
            raise PaymentGatewayError("the payment provider is unavailable")
