"""Follows the tenant's log to see each demo order, its escrow and its sagas move.

One subscription serves every order in flight, rather than each polling its aggregates: the
driver waits on an order's `OrderTrack` ("until delivered", "until settled") and the watch
wakes it when the order's events arrive. Only the events that tell a status are read, and
only the few whose name does not say it all are decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from uuid import UUID

from application.ports.event_store import EventStore, LogFilter, RecordedEvent
from application.saga_statuses import CheckoutStatus, EscrowSagaStatus
from application.sagas.cancellation import cancel_and_wait
from application.sagas.checkout import checkout_saga_id
from application.sagas.escrow import escrow_saga_id
from application.sagas.inputs import topic
from application.sagas.saga import NEEDS_ATTENTION, Saga
from application.serialization import EventSerializer
from domain.dispute import Resolution
from domain.escrow import Escrow
from domain.ids import escrow_id_for
from domain.order import Order, OrderStatus

FINAL_STATUSES = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.REFUNDED})
CHECKOUT_DONE = frozenset({CheckoutStatus.COMPLETED, CheckoutStatus.CANCELLED})
ESCROW_DONE = frozenset({EscrowSagaStatus.SETTLED, EscrowSagaStatus.REFUNDED})

_S = OrderStatus
ORDER_EVENTS: dict[str, OrderStatus] = {
    topic(Order, "Placed"): _S.PLACED,
    topic(Order, "StockReserved"): _S.STOCK_RESERVED,
    topic(Order, "PaymentRequested"): _S.PAYMENT_REQUESTED,
    topic(Order, "Paid"): _S.PAID,
    topic(Order, "Confirmed"): _S.CONFIRMED,
    topic(Order, "Delivered"): _S.DELIVERED,
    topic(Order, "Completed"): _S.COMPLETED,
    topic(Order, "Cancelled"): _S.CANCELLED,
    topic(Order, "Disputed"): _S.DISPUTED,
}
"""Order events whose name says the status they enter."""
ORDER_DISPUTE_RESOLVED = topic(Order, "DisputeResolved")
ESCROW_DISPUTED = topic(Escrow, "Disputed")
SAGA_ADVANCED = topic(Saga, "Advanced")
"""Every saga's status change (the base class's event: its stream tells which saga it is)."""
WATCHED = frozenset(
    {
        *ORDER_EVENTS,
        ORDER_DISPUTE_RESOLVED,
        ESCROW_DISPUTED,
        SAGA_ADVANCED,
    }
)


class DemoStuckError(Exception):
    """An order (or its sagas) did not get where the demo waited for it to go."""


@dataclass
class OrderTrack:
    """What the log has said so far about one order, its escrow and its sagas."""

    order_id: UUID
    seen: set[OrderStatus] = field(default_factory=set)
    status: OrderStatus | None = None
    """The order's latest status (`None` until it is placed)."""
    escrow_frozen: bool = False
    """The escrow saga has disputed the escrow: an admin may now resolve it."""
    checkout: str | None = None
    escrow: str | None = None
    """The sagas' latest statuses."""
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def sagas_done(self) -> bool:
        """The checkout saga has finished, and so has the escrow saga if the order was paid."""
        return self.checkout in CHECKOUT_DONE and (
            OrderStatus.PAID not in self.seen or self.escrow in ESCROW_DONE
        )

    @property
    def settled(self) -> bool:
        return self.final and self.sagas_done

    @property
    def needs_attention(self) -> bool:
        return NEEDS_ATTENTION in (self.checkout, self.escrow)

    def describe(self) -> str:
        return (
            f"order {self.order_id} is {self.status or 'not placed'}, checkout saga "
            f"{self.checkout or 'not started'}, escrow saga {self.escrow or 'not started'}"
        )


