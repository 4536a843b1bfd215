"""An import string for multi-worker uvicorn: `interfaces.http.asgi:app`.

Each worker process builds its own app from the environment; nothing connects until the lifespan.
"""

from __future__ import annotations

from infrastructure.settings import load_settings
from interfaces.http.app import create_app

app = create_app(load_settings())
