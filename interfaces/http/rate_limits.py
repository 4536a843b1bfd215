"""Rate limits at the HTTP edge: who the client is, what each kind of request spends, and the
429 answer.

| rule | counted per | spent by |
|---|---|---|
| `requests_ip` | client address | every request but the probes and `/metrics` |
| `login_ip`, `login_account` | client address; tenant + email | `POST /auth/login`, before argon2 |
| `register_ip` | client address | `POST /auth/register`, before argon2 |
| `command_principal`, `command_tenant` | account; tenant | every authenticated command |

A 429 carries `Retry-After` (seconds) and the rule as the IETF draft's structured fields
(draft-ietf-httpapi-ratelimit-headers-10): `RateLimit-Policy: "login_ip";q=5;w=60` (quota,
window in seconds) and `RateLimit: "login_ip";r=0;t=42` (remaining, seconds until one more).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.account import normalise_email
from domain.errors import InvariantViolation
from infrastructure.rate_limits import RateLimited, RateLimiter, Rule, Verdict

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes come from the platform, often from one address: never refused."""
IPV6_CLIENT_PREFIX = 64
"""An IPv6 client is counted by its /64: one host commonly holds all of it, and counting each
address would give one attacker 2**64 budgets."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def limiter_of(connection: HTTPConnection) -> RateLimiter:
    limiter: RateLimiter = connection.app.state.container.rate_limiter
    return limiter


def client_address(connection: HTTPConnection) -> str:
    """The address budgets are counted by: the TCP peer, or, when that peer is a trusted proxy
    (`MERCATO_TRUSTED_PROXIES`), the nearest untrusted hop of `X-Forwarded-For`. Anyone can
    write that header, so it is never believed from elsewhere."""
    trusted = _trusted_networks(connection)
    peer = connection.client.host if connection.client else ""
    address = _parsed(peer)
    if address is not None and _within(address, trusted):
        forwarded = ",".join(connection.headers.getlist("x-forwarded-for")).split(",")
        for hop in reversed(forwarded):
            hop_address = _parsed(hop.strip())
            if hop_address is None:
                break  # garbage from beyond the proxies: trust the last hop that was parsed
            address = hop_address
            if not _within(hop_address, trusted):
                break
    if address is None:
        return peer or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def _trusted_networks(connection: HTTPConnection) -> list[Network]:
    networks: list[Network] | None = getattr(connection.app.state, "trusted_proxies", None)
    if networks is None:
        settings = connection.app.state.container.settings
        networks = [ipaddress.ip_network(item, strict=False) for item in settings.trusted_proxies]
        connection.app.state.trusted_proxies = networks
    return networks


def _parsed(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Iterable[Network]
) -> bool:
    return any(address in network for network in networks)


async def spend_login_budget(request: Request, tenant_id: str, email: str) -> None:
    """Count a login attempt by client address and by account, before any password is hashed:
    a flood at one account from many addresses and from one address at many accounts both
    stop here."""
    limiter = limiter_of(request)
    await limiter.spend(Rule.LOGIN_IP, client_address(request))
    await limiter.spend(Rule.LOGIN_ACCOUNT, tenant_id, _account_key(email))


def _account_key(email: str) -> str:
    # The service finds the account by the normalised address: count it the same way, or
    # `Ada@Example.org` would open a second budget for `ada@example.org`.
    try:
        return normalise_email(email)
    except InvariantViolation:
        return email.strip().lower()


async def spend_registration_budget(request: Request) -> None:
    await limiter_of(request).spend(Rule.REGISTER_IP, client_address(request))


async def spend_command_budget(connection: HTTPConnection, tenant_id: str, account: str) -> None:
    limiter = limiter_of(connection)
    await limiter.spend(Rule.COMMAND_PRINCIPAL, tenant_id, account)
    await limiter.spend(Rule.COMMAND_TENANT, tenant_id)


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    name = verdict.rule.value
    return {
        "Retry-After": str(verdict.reset_after),
        "RateLimit-Policy": f'"{name}";q={verdict.quota};w={verdict.window_seconds}',
        "RateLimit": f'"{name}";r={verdict.remaining};t={verdict.reset_after}',
    }


def too_many_requests(error: RateLimited) -> JSONResponse:
    return JSONResponse(
        {"detail": str(error), "code": "rate_limited"},
        status_code=429,
        headers=rate_limit_headers(error.verdict),
    )


class RequestRateLimitMiddleware:
    """The cheap, generous `requests_ip` budget on every request, before routing, so an
    anonymous flood of any route is bounded too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        try:
            await limiter_of(connection).spend(Rule.REQUESTS_IP, client_address(connection))
        except RateLimited as error:
            await too_many_requests(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
