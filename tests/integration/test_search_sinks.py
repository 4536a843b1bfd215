"""The search sinks against their contracts: Elasticsearch and its SQLite FTS5 twin, each as a
document sink (`DocumentSinkContract`) and as a search index (`SearchContract`); then what only
one of them has."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from application.ports.event_store import NO_STREAM, EventMetadata, NewEvent
from application.ports.read_model_sink import EMBEDDED_PARTITION, Entry, ReadModelSink
from application.read_models.search import SearchPage, SearchQuery, Sort, search_catalog
from application.serialization import EventSerializer
from infrastructure.eventstore.sqlite import SqliteEventStore
from infrastructure.projections.dead_letters_sqlite import SqliteDeadLetterStore
from infrastructure.read_models.elasticsearch_search import (
    MAPPING_VERSION,
    STATE_ID,
    ElasticsearchSearchSink,
)
from infrastructure.read_models.sqlite_search import SqliteSearchSink
from projections.applier import ProjectionApplier
from projections.catalog_search import CATALOG_SEARCH
from projections.rebuild import RebuildOptions, rebuild
from projections.verify import verify
from tests.contract.read_model_sink_contract import (
    DocumentSinkContract,
    DocumentStoreContract,
    created,
    live,
    new_projection,
    random_writes,
    redelivered,
    reference_of,
    set_fields,
)
from tests.contract.search_contract import SearchContract, build_corpus, feed

pytestmark = pytest.mark.integration

ELASTICSEARCH_URL = os.environ.get("MERCATO_ELASTICSEARCH_URL", "http://127.0.0.1:9200")


@pytest.fixture
def index_prefix(elasticsearch_index_prefix: str) -> str:
    """An index prefix of this test alone (the run's indexes are deleted when it ends)."""
    return f"{elasticsearch_index_prefix}{uuid.uuid4().hex[:8]}-"


@pytest.fixture
async def es_sink(index_prefix: str) -> AsyncIterator[ElasticsearchSearchSink]:
    sink = await ElasticsearchSearchSink.connect(ELASTICSEARCH_URL, index_prefix=index_prefix)
    yield sink
    await sink.close()


@pytest.fixture
async def es() -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(ELASTICSEARCH_URL)
    yield client
    await client.close()


class TestElasticsearchSearchSink(DocumentSinkContract, SearchContract):
    @pytest.fixture
    async def sink(self, es_sink: ElasticsearchSearchSink) -> AsyncIterator[ReadModelSink]:
        yield es_sink


class TestSqliteSearchSink(DocumentStoreContract, SearchContract):
    @pytest.fixture
    async def sink(self, tmp_path: Path) -> AsyncIterator[ReadModelSink]:
        sink = await SqliteSearchSink.open(tmp_path / "search.sqlite3")
        yield sink
        await sink.close()


@pytest.fixture(params=["elasticsearch", "sqlite"])
async def search_sink(
    request: pytest.FixtureRequest, index_prefix: str, tmp_path: Path
) -> AsyncIterator[Any]:
    if request.param == "elasticsearch":
        sink: Any = await ElasticsearchSearchSink.connect(
            ELASTICSEARCH_URL, index_prefix=index_prefix
        )
    else:
        sink = await SqliteSearchSink.open(tmp_path / "search.sqlite3")
    yield sink
    await sink.close()


async def test_a_blue_green_rebuild_verifies_clean_and_answers_as_before(
    search_sink: Any, tmp_path: Path
) -> None:
    corpus = build_corpus()
    store = await SqliteEventStore.open(tmp_path / "events.sqlite3")
    dead_letters = await SqliteDeadLetterStore.open(tmp_path / "dead_letters.sqlite3")
    try:
        for record in corpus.records:
            new = NewEvent(record.type, record.payload, record.schema_version, record.event_id)
            expected = record.stream_version - 1 or NO_STREAM
            metadata = EventMetadata(tenant_id=record.tenant_id)
            await store.append(record.stream_id, [new], expected, metadata=metadata)
        applier = ProjectionApplier(CATALOG_SEARCH, search_sink, dead_letters, EventSerializer())
        options = RebuildOptions(batch_size=40, grace=0, drop_after=0)
        by_price = SearchQuery("acme", sort=Sort.PRICE_ASC, limit=7)
        by_text = SearchQuery("acme", "sound", limit=100)

        async def answers(target: str) -> tuple[SearchPage, SearchPage]:
            name = CATALOG_SEARCH.name
            return (
                await search_catalog(search_sink, name, target, by_price),
                await search_catalog(search_sink, name, target, by_text),
            )

        first = await rebuild(applier, store, options)
        before = await answers(first.target)
        second = await rebuild(applier, store, options)
        after = await answers(second.target)
        report = await verify(applier, store, [EMBEDDED_PARTITION], wait=5)

        assert report.clean and report.compared > 0, report.differences
        assert second.previous == first.target and second.dropped_previous
        assert await search_sink.targets(CATALOG_SEARCH.name) == [second.target]
        assert after[0] == before[0]
        # Scores may shift with the index's statistics (deleted versions): the hits may not.
        assert sorted(h.id for h in after[1].hits) == sorted(h.id for h in before[1].hits)
        assert after[1].total == before[1].total and after[1].facets == before[1].facets
    finally:
        await dead_letters.close()
        await store.close()


# -- Elasticsearch only --------------------------------------------------------------------


async def test_the_live_alias_follows_promote_and_the_index_carries_its_mapping_version(
    es_sink: ElasticsearchSearchSink, es: AsyncElasticsearch, index_prefix: str
) -> None:
    projection = new_projection()
    first = await live(es_sink, projection, 1)
    await es_sink.apply(projection, first, [set_fields("d", 1, v="first")], {"p0": 1})
    second = await created(es_sink, projection, 2)
    await es_sink.apply(projection, second, [set_fields("d", 2, v="second")], {"p0": 2})
    alias = f"{index_prefix}{projection}"

    before = await es.get(index=alias, id="d")
    await es_sink.promote(projection, second)
    after = await es.get(index=alias, id="d")
    mapping = await es.indices.get_mapping(index=f"{alias}.{second}")

    assert before["_source"]["document"]["fields"] == {"v": "first"}
    assert after["_source"]["document"]["fields"] == {"v": "second"}
    assert after["_index"] == f"{alias}.{second}"
    (only,) = mapping.body.values()
    assert only["mappings"]["_meta"] == {"mapping_version": MAPPING_VERSION}
    assert only["mappings"]["dynamic"] == "false"


async def test_a_target_s_state_lives_in_its_index_and_goes_with_it(
    es_sink: ElasticsearchSearchSink, es: AsyncElasticsearch, index_prefix: str
) -> None:
    projection = new_projection()
    await live(es_sink, projection, 1)
    second = await created(es_sink, projection, 2)
    await es_sink.apply(projection, second, [set_fields("d", 3, v=1)], {"p0": 3})
    index = f"{index_prefix}{projection}.{second}"

    state = await es.get(index=index, id=STATE_ID)
    await es_sink.drop_target(projection, second)

    assert state["_source"]["state"] == {"base": 0, "complete": False, "partitions": {"p0": 3}}
    assert not (await es.indices.exists(index=index))
    with pytest.raises(ValueError, match="state document"):
        await es_sink.apply(projection, second, [set_fields(STATE_ID, 4, v=1)], {})


async def test_concurrent_writers_of_one_document_converge(index_prefix: str) -> None:
    """Two sinks (two workers, or a rebuild beside a live worker) merge into the same documents
    at once: a write that loses the race is merged again, never lost."""
    sinks = [
        await ElasticsearchSearchSink.connect(ELASTICSEARCH_URL, index_prefix=index_prefix)
        for _ in range(2)
    ]
    try:
        projection = new_projection()
        target = await created(sinks[0], projection)
        rng = random.Random(11)
        writes = random_writes(rng, 120)
        batches = redelivered(rng, writes)

        async def run(sink: ElasticsearchSearchSink, share: list[Any]) -> None:
            for batch in share:
                await sink.apply(projection, target, batch, {})

        await asyncio.gather(run(sinks[0], batches[0::2]), run(sinks[1], batches[1::2]))

        reference = await reference_of(writes, {})
        assert await sinks[0].entries(projection, target) == await reference.entries(
            "reference", "reference_v1_1"
        )
    finally:
        for sink in sinks:
            await sink.close()


async def test_names_elasticsearch_cannot_hold_are_refused(
    es_sink: ElasticsearchSearchSink,
) -> None:
    with pytest.raises(ValueError, match="projection"):
        await es_sink.create_target("Catalog", "catalog_v1_1")
    with pytest.raises(ValueError, match="target"):
        await es_sink.create_target("catalog", "Catalog_v1_1")


# -- SQLite only ---------------------------------------------------------------------------


async def test_sqlite_search_outlives_the_sink_and_a_dropped_target_leaves_no_search_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "search.sqlite3"
    projection = new_projection()
    corpus = build_corpus()
    sink = await SqliteSearchSink.open(path)
    first = await live(sink, projection, 1)
    await feed(sink, projection, first, corpus.records)
    second = await created(sink, projection, 2)
    await feed(sink, projection, second, corpus.records)
    await sink.drop_target(projection, second)
    await sink.close()

    reopened = await SqliteSearchSink.open(path)
    try:
        page = await reopened.search(projection, first, SearchQuery("acme", "midnight"))
        with closing(sqlite3.connect(path)) as db:
            rows = db.execute("SELECT DISTINCT target FROM search_products").fetchall()
        assert page.total == 2
        assert rows == [(first,)]
        assert (await reopened.entries(projection, first))[
            (f"acme:seller:{corpus.sellers['acme'][0].id}", "field", "display_name")
        ] == Entry("Ada", 1)
    finally:
        await reopened.close()
