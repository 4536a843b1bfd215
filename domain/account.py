"""Accounts: the people who buy, sell and administer, each within one tenant."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import checks
from domain.errors import InvariantViolation, MissingRole

EMAIL_MAX_LENGTH = 254
DISPLAY_NAME_MAX_LENGTH = 100
PASSWORD_HASH_MAX_LENGTH = 500


class Role(StrEnum):
    BUYER = "buyer"
    CREATOR = "creator"
    ADMIN = "admin"


def normalise_email(email: str) -> str:
    """The address trimmed and lower-cased, so `Ada@Example.org` and `ada@example.org` are one.

    Only the shape is checked (one `@`, a dotted domain, no spaces); whether the mailbox exists
    is not the domain's business.
    """
    value = checks.text(email, field="email", max_length=EMAIL_MAX_LENGTH).lower()
    local, at, domain_part = value.rpartition("@")
    well_formed = (
        at == "@"
        and local
        and "@" not in local
        and "." in domain_part.strip(".")
        and not any(character.isspace() for character in value)
    )
    if not well_formed:
        raise InvariantViolation(f"{email!r} is not an email address", field="email")
    return value


def normalise_roles(roles: Iterable[Role | str]) -> tuple[Role, ...]:
    """At least one known role, deduplicated and sorted so equal sets record equal events."""
    if isinstance(roles, str):
        raise InvariantViolation(
            "roles must be a collection of roles, not one string", field="roles"
        )
    parsed: set[Role] = set()
    for role in roles:
        try:
            parsed.add(Role(role))
        except ValueError:
            known = ", ".join(Role)
            raise InvariantViolation(
                f"unknown role {role!r}; roles are {known}", field="roles"
            ) from None
    if not parsed:
        raise InvariantViolation("an account needs at least one role", field="roles")
    return tuple(sorted(parsed))


class Account(Aggregate):
    """One person in one tenant.

    Register with `Account.register` (it validates and normalises); the event-decorated
    methods only apply already-checked facts, so replaying old events never re-judges them.

    Not enforced here: that an email is unique within its tenant. An aggregate sees only its
    own stream, so the application guards uniqueness (a claim on the email, per tenant) before
    registering.

    Passwords are hashed by the application (argon2); the account keeps only the hash.
    `token_version` is written into every token issued; bumping it revokes them all.
    """

    @classmethod
    def register(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        email: str,
        display_name: str,
        roles: Iterable[Role | str],
        password_hash: str,
    ) -> Account:
        return cls(
            id=id,
            tenant_id=checks.tenant_id(tenant_id),
            email=normalise_email(email),
            display_name=checks.text(
                display_name, field="display_name", max_length=DISPLAY_NAME_MAX_LENGTH
            ),
            roles=normalise_roles(roles),
            password_hash=_password_hash(password_hash),
        )

    @event("Registered")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        email: str,
        display_name: str,
        roles: tuple[Role, ...],
        password_hash: str,
    ) -> None:
        self.tenant_id = tenant_id
        self.email = email
        self.display_name = display_name
        self.roles = frozenset(roles)
        self.password_hash = password_hash
        self.token_version = 1

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def ensure_has_role(self, role: Role) -> None:
        """Raise `MissingRole` unless the account has `role` (records nothing)."""
        if not self.has_role(role):
            raise MissingRole(self.id, role)

    def change_roles(self, roles: Iterable[Role | str]) -> None:
        """Replace the roles and revoke every token; the same set again records nothing."""
        new_roles = normalise_roles(roles)
        if frozenset(new_roles) == self.roles:
            return
        self._change_roles(roles=new_roles, token_version=self.token_version + 1)

    @event("RolesChanged")
    def _change_roles(self, roles: tuple[Role, ...], token_version: int) -> None:
        self.roles = frozenset(roles)
        self.token_version = token_version

    def revoke_all_sessions(self) -> None:
        """Log out everywhere: every token issued so far stops being accepted."""
        self._revoke_all_sessions(token_version=self.token_version + 1)

    @event("SessionsRevoked")
    def _revoke_all_sessions(self, token_version: int) -> None:
        self.token_version = token_version

    def change_password_hash(self, password_hash: str) -> None:
        """Store a new hash; the same hash again records nothing.

        Does not revoke sessions: a transparent rehash (argon2 parameters upgraded at login)
        must not log anyone out. After a password change asked for by the user, the
        application also calls `revoke_all_sessions`.
        """
        new_hash = _password_hash(password_hash)
        if new_hash == self.password_hash:
            return
        self._change_password_hash(password_hash=new_hash)

    @event("PasswordHashChanged")
    def _change_password_hash(self, password_hash: str) -> None:
        self.password_hash = password_hash


def _password_hash(password_hash: str) -> str:
    return checks.text(password_hash, field="password_hash", max_length=PASSWORD_HASH_MAX_LENGTH)
