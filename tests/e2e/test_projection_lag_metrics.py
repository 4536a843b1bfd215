"""The API's `/metrics` shows a projection's lag as it is at the scrape: it rises while the
projection's projector is stopped and returns to zero once a projector has caught up
(services profile: relay and projector run beside the app, as the workers would)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.kafka.relay import Relay
from infrastructure.settings import load_settings
from projections.worker import ProjectionWorker
from tests.e2e.http_support import (
    CHEAP_ARGON2,
    call,
    container_of,
    eventually,
    running,
    unique_topic_prefix,
)
from tests.projection_support import add_to_tally, append_tally_events

pytestmark = pytest.mark.e2e

PROJECTION = "tallies"
TENANT = "t-lag"


@pytest.fixture
def client(fresh_postgres_dsn: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        profile="services",
        data_dir=tmp_path,
        postgres_dsn=fresh_postgres_dsn,
        kafka_topic_prefix=unique_topic_prefix(),
        kafka_partitions=2,
        extra_projections=["tests.projection_support:tallies"],
        **CHEAP_ARGON2,
    )
    with running(settings) as client:
        yield client


@dataclass
class Pipeline:
    """The relay and the tallies projector, as tasks on the app's event loop."""

    client: TestClient
    tasks: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=dict)

    def start_relay(self) -> None:
        container = container_of(self.client)
        settings = container.settings
        relay = Relay(
            container.event_store,
            settings.postgres_dsn,
            settings.kafka_bootstrap,
            topic_prefix=settings.kafka_topic_prefix,
            partitions=settings.kafka_partitions,
            categories=container.projection(PROJECTION).categories,
        )
        self._start("relay", relay.run)

    def start_projector(self) -> None:
        container = container_of(self.client)
        projection = container.projection(PROJECTION)

        async def worker() -> ProjectionWorker:
            feed = await container.projector_feed(projection)
            return ProjectionWorker(await container.applier(projection), feed)

        self._start("projector", call(self.client, worker).run)

    def stop(self, name: str) -> None:
        stop, task = self.tasks.pop(name)

        async def finish() -> None:
            stop.set()
            await asyncio.wait_for(task, 30)

        call(self.client, finish)

    def _start(self, name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        async def start() -> tuple[asyncio.Event, asyncio.Task[None]]:
            stop = asyncio.Event()
            return stop, asyncio.create_task(run(stop))

        self.tasks[name] = call(self.client, start)


@pytest.fixture
def pipeline(client: TestClient) -> Iterator[Pipeline]:
    pipeline = Pipeline(client)
    try:
        yield pipeline
    finally:
        for name in list(pipeline.tasks):
            pipeline.stop(name)


def lag(client: TestClient) -> tuple[float, float]:
    """The tallies projection's lag in events and seconds, from a scrape of `/metrics`."""
    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.labels.get("projection") == PROJECTION:
                found[sample.name] = sample.value
    return found["mercato_projection_lag_events"], found["mercato_projection_lag_seconds"]


def caught_up(client: TestClient) -> bool | None:
    return lag(client) == (0.0, 0.0) or None


def test_lag_rises_while_the_projector_is_stopped_and_returns_to_zero_after_it_restarts(
    client: TestClient, pipeline: Pipeline
) -> None:
    store = container_of(client).event_store

    async def open_tallies() -> list[str]:
        return await append_tally_events(store, TENANT, streams=10, events_per_stream=3)

    async def add_to_each(streams: list[str], version: int) -> None:
        for stream in streams:
            await add_to_tally(store, TENANT, stream, version, 1)

    streams = call(client, open_tallies)
    pipeline.start_relay()
    pipeline.start_projector()
    eventually(lambda: caught_up(client), what="the projector caught up", timeout=60)

    pipeline.stop("projector")
    call(client, add_to_each, streams, 3)
    call(client, add_to_each, streams, 4)
    behind, first_age = lag(client)
    assert behind >= 2 * len(streams)
    assert first_age > 0
    eventually(lambda: lag(client)[1] > first_age or None, what="the lag in seconds grows")
    assert lag(client)[0] == behind  # nothing applied meanwhile

    pipeline.start_projector()
    eventually(lambda: caught_up(client), what="the restarted projector caught up", timeout=60)
