"""The FastAPI application: built by `create_app`, wired by the composition root in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from infrastructure.settings import Settings
from interfaces.bootstrap import bootstrap
from interfaces.http import health_routes


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = bootstrap(settings)
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
    )
    app.include_router(health_routes.router)
    return app
