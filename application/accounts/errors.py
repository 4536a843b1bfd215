"""What the accounts use cases refuse, beyond the domain's own errors."""

from __future__ import annotations

from application.errors import ApplicationError
from domain.errors import Conflict


class EmailAlreadyRegistered(Conflict):
    """Another account of the tenant already has this email address (409)."""

    def __init__(self, email: str) -> None:
        self.email = email
        super().__init__("this email address is already registered")


class AuthenticationError(ApplicationError):
    """The caller could not be authenticated (401); the message never says which part failed
    in a way that helps guessing (unknown email and wrong password read the same)."""


class InvalidCredentials(AuthenticationError):
    def __init__(self) -> None:
        super().__init__("the email address or the password is wrong")


class InvalidToken(AuthenticationError):
    """A token is missing, malformed, forged, expired, of the wrong type, or revoked."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid token: {reason}")
