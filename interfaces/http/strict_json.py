"""Refuse (422) a JSON request body that Python's parser takes but no store or client should.

`json.loads` accepts `NaN`, `Infinity` and `-Infinity` (not JSON at all), turns `1e400` into an
infinity, and builds integers of any size; a string may hold an unpaired surrogate (which no
UTF-8 store can encode) or U+0000 (which Postgres text refuses). Each would get past a model
that does not look at that field (or be echoed by its 422) and fail deep inside, as a 500.

Checked once, for every route, before FastAPI parses the body: a middleware rather than a
setting of each router, so that no router added later can forget it. The body is read whole
(the size limit outside this middleware bounds it), checked, and handed on unchanged. A body
that is not JSON at all is left to FastAPI, which names the position of the syntax error.
"""

from __future__ import annotations

import json
import math
from email.message import Message as MimeType
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.integers import INT64_MAX, INT64_MIN

_MAX_INT_DIGITS = len(str(INT64_MIN))


class UnacceptableJson(ValueError):
    """JSON that parses, but holds a value refused here."""


def strict_loads(text: str | bytes) -> Any:
    """`json.loads`, refusing non-finite numbers, integers beyond 64 bits, unpaired surrogates
    and U+0000 in strings (`UnacceptableJson`). Not JSON at all: `ValueError`."""
    value = json.loads(text, parse_constant=_refuse_constant, parse_float=_float, parse_int=_int)
    _check_strings(value)
    return value


class StrictJsonMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        try:
            strict_loads(body)
        except UnacceptableJson as error:
            await _refuse(str(error))(scope, receive, send)
            return
        except ValueError:
            pass  # not JSON (or not UTF-8): FastAPI answers it
        await self.app(scope, _replay(messages, receive), send)


def _refuse_constant(name: str) -> Any:
    raise UnacceptableJson(f"{name} is not a JSON number: numbers must be finite")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnacceptableJson(f"{text} is beyond the range of a number")
    return value


def _int(text: str) -> int:
    # Checked on the digits first: `int()` of thousands of digits costs time, then raises.
    if len(text) > _MAX_INT_DIGITS or not INT64_MIN <= (value := int(text)) <= INT64_MAX:
        raise UnacceptableJson(
            f"integers are from {INT64_MIN} to {INT64_MAX} (a signed 64-bit integer)"
        )
    return value


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        _check_string(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise UnacceptableJson("strings must not contain U+0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnacceptableJson("strings must not contain unpaired surrogates") from None


def _is_json(headers: Headers) -> bool:
    """As FastAPI decides to parse a body as JSON: `application/json` or `application/*+json`
    (no content type at all is never parsed)."""
    content_type = headers.get("content-type")
    if not content_type:
        return False
    mime = MimeType()
    mime["content-type"] = content_type
    subtype = mime.get_content_subtype()
    return mime.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return messages, body


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _refuse(reason: str) -> JSONResponse:
    """In the shape of FastAPI's validation errors, as every 422 here."""
    problem = {"type": "json_invalid", "loc": ["body"], "msg": reason}
    return JSONResponse({"detail": [problem]}, status_code=422)
