"""The analytics reports in ClickHouse SQL (a server, or chdb: the same statements).

Every statement is fixed text: values travel as query parameters (`{name:Type}`, bound by the
engine), and so do the tables (`{db:Identifier}.{lines:Identifier}`) and the granularity (the
bucket expression picks its branch from `{unit:String}`). Every read of a fact table says
`FINAL`, so a row delivered twice counts once. The figures are defined in
`application.read_models.analytics`; the SQL follows those definitions word for word.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError

from application.read_models.analytics import (
    ESCROW_MOVEMENTS,
    ORDER_LINES,
    ORDER_TRANSITIONS,
    PERCENTILES,
    EscrowBucket,
    FunnelBucket,
    Granularity,
    ProductRevenue,
    ReportScope,
    SalesBucket,
    SellerRevenue,
    checked_limit,
)
from infrastructure.read_models.clickhouse_rows import ClickHouseRowSink
from infrastructure.read_models.outages import unavailable_on

_IN_PERIOD = "at >= {start:DateTime64(6, 'UTC')} AND at < {end:DateTime64(6, 'UTC')}"
_OF_SELLER = "({seller:String} = '' OR seller_id = {seller:String})"
_LINES = "{db:Identifier}.{lines:Identifier} FINAL"
_TRANSITIONS = "{db:Identifier}.{transitions:Identifier} FINAL"
_ESCROW = "{db:Identifier}.{escrow:Identifier} FINAL"


def _bucket(column: str) -> str:
    """The bucket of a time column: its hour, day or month (UTC), or without a granularity
    (`unit` empty) the period's start."""
    return (
        "multiIf("
        f"{{unit:String}} = 'hour', toDateTime64(toStartOfHour({column}), 6, 'UTC'), "
        f"{{unit:String}} = 'day', toDateTime64(toStartOfDay({column}), 6, 'UTC'), "
        f"{{unit:String}} = 'month', toDateTime64(toStartOfMonth({column}), 6, 'UTC'), "
        "{start:DateTime64(6, 'UTC')})"
    )


_PAID_IN_PERIOD = f"""
    paid AS (
        SELECT order_id, at FROM {_TRANSITIONS}
        WHERE tenant = {{tenant:String}} AND status = 'paid' AND {_IN_PERIOD}
    )"""

_ORDER_TOTALS = f"""
    order_totals AS (
        SELECT order_id, any(seller_id) AS order_seller, any(currency) AS order_currency,
               sum(amount) AS order_total
        FROM {_LINES}
        WHERE tenant = {{tenant:String}} AND {_OF_SELLER}
        GROUP BY order_id
    )"""

_SELLER_ESCROWS = f"""
    holds AS (
        SELECT escrow_id, at AS held_at FROM {_ESCROW}
        WHERE tenant = {{tenant:String}} AND kind = 'held' AND {_OF_SELLER}
    )"""

SALES = f"""
WITH {_PAID_IN_PERIOD}, {_ORDER_TOTALS}, {_SELLER_ESCROWS},
    releases AS (
        SELECT at, currency, seller_net, platform_fee FROM {_ESCROW}
        WHERE tenant = {{tenant:String}} AND kind = 'released' AND {_IN_PERIOD}
          AND escrow_id IN (SELECT escrow_id FROM holds)
    )
SELECT bucket, currency, sum(gmv), sum(net), sum(fees), sum(orders)
FROM (
    SELECT {_bucket("paid.at")} AS bucket, order_totals.order_currency AS currency,
           order_totals.order_total AS gmv, toInt64(0) AS net, toInt64(0) AS fees,
           toInt64(1) AS orders
    FROM paid INNER JOIN order_totals ON order_totals.order_id = paid.order_id
    UNION ALL
    SELECT {_bucket("at")}, currency, toInt64(0), seller_net, platform_fee, toInt64(0)
    FROM releases
)
GROUP BY bucket, currency
ORDER BY bucket, currency
"""

TOP_PRODUCTS = f"""
WITH {_PAID_IN_PERIOD}
SELECT product_id, seller_id, currency, argMax(title, (placed_at, order_id)),
       sum(amount) AS revenue, sum(quantity), count()
FROM {_LINES}
WHERE tenant = {{tenant:String}} AND {_OF_SELLER} AND order_id IN (SELECT order_id FROM paid)
GROUP BY product_id, seller_id, currency
ORDER BY revenue DESC, product_id, seller_id, currency
LIMIT {{limit:UInt32}}
"""

TOP_SELLERS = f"""
WITH {_PAID_IN_PERIOD}, {_ORDER_TOTALS}
SELECT order_seller, order_currency, sum(order_total) AS revenue, count()
FROM order_totals
WHERE order_id IN (SELECT order_id FROM paid)
GROUP BY order_seller, order_currency
ORDER BY revenue DESC, order_seller, order_currency
LIMIT {{limit:UInt32}}
"""

FUNNEL = f"""
WITH
    cohort AS (
        SELECT order_id, at FROM {_TRANSITIONS}
        WHERE tenant = {{tenant:String}} AND status = 'placed' AND {_IN_PERIOD} AND {_OF_SELLER}
    ),
    reached AS (
        SELECT order_id, groupUniqArray(status) AS statuses FROM {_TRANSITIONS}
        WHERE tenant = {{tenant:String}} AND order_id IN (SELECT order_id FROM cohort)
        GROUP BY order_id
    )
SELECT {_bucket("cohort.at")} AS bucket, count(),
       countIf(has(statuses, 'paid')), countIf(has(statuses, 'completed')),
       countIf(has(statuses, 'cancelled')), countIf(has(statuses, 'disputed')),
       countIf(has(statuses, 'refunded'))
FROM cohort INNER JOIN reached ON reached.order_id = cohort.order_id
GROUP BY bucket
ORDER BY bucket
"""


def _percentile(percent: int) -> str:
    """The nearest-rank percentile of the sorted array `durations` (see `nearest_rank`)."""
    rank = f"intDiv({percent} * length(durations) + 99, 100)"
    return f"if(empty(durations), NULL, durations[{rank}])"


ESCROW = f"""
WITH {_SELLER_ESCROWS},
    ends AS (
        SELECT escrow_id, kind, at FROM {_ESCROW}
        WHERE tenant = {{tenant:String}} AND kind IN ('released', 'refunded') AND {_IN_PERIOD}
    ),
    disputes AS (
        SELECT at FROM {_ESCROW}
        WHERE tenant = {{tenant:String}} AND kind = 'disputed' AND {_IN_PERIOD}
          AND escrow_id IN (SELECT escrow_id FROM holds)
    )
SELECT bucket, closed_count, released_count, refunded_count,
       {", ".join(_percentile(p) for p in PERCENTILES)},
       dispute_count
FROM (
    SELECT bucket, sum(closed) AS closed_count, sum(released) AS released_count,
           sum(refunded) AS refunded_count,
           arraySort(arrayFlatten(groupArray(micros))) AS durations,
           sum(disputed) AS dispute_count
    FROM (
        SELECT {_bucket("ends.at")} AS bucket, toInt64(count()) AS closed,
               toInt64(countIf(ends.kind = 'released')) AS released,
               toInt64(countIf(ends.kind = 'refunded')) AS refunded,
               groupArray(toUnixTimestamp64Micro(ends.at)
                          - toUnixTimestamp64Micro(holds.held_at)) AS micros,
               toInt64(0) AS disputed
        FROM ends INNER JOIN holds ON holds.escrow_id = ends.escrow_id
        GROUP BY bucket
        UNION ALL
        SELECT {_bucket("at")}, toInt64(0), toInt64(0), toInt64(0),
               CAST([] AS Array(Int64)), toInt64(count())
        FROM disputes
        GROUP BY 1
    )
    GROUP BY bucket
)
ORDER BY bucket
"""


@unavailable_on("ClickHouse", OperationalError)
class ClickHouseAnalytics:
    """`AnalyticsQueries` on one target of the analytics projection."""

    def __init__(self, sink: ClickHouseRowSink, projection: str, target: str) -> None:
        self._sink = sink
        self._tables = {
            alias: sink.fact_table(projection, target, table.name)["table"]
            for alias, table in (
                ("lines", ORDER_LINES),
                ("transitions", ORDER_TRANSITIONS),
                ("escrow", ESCROW_MOVEMENTS),
            )
        }

    async def sales(self, scope: ReportScope, granularity: Granularity) -> list[SalesBucket]:
        rows = await self._select(SALES, scope, granularity)
        return [
            SalesBucket(_utc(bucket), currency, int(gmv), int(net), int(fees), int(orders))
            for bucket, currency, gmv, net, fees, orders in rows
        ]

    async def top_products(self, scope: ReportScope, limit: int) -> list[ProductRevenue]:
        rows = await self._select(TOP_PRODUCTS, scope, None, limit=checked_limit(limit))
        return [
            ProductRevenue(product, seller, currency, title, int(revenue), int(units), int(n))
            for product, seller, currency, title, revenue, units, n in rows
        ]

    async def top_sellers(self, scope: ReportScope, limit: int) -> list[SellerRevenue]:
        rows = await self._select(TOP_SELLERS, scope, None, limit=checked_limit(limit))
        return [
            SellerRevenue(seller, currency, int(revenue), int(orders))
            for seller, currency, revenue, orders in rows
        ]

    async def funnel(
        self, scope: ReportScope, granularity: Granularity | None
    ) -> list[FunnelBucket]:
        rows = await self._select(FUNNEL, scope, granularity)
        return [FunnelBucket(_utc(bucket), *map(int, counts)) for bucket, *counts in rows]

    async def escrow(
        self, scope: ReportScope, granularity: Granularity | None
    ) -> list[EscrowBucket]:
        rows = await self._select(ESCROW, scope, granularity)
        return [
            EscrowBucket(
                _utc(bucket),
                int(closed),
                int(released),
                int(refunded),
                _seconds(p50),
                _seconds(p90),
                _seconds(p99),
                int(disputes),
            )
            for bucket, closed, released, refunded, p50, p90, p99, disputes in rows
        ]

    async def _select(
        self, sql: str, scope: ReportScope, granularity: Granularity | None, **extra: Any
    ) -> list[tuple[Any, ...]]:
        parameters = {
            **self._tables,
            "tenant": scope.tenant_id,
            "start": scope.start,
            "end": scope.end,
            "seller": scope.seller_id or "",
            "unit": granularity.value if granularity else "",
            **extra,
        }
        return await self._sink.select(sql, parameters)


def _utc(moment: datetime) -> datetime:
    """clickhouse-connect gives UTC columns back as naive datetimes in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seconds(micros: int | None) -> float | None:
    return None if micros is None else micros / 1_000_000
