"""Login sessions: the server-side state behind refresh tokens.

One login starts one session; its refresh tokens form a family. Each refresh rotates the
session to a new token id, and only the current one is accepted. A refresh token of the family
that is not the current one can only be a token already rotated away (nobody else can sign
one), so presenting it means it was copied: the whole session is revoked (OAuth 2.0 Security
BCP, RFC 9700 §4.14.2, "refresh token rotation").

A session also remembers the account's token version at login; once the account bumps it
(logout everywhere, a role change), the session can no longer refresh.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import IllegalTransition


class Session(Aggregate):
    @classmethod
    def start(cls, *, id: UUID, account_id: UUID, token_id: str, token_version: int) -> Session:
        return cls(id=id, account_id=account_id, token_id=token_id, token_version=token_version)

    @event("Started")
    def __init__(self, id: UUID, account_id: UUID, token_id: str, token_version: int) -> None:
        self.account_id = account_id
        self.token_id = token_id
        self.token_version = token_version
        self.revoked_because: str | None = None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_because is not None

    def rotate(self, token_id: str) -> None:
        if self.is_revoked:
            raise IllegalTransition("session", self.id, "revoked", "rotate")
        self._rotate(token_id=token_id)

    @event("Rotated")
    def _rotate(self, token_id: str) -> None:
        self.token_id = token_id

    def revoke(self, reason: str) -> None:
        """End the session; revoking a revoked session records nothing."""
        if not self.is_revoked:
            self._revoke(reason=reason)

    @event("Revoked")
    def _revoke(self, reason: str) -> None:
        self.revoked_because = reason
