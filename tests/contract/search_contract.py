"""The contract every catalog search index honours (`SearchIndex`, on a `ReadModelSink`).

A sink's test class subclasses `SearchContract` and overrides the `sink` fixture to yield a fresh
sink (closed afterwards). The corpus is real: products and accounts made by the domain, their
events serialised as the store keeps them, and the writes the real `catalog_search` projection
makes of them applied to the sink in batches. Each test builds the corpus anew (it is pure and
fast), so tests may change it; expected answers are computed from the aggregates' final state.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from application.ports.event_store import RecordedEvent
from application.ports.read_model_sink import TargetName, Write
from application.read_models.search import (
    FacetCount,
    InvalidCursor,
    SearchHit,
    SearchPage,
    SearchQuery,
    Sort,
    encode_cursor,
    product_doc,
    search_catalog,
)
from application.serialization import EventSerializer
from domain.account import Account
from domain.money import Money
from domain.product import Product
from projections.catalog_search import CATALOG_SEARCH, timestamp

TENANT = "acme"
OTHER_TENANT = "globex"
SERIALIZER = EventSerializer()
BATCH = 25
"""Writes per `apply`: the corpus lands in several batches, as from a live worker."""

_ADJECTIVES = ["velvet", "neon", "quiet", "golden", "broken", "electric"]
_NOUNS = ["horizon", "garden", "engine", "river", "signal"]
_TAGS = ["ambient", "techno", "lofi", "vocals", "drums"]
_KINDS = ["track", "sample_pack", "licence", "other"]
_PRICES = [500, 1_000, 1_000, 1_500, 2_000, 999]


@dataclass
class Corpus:
    """The aggregates behind the index, and their events as the store would record them."""

    products: list[Product] = field(default_factory=list)
    sellers: dict[str, list[Account]] = field(default_factory=dict)
    records: list[RecordedEvent] = field(default_factory=list)
    tenants: dict[uuid.UUID, str] = field(default_factory=dict)
    title_hit: Product | None = None
    description_hit: Product | None = None

    def record(self, aggregate: Product | Account, tenant: str) -> list[RecordedEvent]:
        """Collect the aggregate's new events as recorded events at the next positions."""
        recorded: list[RecordedEvent] = []
        for event in aggregate.collect_events():
            new = SERIALIZER.to_new_event(event)
            assert new.event_id is not None
            recorded.append(
                RecordedEvent(
                    event_id=new.event_id,
                    stream_id=str(event.originator_id),
                    stream_version=event.originator_version,
                    position=len(self.records) + len(recorded) + 1,
                    type=new.type,
                    schema_version=new.schema_version,
                    tenant_id=tenant,
                    recorded_at=event.timestamp,
                    correlation_id=None,
                    causation_id=None,
                    traceparent=None,
                    payload=new.payload,
                )
            )
        self.records += recorded
        return recorded

    def seller(self, tenant: str, name: str) -> Account:
        account = Account.register(
            id=uuid.uuid4(),
            tenant_id=tenant,
            email=f"{name.lower()}@example.org",
            display_name=name,
            roles=["creator"],
            password_hash="argon2-hash",
        )
        self.record(account, tenant)
        self.sellers.setdefault(tenant, []).append(account)
        return account

    def product(
        self,
        tenant: str,
        seller: Account,
        *,
        title: str,
        description: str,
        tags: Sequence[str],
        kind: str,
        price: Money,
        publish: bool = True,
    ) -> Product:
        product = Product.create(
            id=uuid.uuid4(),
            tenant_id=tenant,
            creator_id=seller.id,
            title=title,
            description=description,
            tags=tags,
            kind=kind,
            price=price,
            stock=None,
        )
        if publish:
            product.publish()
        self.record(product, tenant)
        self.products.append(product)
        self.tenants[product.id] = tenant
        return product

    def sell(self, product: Product, quantity: int) -> None:
        order_id = uuid.uuid4()
        product.reserve(order_id, quantity)
        product.commit(order_id)
        self.record(product, self.tenants[product.id])

    def listed(self, tenant: str = TENANT) -> list[Product]:
        return [p for p in self.products if p.published and self.tenants[p.id] == tenant]


