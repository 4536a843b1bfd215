"""`mercato analytics …`: the analytics reports in the terminal, as a table, CSV or JSON.

The command opens the analytics engine itself and reads the live target of `analytics_facts`
(the same SQL as `GET /analytics/…`). With the embedded engine (chdb), only one process may have
its folder open: while `mercato serve` runs on the same data dir, ask the API instead.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

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
from infrastructure.read_models.clickhouse_engine import AnalyticsEngineError, ChdbFolderInUseError
from infrastructure.read_models.clickhouse_rows import ClickHouseRowSink
from interfaces.bootstrap import bootstrap
from interfaces.cli.errors import refuse
from interfaces.cli.settings import settings_or_exit
from projections.analytics_facts import ANALYTICS_FACTS

app = typer.Typer(
    help=(
        "Analytics reports (sales, top products and sellers, the order funnel, escrow holds) "
        "from the analytics read model, for one tenant over [--from, --to). Times are ISO "
        "8601, UTC when they carry no offset; money is in minor units."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")
DEFAULT_DAYS = 7


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


Tenant = Annotated[
    str, typer.Option("--tenant", envvar="MERCATO_TENANT", help="The tenant to report on.")
]
From = Annotated[
    str | None,
    typer.Option("--from", help=f"Start (included); default: {DEFAULT_DAYS} days before --to."),
]
To = Annotated[str | None, typer.Option("--to", help="End (excluded); default: now.")]
By = Annotated[Granularity, typer.Option("--by", help="Bucket: hour, day or month (UTC).")]
WholePeriodBy = Annotated[
    Granularity | None,
    typer.Option("--by", help="Bucket: hour, day or month (UTC); default: the whole period."),
]
Seller = Annotated[str | None, typer.Option("--seller", help="Only this seller's (account id).")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="How many to rank.")]
Format = Annotated[OutputFormat, typer.Option("--format", help="table, csv or json.")]


@app.command("sales")
def sales(
    tenant: Tenant,
    start: From = None,
    end: To = None,
    by: By = Granularity.DAY,
    seller: Seller = None,
    output: Format = OutputFormat.TABLE,
) -> None:
    """GMV, seller net, platform fees and paid orders per bucket and currency."""
    scope = _scope(tenant, start, end, by, seller)
    rows = _report("sales", lambda analytics: analytics.sales(scope, by))
    _show(f"Sales by {by.value}", scope, SalesBucket, rows, output)


@app.command("top-products")
def top_products(
    tenant: Tenant,
    start: From = None,
    end: To = None,
    seller: Seller = None,
    limit: Limit = 10,
    output: Format = OutputFormat.TABLE,
) -> None:
    """The products with the highest revenue among the orders paid in the period."""
    scope = _scope(tenant, start, end, None, seller)
    rows = _report("top-products", lambda analytics: analytics.top_products(scope, limit))
    _show("Top products", scope, ProductRevenue, rows, output)


@app.command("top-sellers")
def top_sellers(
    tenant: Tenant,
    start: From = None,
    end: To = None,
    limit: Limit = 10,
    output: Format = OutputFormat.TABLE,
) -> None:
    """The sellers with the highest revenue among the orders paid in the period."""
    scope = _scope(tenant, start, end, None, None)
    rows = _report("top-sellers", lambda analytics: analytics.top_sellers(scope, limit))
    _show("Top sellers", scope, SellerRevenue, rows, output)


@app.command("funnel")
def funnel(
    tenant: Tenant,
    start: From = None,
    end: To = None,
    by: WholePeriodBy = None,
    seller: Seller = None,
    output: Format = OutputFormat.TABLE,
) -> None:
    """Orders placed in the period: how many were paid, completed, cancelled, refunded…"""
    scope = _scope(tenant, start, end, by, seller)
    rows = _report("funnel", lambda analytics: analytics.funnel(scope, by))
    _show("Order funnel", scope, FunnelBucket, rows, output)


@app.command("escrow")
def escrow(
    tenant: Tenant,
    start: From = None,
    end: To = None,
    by: WholePeriodBy = None,
    seller: Seller = None,
    output: Format = OutputFormat.TABLE,
) -> None:
    """Escrow holds that ended in the period (p50/p90/p99 seconds held) and disputes opened."""
    scope = _scope(tenant, start, end, by, seller)
    rows = _report("escrow", lambda analytics: analytics.escrow(scope, by))
    _show("Escrow holds", scope, EscrowBucket, rows, output)


# -- running a report -------------------------------------------------------------------------


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        refuse(f"{option} {text!r} is not an ISO 8601 time", code=2)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _scope(
    tenant: str,
    start: str | None,
    end: str | None,
    granularity: Granularity | None,
    seller: str | None,
) -> ReportScope:
    until = _moment(end, "--to") if end else datetime.now(UTC)
    since = _moment(start, "--from") if start else until - timedelta(days=DEFAULT_DAYS)
    try:
        return ReportScope.of(tenant, since, until, granularity=granularity, seller_id=seller)
    except AnalyticsQueryError as error:
        refuse(str(error), code=2)


def _report(path: str, query: Callable[[ClickHouseAnalytics], Awaitable[T]]) -> T:
    """Run `query` on the live analytics target. A folder held by a running server, a read
    model not built yet or an engine that cannot be opened: one line, no traceback."""
    settings = settings_or_exit()

    async def main() -> T:
        container = bootstrap(settings)
        try:
            sink = await container.sink(ANALYTICS_FACTS.sink)
            if not isinstance(sink, ClickHouseRowSink):
                raise AnalyticsEngineError(f"the {ANALYTICS_FACTS.sink} sink is not ClickHouse")
            live = (await sink.routing(ANALYTICS_FACTS.name)).live
            if live is None:
                raise LookupError(
                    f"the analytics read model is not built yet (it is built by `mercato "
                    f"serve`, or `mercato projections rebuild {ANALYTICS_FACTS.name}`)"
                )
            return await query(ClickHouseAnalytics(sink, ANALYTICS_FACTS.name, live))
        finally:
            await container.close()

    try:
        return asyncio.run(main())
    except ChdbFolderInUseError as error:
        refuse(
            f"{error}: is `mercato serve` running on this data dir? "
            f"GET /analytics/{path} answers the same report",
            code=1,
        )
    except (AnalyticsEngineError, LookupError) as error:
        refuse(str(error), code=1)


# -- showing it ---------------------------------------------------------------------------------


def _as_dict(row: Any) -> dict[str, Any]:
    values = dataclasses.asdict(row)
    if isinstance(row, FunnelBucket):
        values |= {
            "cancellation_rate": row.cancellation_rate,
            "refund_rate": row.refund_rate,
        }
    return values


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _show(
    title: str, scope: ReportScope, kind: type, rows: Sequence[Any], output: OutputFormat
) -> None:
    records = [_as_dict(row) for row in rows]
    if output is OutputFormat.JSON:
        json.dump(records, sys.stdout, default=_text, indent=2)
        sys.stdout.write("\n")
        return
    columns = [field.name for field in dataclasses.fields(kind)]
    if kind is FunnelBucket:
        columns += ["cancellation_rate", "refund_rate"]
    if output is OutputFormat.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(r[c]) for c in columns] for r in records])
        return
    period = f"{scope.start.isoformat()} → {scope.end.isoformat()}"
    seller = f", seller {scope.seller_id}" if scope.seller_id else ""
    table = Table(*columns, title=f"{title}, tenant {scope.tenant_id}{seller}\n{period}")
    for record in records:
        table.add_row(*(_text(record[c]) for c in columns))
    Console().print(table if records else f"{title}: nothing in {period}")
