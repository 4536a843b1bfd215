"""Telemetry of the HTTP API: a server span and the request metrics for every request, the
request id (and, once authenticated, the tenant) in the logging context for the request alone,
and `GET /metrics`, which refreshes the projection gauges at each scrape (and the saga gauges
on the embedded profile, whose sagas run in this process).

The span is named `<METHOD> <route template>` (`GET /orders/{order_id}`) and the metrics are
labelled by the template too, never by the raw path: one series per route, not per order.
The span continues the caller's trace when the request carries a W3C `traceparent`. Its
attributes hold no query string, no header but the user agent, and go through
`safe_attributes`. Probes and scrapes (`/healthz`, `/readyz`, `/metrics`) are counted but not
traced: they would bury the traces worth reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AbstractContextManager, nullcontext

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infrastructure.settings import Profile
from infrastructure.telemetry.context import request_scope
from infrastructure.telemetry.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, render_latest
from infrastructure.telemetry.tracing import context_from_traceparent, safe_attributes
from interfaces.bootstrap import Container
from interfaces.http.request_context import request_id_of
from interfaces.projection_metrics import SCRAPE_REFRESH_SECONDS, refresh_every_projection
from interfaces.saga_metrics import refresh_saga_gauges, saga_census

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route chose."""
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Anything else a client sends as a method is one label value, not one each (the semantic
# conventions' name for it).
_OTHER_METHOD = "_OTHER"

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("mercato.http")
router = APIRouter(tags=["telemetry"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Metrics in the Prometheus text format",
)
async def metrics(request: Request) -> Response:
    """Every Mercato metric of this process, for a Prometheus scrape; the projections' lag
    and checkpoints as they are now (and the sagas', on the embedded profile, which runs them)."""
    container: Container | None = getattr(request.app.state, "container", None)
    if container is not None:
        await refresh_every_projection(container)
        if container.settings.profile is Profile.EMBEDDED:
            await _refresh_sagas(request, container)
    body, content_type = render_latest()
    return Response(content=body, media_type=content_type)


async def _refresh_sagas(request: Request, container: Container) -> None:
    """Refresh the saga gauges, within a bound: a census cut short carries on at the next
    scrape (the app keeps it, and it counts each event once)."""
    census = getattr(request.app.state, "saga_census", None)
    if census is None:
        census = request.app.state.saga_census = saga_census(container)
    try:
        async with asyncio.timeout(SCRAPE_REFRESH_SECONDS):
            await refresh_saga_gauges(container, census)
    except Exception as error:
        logger.warning("saga metrics not refreshed: %r", error)


class TelemetryMiddleware:
    """Pure ASGI (not `BaseHTTPMiddleware`): it adds no task between the server and the app,
    so context variables and the current span reach the route unchanged."""

    def __init__(self, app: ASGIApp, *, untraced_paths: frozenset[str] = UNTRACED_PATHS) -> None:
        self.app = app
        self.untraced_paths = untraced_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else _OTHER_METHOD
        status: int | None = None

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            with (
                request_scope(request_id_of(Request(scope)) or None),
                self._span(scope, method) as span,
            ):
                try:
                    await self.app(scope, receive, send_recording_status)
                finally:
                    # No answer started: the error escapes, and the middleware outside answers 500.
                    _record_outcome(span, method, route_template(scope), status or 500)
        finally:
            route = route_template(scope)
            HTTP_REQUESTS.labels(route, method, str(status or 500)).inc()
            HTTP_REQUEST_DURATION.labels(route, method).observe(time.perf_counter() - started)

    def _span(self, scope: Scope, method: str) -> AbstractContextManager[Span]:
        if scope["path"] in self.untraced_paths:
            return nullcontext(INVALID_SPAN)
        headers = Headers(scope=scope)
        # Named by the method alone until the router has chosen the route (the semantic
        # conventions' name for a request no route matched).
        return tracer.start_as_current_span(
            method,
            context=context_from_traceparent(headers.get("traceparent")),
            kind=SpanKind.SERVER,
            attributes=safe_attributes(
                {
                    "http.request.method": method,
                    "url.path": scope["path"],
                    "url.scheme": scope.get("scheme"),
                    "network.protocol.version": scope.get("http_version"),
                    "user_agent.original": headers.get("user-agent"),
                }
            ),
        )


def _record_outcome(span: Span, method: str, route: str, status: int) -> None:
    if route != UNMATCHED_ROUTE:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:  # a 4xx is the client's error, not the server span's (semantic conventions)
        span.set_status(Status(StatusCode.ERROR))


def route_template(scope: Scope) -> str:
    """The template of the route the router chose for this request (`/orders/{order_id}`; for
    a known path asked with another method, answered 405, that path's), read from the scope
    once the router has run; `UNMATCHED_ROUTE` when no route chose it (an unknown path, or a
    request refused before routing, such as a body over the limit)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE
