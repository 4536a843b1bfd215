"""Per-request context: the `X-Request-ID` header in and out, and the last line of defence
against unexpected errors (logged with the request id, answered with a 500 that reveals
nothing of the internals)."""

from __future__ import annotations

import logging
import re
from uuid import uuid4

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_SCOPE_KEY = "mercato.request_id"
# A client may pass its own id to follow a request through the logs; anything that could
# forge a log line or a header (control characters, great length) is replaced by ours.
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

logger = logging.getLogger(__name__)


def request_id_of(request: Request) -> str:
    request_id = request.scope.get(_SCOPE_KEY)
    return request_id if isinstance(request_id, str) else ""


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if _ACCEPTABLE_REQUEST_ID.fullmatch(incoming) else uuid4().hex
        scope[_SCOPE_KEY] = request_id
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            if response_started:
                raise
            logger.exception(
                "unexpected error in %s %s (request id %s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
                extra={"request_id": request_id},
            )
            response = JSONResponse(
                {
                    "detail": "internal server error",
                    "code": "internal_error",
                    "request_id": request_id,
                },
                status_code=500,
            )
            await response(scope, receive, send_with_request_id)