def build_corpus() -> Corpus:
    """36 products of one tenant over 3 sellers (4 unpublished, prices with ties, repriced,
    renamed and sold ones), 2 that share a rare word (one in its title, one in its description),
    and 3 products of another tenant that would match every query."""
    corpus = Corpus()
    sellers = [corpus.seller(TENANT, name) for name in ("Ada", "Bo", "Cy")]
    for i in range(36):
        product = corpus.product(
            TENANT,
            sellers[i % 3],
            title=f"{_ADJECTIVES[i % 6].title()} {_NOUNS[i % 5].title()} {i}",
            description=f"A {_TAGS[i % 5]} sound, take {i}. " + "Warm tape. " * (i % 4),
            tags=sorted({_TAGS[i % 5], _TAGS[(2 * i + 1) % 5]}),
            kind=_KINDS[i % 4],
            price=Money(_PRICES[i % 6], "USD" if i % 7 == 0 else "EUR"),
            publish=i % 9 != 4,
        )
        if i % 8 == 3:
            product.change_price(Money(1_000, product.price.currency))
        if i % 10 == 6:
            product.update_details(
                title=f"Renamed {_NOUNS[i % 5].title()} {i}",
                description=product.description,
                tags=[*product.tags, "remastered"],
            )
        corpus.record(product, TENANT)
        if i % 5 == 0 and product.published:
            for quantity in range(1, i % 4 + 2):
                corpus.sell(product, quantity)
    corpus.title_hit = corpus.product(
        TENANT,
        sellers[0],
        title="Midnight Drive",
        description="A synthwave track for late roads.",
        tags=["synthwave"],
        kind="track",
        price=Money(1_200, "EUR"),
    )
    corpus.description_hit = corpus.product(
        TENANT,
        sellers[1],
        title="Sunrise Loop",
        description="Recorded at midnight in one take.",
        tags=["synthwave"],
        kind="track",
        price=Money(1_200, "EUR"),
    )
    stranger = corpus.seller(OTHER_TENANT, "Zed")
    for n in range(3):
        corpus.product(
            OTHER_TENANT,
            stranger,
            title=f"Midnight Velvet Horizon {n}",
            description="A techno sound, warm tape, synthwave at midnight.",
            tags=["techno", "ambient", "synthwave"],
            kind="track",
            price=Money(1_000, "EUR"),
        )
    return corpus


def writes_of(records: Iterable[RecordedEvent]) -> list[Write]:
    return [write for record in records for write in CATALOG_SEARCH.writes(record, SERIALIZER)]


async def feed(sink: Any, projection: str, target: str, records: Sequence[RecordedEvent]) -> None:
    """Apply the projection's writes for `records`, in batches, checkpoint last."""
    writes = writes_of(records)
    for start in range(0, len(writes), BATCH):
        batch = writes[start : start + BATCH]
        await sink.apply(projection, target, batch, {"log": batch[-1].position})


# -- what a query should answer, computed from the aggregates -------------------------------

_WORD = re.compile(r"\w+")


def matches(product: Product, query: SearchQuery, tenants: dict[uuid.UUID, str]) -> bool:
    words = set(_WORD.findall(f"{product.title} {product.description}".lower()))
    price = product.price.amount
    return (
        product.published
        and tenants[product.id] == query.tenant_id
        and all(term in words for term in query.terms)
        and (not query.kinds or product.kind.value in query.kinds)
        and all(tag in product.tags for tag in query.tags)
        and (query.min_price is None or price >= query.min_price)
        and (query.max_price is None or price <= query.max_price)
        and (query.currency is None or product.price.currency == query.currency)
        and (query.seller_id is None or str(product.creator_id) == query.seller_id)
    )


def expected(corpus: Corpus, query: SearchQuery) -> list[str]:
    """The ids the query should return, in order (by id for `relevance`: see the tests)."""
    found = [p for p in corpus.products if matches(p, query, corpus.tenants)]

    def doc_id(product: Product) -> str:
        return product_doc(corpus.tenants[product.id], str(product.id))

    sort = query.effective_sort
    found.sort(key=doc_id)
    if sort is Sort.PRICE_ASC:
        found.sort(key=lambda p: p.price.amount)
    elif sort is Sort.PRICE_DESC:
        found.sort(key=lambda p: -p.price.amount)
    elif sort is Sort.NEWEST:
        found.sort(key=lambda p: timestamp(p.created_on), reverse=True)
    elif sort is Sort.BEST_SELLING:
        found.sort(key=lambda p: -p.sold)
    return [str(p.id) for p in found]


def ids(page: SearchPage) -> list[str]:
    return [hit.id for hit in page.hits]


def query(**options: Any) -> SearchQuery:
    return SearchQuery(tenant_id=options.pop("tenant_id", TENANT), **options)


FILTERS: list[dict[str, Any]] = [
    {},
    {"kinds": ("track",)},
    {"kinds": ("sample_pack", "licence")},
    {"tags": ("techno",)},
    {"tags": ("Techno ", "VOCALS")},  # normalised as products' tags are
    {"tags": ("remastered",)},
    {"min_price": 1_000},
    {"max_price": 999},
    {"min_price": 999, "max_price": 1_000},
    {"currency": "USD"},
    {"kinds": ("track",), "tags": ("ambient",), "max_price": 1_500, "currency": "EUR"},
    {"text": "warm tape"},
    {"text": "sound", "kinds": ("other",)},
    {"text": "no-such-word"},
]


@dataclass
class Indexed:
    """The corpus fed to a live target of the sink."""

    sink: Any
    projection: str
    target: str
    corpus: Corpus

    async def feed(self, records: Sequence[RecordedEvent]) -> None:
        await feed(self.sink, self.projection, self.target, records)

    async def search(self, **options: Any) -> SearchPage:
        page: SearchPage = await search_catalog(
            self.sink, self.projection, self.target, query(**options)
        )
        return page

    async def all_pages(self, size: int, **options: Any) -> list[SearchPage]:
        pages = [await self.search(limit=size, **options)]
        while pages[-1].next_cursor is not None:
            pages.append(await self.search(limit=size, cursor=pages[-1].next_cursor, **options))
            assert len(pages) < 100, "the cursor does not advance"
        return pages


