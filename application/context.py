"""Who is asking, on whose behalf, and why: what every command carries besides its data."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from application.ports.event_store import EventMetadata, Idempotency

SYSTEM_ROLE = "system"


@dataclass(frozen=True)
class Actor:
    """The authenticated caller (from the JWT), or a system process such as a saga."""

    account_id: uuid.UUID | None
    tenant_id: str
    roles: frozenset[str] = frozenset()

    @classmethod
    def system(cls, tenant_id: str) -> Actor:
        return cls(account_id=None, tenant_id=tenant_id, roles=frozenset({SYSTEM_ROLE}))

    def has_role(self, role: str) -> bool:
        return role in self.roles or SYSTEM_ROLE in self.roles

    @property
    def is_system(self) -> bool:
        """A process of ours (a saga, the webhook handler), not a person: no account behind it."""
        return self.account_id is None and SYSTEM_ROLE in self.roles


@dataclass(frozen=True)
class CommandContext:
    actor: Actor
    idempotency_key: str | None = None
    correlation_id: uuid.UUID = field(default_factory=uuid.uuid4)
    causation_id: uuid.UUID | None = None
    traceparent: str | None = None

    @property
    def tenant_id(self) -> str:
        return self.actor.tenant_id

    def metadata(self) -> EventMetadata:
        return EventMetadata(
            tenant_id=self.actor.tenant_id,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            traceparent=self.traceparent,
        )

    def scoped_key(self, command_type: str) -> str | None:
        """The caller's idempotency key in the caller's own scope (`scoped_idempotency_key`)."""
        if self.idempotency_key is None:
            return None
        return scoped_idempotency_key(self.actor, command_type, self.idempotency_key)

    def idempotency_for(self, command: Any) -> Idempotency | None:
        """The scoped idempotency key with a fingerprint of the command (not of its events,
        which carry fresh timestamps and ids on every retry)."""
        key = self.scoped_key(type(command).__name__)
        if key is None:
            return None
        return Idempotency(key, fingerprint_command(command))


def scoped_idempotency_key(actor: Actor, command_type: str, key: str) -> str:
    """The key as the event store keeps it (per tenant): unique per caller and command type.

    - `u/<account id>/<command type>/<key>`: a signed-in caller (whatever its roles);
    - `anon/<command type>/<key>`: an anonymous route (registration, say);
    - `sys/<command type>/<key>`: a process of ours (sagas, payment webhooks).

    Every part before the caller's key has a grammar without `/` (a UUID, a class name), so
    the scope ends at a known place whatever the key holds: no key, slashes and all, can make
    one scope's stored key equal to another's. HTTP contexts always carry an account or none
    and never the system role, so they can only write `u/` or `anon/` keys: a saga's keys
    are out of reach of every caller, even one who can compute them.
    """
    if command_type == "" or "/" in command_type:
        raise ValueError(f"not a command type: {command_type!r}")
    if actor.account_id is not None:
        return f"u/{actor.account_id}/{command_type}/{key}"
    if actor.is_system:
        return f"sys/{command_type}/{key}"
    return f"anon/{command_type}/{key}"


def fingerprint_command(command: Any) -> str:
    """A stable hash of a command: its type and its fields as JSON."""
    dump = command.model_dump(mode="json") if hasattr(command, "model_dump") else vars(command)
    body = json.dumps([type(command).__name__, dump], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
