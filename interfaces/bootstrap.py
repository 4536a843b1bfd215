"""The composition root: the one place that turns settings into adapters.

Every entry point (HTTP app, CLI, workers, tests) calls `bootstrap(settings)` and gets a
`Container`; nothing connects at import time, and `Container.start()` / `close()` bound the life
of every client it opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from infrastructure import health
from infrastructure.settings import Profile, Settings

Closer = Callable[[], Awaitable[None]]


@dataclass
class Container:
    settings: Settings
    probes: list[health.Probe]
    _closers: list[Closer] = field(default_factory=list)

    async def start(self) -> None:
        if self.settings.profile is Profile.EMBEDDED:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        while self._closers:
            await self._closers.pop()()


def bootstrap(settings: Settings) -> Container:
    """Wire the adapters of `settings.profile`; opens nothing until `start()`."""
    return Container(settings=settings, probes=_probes(settings))


def _probes(settings: Settings) -> list[health.Probe]:
    if settings.profile is Profile.EMBEDDED:
        return [health.data_dir_probe(settings.data_dir)]
    return [
        health.postgres_probe(settings.postgres_dsn),
        health.kafka_probe(settings.kafka_bootstrap),
        health.elasticsearch_probe(settings.elasticsearch_url),
        health.redis_probe(settings.redis_url),
        health.clickhouse_probe(settings.clickhouse_target),
    ]
