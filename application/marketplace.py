"""The write side of the marketplace, assembled from its ports.

The composition root (`interfaces.bootstrap`) opens the adapters of a profile and hands them
here; tests do the same with theirs. Nothing here opens a connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import Aggregate

from application.commerce.bus import CommandBus
from application.commerce.commands import Command
from application.commerce.payments import PaymentWebhooks
from application.commerce.results import CommandResult
from application.commerce.services import DEFAULT_PLATFORM_FEE_BPS, Services
from application.context import CommandContext
from application.ports.clock import Clock
from application.ports.event_store import EventStore
from application.ports.instruments import NO_INSTRUMENTS, Instruments
from application.ports.payment_gateway import PaymentGateway
from application.ports.saga_store import SagaStore
from application.repository import Repository
from application.sagas.dead_letters import ParkedSagas
from application.sagas.driver import SagaDriver
from application.sagas.failures import TRANSIENT_FAILURES
from application.sagas.policy import SagaPolicy
from application.sagas.router import Router
from application.sagas.runner import SagaRunner
from application.serialization import EventSerializer
from domain.product import Product
from domain.wallet import Wallet

SNAPSHOT_INTERVALS: Mapping[type[Aggregate], int] = {Product: 50, Wallet: 50}
"""The hot streams: a product reserved by every order, the platform wallet paid by every sale."""


@dataclass
class Marketplace:
    store: EventStore
    saga_store: SagaStore
    gateway: PaymentGateway
    clock: Clock
    policy: SagaPolicy = field(default_factory=SagaPolicy)
    platform_fee_bps: int = DEFAULT_PLATFORM_FEE_BPS
    saga_group: str = "sagas"
    instruments: Instruments = NO_INSTRUMENTS
    transient_failures: tuple[type[BaseException], ...] = TRANSIENT_FAILURES
    """What the sagas wait out rather than park for (with the adapters' connection errors)."""

    def __post_init__(self) -> None:
        self.serializer = EventSerializer()
        self.repository = Repository(
            self.store,
            self.serializer,
            snapshot_intervals=SNAPSHOT_INTERVALS,
            instruments=self.instruments,
        )
        self.services = Services(
            store=self.store,
            repository=self.repository,
            clock=self.clock,
            gateway=self.gateway,
            platform_fee_bps=self.platform_fee_bps,
        )
        self.bus = CommandBus(self.services, instruments=self.instruments)
        self.webhooks = PaymentWebhooks(self.gateway, self.bus)

    async def dispatch(self, command: Command, context: CommandContext) -> CommandResult:
        return await self.bus.dispatch(command, context)

    def saga_runner(self, *, bus: CommandBus | None = None, **options: Any) -> SagaRunner:
        """A runner of the sagas; `options` are `SagaRunner`'s (owner, poll_interval, …)."""
        return SagaRunner(
            events=self.store,
            saga_store=self.saga_store,
            driver=self._saga_driver(bus or self.bus),
            router=Router(self.repository, self.serializer),
            clock=self.clock,
            group=self.saga_group,
            **{"transient_failures": self.transient_failures, **options},
        )

    def parked_sagas(self, *, bus: CommandBus | None = None) -> ParkedSagas:
        """The operator's view of the parked sagas: list, letters, retry, skip."""
        return ParkedSagas(
            self.saga_store,
            self._saga_driver(bus or self.bus),
            Router(self.repository, self.serializer),
            group=self.saga_group,
        )

    def _saga_driver(self, bus: CommandBus) -> SagaDriver:
        return SagaDriver(
            self.repository, bus, self.saga_store, group=self.saga_group, policy=self.policy
        )
