"""Analytics reports for admins: sales, top products and sellers, the order funnel, escrow holds.

Every report reads the live target of the `analytics_facts` projection, for the caller's tenant,
over [from, to) (ISO 8601 with a UTC offset); figures are defined in
`application.read_models.analytics`. `min_position` makes the report wait until it reflects a
command, as every query does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel

from application.context import Actor
from application.read_models.analytics import (
    MAX_LIMIT,
    AnalyticsQueryError,
    EscrowBucket,
    FunnelBucket,
    Granularity,
    ProductRevenue,
    ReportScope,
    SalesBucket,
    SellerRevenue,
)
from infrastructure.read_models.clickhouse_analytics import ClickHouseAnalytics
from interfaces.http.dependencies import AdminActor
from interfaces.http.read_models import ReadModelsDep
from interfaces.http.schemas import error_responses
from projections.analytics_facts import ANALYTICS_FACTS

router = APIRouter(prefix="/analytics", tags=["analytics"])

From = Annotated[
    AwareDatetime,
    Query(alias="from", description="Start of the period (included), with a UTC offset."),
]
To = Annotated[
    AwareDatetime, Query(alias="to", description="End of the period (excluded), with an offset.")
]
Seller = Annotated[UUID | None, Query(alias="seller", description="Only this seller's sales.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many to rank.")]
_BUCKETS = "hour, day or month (UTC)"
ERRORS = error_responses(401, 403, 503)


class Period(BaseModel):
    start: datetime
    end: datetime
    seller_id: str | None


class SalesReport(Period):
    granularity: Granularity
    buckets: list[SalesBucket]


class TopProductsReport(Period):
    products: list[ProductRevenue]


class TopSellersReport(Period):
    sellers: list[SellerRevenue]


class FunnelRow(BaseModel):
    bucket: datetime
    placed: int
    paid: int
    completed: int
    cancelled: int
    disputed: int
    refunded: int
    cancellation_rate: float
    refund_rate: float

    @classmethod
    def of(cls, row: FunnelBucket) -> FunnelRow:
        return cls(
            **vars(row), cancellation_rate=row.cancellation_rate, refund_rate=row.refund_rate
        )


class FunnelReport(Period):
    granularity: Granularity | None
    buckets: list[FunnelRow]


class EscrowReport(Period):
    granularity: Granularity | None
    buckets: list[EscrowBucket]


def _scope(
    actor: Actor,
    start: datetime,
    end: datetime,
    granularity: Granularity | None,
    seller: UUID | None,
) -> ReportScope:
    """The checked scope; a refusal is a 422 naming the query parameter."""
    try:
        return ReportScope.of(
            actor.tenant_id,
            start,
            end,
            granularity=granularity,
            seller_id=str(seller) if seller else None,
        )
    except AnalyticsQueryError as error:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", error.parameter),
                    "msg": str(error),
                    "input": None,
                }
            ]
        ) from None


async def _analytics(read_models: ReadModelsDep) -> ClickHouseAnalytics:
    live = await read_models.live(ANALYTICS_FACTS.name)
    return ClickHouseAnalytics(live.sink, live.projection, live.target)


@router.get("/sales", response_model=SalesReport, responses=ERRORS)
async def sales(
    actor: AdminActor,
    read_models: ReadModelsDep,
    start: From,
    end: To,
    granularity: Annotated[Granularity, Query(description=_BUCKETS)] = Granularity.DAY,
    seller: Seller = None,
) -> SalesReport:
    """GMV, seller net, platform fees and paid orders per bucket and currency."""
    scope = _scope(actor, start, end, granularity, seller)
    buckets = await (await _analytics(read_models)).sales(scope, granularity)
    return SalesReport(
        start=scope.start,
        end=scope.end,
        seller_id=scope.seller_id,
        granularity=granularity,
        buckets=buckets,
    )


@router.get("/top-products", response_model=TopProductsReport, responses=ERRORS)
async def top_products(
    actor: AdminActor,
    read_models: ReadModelsDep,
    start: From,
    end: To,
    seller: Seller = None,
    limit: Limit = 10,
) -> TopProductsReport:
    """The products with the highest revenue among the orders paid in the period."""
    scope = _scope(actor, start, end, None, seller)
    products = await (await _analytics(read_models)).top_products(scope, limit)
    return TopProductsReport(
        start=scope.start, end=scope.end, seller_id=scope.seller_id, products=products
    )


@router.get("/top-sellers", response_model=TopSellersReport, responses=ERRORS)
async def top_sellers(
    actor: AdminActor,
    read_models: ReadModelsDep,
    start: From,
    end: To,
    seller: Seller = None,
    limit: Limit = 10,
) -> TopSellersReport:
    """The sellers with the highest revenue among the orders paid in the period."""
    scope = _scope(actor, start, end, None, seller)
    sellers = await (await _analytics(read_models)).top_sellers(scope, limit)
    return TopSellersReport(
        start=scope.start, end=scope.end, seller_id=scope.seller_id, sellers=sellers
    )


@router.get("/funnel", response_model=FunnelReport, responses=ERRORS)
async def funnel(
    actor: AdminActor,
    read_models: ReadModelsDep,
    start: From,
    end: To,
    granularity: Annotated[
        Granularity | None, Query(description=f"{_BUCKETS}; none: the whole period")
    ] = None,
    seller: Seller = None,
) -> FunnelReport:
    """Orders placed in the period (per bucket) and how many were paid, completed, cancelled,
    disputed, refunded; with the cancellation and refund rates."""
    scope = _scope(actor, start, end, granularity, seller)
    buckets = await (await _analytics(read_models)).funnel(scope, granularity)
    return FunnelReport(
        start=scope.start,
        end=scope.end,
        seller_id=scope.seller_id,
        granularity=granularity,
        buckets=[FunnelRow.of(b) for b in buckets],
    )


@router.get("/escrow", response_model=EscrowReport, responses=ERRORS)
async def escrow(
    actor: AdminActor,
    read_models: ReadModelsDep,
    start: From,
    end: To,
    granularity: Annotated[
        Granularity | None, Query(description=f"{_BUCKETS}; none: the whole period")
    ] = None,
    seller: Seller = None,
) -> EscrowReport:
    """Escrow holds that ended in the period: how long they lasted (p50/p90/p99 seconds), how
    many were released or refunded; and the disputes opened."""
    scope = _scope(actor, start, end, granularity, seller)
    buckets = await (await _analytics(read_models)).escrow(scope, granularity)
    return EscrowReport(
        start=scope.start,
        end=scope.end,
        seller_id=scope.seller_id,
        granularity=granularity,
        buckets=buckets,
    )
