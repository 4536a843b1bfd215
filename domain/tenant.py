"""Tenants: the marketplaces that share one deployment, each provisioned by an operator.

A tenant is never created as a side effect of a request: registering an account or logging in
needs a tenant that exists. Its stream id derives from its name (`domain.ids.tenant_id_for`),
so "does tenant X exist?" is one read of one short stream, and two operators creating the same
tenant at once race on one stream, where exactly one wins.
"""

from __future__ import annotations

import re
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvariantViolation
from domain.ids import tenant_id_for

TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""What a tenant id looks like: it travels in headers, tokens, keys and Kafka metadata, so a
letter or digit first, then letters, digits, `.`, `_` and `-`, 100 characters at most."""
_TENANT_ID = re.compile(TENANT_ID_PATTERN)


def validate_tenant_id(value: str) -> str:
    if not isinstance(value, str) or _TENANT_ID.fullmatch(value) is None:
        raise InvariantViolation(
            f"{value!r} is not a tenant id: a letter or digit, then up to 99 letters, digits, "
            "'.', '_' or '-'",
            field="tenant_id",
        )
    return value


class Tenant(Aggregate):
    """One tenant. Create with `Tenant.provision`; its id follows from its name."""

    @classmethod
    def provision(cls, *, tenant_id: str) -> Tenant:
        name = validate_tenant_id(tenant_id)
        return cls(id=tenant_id_for(name), tenant_id=name)

    @event("Provisioned")
    def __init__(self, id: UUID, tenant_id: str) -> None:
        self.tenant_id = tenant_id
