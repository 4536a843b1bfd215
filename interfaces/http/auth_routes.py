"""Registration, login, token refresh and logout, and the caller's own account."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field, SecretStr

from application.accounts.commands import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    TOKEN_MAX_LENGTH,
    Login,
    Logout,
    LogoutEverywhere,
    RefreshTokens,
    RegisterAccount,
)
from application.accounts.service import Recorded, Tokens
from domain.account import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, Role
from interfaces.http.dependencies import (
    AccountsDep,
    AnonymousContextDep,
    CommandContextDep,
    CurrentActor,
    correlation_id_for,
    traceparent_of,
)
from interfaces.http.rate_limits import spend_login_budget, spend_registration_budget
from interfaces.http.schemas import CommandAccepted, RequestBody, error_responses

router = APIRouter(prefix="/auth", tags=["auth"])

UNAUTHORIZED = error_responses(401)


class RegisterRequest(RequestBody):
    email: str = Field(max_length=EMAIL_MAX_LENGTH, examples=["ada@example.org"])
    password: SecretStr = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
    display_name: str = Field(max_length=DISPLAY_NAME_MAX_LENGTH, examples=["Ada"])
    roles: list[Role] = Field(
        default=[Role.BUYER],
        min_length=1,
        max_length=len(Role),
        description="`buyer` and/or `creator`; only an admin can grant `admin`.",
    )


class LoginRequest(RequestBody):
    email: str = Field(max_length=EMAIL_MAX_LENGTH)
    password: SecretStr = Field(max_length=PASSWORD_MAX_LENGTH)


class RefreshRequest(RequestBody):
    refresh_token: SecretStr = Field(max_length=TOKEN_MAX_LENGTH)


class AccountRegistered(CommandAccepted):
    account_id: UUID


class TokenPair(CommandAccepted):
    """An access token for `Authorization: Bearer`, and the refresh token that renews it.

    `version` and `position` are those of the session the refresh token belongs to.
    """

    token_type: str = "bearer"
    access_token: str
    expires_in: int = Field(description="Seconds until the access token expires.")
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    account_id: UUID


class AccountView(BaseModel):
    id: UUID
    tenant_id: str
    email: str
    display_name: str
    roles: list[Role]
    version: int


@router.post(
    "/register",
    response_model=AccountRegistered,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 409, 429),
    dependencies=[Depends(spend_registration_budget)],
)
async def register(
    body: RegisterRequest, accounts: AccountsDep, context: AnonymousContextDep
) -> AccountRegistered:
    """Create an account in the tenant named by `X-Tenant-ID`: 404 if no operator created that
    tenant (`mercato tenants create`), 409 if the email is taken."""
    command = RegisterAccount(
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        roles=frozenset(body.roles),
    )
    recorded = await accounts.register(command, context)
    return AccountRegistered(
        account_id=UUID(recorded.stream_id), version=recorded.version, position=recorded.position
    )


@router.post("/login", response_model=TokenPair, responses=error_responses(401, 404, 429))
async def login(
    body: LoginRequest, accounts: AccountsDep, context: AnonymousContextDep, request: Request
) -> TokenPair:
    """Exchange an email and password for an access token (15 min) and a refresh token."""
    await spend_login_budget(request, context.actor.tenant_id, body.email)
    tokens = await accounts.login(Login(email=body.email, password=body.password), context)
    return _token_pair(tokens)


@router.post("/refresh", response_model=TokenPair, responses=UNAUTHORIZED)
async def refresh(body: RefreshRequest, accounts: AccountsDep, request: Request) -> TokenPair:
    """Exchange the current refresh token for a new pair; reusing an old one ends the session."""
    tokens = await accounts.refresh(
        RefreshTokens(refresh_token=body.refresh_token),
        correlation_id=correlation_id_for(request),
        traceparent=traceparent_of(request),
    )
    return _token_pair(tokens)


@router.post("/logout", response_model=CommandAccepted, responses=UNAUTHORIZED)
async def logout(body: RefreshRequest, accounts: AccountsDep, request: Request) -> CommandAccepted:
    """End the refresh token's session; access tokens already issued expire on their own."""
    recorded = await accounts.logout(
        Logout(refresh_token=body.refresh_token),
        correlation_id=correlation_id_for(request),
        traceparent=traceparent_of(request),
    )
    return _accepted(recorded)


@router.post("/logout-everywhere", response_model=CommandAccepted, responses=UNAUTHORIZED)
async def logout_everywhere(accounts: AccountsDep, context: CommandContextDep) -> CommandAccepted:
    """Revoke every access and refresh token of the caller's account at once."""
    return _accepted(await accounts.logout_everywhere(LogoutEverywhere(), context))


@router.get("/me", response_model=AccountView, responses=UNAUTHORIZED)
async def me(actor: CurrentActor, accounts: AccountsDep) -> AccountView:
    """The caller's account."""
    account = await accounts.own_account(actor)
    return AccountView(
        id=account.id,
        tenant_id=account.tenant_id,
        email=account.email,
        display_name=account.display_name,
        roles=sorted(account.roles),
        version=account.version,
    )


def _token_pair(tokens: Tokens) -> TokenPair:
    access, refresh = tokens.access, tokens.refresh
    return TokenPair(
        access_token=access.value,
        expires_in=int((access.expires_at - access.issued_at).total_seconds()),
        expires_at=access.expires_at,
        refresh_token=refresh.value,
        refresh_expires_at=refresh.expires_at,
        account_id=tokens.account_id,
        version=tokens.session.version,
        position=tokens.session.position,
    )


def _accepted(recorded: Recorded) -> CommandAccepted:
    return CommandAccepted(version=recorded.version, position=recorded.position)