class SearchContract:
    @pytest.fixture
    async def sink(self) -> AsyncIterator[Any]:
        """A fresh sink implementing `ReadModelSink` and `SearchIndex`: override it."""
        raise NotImplementedError("override the sink fixture in the sink's test class")
        yield  # pragma: no cover

    @pytest.fixture
    async def indexed(self, sink: Any) -> Indexed:
        projection = f"search{uuid.uuid4().hex[:10]}"
        target = str(TargetName(projection, 1, 1))
        await sink.create_target(projection, target)
        await sink.promote(projection, target)
        corpus = build_corpus()
        await feed(sink, projection, target, corpus.records)
        return Indexed(sink, projection, target, corpus)

    # -- text and relevance ---------------------------------------------------------------------

    async def test_a_title_hit_ranks_above_a_description_hit(self, indexed: Indexed) -> None:
        corpus = indexed.corpus
        assert corpus.title_hit is not None and corpus.description_hit is not None

        page = await indexed.search(text="MIDNIGHT")

        assert ids(page) == [str(corpus.title_hit.id), str(corpus.description_hit.id)]
        assert page.total == 2

    async def test_every_word_must_appear_in_the_title_or_the_description(
        self, indexed: Indexed
    ) -> None:
        corpus = indexed.corpus
        assert corpus.title_hit is not None

        page = await indexed.search(text="midnight, synthwave!")

        assert ids(page) == [str(corpus.title_hit.id)]

    async def test_relevance_without_words_orders_by_newest(self, indexed: Indexed) -> None:
        for text in ("", "  ?! "):
            page = await indexed.search(text=text, limit=100)
            assert ids(page) == expected(indexed.corpus, query(sort=Sort.NEWEST))

    # -- filters, sorts, facets -----------------------------------------------------------------

    @pytest.mark.parametrize("options", FILTERS, ids=repr)
    async def test_each_filter_returns_exactly_the_matching_products(
        self, indexed: Indexed, options: dict[str, Any]
    ) -> None:
        wanted = expected(indexed.corpus, query(**options))

        page = await indexed.search(limit=100, **options)

        assert sorted(ids(page)) == sorted(wanted)
        assert page.total == len(wanted)
        if "text" not in options:
            assert len(wanted) > 0, "a filter that matches nothing proves little"

    async def test_the_seller_filter_and_the_seller_s_display_name(self, indexed: Indexed) -> None:
        bo = indexed.corpus.sellers[TENANT][1]

        page = await indexed.search(seller_id=str(bo.id), limit=100)

        assert sorted(ids(page)) == sorted(expected(indexed.corpus, query(seller_id=str(bo.id))))
        assert {(hit.seller_id, hit.seller_display_name) for hit in page.hits} == {
            (str(bo.id), "Bo")
        }

    @pytest.mark.parametrize("sort", [s for s in Sort if s is not Sort.RELEVANCE])
    async def test_each_sort_orders_by_its_value_then_by_id(
        self, indexed: Indexed, sort: Sort
    ) -> None:
        page = await indexed.search(sort=sort, limit=100)

        assert ids(page) == expected(indexed.corpus, query(sort=sort))

    async def test_sorts_apply_to_the_filtered_result(self, indexed: Indexed) -> None:
        options: dict[str, Any] = {"text": "sound", "currency": "EUR", "sort": Sort.PRICE_DESC}

        page = await indexed.search(limit=100, **options)

        assert ids(page) == expected(indexed.corpus, query(**options))

    @pytest.mark.parametrize(
        "options", [{}, {"tags": ("techno",)}, {"text": "sound", "max_price": 1_000}], ids=repr
    )
    async def test_facets_count_kinds_and_tags_over_the_whole_filtered_result(
        self, indexed: Indexed, options: dict[str, Any]
    ) -> None:
        found = [
            p
            for p in indexed.corpus.products
            if str(p.id) in expected(indexed.corpus, query(**options))
        ]
        kinds = Counter(p.kind.value for p in found)
        tags = Counter(tag for p in found for tag in p.tags)

        page = await indexed.search(limit=1, **options)

        assert page.facets.kinds == _ranked(kinds)
        assert page.facets.tags == _ranked(tags)
        assert len(page.hits) == 1

    async def test_a_hit_carries_what_the_product_page_shows(self, indexed: Indexed) -> None:
        sold = next(p for p in indexed.corpus.listed() if p.sold > 1)

        page = await indexed.search(sort=Sort.BEST_SELLING, limit=100)

        (hit,) = [h for h in page.hits if h.id == str(sold.id)]
        seller = next(s for s in indexed.corpus.sellers[TENANT] if s.id == sold.creator_id)
        assert hit == SearchHit(
            id=str(sold.id),
            title=sold.title,
            description=sold.description,
            tags=sold.tags,
            kind=sold.kind.value,
            price=sold.price,
            seller_id=str(seller.id),
            sales_count=sold.sold,
            created_at=sold.created_on,
            seller_display_name=seller.display_name,
        )

    # -- pagination -----------------------------------------------------------------------------

    @pytest.mark.parametrize("size", [3, 7])
    @pytest.mark.parametrize(
        "options",
        [
            {"text": "sound"},
            {"sort": Sort.PRICE_ASC},
            {"sort": Sort.PRICE_DESC, "text": "sound"},
            {"sort": Sort.NEWEST},
            {"sort": Sort.BEST_SELLING},
            {"sort": Sort.PRICE_ASC, "tags": ("techno",)},
        ],
        ids=repr,
    )
    async def test_pages_follow_one_another_without_duplicates_or_gaps(
        self, indexed: Indexed, size: int, options: dict[str, Any]
    ) -> None:
        everything = await indexed.search(limit=100, **options)
        assert len(everything.hits) > size, "the corpus should span several pages"

        pages = await indexed.all_pages(size, **options)

        assert [hit_id for page in pages for hit_id in ids(page)] == ids(everything)
        assert all(len(page.hits) == size for page in pages[:-1])
        assert 1 <= len(pages[-1].hits) <= size
        assert {page.total for page in pages} == {everything.total}

    async def test_a_page_that_ends_exactly_at_the_last_hit_has_no_next_cursor(
        self, indexed: Indexed
    ) -> None:
        total = (await indexed.search()).total

        page = await indexed.search(limit=total, sort=Sort.PRICE_ASC)

        assert len(page.hits) == total and page.next_cursor is None

    async def test_a_cursor_that_was_not_handed_out_is_refused(self, indexed: Indexed) -> None:
        first = await indexed.search(limit=2, sort=Sort.PRICE_ASC)
        assert first.next_cursor is not None
        refused = [
            ("not base64 at all ~~~", Sort.PRICE_ASC),
            ("bm90IGpzb24", Sort.PRICE_ASC),  # base64 of "not json"
            (first.next_cursor, Sort.NEWEST),  # another sort's cursor
            (encode_cursor(Sort.PRICE_ASC, ("1000", "x")), Sort.PRICE_ASC),  # a text price
            (encode_cursor(Sort.PRICE_ASC, (True, "x")), Sort.PRICE_ASC),
        ]
        for cursor, sort in refused:
            with pytest.raises(InvalidCursor):
                await indexed.search(sort=sort, cursor=cursor)

    async def test_a_cursor_with_a_sort_value_no_store_holds_is_refused(
        self, indexed: Indexed
    ) -> None:
        # Well-formed, but beyond what a sort hands out: beyond 64 bits, before 1970 (the
        # nanoseconds of a time), not a finite number.
        refused = [
            (Sort.PRICE_ASC, 2**63),
            (Sort.PRICE_DESC, -(2**63) - 1),
            (Sort.BEST_SELLING, 2**70),
            (Sort.NEWEST, -1),
            (Sort.NEWEST, 2**64),
            (Sort.RELEVANCE, float("nan")),
            (Sort.RELEVANCE, float("inf")),
            (Sort.RELEVANCE, 2**64),
        ]
        taken = []
        for sort, value in refused:
            cursor = encode_cursor(sort, (value, str(uuid.uuid4())))
            try:
                await indexed.search(sort=sort, text="sound", cursor=cursor)
            except InvalidCursor:
                continue
            taken.append((sort, value))
        assert taken == []

    # -- what never shows -----------------------------------------------------------------------

    async def test_unpublished_products_never_show(self, indexed: Indexed) -> None:
        hidden = {str(p.id) for p in indexed.corpus.products if not p.published}
        assert len(hidden) >= 3

        every: list[dict[str, Any]] = [
            {},
            {"text": "sound"},
            {"sort": Sort.PRICE_ASC},
            {"sort": Sort.NEWEST},
        ]
        for options in every:
            pages = await indexed.all_pages(7, **options)
            shown = {hit_id for page in pages for hit_id in ids(page)}
            assert shown and not shown & hidden

    async def test_a_product_unpublished_later_vanishes_and_comes_back_when_republished(
        self, indexed: Indexed
    ) -> None:
        corpus = indexed.corpus
        product = corpus.title_hit
        assert product is not None
        before = await indexed.search(tags=("synthwave",))

        product.unpublish()
        await indexed.feed(corpus.record(product, TENANT))
        gone = await indexed.search(tags=("synthwave",))
        product.publish()
        await indexed.feed(corpus.record(product, TENANT))
        back = await indexed.search(tags=("synthwave",))

        assert str(product.id) in ids(before) and before.total == 2
        assert str(product.id) not in ids(gone) and gone.total == 1
        assert FacetCount("synthwave", 1) in gone.facets.tags
        assert sorted(ids(back)) == sorted(ids(before))

    async def test_a_tenant_sees_only_its_own_products(self, indexed: Indexed) -> None:
        mine = await indexed.search(text="midnight", limit=100)
        theirs = await indexed.search(tenant_id=OTHER_TENANT, text="midnight", limit=100)
        everything_theirs = await indexed.search(tenant_id=OTHER_TENANT, limit=100)

        corpus = indexed.corpus
        assert sorted(ids(mine)) == sorted(expected(corpus, query(text="midnight")))
        assert sorted(ids(theirs)) == sorted(
            expected(corpus, query(tenant_id=OTHER_TENANT, text="midnight"))
        )
        assert len(theirs.hits) == 3 and not set(ids(mine)) & set(ids(theirs))
        assert everything_theirs.facets.kinds == (FacetCount("track", 3),)
        assert {hit.seller_display_name for hit in everything_theirs.hits} == {"Zed"}

    async def test_a_price_change_moves_a_product_in_the_price_order(
        self, indexed: Indexed
    ) -> None:
        corpus = indexed.corpus
        cheapest = min(corpus.listed(), key=lambda p: (p.price.amount, str(p.id)))
        cheapest.change_price(Money(50_000, cheapest.price.currency))
        await feed(
            indexed.sink, indexed.projection, indexed.target, corpus.record(cheapest, TENANT)
        )

        page = await indexed.search(sort=Sort.PRICE_DESC, limit=1)

        assert ids(page) == [str(cheapest.id)]
        assert page.hits[0].price == Money(50_000, cheapest.price.currency)


def _ranked(counts: Counter[str]) -> tuple[FacetCount, ...]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(FacetCount(value, count) for value, count in ordered)
