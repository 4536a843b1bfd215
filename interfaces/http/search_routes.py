"""Catalog search: `GET /products/search`, served by the `catalog_search` read model.

The search text is never logged nor put on a span (the telemetry middleware records the path
only, never the query string).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from application.integers import INT64_MAX
from application.read_models.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_TEXT_LENGTH,
    FacetCount,
    InvalidSearchQuery,
    SearchHit,
    SearchPage,
    SearchQuery,
    Sort,
    search_catalog,
)
from domain.product import MAX_TAGS, ProductKind
from interfaces.http.dependencies import CurrentActor
from interfaces.http.read_models import ReadModelsDep
from interfaces.http.schemas import error_responses
from interfaces.http.views import MoneyView
from projections.catalog_search import CATALOG_SEARCH

router = APIRouter(prefix="/products", tags=["products"])

MAX_PRICE = INT64_MAX
CURSOR_MAX_LENGTH = 1_000


class SellerView(BaseModel):
    id: UUID
    display_name: str | None = Field(description="None until the seller's account is indexed.")


class SearchHitView(BaseModel):
    id: UUID
    title: str
    description: str
    tags: list[str]
    kind: str
    price: MoneyView
    seller: SellerView
    sales_count: int
    created_at: datetime

    @classmethod
    def of(cls, hit: SearchHit) -> SearchHitView:
        return cls(
            id=UUID(hit.id),
            title=hit.title,
            description=hit.description,
            tags=list(hit.tags),
            kind=hit.kind,
            price=MoneyView.of(hit.price),
            seller=SellerView(id=UUID(hit.seller_id), display_name=hit.seller_display_name),
            sales_count=hit.sales_count,
            created_at=hit.created_at,
        )


class FacetCountView(BaseModel):
    value: str
    count: int


class FacetsView(BaseModel):
    kind: list[FacetCountView]
    tag: list[FacetCountView]


class SearchResults(BaseModel):
    hits: list[SearchHitView]
    total: int = Field(description="Products matching the query, over every page.")
    facets: FacetsView = Field(
        description="Counts by kind and by tag over every matching product, most frequent first."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same query) for the next page; null on the last."
    )

    @classmethod
    def of(cls, page: SearchPage) -> SearchResults:
        return cls(
            hits=[SearchHitView.of(hit) for hit in page.hits],
            total=page.total,
            facets=FacetsView(kind=_facets(page.facets.kinds), tag=_facets(page.facets.tags)),
            next_cursor=page.next_cursor,
        )


@router.get("/search", response_model=SearchResults, responses=error_responses(401, 503))
async def search_products(
    actor: CurrentActor,
    read_models: ReadModelsDep,
    q: Annotated[
        str,
        Query(
            max_length=MAX_TEXT_LENGTH,
            description="Words that must each appear in the title or the description; "
            "title matches rank higher. Empty: every product.",
        ),
    ] = "",
    kind: Annotated[
        list[ProductKind] | None,
        Query(
            max_length=len(ProductKind), description="Any of these kinds (repeat the parameter)."
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        Query(max_length=MAX_TAGS, description="Every one of these tags (repeatable)."),
    ] = None,
    min_price: Annotated[
        int | None, Query(ge=0, le=MAX_PRICE, description="In minor units, inclusive.")
    ] = None,
    max_price: Annotated[
        int | None, Query(ge=0, le=MAX_PRICE, description="In minor units, inclusive.")
    ] = None,
    currency: Annotated[
        str | None, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR.")
    ] = None,
    seller: Annotated[UUID | None, Query(description="The seller's account id.")] = None,
    sort: Annotated[
        Sort,
        Query(description="`relevance` orders by `newest` when `q` has no words."),
    ] = Sort.RELEVANCE,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=CURSOR_MAX_LENGTH, description="The `next_cursor` of the page before."),
    ] = None,
) -> SearchResults:
    """Published products of the caller's tenant by text, filters and sort, with facets."""
    try:
        query = SearchQuery(
            tenant_id=actor.tenant_id,
            text=q,
            kinds=tuple(kind or ()),
            tags=tuple(tag or ()),
            min_price=min_price,
            max_price=max_price,
            currency=currency,
            seller_id=None if seller is None else str(seller),
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
        live = await read_models.live(CATALOG_SEARCH.name)
        page = await search_catalog(live.sink, live.projection, live.target, query)
    except InvalidSearchQuery as error:
        raise _invalid(error) from None
    return SearchResults.of(page)


def _facets(counts: tuple[FacetCount, ...]) -> list[FacetCountView]:
    return [FacetCountView(value=c.value, count=c.count) for c in counts]


def _invalid(error: InvalidSearchQuery) -> RequestValidationError:
    """The refusal in FastAPI's shape, located at the query parameter (not the body)."""
    parameter = {"text": "q"}.get(error.field or "", error.field or "query")
    problem: dict[str, Any] = {
        "type": "invalid_search_query",
        "loc": ("query", parameter),
        "msg": str(error),
    }
    return RequestValidationError([problem])
