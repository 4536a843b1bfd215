"""Turns an event of the global log into an input for the saga it concerns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.ports.event_store import RecordedEvent
from application.repository import Repository
from application.sagas.inputs import ROUTES, OrderOf, Route
from application.sagas.policy import SagaPolicy
from application.sagas.saga import Saga
from application.serialization import EventSerializer
from domain.escrow import Escrow
from domain.payment import Payment


@dataclass(frozen=True)
class SagaInput:
    route: Route
    order_id: UUID
    recorded: RecordedEvent
    event: Any
    """The domain event, deserialised."""

    @property
    def saga_id(self) -> UUID:
        return self.route.saga_id(self.order_id)

    @property
    def tenant_id(self) -> str:
        return self.recorded.tenant_id

    def apply(self, saga: Saga | None, policy: SagaPolicy) -> Saga | None:
        return self.route.receive(saga, self.event, self.recorded, policy)


class Router:
    def __init__(self, repository: Repository, serializer: EventSerializer) -> None:
        self._repository = repository
        self._serializer = serializer

    async def route(self, recorded: RecordedEvent) -> SagaInput | None:
        """The saga input for this event, or `None` when no saga follows its type."""
        route = ROUTES.get(recorded.type)
        if route is None:
            return None
        event = self._serializer.to_domain_event(recorded)
        return SagaInput(route, await self._order_id(route, recorded, event), recorded, event)

    async def _order_id(self, route: Route, recorded: RecordedEvent, event: Any) -> UUID:
        tenant_id = recorded.tenant_id
        if route.order_of is OrderOf.STREAM:
            return UUID(recorded.stream_id)
        if route.order_of is OrderOf.EVENT:
            order_id: UUID = event.order_id
            return order_id
        # Later payment and escrow events do not repeat the order id; their aggregate has it.
        if route.order_of is OrderOf.PAYMENT:
            payment = await self._repository.get(Payment, recorded.stream_id, tenant_id=tenant_id)
            return payment.order_id
        escrow = await self._repository.get(Escrow, recorded.stream_id, tenant_id=tenant_id)
        return escrow.order_id
