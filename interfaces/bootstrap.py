"""The composition root: the one place that turns settings into adapters.

Every entry point (HTTP app, CLI, workers, tests) calls `bootstrap(settings)` and gets a
`Container`; nothing connects at import time. `Container.start()` opens the adapters of the
profile and `close()` closes them, in reverse order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from application.ports.event_store import EventStore
from infrastructure import health
from infrastructure.settings import Profile, Settings

Closer = Callable[[], Awaitable[None]]


@dataclass
class Container:
    settings: Settings
    probes: list[health.Probe]
    _event_store: EventStore | None = None
    _closers: list[Closer] = field(default_factory=list)

    @property
    def event_store(self) -> EventStore:
        if self._event_store is None:
            raise RuntimeError("the container is not started: call `await container.start()`")
        return self._event_store

    async def start(self) -> None:
        self._event_store = await _open_event_store(self.settings)
        self._closers.append(self._event_store.close)

    async def close(self) -> None:
        while self._closers:
            await self._closers.pop()()
        self._event_store = None


def bootstrap(settings: Settings) -> Container:
    """Wire the adapters of `settings.profile`; opens nothing until `start()`."""
    return Container(settings=settings, probes=_probes(settings))


async def _open_event_store(settings: Settings) -> EventStore:
    if settings.profile is Profile.EMBEDDED:
        from infrastructure.eventstore.sqlite import SqliteEventStore

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return await SqliteEventStore.open(settings.data_dir / "events.sqlite3")
    from infrastructure.eventstore.postgres import PostgresEventStore

    return await PostgresEventStore.connect(
        settings.postgres_dsn,
        min_size=settings.postgres_pool_min,
        max_size=settings.postgres_pool_max,
    )


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
