"""What tenant provisioning refuses."""

from __future__ import annotations

from application.errors import AggregateNotFoundError
from domain.errors import Conflict
from domain.tenant import Tenant


class UnknownTenant(AggregateNotFoundError):
    """No tenant of this name was provisioned (404).

    Not found rather than forbidden or unprocessable: `X-Tenant-ID` is well-formed and names a
    resource that does not exist. Saying so reveals no more than registration has to anyway
    (whoever registers must learn that the tenant is wrong), and no account of any tenant.
    """

    def __init__(self, tenant_id: str) -> None:
        super().__init__(Tenant, tenant_id)
        self.tenant_id = tenant_id
        self.args = (f"there is no tenant {tenant_id!r}; tenants are created by an operator",)


class TenantAlreadyExists(Conflict):
    """A tenant of this name was provisioned before (409)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        super().__init__(f"tenant {tenant_id!r} already exists")
