"""The ports the accounts use cases need: password hashing and token signing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID


class PasswordHasher(Protocol):
    """A slow, salted password hash (argon2 in production); the work runs off the event loop."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches; a malformed hash is a mismatch, not an error."""
        ...

    async def verify_nothing(self, password: str) -> None:
        """Spend the time of one `verify`, so an unknown email answers as slowly as a known one."""
        ...

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        ...


@dataclass(frozen=True)
class IssuedToken:
    value: str
    token_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class AccessClaims:
    account_id: UUID
    tenant_id: str
    roles: frozenset[str]
    token_version: int
    token_id: str
    expires_at: datetime


@dataclass(frozen=True)
class RefreshClaims:
    account_id: UUID
    tenant_id: str
    session_id: UUID
    token_id: str
    expires_at: datetime


class TokenCodec(Protocol):
    """Signs and checks the two kinds of bearer token.

    `read_*` raise `InvalidToken` for anything but a well-formed, correctly signed, unexpired
    token of that kind; they do not know about revocation (the use cases check that).
    """

    def issue_access(
        self, *, account_id: UUID, tenant_id: str, roles: frozenset[str], token_version: int
    ) -> IssuedToken: ...

    def issue_refresh(
        self, *, account_id: UUID, tenant_id: str, session_id: UUID, token_id: str
    ) -> IssuedToken: ...

    def read_access(self, token: str) -> AccessClaims: ...

    def read_refresh(self, token: str) -> RefreshClaims: ...
