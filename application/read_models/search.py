"""The catalog search contract: one query, answered alike by Elasticsearch and its embedded twin
(SQLite FTS5).

The `catalog_search` projection keeps two kinds of documents in the `search` sink:

    <tenant>:product:<id>   id, tenant, seller_id, title, description, tags, kind,
                            price {amount, currency}, created_at, updated_at, published,
                            sales_count (a counter: one contribution per order)
    <tenant>:seller:<id>    display_name

A product document is *listed* — searchable — when `published` is true and its `Created` fields
are there (`created_at` is a string). Each sink derives what it filters and sorts on from the
listed documents (Elasticsearch: mapped fields beside the stored document; SQLite: a table kept by
triggers) and builds hits from the stored document with `hit_of`. A hit's seller display name is
not in the product document — a handler cannot look the seller up while it handles a product
event — so `search_catalog` reads the page's seller documents in one multi-get.

What a query means, on every sink:
- `text` is split into words (letters, digits, underscore; lower-cased); each word must appear in
  the title or the description. Relevance weighs a title hit three times a description hit.
  Without words, `relevance` orders by `newest`.
- Filters combine with AND: any of `kinds`; every one of `tags`; price between `min_price` and
  `max_price` (minor units, inclusive); `currency`; `seller_id`. Unlisted products never match.
- Every sort ends with the document id, so equal prices, sales or scores still give one order,
  and a cursor (the last hit's sort values, opaque to the client) resumes exactly after it: pages
  have no duplicates and no gaps.
- `total` and the facets (counts by kind and by tag, most frequent first, then by name) cover the
  whole filtered result, not just the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from application.integers import is_int64
from application.read_models.documents import Document
from domain.errors import InvariantViolation
from domain.money import Money, validate_currency
from domain.product import ProductKind, normalise_tags

MAX_TEXT_LENGTH = 200
MAX_TERMS = 20
"""Words of the text beyond this are ignored (a bound on the cost of one query)."""
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
FACET_SIZE = 50
"""Facet values returned per facet (the most frequent)."""
TITLE_WEIGHT = 3.0
DESCRIPTION_WEIGHT = 1.0

_WORD = re.compile(r"\w+")


def product_doc(tenant_id: str, product_id: str) -> str:
    return f"{tenant_id}:product:{product_id}"


def seller_doc(tenant_id: str, seller_id: str) -> str:
    return f"{tenant_id}:seller:{seller_id}"


class Sort(StrEnum):
    RELEVANCE = "relevance"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    NEWEST = "newest"
    BEST_SELLING = "best_selling"


class InvalidSearchQuery(InvariantViolation):
    """A search query that breaks a rule on its own (422); `field` names the parameter."""


class InvalidCursor(InvalidSearchQuery):
    """A cursor this index did not hand out for this sort (forged, truncated, or another sort's)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid cursor: {reason}", field="cursor")


@dataclass(frozen=True)
class SearchQuery:
    tenant_id: str
    text: str = ""
    kinds: tuple[str, ...] = ()
    """Any of these kinds (empty: every kind)."""
    tags: tuple[str, ...] = ()
    """All of these tags (normalised as products' tags are: trimmed, lower-cased)."""
    min_price: int | None = None
    max_price: int | None = None
    currency: str | None = None
    seller_id: str | None = None
    sort: Sort = Sort.RELEVANCE
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def __post_init__(self) -> None:
        if len(self.text) > MAX_TEXT_LENGTH:
            raise InvalidSearchQuery(
                f"the text is at most {MAX_TEXT_LENGTH} characters", field="text"
            )
        try:
            kinds = tuple(sorted({ProductKind(kind).value for kind in self.kinds}))
        except ValueError:
            known = ", ".join(ProductKind)
            raise InvalidSearchQuery(f"kinds are {known}", field="kind") from None
        try:
            tags = normalise_tags(self.tags)
        except InvariantViolation as error:
            raise InvalidSearchQuery(str(error), field="tag") from None
        if self.currency is not None:
            try:
                validate_currency(self.currency)
            except InvariantViolation as error:
                raise InvalidSearchQuery(str(error), field="currency") from None
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise InvalidSearchQuery(f"{name} is a whole number of minor units", field=name)
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise InvalidSearchQuery("min_price is above max_price", field="min_price")
        if type(self.limit) is not int or not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidSearchQuery(f"limit is from 1 to {MAX_LIMIT}", field="limit")
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "tags", tags)
        object.__setattr__(self, "sort", Sort(self.sort))

    @property
    def terms(self) -> tuple[str, ...]:
        """The words of the text, lower-cased, each once, in order (at most `MAX_TERMS`)."""
        unique = dict.fromkeys(word.lower() for word in _WORD.findall(self.text))
        return tuple(unique)[:MAX_TERMS]

    @property
    def effective_sort(self) -> Sort:
        """The sort applied: `relevance` without words to score is `newest`."""
        if self.sort is Sort.RELEVANCE and not self.terms:
            return Sort.NEWEST
        return self.sort


