"""The tenants use cases: create a tenant, list them, and tell whether one exists."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from eventsourcing.utils import get_topic

from application.context import Actor, CommandContext
from application.errors import AggregateNotFoundError
from application.ports.event_store import ConcurrencyError, EventStore, LogFilter
from application.repository import Repository
from application.tenants.commands import CreateTenant
from application.tenants.errors import TenantAlreadyExists, UnknownTenant
from domain.errors import InvariantViolation
from domain.ids import tenant_id_for
from domain.tenant import Tenant, validate_tenant_id

PROVISIONED = f"{get_topic(Tenant)}.Provisioned"
"""The stored type of a tenant's creation, as `projections.definition.event_type` names it."""
_PAGE = 1000


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant_id: str
    created_at: datetime
    position: int
    """The global position of its creation (a consistency token)."""


class Tenants:
    def __init__(self, repository: Repository, store: EventStore) -> None:
        self._repository = repository
        self._store = store
        # Only positives: tenants are never deleted, so a tenant seen once exists for good,
        # while a tenant unknown now may be created a moment later by `mercato tenants create`
        # in another process, and must then be found at once.
        self._known: set[str] = set()

    async def create(self, command: CreateTenant, context: CommandContext | None = None) -> int:
        """Provision the tenant; `TenantAlreadyExists` if it was. Returns its position."""
        tenant = Tenant.provision(tenant_id=command.tenant_id)
        context = context or CommandContext(actor=Actor.system(command.tenant_id))
        try:
            [result] = await self._repository.save(tenant, metadata=context.metadata())
        except ConcurrencyError:
            self._known.add(command.tenant_id)
            raise TenantAlreadyExists(command.tenant_id) from None
        self._known.add(command.tenant_id)
        return result.position

    async def ensure(self, tenant_id: str) -> None:
        """Provision the tenant unless it exists (for the demo, the benchmarks and tests)."""
        if await self.exists(tenant_id):
            return
        with contextlib.suppress(TenantAlreadyExists):  # created meanwhile: what was wanted
            await self.create(CreateTenant(tenant_id=tenant_id))

    async def exists(self, tenant_id: str) -> bool:
        if tenant_id in self._known:
            return True
        try:
            validate_tenant_id(tenant_id)
            await self._repository.get(Tenant, tenant_id_for(tenant_id), tenant_id=tenant_id)
        except (InvariantViolation, AggregateNotFoundError):
            return False
        self._known.add(tenant_id)
        return True

    async def require(self, tenant_id: str) -> None:
        """Raise `UnknownTenant` unless the tenant was provisioned."""
        if not await self.exists(tenant_id):
            raise UnknownTenant(tenant_id)

    async def all(self) -> list[ProvisionedTenant]:
        """Every tenant, in the order they were created."""
        found: list[ProvisionedTenant] = []
        position = 0
        only_creations = LogFilter(event_types=frozenset({PROVISIONED}))
        while page := await self._store.read_all(position, _PAGE, only_creations):
            found.extend(
                ProvisionedTenant(event.tenant_id, event.recorded_at, event.position)
                for event in page
            )
            position = page[-1].position
        return found
