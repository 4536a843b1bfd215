"""An import string for multi-worker uvicorn: `interfaces.http.asgi:app`.

Each worker process builds its own app from the environment and installs its own tracer provider
(the SDK exports what is queued when the process exits); nothing connects until the lifespan.
"""

from __future__ import annotations

from infrastructure.settings import load_settings
from infrastructure.telemetry.tracing import configure_tracing
from interfaces.http.app import create_app

configure_tracing("mercato-api")
app = create_app(load_settings())
