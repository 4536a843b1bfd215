"""The projection runtime on the embedded profile: SQLite event store, the store's own
subscription as the feed, the SQLite document sink and SQLite dead letters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from application.ports.dead_letters import DeadLetterStore
from application.ports.event_store import EventStore
from application.ports.read_model_sink import ReadModelSink
from infrastructure.eventstore.sqlite import SqliteEventStore
from infrastructure.projections.dead_letters_sqlite import SqliteDeadLetterStore
from infrastructure.read_models.sqlite_documents import SqliteDocumentSink
from projections.definition import Projection
from projections.store_feed import StoreFeed, resume_position
from projections.targets import EMBEDDED, ensure_live_target
from projections.worker import ProjectionWorker
from tests.contract.projection_runtime_contract import ProjectionRuntimeContract, applier_for

pytestmark = pytest.mark.integration


class EmbeddedHarness:
    partitioning = EMBEDDED
    tenant = "t-embedded"

    def __init__(
        self, store: EventStore, sink: ReadModelSink, dead_letters: DeadLetterStore
    ) -> None:
        self.store = store
        self.sink = sink
        self.dead_letters = dead_letters

    @contextlib.asynccontextmanager
    async def live(self, projection: Projection, workers: int = 1) -> AsyncIterator[None]:
        target = await ensure_live_target(self.sink, projection)
        checkpoints = await self.sink.checkpoints(projection.name, target)
        feed = StoreFeed(self.store, from_position=resume_position(checkpoints))
        worker = ProjectionWorker(applier_for(self, projection), feed)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[EmbeddedHarness]:
    store = await SqliteEventStore.open(tmp_path / "events.sqlite3")
    sink = await SqliteDocumentSink.open(tmp_path / "views.sqlite3")
    dead_letters = await SqliteDeadLetterStore.open(tmp_path / "dead_letters.sqlite3")
    try:
        yield EmbeddedHarness(store, sink, dead_letters)
    finally:
        await dead_letters.close()
        await sink.close()
        await store.close()


class TestEmbeddedProjectionRuntime(ProjectionRuntimeContract):
    pass
