"""What command handlers depend on, and the load / save steps they all share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeVar

from eventsourcing.domain import Aggregate

from application.commerce.commands import Command
from application.commerce.results import CommandResult
from application.context import CommandContext
from application.errors import AggregateNotFoundError
from application.ports.clock import Clock
from application.ports.event_store import ConcurrencyError, EventStore
from application.ports.payment_gateway import PaymentGateway
from application.repository import Repository
from domain.ids import MERCATO_NAMESPACE

TAggregate = TypeVar("TAggregate", bound=Aggregate)

DEFAULT_PLATFORM_FEE_BPS = 1_000
"""The platform's cut of every sale, in basis points (10 %)."""


@dataclass(frozen=True)
class Services:
    store: EventStore
    repository: Repository
    clock: Clock
    gateway: PaymentGateway
    platform_fee_bps: int = DEFAULT_PLATFORM_FEE_BPS

    async def load(
        self, aggregate_type: type[TAggregate], aggregate_id: uuid.UUID, context: CommandContext
    ) -> TAggregate:
        """The aggregate, within the actor's tenant only (`AggregateNotFoundError` otherwise)."""
        return await self.repository.get(aggregate_type, aggregate_id, tenant_id=context.tenant_id)

    async def find(
        self, aggregate_type: type[TAggregate], aggregate_id: uuid.UUID, context: CommandContext
    ) -> TAggregate | None:
        try:
            return await self.load(aggregate_type, aggregate_id, context)
        except AggregateNotFoundError:
            return None

    async def save(
        self, aggregate: Aggregate, context: CommandContext, command: Command
    ) -> CommandResult:
        """Append what the command recorded, expecting the version it was loaded at."""
        if not aggregate.pending_events:
            # Nothing changed; the head is a safe consistency token (it covers this stream).
            return CommandResult(
                str(aggregate.id), aggregate.version, await self.store.head_position()
            )
        [result] = await self.repository.save(
            aggregate, metadata=context.metadata(), idempotency=context.idempotency_for(command)
        )
        return CommandResult.of_append(result)


def check_expected_version(aggregate: Aggregate, expected: int | None) -> None:
    """An `If-Match` check: the caller edited what it saw at `expected`, not something newer."""
    if expected is not None and aggregate.version != expected:
        raise ConcurrencyError(str(aggregate.id), expected, aggregate.version)


def new_id(context: CommandContext, kind: str) -> uuid.UUID:
    """The id of an aggregate a command creates.

    Derived from the idempotency key when there is one, so a retried command addresses the
    aggregate the first attempt created instead of creating a twin; from the key in its
    caller's scope, so two callers who chose the same key get an aggregate each.
    """
    scoped_key = context.scoped_key(kind)
    if scoped_key is None:
        return uuid.uuid4()
    return uuid.uuid5(MERCATO_NAMESPACE, f"{kind}:{context.tenant_id}:{scoped_key}")