class OrderWatch:
    """Tracks the orders it is told to `expect`, from the tenant's log. Use as a context:
    `async with OrderWatch(...).following(from_position) as watch`."""

    def __init__(self, store: EventStore, serializer: EventSerializer, tenant_id: str) -> None:
        self._store = store
        self._serializer = serializer
        self._tenant_id = tenant_id
        self._tracks: dict[UUID, OrderTrack] = {}
        self._by_stream: dict[str, tuple[OrderTrack, str]] = {}
        """Stream id → (the order's track, which of its streams: order, escrow, checkout…)."""
        self._failure: BaseException | None = None

    @contextlib.asynccontextmanager
    async def following(self, from_position: int) -> AsyncIterator[OrderWatch]:
        """Follow the log after `from_position` while the context is open."""
        task = asyncio.create_task(self._follow(from_position), name="demo-order-watch")
        try:
            yield self
        finally:
            await cancel_and_wait(task)

    def expect(self, order_id: UUID) -> OrderTrack:
        """Start tracking an order; call it before placing the order."""
        track = self._tracks.get(order_id)
        if track is None:
            track = self._tracks[order_id] = OrderTrack(order_id)
            self._by_stream[str(order_id)] = (track, "order")
            self._by_stream[str(escrow_id_for(order_id))] = (track, "escrow")
            self._by_stream[str(checkout_saga_id(order_id))] = (track, "checkout")
            self._by_stream[str(escrow_saga_id(order_id))] = (track, "escrow-saga")
        return track

    @property
    def tracks(self) -> list[OrderTrack]:
        return list(self._tracks.values())

    async def until(
        self,
        track: OrderTrack,
        condition: Callable[[OrderTrack], bool],
        *,
        what: str,
        within: float,
    ) -> None:
        """Wait until `condition(track)` holds; `DemoStuckError` after `within` seconds, or
        as soon as one of the order's sagas needs attention."""
        try:
            async with asyncio.timeout(within):
                while not condition(track):
                    if self._failure is not None:
                        raise DemoStuckError("the demo stopped following the log") from (
                            self._failure
                        )
                    if track.needs_attention:
                        raise DemoStuckError(f"a saga needs attention: {track.describe()}")
                    track.changed.clear()
                    await track.changed.wait()
        except TimeoutError:
            raise DemoStuckError(
                f"gave up after {within:g}s waiting until the order {what}: {track.describe()}"
                f"{self._summary_of_others(track)}"
            ) from None

    async def _follow(self, from_position: int) -> None:
        log_filter = LogFilter(event_types=WATCHED, tenant_id=self._tenant_id)
        subscription = self._store.subscribe(from_position, log_filter)
        try:
            async for batch in subscription:
                for recorded in batch:
                    self._take(recorded)
        except Exception as error:
            self._failure = error
            for track in self._tracks.values():
                track.changed.set()
            raise
        finally:
            aclose = getattr(subscription, "aclose", None)
            if aclose is not None:
                await aclose()

    def _take(self, recorded: RecordedEvent) -> None:
        found = self._by_stream.get(recorded.stream_id)
        if found is None:
            return  # an order the demo did not place (someone using the API meanwhile)
        track, stream = found
        if recorded.type in ORDER_EVENTS:
            self._enter(track, ORDER_EVENTS[recorded.type])
        elif recorded.type == ORDER_DISPUTE_RESOLVED:
            resolution = self._field(recorded, "resolution")
            released = resolution == Resolution.RELEASE
            self._enter(track, OrderStatus.COMPLETED if released else OrderStatus.REFUNDED)
        elif recorded.type == ESCROW_DISPUTED:
            track.escrow_frozen = True
        elif recorded.type == SAGA_ADVANCED and stream == "checkout":
            track.checkout = str(self._field(recorded, "status"))
        elif recorded.type == SAGA_ADVANCED and stream == "escrow-saga":
            track.escrow = str(self._field(recorded, "status"))
        track.changed.set()

    def _enter(self, track: OrderTrack, status: OrderStatus) -> None:
        track.status = status
        track.seen.add(status)

    def _field(self, recorded: RecordedEvent, name: str) -> object:
        return getattr(self._serializer.to_domain_event(recorded), name)

    def _summary_of_others(self, stuck: OrderTrack) -> str:
        waiting = [t for t in self._tracks.values() if t is not stuck and not t.settled]
        if not waiting:
            return ""
        examples = "; ".join(t.describe() for t in waiting[:3])
        return f" ({len(waiting)} other order(s) unsettled, such as: {examples})"
