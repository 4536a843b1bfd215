"""The benchmark seed, loaded into a real Postgres event store: the store reads it back in
order, and every projection rebuilds from it without a dead letter."""

from __future__ import annotations

from collections import Counter

import pytest

from application.read_models.memory_sink import InMemorySink
from application.serialization import EventSerializer
from infrastructure.eventstore.postgres import PostgresEventStore
from infrastructure.projections.dead_letters_postgres import PostgresDeadLetterStore
from mercato_bench.seed import SeedSpec, seed_event_store
from projections.applier import ProjectionApplier
from projections.catalog import core_projections
from projections.rebuild import RebuildOptions, rebuild

pytestmark = pytest.mark.integration


async def test_a_seeded_store_reads_back_and_rebuilds_every_projection(
    fresh_postgres_dsn: str,
) -> None:
    spec = SeedSpec(events=2000, seed=3, chunk_events=700)
    seeded = await seed_event_store(fresh_postgres_dsn, spec)
    assert seeded.chunks >= 3
    assert seeded.events == seeded.marketplace.events > 1500

    store = await PostgresEventStore.connect(fresh_postgres_dsn, min_size=1, max_size=2)
    dead_letters = await PostgresDeadLetterStore.connect(fresh_postgres_dsn)
    try:
        events = await store.read_all(0, 10_000)
        assert len(events) == seeded.events
        assert await store.count_between(0, await store.head_position()) == seeded.events
        positions = [event.position for event in events]
        assert positions == sorted(positions)
        versions: Counter[str] = Counter()
        for event in events:
            versions[event.stream_id] += 1
            assert event.stream_version == versions[event.stream_id]

        serializer = EventSerializer()
        options = RebuildOptions(batch_size=500, grace=0.0, drop_after=0.0)
        for projection in core_projections():
            sink = InMemorySink()
            applier = ProjectionApplier(projection, sink, dead_letters, serializer)
            outcome = await rebuild(applier, store, options)
            assert outcome.events > 0, projection.name
            assert await dead_letters.parked(projection.name) == [], projection.name
            assert (await sink.routing(projection.name)).live == outcome.target
    finally:
        await dead_letters.close()
        await store.close()
