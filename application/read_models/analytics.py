"""Analytics: the fact tables the `analytics` sink stores, and the reports read from them.

The facts (written by `projections.analytics_facts`, one row per event or order line) are
defined here once, for the projection that writes them and the store that keeps them (ClickHouse:
one `ReplacingMergeTree(position)` table per fact table and target, ordered by the key and
partitioned by the month of the time column). Every row carries its tenant, first in its key.

The reports (`AnalyticsQueries`) answer for one tenant, over a period [start, end), optionally
for one seller; money is in minor units and never mixed across currencies (figures come per
currency). Each figure is defined in its result type's docstring so that anyone can recompute
it from the event log:

- *paid in the period*: an order whose `Order.Paid` event's `at` is in the period;
- an order's *total*: the sum of its lines' `unit_price x quantity` (its `Placed` total);
- an escrow event's time: the domain event's `timestamp` (escrow and payment events carry no
  `at` of their own); an order event's time: its `at`;
- a *bucket*: the start, in UTC, of the hour, day or month that contains a time; without a
  granularity, one bucket for the whole period, starting at its start.

Only buckets with something to report are returned, oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

# -- the fact tables ----------------------------------------------------------------------------


class ColumnKind(StrEnum):
    TEXT = "text"
    LABEL = "label"
    """Text with few distinct values (a status, a currency): stored as a dictionary."""
    INT = "int"
    """A signed 64-bit integer: money in minor units, quantities, stream versions."""
    TIME = "time"
    """A moment to the microsecond, in UTC. Rows hold it as text (`utc_text`): a row must
    compare equal after a round trip through any store, for `verify`."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind


