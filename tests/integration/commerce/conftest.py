"""Every commerce scenario runs on both profiles: SQLite files in tmp_path, and a fresh
Postgres database per test (the sagas follow the whole log, so they need it to themselves)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.commerce.support import Shop, open_shop


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(profile, where its stores live)."""
    if request.param == "postgres":
        return "postgres", request.getfixturevalue("fresh_postgres_dsn")
    return "sqlite", str(tmp_path)


@pytest.fixture
async def idle_shop(location: tuple[str, str]) -> AsyncIterator[Shop]:
    """A marketplace whose sagas do not run until the test starts a runner."""
    async with open_shop(*location) as shop:
        yield shop


@pytest.fixture
async def shop(idle_shop: Shop) -> AsyncIterator[Shop]:
    """A marketplace with one saga runner at work."""
    idle_shop.start_runner()
    yield idle_shop
