"""The catalog search handlers, pure: real domain events, serialised as the store keeps them,
turned into writes and applied to the in-memory reference sink."""

from __future__ import annotations

import random
import uuid

import pytest

from application.ports.read_model_sink import Write
from application.read_models.documents import Document
from application.read_models.memory_sink import InMemorySink
from application.read_models.search import product_doc, seller_doc
from domain.money import Money
from projections.catalog_search import CATALOG_SEARCH, timestamp
from tests.contract.search_contract import TENANT, Corpus, build_corpus, writes_of

pytestmark = pytest.mark.unit

PROJECTION, TARGET = "catalog_search", "catalog_search_v1_1"


async def projected(batches: list[list[Write]]) -> InMemorySink:
    sink = InMemorySink()
    await sink.create_target(PROJECTION, TARGET)
    for batch in batches:
        await sink.apply(PROJECTION, TARGET, batch, {})
    return sink


def document(sink: InMemorySink, doc_id: str) -> Document:
    found = sink.document(PROJECTION, TARGET, doc_id)
    assert found is not None, doc_id
    return found


async def test_a_product_document_holds_what_search_shows() -> None:
    corpus = Corpus()
    ada = corpus.seller(TENANT, "Ada")
    product = corpus.product(
        TENANT,
        ada,
        title="Night Drive",
        description="A synthwave track",
        tags=["Synthwave", "retro"],
        kind="track",
        price=Money(1_500, "EUR"),
    )
    product.change_price(Money(1_200, "EUR"))
    corpus.record(product, TENANT)
    corpus.sell(product, 2)

    sink = await projected([writes_of(corpus.records)])

    fields = document(sink, product_doc(TENANT, str(product.id))).fields
    assert fields == {
        "id": str(product.id),
        "tenant": TENANT,
        "seller_id": str(ada.id),
        "title": "Night Drive",
        "description": "A synthwave track",
        "tags": ["synthwave", "retro"],
        "kind": "track",
        "price": {"amount": 1_200, "currency": "EUR"},
        "created_at": timestamp(product.created_on),
        "updated_at": fields["updated_at"],
        "published": True,
        "sales_count": 2,
    }
    assert fields["updated_at"] > fields["created_at"]


async def test_a_seller_document_holds_the_display_name_and_never_the_email() -> None:
    corpus = Corpus()
    ada = corpus.seller(TENANT, "Ada")

    sink = await projected([writes_of(corpus.records)])

    stored = document(sink, seller_doc(TENANT, str(ada.id)))
    assert stored.fields == {"display_name": "Ada"}
    assert "@" not in str(stored.to_json())


async def test_each_order_counts_once_in_sales_however_often_it_is_delivered() -> None:
    corpus = Corpus()
    product = corpus.product(
        TENANT,
        corpus.seller(TENANT, "Ada"),
        title="Pack",
        description="",
        tags=[],
        kind="sample_pack",
        price=Money(500, "EUR"),
    )
    for quantity in (1, 3):
        corpus.sell(product, quantity)
    writes = writes_of(corpus.records)

    sink = await projected([writes, writes, writes[-1:]])

    assert document(sink, product_doc(TENANT, str(product.id))).fields["sales_count"] == 4


async def test_unpublishing_clears_the_published_flag() -> None:
    corpus = Corpus()
    product = corpus.product(
        TENANT,
        corpus.seller(TENANT, "Ada"),
        title="Pack",
        description="",
        tags=[],
        kind="other",
        price=Money(500, "EUR"),
    )
    product.unpublish()
    corpus.record(product, TENANT)

    sink = await projected([writes_of(corpus.records)])

    assert document(sink, product_doc(TENANT, str(product.id))).fields["published"] is False


def test_only_product_and_account_events_it_names_are_handled() -> None:
    corpus = Corpus()
    product = corpus.product(
        TENANT,
        corpus.seller(TENANT, "Ada"),
        title="Pack",
        description="",
        tags=[],
        kind="other",
        price=Money(500, "EUR"),
    )
    product.reserve(uuid.uuid4(), 1)
    (reserved,) = corpus.record(product, TENANT)

    assert not CATALOG_SEARCH.handles(reserved)
    assert writes_of([reserved]) == []
    assert CATALOG_SEARCH.sink == "search"


@pytest.mark.parametrize("seed", [1, 2])
async def test_any_order_with_redelivery_gives_the_state_of_the_log_applied_once(
    seed: int,
) -> None:
    rng = random.Random(seed)
    writes = writes_of(build_corpus().records)
    shuffled = [*writes, *rng.sample(writes, len(writes) // 3)]
    rng.shuffle(shuffled)

    in_order = await projected([writes])
    scrambled = await projected([shuffled[i : i + 7] for i in range(0, len(shuffled), 7)])

    assert await scrambled.entries(PROJECTION, TARGET) == await in_order.entries(PROJECTION, TARGET)