@dataclass(frozen=True)
class FactTable:
    """A table of facts: its columns, the key that identifies a row (a row written again with a
    higher position replaces it), and the time column it is partitioned by (month)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    time_column: str

    def __post_init__(self) -> None:
        names = self.column_names
        if not self.name.isidentifier() or "__" in self.name:
            raise ValueError(f"fact table names are identifiers without '__': {self.name!r}")
        if not all(name.isidentifier() for name in names):
            raise ValueError(f"{self.name}: column names are identifiers")
        if len(set(names)) != len(names) or "position" in names:
            raise ValueError(f"{self.name}: column names are unique and never 'position'")
        if self.key[:1] != ("tenant",) or not set(self.key) <= set(names):
            raise ValueError(f"{self.name}: the key starts with the tenant and names columns")
        if self.kinds.get(self.time_column) is not ColumnKind.TIME:
            raise ValueError(f"{self.name}: {self.time_column!r} is not a time column")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def kinds(self) -> dict[str, ColumnKind]:
        return {column.name: column.kind for column in self.columns}

    def key_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[name] for name in self.key)


def typed_columns(**kinds: ColumnKind) -> tuple[Column, ...]:
    """Columns in the order given: `typed_columns(tenant=ColumnKind.LABEL, at=ColumnKind.TIME)`."""
    return tuple(Column(name, kind) for name, kind in kinds.items())


_TEXT, _LABEL, _INT, _TIME = ColumnKind.TEXT, ColumnKind.LABEL, ColumnKind.INT, ColumnKind.TIME

ORDER_LINES = FactTable(
    name="order_lines",
    columns=typed_columns(
        tenant=_LABEL,
        order_id=_TEXT,
        line_no=_INT,
        seller_id=_TEXT,
        buyer_id=_TEXT,
        product_id=_TEXT,
        title=_TEXT,
        quantity=_INT,
        unit_price=_INT,
        amount=_INT,
        currency=_LABEL,
        placed_at=_TIME,
    ),
    key=("tenant", "order_id", "line_no"),
    time_column="placed_at",
)
"""One row per line of every placed order (`line_no` from 1; `amount` = unit price x quantity)."""

ORDER_TRANSITIONS = FactTable(
    name="order_transitions",
    columns=typed_columns(
        tenant=_LABEL,
        order_id=_TEXT,
        seq=_INT,
        event=_LABEL,
        status=_LABEL,
        seller_id=_TEXT,
        at=_TIME,
    ),
    key=("tenant", "order_id", "seq"),
    time_column="at",
)
"""One row per order event (`seq`: its version in the order's stream): the status the order
entered (`DisputeResolved` enters `completed` or `refunded`). `seller_id` only on `placed`."""

ESCROW_MOVEMENTS = FactTable(
    name="escrow_movements",
    columns=typed_columns(
        tenant=_LABEL,
        escrow_id=_TEXT,
        seq=_INT,
        kind=_LABEL,
        order_id=_TEXT,
        seller_id=_TEXT,
        buyer_id=_TEXT,
        currency=_LABEL,
        amount=_INT,
        seller_net=_INT,
        platform_fee=_INT,
        platform_fee_bps=_INT,
        resolution=_LABEL,
        at=_TIME,
    ),
    key=("tenant", "escrow_id", "seq"),
    time_column="at",
)
"""One row per escrow event. `kind`: `held` (order, buyer, seller, amount and fee rate known),
`disputed`, `resolved` (`resolution`), `released` (`seller_net`, `platform_fee`, `amount` =
their sum) or `refunded` (`amount`). Only `held` names the order and the seller: reports join
on `escrow_id`. Empty text and zero where an event does not say."""

PAYMENTS = FactTable(
    name="payments",
    columns=typed_columns(
        tenant=_LABEL,
        payment_id=_TEXT,
        seq=_INT,
        kind=_LABEL,
        order_id=_TEXT,
        amount=_INT,
        currency=_LABEL,
        reason=_TEXT,
        at=_TIME,
    ),
    key=("tenant", "payment_id", "seq"),
    time_column="at",
)
"""One row per payment event. `kind`: `intent_created` (order, amount), `captured`, `failed`
(`reason`) or `refunded`."""

FACT_TABLES: tuple[FactTable, ...] = (ORDER_LINES, ORDER_TRANSITIONS, ESCROW_MOVEMENTS, PAYMENTS)


def utc_text(moment: datetime) -> str:
    """The one text form of a moment in rows: ISO 8601 in UTC with microseconds
    (`2025-03-01T12:00:00.000000+00:00`)."""
    if moment.tzinfo is None:
        raise ValueError(f"a fact's time must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_utc_text(text: str) -> datetime:
    """The moment `utc_text` wrote; ValueError for any other text."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or utc_text(moment) != text:
        raise ValueError(f"not a time as utc_text writes it: {text!r}")
    return moment.astimezone(UTC)


# -- asking for a report ------------------------------------------------------------------------


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


MAX_SPAN: Mapping[Granularity | None, timedelta] = {
    Granularity.HOUR: timedelta(days=31),
    Granularity.DAY: timedelta(days=3 * 366),
    Granularity.MONTH: timedelta(days=100 * 366),
    None: timedelta(days=100 * 366),
}
"""The longest period a report covers at each granularity (at most about a thousand buckets)."""

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Periods lie within these bounds (what the stores' time types hold)."""

MAX_LIMIT = 100


class AnalyticsQueryError(ValueError):
    """A report asked for with parameters that make no sense (HTTP 422, naming `parameter`)."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(message)


@dataclass(frozen=True)
class ReportScope:
    """Whose facts a report reads: one tenant, over [start, end) in UTC, maybe one seller."""

    tenant_id: str
    start: datetime
    end: datetime
    seller_id: str | None = None

    @classmethod
    def of(
        cls,
        tenant_id: str,
        start: datetime,
        end: datetime,
        *,
        granularity: Granularity | None = None,
        seller_id: str | None = None,
    ) -> ReportScope:
        """A checked scope; raises `AnalyticsQueryError` naming the parameter at fault."""
        for parameter, moment in (("from", start), ("to", end)):
            if moment.tzinfo is None:
                raise AnalyticsQueryError(parameter, f"{parameter} needs a UTC offset")
            if not EARLIEST <= moment <= LATEST:
                raise AnalyticsQueryError(
                    parameter, f"{parameter} must lie between {EARLIEST:%Y} and {LATEST:%Y}"
                )
        if start >= end:
            raise AnalyticsQueryError("to", "to must be later than from")
        if end - start > MAX_SPAN[granularity]:
            days = MAX_SPAN[granularity].days
            by = f"by {granularity.value}" if granularity else "at once"
            raise AnalyticsQueryError(
                "from", f"a report {by} covers at most {days} days; narrow from/to"
            )
        return cls(tenant_id, start.astimezone(UTC), end.astimezone(UTC), seller_id or None)


def checked_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise AnalyticsQueryError("limit", f"limit must be from 1 to {MAX_LIMIT}")
    return limit


def nearest_rank(count: int, percent: int) -> int:
    """The 1-based rank of the `percent`-th percentile among `count` sorted values, by the
    nearest-rank method: `ceil(percent x count / 100)` (in integers, so exactly), at least 1.

    The p50 of [1, 2, 3, 4] is the 2nd value (2), its p90 and p99 the 4th (4)."""
    if count < 1 or not 0 < percent <= 100:
        raise ValueError("nearest_rank needs count >= 1 and 0 < percent <= 100")
    return max(1, (percent * count + 99) // 100)


# -- the reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SalesBucket:
    """Sales in one bucket and currency.

    - `orders`: orders paid in the bucket (by their `Paid` time);
    - `gmv`: the sum of those orders' totals;
    - `net`, `fees`: the sums of `seller_net` and `platform_fee` of the escrow releases
      (`Escrow.Released`) whose time falls in the bucket, whatever the order's paid time.

    With a seller, only that seller's orders and escrows count.
    """

    bucket: datetime
    currency: str
    gmv: int
    net: int
    fees: int
    orders: int


@dataclass(frozen=True)
class ProductRevenue:
    """A product's sales among the orders paid in the period.

    - `revenue`: the sum of its lines' amounts (unit price x quantity);
    - `units`: the sum of its lines' quantities; `orders`: the number of those orders;
    - `title`: the title on its line of the most recently placed of those orders (ties: the
      greatest order id).

    Ranked by revenue (highest first), then product id, then currency.
    """

    product_id: str
    seller_id: str
    currency: str
    title: str
    revenue: int
    units: int
    orders: int


@dataclass(frozen=True)
class SellerRevenue:
    """A seller's orders paid in the period: `revenue` is the sum of their totals, `orders`
    their number. Ranked by revenue (highest first), then seller id, then currency."""

    seller_id: str
    currency: str
    revenue: int
    orders: int


@dataclass(frozen=True)
class FunnelBucket:
    """The cohort of orders placed in the bucket (by their `Placed` time), and how many of
    them have, by now, entered each status: `paid`, `completed` (confirmed, the dispute window
    passed, or a dispute resolved by release), `cancelled`, `disputed`, `refunded` (a dispute
    resolved by refund)."""

    bucket: datetime
    placed: int
    paid: int
    completed: int
    cancelled: int
    disputed: int
    refunded: int

    @property
    def cancellation_rate(self) -> float:
        """Cancelled ÷ placed (0 without orders)."""
        return self.cancelled / self.placed if self.placed else 0.0

    @property
    def refund_rate(self) -> float:
        """Refunded ÷ paid (0 without paid orders)."""
        return self.refunded / self.paid if self.paid else 0.0


@dataclass(frozen=True)
class EscrowBucket:
    """Escrow holds that ended in the bucket, and disputes opened in it.

    - `closed`: escrows whose `Released` or `Refunded` time falls in the bucket (`released` +
      `refunded`);
    - a hold's duration: from its `FundsHeld` time to that end, in microseconds; `p50`, `p90`
      and `p99` are percentiles of the bucket's durations by the nearest-rank method
      (`nearest_rank`), in seconds (None without holds);
    - `disputes`: escrows whose `Disputed` time falls in the bucket.
    """

    bucket: datetime
    closed: int
    released: int
    refunded: int
    p50_seconds: float | None
    p90_seconds: float | None
    p99_seconds: float | None
    disputes: int


PERCENTILES = (50, 90, 99)


class AnalyticsQueries(Protocol):
    """The reports, read from one target of the analytics projection (its live one)."""

    async def sales(self, scope: ReportScope, granularity: Granularity) -> list[SalesBucket]: ...

    async def top_products(self, scope: ReportScope, limit: int) -> list[ProductRevenue]: ...

    async def top_sellers(self, scope: ReportScope, limit: int) -> list[SellerRevenue]: ...

    async def funnel(
        self, scope: ReportScope, granularity: Granularity | None
    ) -> list[FunnelBucket]: ...

    async def escrow(
        self, scope: ReportScope, granularity: Granularity | None
    ) -> list[EscrowBucket]: ...
