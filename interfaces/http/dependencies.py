"""The dependencies routes declare, as `Annotated` aliases: the container, the caller, the
command context, and the headers with rules of their own."""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID, uuid4

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from application.accounts.errors import InvalidToken
from application.accounts.service import Accounts
from application.context import Actor, CommandContext
from application.marketplace import Marketplace
from domain.account import Role
from domain.errors import Forbidden
from infrastructure.telemetry.context import bind_tenant
from interfaces.bootstrap import Container
from interfaces.http.rate_limits import spend_command_budget
from interfaces.http.request_context import request_id_of

IDEMPOTENCY_KEY_MAX_LENGTH = 200
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_accounts(container: ContainerDep) -> Accounts:
    return container.accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


def get_marketplace(container: ContainerDep) -> Marketplace:
    return container.marketplace


MarketplaceDep = Annotated[Marketplace, Depends(get_marketplace)]

_bearer = HTTPBearer(
    auto_error=False, description="An access token from `POST /auth/login` or `/auth/refresh`."
)


async def current_actor(
    accounts: AccountsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None:
        raise InvalidToken("missing bearer token")
    actor = await accounts.authenticate(credentials.credentials)
    bind_tenant(actor.tenant_id)  # queries too: see `_context`
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def admin_actor(actor: CurrentActor) -> Actor:
    if not actor.has_role(Role.ADMIN):
        raise Forbidden("this needs the admin role")
    return actor


AdminActor = Annotated[Actor, Depends(admin_actor)]

TenantHeader = Annotated[
    str,
    Header(
        alias="X-Tenant-ID",
        pattern=TENANT_PATTERN,
        description="The tenant to register or log in with; later requests take it from the token.",
    ),
]

_IdempotencyKeyRules = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
    pattern=r"^[\x21-\x7e]+$",
    description="Repeat a request with the same key to get its first result, not a second effect.",
)


def correlation_id_for(request: Request) -> UUID:
    """The request id when it is a UUID (so logs and events share it), else a new one."""
    try:
        return UUID(request_id_of(request))
    except ValueError:
        return uuid4()


def traceparent_of(request: Request) -> str | None:
    """The W3C `traceparent` header, if well-formed (it is copied into event metadata)."""
    value = request.headers.get("traceparent", "")
    return value if _TRACEPARENT.fullmatch(value) else None


def _context(request: Request, actor: Actor, idempotency_key: str | None) -> CommandContext:
    # From here to the end of the request, log lines and the server span name the tenant
    # (`TelemetryMiddleware` scopes it to the request).
    bind_tenant(actor.tenant_id)
    return CommandContext(
        actor=actor,
        idempotency_key=idempotency_key,
        correlation_id=correlation_id_for(request),
        traceparent=traceparent_of(request),
    )


async def command_context(
    request: Request,
    actor: CurrentActor,
    idempotency_key: Annotated[str | None, _IdempotencyKeyRules] = None,
) -> CommandContext:
    await spend_command_budget(request, actor.tenant_id, str(actor.account_id))
    return _context(request, actor, idempotency_key)


CommandContextDep = Annotated[CommandContext, Depends(command_context)]


async def idempotent_command_context(
    request: Request, actor: CurrentActor, idempotency_key: Annotated[str, _IdempotencyKeyRules]
) -> CommandContext:
    await spend_command_budget(request, actor.tenant_id, str(actor.account_id))
    return _context(request, actor, idempotency_key)


IdempotentCommandContextDep = Annotated[CommandContext, Depends(idempotent_command_context)]


async def anonymous_context(request: Request, tenant_id: TenantHeader) -> CommandContext:
    return _context(request, Actor(account_id=None, tenant_id=tenant_id), None)


AnonymousContextDep = Annotated[CommandContext, Depends(anonymous_context)]


_ETAG = re.compile(r'\s*"([1-9][0-9]{0,17})"\s*')


def expected_version(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=40,
            description='The ETag the change is based on, e.g. `"3"`; `*` or none: any version.',
        ),
    ] = None,
) -> int | None:
    """The stream version an `If-Match` header names (the resource's ETag), if any."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.fullmatch(if_match)
    if match is None:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("header", "if-match"),
                    "msg": 'If-Match must be one ETag such as "3"',
                    "input": if_match,
                }
            ]
        )
    return int(match[1])


ExpectedVersionDep = Annotated[int | None, Depends(expected_version)]


def etag(version: int) -> str:
    return f'"{version}"'
