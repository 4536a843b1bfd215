"""Who is asking, on whose behalf, and why: what every command carries besides its data."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from application.ports.event_store import EventMetadata, Idempotency


@dataclass(frozen=True)
class Actor:
    """The authenticated caller (from the JWT), or a system process such as a saga."""

    account_id: uuid.UUID | None
    tenant_id: str
    roles: frozenset[str] = frozenset()

    @classmethod
    def system(cls, tenant_id: str) -> Actor:
        return cls(account_id=None, tenant_id=tenant_id, roles=frozenset({"system"}))

    def has_role(self, role: str) -> bool:
        return role in self.roles or "system" in self.roles


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

    def idempotency_for(self, command: Any) -> Idempotency | None:
        """The idempotency key with a fingerprint of the command (not of its events, which
        carry fresh timestamps and ids on every retry)."""
        if self.idempotency_key is None:
            return None
        return Idempotency(self.idempotency_key, fingerprint_command(command))


def fingerprint_command(command: Any) -> str:
    """A stable hash of a command: its type and its fields as JSON."""
    dump = command.model_dump(mode="json") if hasattr(command, "model_dump") else vars(command)
    body = json.dumps([type(command).__name__, dump], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
