"""JSON Web Tokens (RFC 7519) signed with HMAC-SHA256: short-lived access tokens and
longer-lived refresh tokens.

Claims: `sub` (account id), `tenant`, `typ` (`access` or `refresh`), `jti`, `iat`, `exp`;
access tokens add `roles` and `tv` (the account's token version), refresh tokens add `sid`
(the session id).

Why the checks look the way they do:
- Decoding pins `algorithms=["HS256"]`: the token's own `alg` header is never trusted, so an
  `alg: none` token or one signed with another algorithm (the RS256/HS256 confusion, where a
  public key is used as an HMAC secret) fails (RFC 8725 §2.1, §3.1).
- Each kind of token has its own key, derived from the one secret, and its `typ` claim is
  checked too: a refresh token can never pass for an access token, nor the reverse
  (RFC 8725 §3.11, "use explicit typing").
- Expiry is checked against the injected clock rather than the wall clock, so tests can move
  time; PyJWT's own time checks are turned off for the same reason.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import jwt

from application.accounts.errors import InvalidToken
from application.accounts.ports import AccessClaims, IssuedToken, RefreshClaims
from application.ports.clock import Clock

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
TokenType = Literal["access", "refresh"]
_COMMON_CLAIMS = ["sub", "tenant", "typ", "jti", "iat", "exp"]
_T = TypeVar("_T")


def derive_key(secret: str, token_type: TokenType) -> bytes:
    """A 256-bit key per token type, derived from the configured secret with HMAC-SHA256."""
    return hmac.new(
        secret.encode(), f"mercato {token_type} token".encode(), hashlib.sha256
    ).digest()


class JwtTokenCodec:
    def __init__(
        self,
        *,
        secret: str,
        clock: Clock,
        access_ttl: timedelta = timedelta(minutes=15),
        refresh_ttl: timedelta = timedelta(days=7),
    ) -> None:
        self._keys: dict[TokenType, bytes] = {
            "access": derive_key(secret, "access"),
            "refresh": derive_key(secret, "refresh"),
        }
        self._clock = clock
        self._ttls: dict[TokenType, timedelta] = {"access": access_ttl, "refresh": refresh_ttl}

    def issue_access(
        self, *, account_id: UUID, tenant_id: str, roles: frozenset[str], token_version: int
    ) -> IssuedToken:
        return self._issue(
            "access",
            account_id,
            tenant_id,
            token_id=uuid4().hex,
            roles=sorted(roles),
            tv=token_version,
        )

    def issue_refresh(
        self, *, account_id: UUID, tenant_id: str, session_id: UUID, token_id: str
    ) -> IssuedToken:
        return self._issue("refresh", account_id, tenant_id, token_id=token_id, sid=str(session_id))

    def read_access(self, token: str) -> AccessClaims:
        claims = self._decode(token, "access", extra_claims=["roles", "tv"])
        roles = _claim(claims, "roles", _strings)
        return AccessClaims(
            account_id=_claim(claims, "sub", UUID),
            tenant_id=_claim(claims, "tenant", _text),
            roles=frozenset(roles),
            token_version=_claim(claims, "tv", _whole_number),
            token_id=_claim(claims, "jti", _text),
            expires_at=_moment(claims["exp"]),
        )

    def read_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, "refresh", extra_claims=["sid"])
        return RefreshClaims(
            account_id=_claim(claims, "sub", UUID),
            tenant_id=_claim(claims, "tenant", _text),
            session_id=_claim(claims, "sid", UUID),
            token_id=_claim(claims, "jti", _text),
            expires_at=_moment(claims["exp"]),
        )

    def _issue(
        self,
        token_type: TokenType,
        account_id: UUID,
        tenant_id: str,
        *,
        token_id: str,
        **extra: Any,
    ) -> IssuedToken:
        # Whole seconds, as JWT NumericDate values usually are; the expiry is reported exactly.
        issued_at = self._clock.now().replace(microsecond=0)
        expires_at = issued_at + self._ttls[token_type]
        payload = {
            "sub": str(account_id),
            "tenant": tenant_id,
            "typ": token_type,
            "jti": token_id,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            **extra,
        }
        value = jwt.encode(payload, self._keys[token_type], algorithm=ALGORITHM)
        return IssuedToken(
            value=value, token_id=token_id, issued_at=issued_at, expires_at=expires_at
        )

    def _decode(
        self, token: str, token_type: TokenType, *, extra_claims: list[str]
    ) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("too long")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._keys[token_type],
                algorithms=[ALGORITHM],
                options={
                    "require": _COMMON_CLAIMS + extra_claims,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(_describe(error)) from None
        if claims["typ"] != token_type:
            raise InvalidToken(f"expected an {token_type} token")
        expires_at = _moment(claims["exp"])
        if expires_at <= self._clock.now():
            raise InvalidToken("expired")
        return claims


def _claim(claims: dict[str, Any], name: str, parse: Callable[[Any], _T]) -> _T:
    try:
        return parse(claims[name])
    except (TypeError, ValueError, AttributeError):
        raise InvalidToken(f"malformed {name} claim") from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not text")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return [_text(item) for item in value]


def _whole_number(value: Any) -> int:
    if type(value) is not int:
        raise ValueError("not a whole number")
    return value


def _moment(value: Any) -> datetime:
    if type(value) is not int:
        raise InvalidToken("malformed exp claim")
    return datetime.fromtimestamp(value, UTC)


def _describe(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing {error.claim} claim"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(error, jwt.InvalidSignatureError):
        return "bad signature"
    return "malformed"