@dataclass(frozen=True)
class SearchHit:
    id: str
    title: str
    description: str
    tags: tuple[str, ...]
    kind: str
    price: Money
    seller_id: str
    sales_count: int
    created_at: datetime
    seller_display_name: str | None = None
    """Filled by `search_catalog` from the seller's document (None if there is none)."""


@dataclass(frozen=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True)
class Facets:
    kinds: tuple[FacetCount, ...] = ()
    tags: tuple[FacetCount, ...] = ()


@dataclass(frozen=True)
class SearchPage:
    hits: tuple[SearchHit, ...]
    total: int
    """Listed products matching the text and filters (on every page, not just this one)."""
    facets: Facets = field(default_factory=Facets)
    next_cursor: str | None = None
    """Pass it back (with the same query) for the next page; None on the last page."""


class SearchIndex(Protocol):
    """What the query side reads from the `search` sink (beside `ReadModelSink`)."""

    async def search(self, projection: str, target: str, query: SearchQuery) -> SearchPage:
        """One page of listed products (without seller display names: see `search_catalog`).
        Raises `InvalidCursor` for a cursor it did not hand out for this sort."""
        ...

    async def documents(
        self, projection: str, target: str, doc_ids: Sequence[str]
    ) -> list[Document | None]:
        """The documents in the order asked, None for each that does not exist."""
        ...


async def search_catalog(
    index: SearchIndex, projection: str, target: str, query: SearchQuery
) -> SearchPage:
    """A page of the search, each hit with its seller's display name."""
    page = await index.search(projection, target, query)
    sellers = list(dict.fromkeys(hit.seller_id for hit in page.hits))
    documents = await index.documents(
        projection, target, [seller_doc(query.tenant_id, s) for s in sellers]
    )
    names = {
        seller: _text(document.fields.get("display_name")) if document else None
        for seller, document in zip(sellers, documents, strict=True)
    }
    hits = tuple(replace(hit, seller_display_name=names[hit.seller_id]) for hit in page.hits)
    return replace(page, hits=hits)


def hit_of(document: Document) -> SearchHit:
    """A listed product document as a hit."""
    fields = document.fields
    price = fields.get("price") or {}
    return SearchHit(
        id=str(fields.get("id", "")),
        title=str(fields.get("title", "")),
        description=str(fields.get("description", "")),
        tags=tuple(str(tag) for tag in fields.get("tags") or ()),
        kind=str(fields.get("kind", "")),
        price=Money(int(price["amount"]), str(price["currency"])),
        seller_id=str(fields.get("seller_id", "")),
        sales_count=int(fields.get("sales_count", 0)),
        created_at=datetime.fromisoformat(str(fields["created_at"])),
    )


def facet_counts(pairs: Iterable[tuple[str, int]]) -> tuple[FacetCount, ...]:
    return tuple(FacetCount(value, count) for value, count in pairs)


# -- cursors ----------------------------------------------------------------------------------

SortKey = tuple[Any, str]
"""The last hit's sort value (a score, price, time or count) and its document id."""


def encode_cursor(sort: Sort, key: SortKey) -> str:
    text = json.dumps({"s": sort.value, "k": list(key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort, value_types: tuple[type, ...]) -> SortKey:
    """The sort key in `cursor`, checked to be one handed out for `sort` with a value of one
    of `value_types` (each sink knows the types of its own sort values)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeError, ValueError, binascii.Error):
        raise InvalidCursor("not a cursor") from None
    if not isinstance(data, dict) or data.get("s") != sort.value:
        raise InvalidCursor(f"not a cursor of the sort {sort.value}")
    key = data.get("k")
    if not (isinstance(key, list) and len(key) == 2 and isinstance(key[1], str)):
        raise InvalidCursor("malformed")
    value = key[0]
    if isinstance(value, bool) or not isinstance(value, value_types):
        raise InvalidCursor("malformed")
    # Only values a sort could have handed out: a store cannot compare an integer beyond 64
    # bits (the SQLite driver raises), nor a NaN (every comparison with it is false).
    if isinstance(value, int) and not is_int64(value):
        raise InvalidCursor("a sort value beyond 64 bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidCursor("a sort value that is not a finite number")
    return value, key[1]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
