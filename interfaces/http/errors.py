"""Every error the layers below raise, mapped to an HTTP answer in one place.

| raised | status |
|---|---|
| FastAPI's `RequestValidationError`: wrong type, missing field, too long | 422 |
| a JSON body with `NaN`, `Infinity`, a 65-bit integer, U+0000… (`strict_json`) | 422 |
| `min_position` beyond the end of the log (`read_models`) | 422 |
| `InvariantViolation` (a domain rule on the values), with the field | 422 |
| `IdempotencyKeyReusedError`, naming the header | 422 |
| `AuthenticationError`: bad credentials, missing/forged/expired/revoked token | 401 |
| `Forbidden` (`MissingRole`, `NotOwner`) | 403 |
| `AggregateNotFoundError` (also another tenant's aggregate) | 404 |
| `Conflict` (`IllegalTransition`, `InsufficientStock`, email taken), `ConcurrencyError` | 409 |
| `InvalidWebhookError` (bad or missing signature, stale, malformed) | 400 |
| a body over the size limit (`body_limit`) | 413 |
| `RateLimited`: over a rate-limit budget (`Retry-After`, `RateLimit`, `RateLimit-Policy`) | 429 |
| Starlette's `HTTPException` (unknown path 404, wrong method 405…) | its own |
| any other `DomainError` | 422 |
| `PaymentGatewayError` (the provider failed) | 502 |
| `EventStoreUnavailableError` (with `Retry-After`) | 503 |
| `ReadModelBehindError`: `min_position` not reached in time (`Retry-After`, the lag) | 503 |
| `ReadModelUnavailableError`: the read model was never built (with `Retry-After`) | 503 |
| `ReadStoreUnavailableError`: its store refused or timed out (with `Retry-After`) | 503 |
| anything else: logged with the request id, nothing internal in the body | 500 |

Every 422 has the shape of FastAPI's validation errors (`detail` lists each problem's `loc`),
401s carry `WWW-Authenticate: Bearer`, and the other bodies are `ErrorBody`:
`{"detail": <message>, "code": <the error class in snake_case>}`.
"""

from __future__ import annotations

import math
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from application.accounts.errors import AuthenticationError, InvalidToken
from application.errors import (
    AggregateNotFoundError,
    ReadModelBehindError,
    ReadModelUnavailableError,
)
from application.integers import INT64_MAX, INT64_MIN
from application.ports.event_store import (
    ConcurrencyError,
    EventStoreUnavailableError,
    IdempotencyKeyReusedError,
)
from application.ports.payment_gateway import InvalidWebhookError, PaymentGatewayError
from application.ports.read_model_sink import ReadStoreUnavailableError
from domain.errors import Conflict, DomainError, Forbidden, InvariantViolation
from infrastructure.rate_limits import RateLimited
from interfaces.http.rate_limits import too_many_requests

STATUS_OF: dict[type[Exception], int] = {
    InvalidWebhookError: 400,
    AuthenticationError: 401,
    Forbidden: 403,
    AggregateNotFoundError: 404,
    Conflict: 409,
    ConcurrencyError: 409,
    InvariantViolation: 422,
    IdempotencyKeyReusedError: 422,
    DomainError: 422,
    RateLimited: 429,
    PaymentGatewayError: 502,
    EventStoreUnavailableError: 503,
    ReadModelBehindError: 503,
    ReadModelUnavailableError: 503,
    ReadStoreUnavailableError: 503,
}
"""Looked up along the raised error's class hierarchy: the nearest class listed wins."""

SECRET_FIELDS = frozenset({"password", "refresh_token"})
_REDACTED = "**********"


def install_error_handlers(app: FastAPI) -> None:
    for error_type in STATUS_OF:
        app.add_exception_handler(error_type, _handle)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(HTTPException, _handle_http_exception)


def status_of(error: Exception) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    raise LookupError(f"no status for {type(error).__name__}")


async def _handle(request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, RateLimited):
        return too_many_requests(error)
    status = status_of(error)
    code = _snake_case(type(error).__name__)
    if status == 422:
        return _unprocessable(_location(error), str(error), code)
    headers: dict[str, str] = {}
    if isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token"' if isinstance(error, InvalidToken) else "Bearer"
        )
    body: dict[str, Any] = {"detail": str(error), "code": code}
    if isinstance(
        error, EventStoreUnavailableError | ReadModelUnavailableError | ReadStoreUnavailableError
    ):
        headers["Retry-After"] = "1"
    if isinstance(error, ReadModelBehindError):
        headers["Retry-After"] = "1"
        body.update(
            projection=error.projection,
            min_position=error.min_position,
            position=error.reached,
            lag_events=error.lag_events,
        )
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle_http_exception(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = getattr(error, "code", None) or _snake_case_phrase(HTTPStatus(error.status_code).phrase)
    return JSONResponse(
        {"detail": error.detail, "code": code},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _handle_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [_renderable(_redacted(problem)) for problem in error.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


def _unprocessable(location: list[str], message: str, code: str) -> JSONResponse:
    """A domain refusal in the shape of FastAPI's validation errors, so clients parse one."""
    return JSONResponse(
        {"detail": [{"loc": location, "msg": message, "type": code}]}, status_code=422
    )


def _location(error: Exception) -> list[str]:
    if isinstance(error, IdempotencyKeyReusedError):
        return ["header", "idempotency-key"]
    field = getattr(error, "field", None)
    return ["body", field] if isinstance(field, str) else ["body"]


def _redacted(problem: Any) -> Any:
    """The problem without any password or token it would echo back (its `input`)."""
    if not isinstance(problem, dict):
        return problem
    if any(part in SECRET_FIELDS for part in problem.get("loc", ())):
        return problem | {"input": _REDACTED}
    if "input" in problem:
        return problem | {"input": _without_secrets(problem["input"])}
    return problem


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _REDACTED if key in SECRET_FIELDS else _without_secrets(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def _renderable(value: Any) -> Any:
    """`value` as plain JSON that always renders, whatever a problem echoes back (its `input`,
    its `ctx`): non-finite floats, integers too long to print, bytes, exceptions and other
    objects become text, so that answering a bad input can never fail in turn."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):  # an unpaired surrogate would not encode as UTF-8
        return value.encode("utf-8", errors="replace").decode()
    if isinstance(value, int):
        return (
            value
            if INT64_MIN <= value <= INT64_MAX
            else f"<an integer of {value.bit_length()} bits>"
        )
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(_renderable(key)): _renderable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_renderable(item) for item in value]
    try:
        return _renderable(jsonable_encoder(value))
    except Exception:  # an object that does not even encode: its type is reason enough
        return f"<{type(value).__name__}>"


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_case_phrase(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
