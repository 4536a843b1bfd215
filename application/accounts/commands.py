"""The accounts commands. None carries a tenant: it comes from the command's context.

Passwords are `SecretStr`, so they never show in a repr, a log line, or a command fingerprint.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from domain.account import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, Role

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 256
TOKEN_MAX_LENGTH = 4096


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegisterAccount(Command):
    email: str = Field(max_length=EMAIL_MAX_LENGTH)
    password: SecretStr = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
    display_name: str = Field(max_length=DISPLAY_NAME_MAX_LENGTH)
    roles: frozenset[Role] = Field(default=frozenset({Role.BUYER}), max_length=len(Role))


class Login(Command):
    email: str = Field(max_length=EMAIL_MAX_LENGTH)
    password: SecretStr = Field(max_length=PASSWORD_MAX_LENGTH)


class RefreshTokens(Command):
    refresh_token: SecretStr = Field(max_length=TOKEN_MAX_LENGTH)


class Logout(Command):
    """End one session (the refresh token's family); other sessions stay."""

    refresh_token: SecretStr = Field(max_length=TOKEN_MAX_LENGTH)


class LogoutEverywhere(Command):
    """Revoke every token of the caller's account, access and refresh alike."""


class ChangeRoles(Command):
    account_id: UUID
    roles: frozenset[Role] = Field(min_length=1, max_length=len(Role))
