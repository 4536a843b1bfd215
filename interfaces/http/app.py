"""The FastAPI application: built by `create_app`, wired by the composition root in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from application.ports.clock import Clock
from infrastructure.settings import Settings
from interfaces.bootstrap import bootstrap
from interfaces.http import (
    account_routes,
    admin_routes,
    analytics_routes,
    auth_routes,
    dispute_routes,
    health_routes,
    me_routes,
    order_routes,
    payment_routes,
    product_routes,
    saga_routes,
    search_routes,
    seller_routes,
    telemetry,
    wallet_routes,
)
from interfaces.http.body_limit import BodySizeLimitMiddleware
from interfaces.http.errors import install_error_handlers
from interfaces.http.rate_limits import RequestRateLimitMiddleware
from interfaces.http.request_context import RequestContextMiddleware
from interfaces.http.strict_json import StrictJsonMiddleware


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = bootstrap(settings, clock=clock)
        await container.start()
        app.state.container = container
        try:
            yield
        finally:
            await container.close()

    app = FastAPI(
        title="Mercato",
        summary="Event-sourced commerce backend of a creator marketplace.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own spans would duplicate ours and record query strings (search text, emails)
        # as they are: `telemetry.TelemetryMiddleware` traces and meters every request instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    # The last added is the outermost: the request id covers every answer, the 413 included;
    # telemetry sees the request id, and counts the 413s and the unexpected errors (as 500s).
    # Inside the size limit, which bounds the body it reads whole.
    app.add_middleware(StrictJsonMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    # A flood is refused before any body is read; telemetry counts its 429s.
    app.add_middleware(RequestRateLimitMiddleware)
    app.add_middleware(telemetry.TelemetryMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_routes.router)
    app.include_router(auth_routes.router)
    app.include_router(account_routes.router)
    # Before the products router: `/products/{product_id}` would take `/products/search`.
    app.include_router(search_routes.router)
    app.include_router(product_routes.router)
    app.include_router(order_routes.router)
    app.include_router(dispute_routes.router)
    app.include_router(payment_routes.router)
    # `/wallets/me` is declared before `/wallets/{currency}` in its router, so it wins.
    app.include_router(wallet_routes.router)
    app.include_router(me_routes.router)
    app.include_router(seller_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(saga_routes.router)
    app.include_router(analytics_routes.router)
    app.include_router(telemetry.router)
    return app
