"""The accounts use cases: register, log in, refresh, log out, change roles, authenticate.

Each loads what it needs through the repository, asks the domain, and saves; tokens and
password hashes come through ports (`PasswordHasher`, `TokenCodec`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from application.accounts.commands import (
    ChangeRoles,
    Login,
    Logout,
    LogoutEverywhere,
    RefreshTokens,
    RegisterAccount,
)
from application.accounts.email_claims import EmailClaim, email_claim_id
from application.accounts.errors import EmailAlreadyRegistered, InvalidCredentials, InvalidToken
from application.accounts.ports import IssuedToken, PasswordHasher, RefreshClaims, TokenCodec
from application.accounts.sessions import Session
from application.context import Actor, CommandContext
from application.errors import AggregateNotFoundError
from application.ports.event_store import AppendResult, ConcurrencyError, EventStore
from application.repository import Repository
from application.tenants.service import Tenants
from domain.account import Account, Role, normalise_email
from domain.errors import Forbidden, MissingRole

logger = logging.getLogger(__name__)

SELF_SERVICE_ROLES = frozenset({Role.BUYER, Role.CREATOR})
REFRESH_ATTEMPTS = 2


@dataclass(frozen=True)
class Recorded:
    """Where a command left a stream: its version, and the global position reached (the
    consistency token). A command that changed nothing reports the stream as it stands."""

    stream_id: str
    version: int
    position: int


@dataclass(frozen=True)
class Tokens:
    account_id: UUID
    access: IssuedToken
    refresh: IssuedToken
    session: Recorded


class Accounts:
    def __init__(
        self,
        repository: Repository,
        store: EventStore,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        tenants: Tenants,
    ) -> None:
        self._repository = repository
        self._store = store
        self._hasher = hasher
        self._tokens = tokens
        self._tenants = tenants

    async def register(self, command: RegisterAccount, context: CommandContext) -> Recorded:
        """Create an account in a provisioned tenant; the email must be free in it."""
        await self._tenants.require(context.tenant_id)
        if not command.roles <= SELF_SERVICE_ROLES and not context.actor.has_role(Role.ADMIN):
            raise Forbidden("only an admin can grant the admin role")
        email = normalise_email(command.email)
        password_hash = await self._hasher.hash(command.password.get_secret_value())

        def account_with(account_id: UUID) -> Account:
            return Account.register(
                id=account_id,
                tenant_id=context.tenant_id,
                email=email,
                display_name=command.display_name,
                roles=command.roles,
                password_hash=password_hash,
            )

        account_with(uuid4())  # validate every field before claiming the email
        account_id = await self._claim_email(email, context)
        account = account_with(account_id)
        try:
            [result] = await self._repository.save(account, metadata=context.metadata())
        except ConcurrencyError:
            raise EmailAlreadyRegistered(email) from None
        return _recorded(result)

    async def login(self, command: Login, context: CommandContext) -> Tokens:
        """Check the password and start a session; one answer for an unknown email or a wrong
        password (an unknown tenant is refused first: registration reveals tenants anyway)."""
        # Before any hashing: a login into a tenant that does not exist costs no argon2 run.
        await self._tenants.require(context.tenant_id)
        password = command.password.get_secret_value()
        account = await self._find_by_email(command.email, context.tenant_id)
        if account is None:
            await self._hasher.verify_nothing(password)
            raise InvalidCredentials()
        if not await self._hasher.verify(account.password_hash, password):
            raise InvalidCredentials()
        if self._hasher.needs_rehash(account.password_hash):
            await self._rehash(account, password, context)
        session = Session.start(
            id=uuid4(),
            account_id=account.id,
            token_id=_new_token_id(),
            token_version=account.token_version,
        )
        [result] = await self._repository.save(session, metadata=context.metadata())
        return self._tokens_for(account, session, _recorded(result))

    async def refresh(
        self,
        command: RefreshTokens,
        *,
        correlation_id: UUID | None = None,
        traceparent: str | None = None,
    ) -> Tokens:
        """Exchange the current refresh token of a session for a new pair (rotation)."""
        claims = self._tokens.read_refresh(command.refresh_token.get_secret_value())
        context = _context_of(claims, correlation_id, traceparent)
        for _ in range(REFRESH_ATTEMPTS):
            session = await self._session(claims)
            account = await self._account_of(claims)
            if claims.token_id != session.token_id:
                await self._revoke(session, "a rotated refresh token was used again", context)
                raise InvalidToken("refresh token already used; the session is revoked")
            if account.token_version != session.token_version:
                await self._revoke(session, "the account revoked its sessions", context)
                raise InvalidToken("the session was revoked")
            session.rotate(_new_token_id())
            try:
                [result] = await self._repository.save(session, metadata=context.metadata())
            except ConcurrencyError:
                # Another refresh of the same token got in first: on the next pass this token
                # is no longer current, and the session is revoked as a reuse.
                continue
            return self._tokens_for(account, session, _recorded(result))
        raise InvalidToken("the session kept changing during the refresh")

    async def logout(
        self,
        command: Logout,
        *,
        correlation_id: UUID | None = None,
        traceparent: str | None = None,
    ) -> Recorded:
        """Revoke the refresh token's session; logging out twice is not an error."""
        claims = self._tokens.read_refresh(command.refresh_token.get_secret_value())
        context = _context_of(claims, correlation_id, traceparent)
        session = await self._session(claims, allow_revoked=True)
        session.revoke("logged out")
        return await self._save(session, context)

    async def logout_everywhere(
        self, command: LogoutEverywhere, context: CommandContext
    ) -> Recorded:
        """Bump the caller's token version: every token issued so far stops working."""
        account = await self._repository.get(
            Account, _account_id(context.actor), tenant_id=context.tenant_id
        )
        account.revoke_all_sessions()
        return await self._save(account, context)

    async def change_roles(self, command: ChangeRoles, context: CommandContext) -> Recorded:
        """Replace an account's roles (admins only); its tokens are revoked."""
        if not context.actor.has_role(Role.ADMIN):
            raise MissingRole(_account_id(context.actor), Role.ADMIN)
        account = await self._repository.get(
            Account, command.account_id, tenant_id=context.tenant_id
        )
        account.change_roles(command.roles)
        return await self._save(account, context)

    async def authenticate(self, access_token: str) -> Actor:
        """The actor an access token stands for, if it is valid and not revoked.

        The account is loaded on every call so that a bumped token version (logout everywhere,
        a role change) takes effect at once rather than when the token expires.
        """
        claims = self._tokens.read_access(access_token)
        try:
            account = await self._repository.get(
                Account, claims.account_id, tenant_id=claims.tenant_id
            )
        except AggregateNotFoundError:
            raise InvalidToken("unknown account") from None
        if account.token_version != claims.token_version:
            raise InvalidToken("the token was revoked")
        return Actor(
            account_id=account.id,
            tenant_id=account.tenant_id,
            roles=frozenset(str(role) for role in account.roles),
        )

    async def own_account(self, actor: Actor) -> Account:
        return await self._repository.get(Account, _account_id(actor), tenant_id=actor.tenant_id)

    async def _claim_email(self, email: str, context: CommandContext) -> UUID:
        """The account id this registration may use, or `EmailAlreadyRegistered`."""
        claim = EmailClaim(id=email_claim_id(context.tenant_id, email), account_id=uuid4())
        try:
            await self._repository.save(claim, metadata=context.metadata())
            return claim.account_id
        except ConcurrencyError:
            pass
        existing = await self._repository.get(EmailClaim, claim.id, tenant_id=context.tenant_id)
        if await self._store.stream_version(str(existing.account_id)) > 0:
            raise EmailAlreadyRegistered(email)
        # The registration that claimed the email stopped before creating the account.
        return existing.account_id

    async def _find_by_email(self, email: str, tenant_id: str) -> Account | None:
        claim_id = email_claim_id(tenant_id, normalise_email(email))
        try:
            claim = await self._repository.get(EmailClaim, claim_id, tenant_id=tenant_id)
            return await self._repository.get(Account, claim.account_id, tenant_id=tenant_id)
        except AggregateNotFoundError:
            return None

    async def _rehash(self, account: Account, password: str, context: CommandContext) -> None:
        account.change_password_hash(await self._hasher.hash(password))
        try:
            await self._repository.save(account, metadata=context.metadata())
        except ConcurrencyError:
            # The account changed meanwhile; the next login upgrades the hash.
            logger.info("skipped rehashing the password of account %s", account.id)

    async def _session(self, claims: RefreshClaims, *, allow_revoked: bool = False) -> Session:
        try:
            session = await self._repository.get(
                Session, claims.session_id, tenant_id=claims.tenant_id
            )
        except AggregateNotFoundError:
            raise InvalidToken("unknown session") from None
        if session.account_id != claims.account_id:
            raise InvalidToken("the token does not belong to its session")
        if session.is_revoked and not allow_revoked:
            raise InvalidToken("the session was revoked")
        return session

    async def _account_of(self, claims: RefreshClaims) -> Account:
        try:
            return await self._repository.get(
                Account, claims.account_id, tenant_id=claims.tenant_id
            )
        except AggregateNotFoundError:
            raise InvalidToken("unknown account") from None

    async def _revoke(self, session: Session, reason: str, context: CommandContext) -> None:
        session.revoke(reason)
        try:
            await self._repository.save(session, metadata=context.metadata())
        except ConcurrencyError:
            # Whatever got in first, the token being refused stays refused; a concurrent
            # rotation can only have come from the same stolen family, and the next use of
            # either token revokes the session.
            logger.warning("could not record the revocation of session %s", session.id)

    def _tokens_for(self, account: Account, session: Session, recorded: Recorded) -> Tokens:
        access = self._tokens.issue_access(
            account_id=account.id,
            tenant_id=account.tenant_id,
            roles=frozenset(str(role) for role in account.roles),
            token_version=account.token_version,
        )
        refresh = self._tokens.issue_refresh(
            account_id=account.id,
            tenant_id=account.tenant_id,
            session_id=session.id,
            token_id=session.token_id,
        )
        return Tokens(account_id=account.id, access=access, refresh=refresh, session=recorded)

    async def _save(self, aggregate: Aggregate, context: CommandContext) -> Recorded:
        results = await self._repository.save(aggregate, metadata=context.metadata())
        if results:
            return _recorded(results[0])
        # Nothing new was recorded: report the stream as it stands.
        [last] = await self._store.read_stream(str(aggregate.id), from_version=aggregate.version)
        return Recorded(
            stream_id=last.stream_id, version=last.stream_version, position=last.position
        )


def _recorded(result: AppendResult) -> Recorded:
    return Recorded(
        stream_id=result.stream_id, version=result.stream_version, position=result.position
    )


def _new_token_id() -> str:
    return uuid4().hex


def _account_id(actor: Actor) -> UUID:
    if actor.account_id is None:
        raise Forbidden("a system actor has no account")
    return actor.account_id


def _context_of(
    claims: RefreshClaims, correlation_id: UUID | None, traceparent: str | None
) -> CommandContext:
    actor = Actor(account_id=claims.account_id, tenant_id=claims.tenant_id)
    return CommandContext(
        actor=actor, correlation_id=correlation_id or uuid4(), traceparent=traceparent
    )
