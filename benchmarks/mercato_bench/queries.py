"""`mercato bench` scenario "queries": read latency of the API over the rebuilt seeded data set.

Runs after the rebuild scenario on the same `SeededDataSet` (see `mercato_bench.rebuild` for
how the two share it; called alone, it seeds and rebuilds first, untimed). Starts `mercato serve`
on the services profile with the data set's settings — Redis views, the Elasticsearch catalog,
and chdb analytics in the API process (the analytics projection runs there, idle: no relay feeds
it, the rebuilt target is complete) — logs in the seeded admin and the busiest buyer over HTTP,
and then, endpoint by endpoint, sends sequential closed-loop requests from the bench process
(one keep-alive connection, `httpx`), after a warm-up:

- Redis views: `GET /orders/{id}` (random orders, admin token), `GET /me/orders` (the busiest
  buyer), `GET /products/{id}` (random published products), `GET /sellers/{id}/dashboard`;
- catalog search (Elasticsearch): full text, full text + sort by best-selling, filters (kind,
  price, tag) sorted by price, and a browse by newest;
- analytics (chdb, admin, the whole seeded period): sales per day, top products, top sellers,
  the funnel, escrow durations.

Latency is the client's: `time.perf_counter()` around each request (so it includes the HTTP
client, ~0.2 ms). Each endpoint gets `requests` requests or `budget` seconds, whichever ends
first (an analytics report over a million events is slower than a key lookup); the result says
how many were sent. Every answer must be 200, or the endpoint fails.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from mercato_bench import report
from mercato_bench.processes import MercatoProcess, free_port, stopped_at_exit
from mercato_bench.rebuild import SeededDataSet, open_data_set, rebuild_all

REDIS_P99_GOAL_MS = 5.0
ANALYTICS_P99_GOAL_MS = 200.0
LIBRARIES = ("httpx", "fastapi", "uvicorn", "redis", "elasticsearch", "chdb")


@dataclass(frozen=True)
class Sizes:
    requests: int
    warmup: int
    budget: float
    """Seconds per endpoint at most."""


FULL = Sizes(requests=1000, warmup=20, budget=12.0)
QUICK = Sizes(requests=100, warmup=5, budget=1.0)


@dataclass(frozen=True)
class Endpoint:
    name: str
    group: str
    """"views" (Redis), "search" (Elasticsearch) or "analytics" (chdb)."""
    token: str
    """"admin" or "buyer"."""
    projection: str
    """The read model it reads (skipped when its rebuild did not finish)."""
    path: Callable[[random.Random], str]
    params: Callable[[random.Random], dict[str, Any]]


def endpoints(data: SeededDataSet) -> list[Endpoint]:
    market = data.seed.marketplace
    orders, products, sellers = market.order_ids, market.product_ids, market.seller_ids
    period = {
        "from": market.period_start.isoformat(),
        "to": market.period_end.isoformat(),
    }

    def fixed(path: str) -> Callable[[random.Random], str]:
        return lambda _: path

    def params(**values: Any) -> Callable[[random.Random], dict[str, Any]]:
        return lambda _: values

    words = ("midnight", "drums", "neon", "echoes", "golden", "vocal", "summer", "jazz", "lofi")
    return [
        Endpoint(
            "GET /orders/{id}",
            "views",
            "admin",
            "order_views",
            lambda rng: f"/orders/{rng.choice(orders)}",
            params(),
        ),
        Endpoint(
            "GET /me/orders",
            "views",
            "buyer",
            "order_views",
            fixed("/me/orders"),
            params(limit=20),
        ),
        Endpoint(
            "GET /products/{id}",
            "views",
            "admin",
            "product_pages",
            lambda rng: f"/products/{rng.choice(products)}",
            params(),
        ),
        Endpoint(
            "GET /sellers/{id}/dashboard",
            "views",
            "admin",
            "seller_dashboard",
            lambda rng: f"/sellers/{rng.choice(sellers)}/dashboard",
            params(),
        ),
        Endpoint(
            "search: full text",
            "search",
            "buyer",
            "catalog_search",
            fixed("/products/search"),
            lambda rng: {"q": " ".join(rng.sample(words, 2)), "limit": 20},
        ),
        Endpoint(
            "search: text + best selling",
            "search",
            "buyer",
            "catalog_search",
            fixed("/products/search"),
            lambda rng: {"q": rng.choice(words), "sort": "best_selling", "limit": 20},
        ),
        Endpoint(
            "search: filters + price sort",
            "search",
            "buyer",
            "catalog_search",
            fixed("/products/search"),
            lambda rng: {
                "kind": rng.choice(["track", "sample_pack", "licence"]),
                "max_price": rng.choice([999, 2999, 9999]),
                "sort": "price_asc",
                "limit": 20,
            },
        ),
        Endpoint(
            "search: browse newest",
            "search",
            "buyer",
            "catalog_search",
            fixed("/products/search"),
            params(sort="newest", limit=20),
        ),
        Endpoint(
            "GET /analytics/sales",
            "analytics",
            "admin",
            "analytics_facts",
            fixed("/analytics/sales"),
            params(**period, granularity="day"),
        ),
        Endpoint(
            "GET /analytics/top-products",
            "analytics",
            "admin",
            "analytics_facts",
            fixed("/analytics/top-products"),
            params(**period, limit=10),
        ),
        Endpoint(
            "GET /analytics/top-sellers",
            "analytics",
            "admin",
            "analytics_facts",
            fixed("/analytics/top-sellers"),
            params(**period, limit=10),
        ),
        Endpoint(
            "GET /analytics/funnel",
            "analytics",
            "admin",
            "analytics_facts",
            fixed("/analytics/funnel"),
            params(**period),
        ),
        Endpoint(
            "GET /analytics/escrow",
            "analytics",
            "admin",
            "analytics_facts",
            fixed("/analytics/escrow"),
            params(**period),
        ),
    ]


async def run_queries_benchmark(
    *, quick: bool, results_dir: Path, dsn: str, data: SeededDataSet | None = None
) -> dict[str, Any]:
    """Serve the rebuilt data set with `mercato serve` and measure each endpoint; write and
    return the result. Without `data`, seeds and rebuilds a data set of its own first."""
    own = data is None
    if data is None:
        data = await open_data_set(quick=quick, dsn=dsn)
    try:
        if not data.rebuilt:
            report.progress("rebuilding the read models first (not measured here)")
            await rebuild_all(data)
            data.rebuilt = True
        return await _measure(data, QUICK if quick else FULL, quick, results_dir)
    finally:
        if own:
            await data.close()


async def _measure(
    data: SeededDataSet, sizes: Sizes, quick: bool, results_dir: Path
) -> dict[str, Any]:
    started = time.monotonic()
    port = free_port()
    api = await MercatoProcess.start(
        "api", ["serve", "--port", str(port)], data.environment, port=port
    )
    measured: dict[str, Any] = {}
    skipped: list[str] = []
    async with stopped_at_exit(api):
        began = time.monotonic()
        await api.wait_http("/readyz")
        ready_seconds = time.monotonic() - began
        market = data.seed.marketplace
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30.0) as client:
            _, buyer_email = market.busiest_buyer()
            tokens = {
                "admin": await _login(
                    client, market.tenant_id, market.admin_email, market.password
                ),
                "buyer": await _login(client, market.tenant_id, buyer_email, market.password),
            }
            rng = random.Random(0)
            for endpoint in endpoints(data):
                if endpoint.projection in data.incomplete:
                    report.progress(f"skipping {endpoint.name}: {endpoint.projection} not rebuilt")
                    skipped.append(endpoint.name)
                    continue
                report.progress(f"querying {endpoint.name}")
                measured[endpoint.name] = await _measure_endpoint(
                    client, endpoint, tokens[endpoint.token], sizes, rng
                )
    result: dict[str, Any] = {
        "scenario": "queries",
        "quick": quick,
        "started_at": report.utc_timestamp(),
        "machine": report.machine_info(),
        "libraries": report.library_versions(*LIBRARIES),
        "data_set": {
            "database": data.database,
            "events": data.seed.events,
            "orders": len(data.seed.marketplace.order_ids),
            "products": len(data.seed.marketplace.product_ids),
            "sellers": len(data.seed.marketplace.seller_ids),
            "period": [
                data.seed.marketplace.period_start.isoformat(),
                data.seed.marketplace.period_end.isoformat(),
            ],
        },
        "method": (
            "sequential closed-loop requests from the bench process (httpx, keep-alive), after "
            f"a warm-up of {sizes.warmup}; at most {sizes.requests} requests or "
            f"{sizes.budget:g} s per endpoint"
        ),
        "api_ready_seconds": round(ready_seconds, 2),
        "endpoints": {
            name: {key: value for key, value in row.items() if key != "latencies"}
            for name, row in measured.items()
        },
        "skipped": skipped,
        "memory": [api.memory_row()],
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    result["charts"] = _charts(measured)
    result["goals"] = [goal.as_dict() for goal in goals_of(result)]
    path = report.write_result("queries", result, results_dir)
    result["result_file"] = str(path)
    return result


async def _login(client: httpx.AsyncClient, tenant: str, email: str, password: str) -> str:
    answer = await client.post(
        "/auth/login",
        headers={"X-Tenant-ID": tenant},
        json={"email": email, "password": password},
    )
    if answer.status_code != 200:
        raise RuntimeError(f"login of {email} answered {answer.status_code}: {answer.text[:300]}")
    token: str = answer.json()["access_token"]
    return token


async def _measure_endpoint(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    token: str,
    sizes: Sizes,
    rng: random.Random,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}

    async def one() -> tuple[float, int]:
        path, params = endpoint.path(rng), endpoint.params(rng)
        began = time.perf_counter()
        answer = await client.get(path, params=params, headers=headers)
        latency = time.perf_counter() - began
        if answer.status_code != 200:
            raise RuntimeError(
                f"{endpoint.name}: GET {path} {params} answered {answer.status_code}: "
                f"{answer.text[:300]}"
            )
        return latency, len(answer.content)

    for _ in range(sizes.warmup):
        await one()
    latencies: list[float] = []
    sizes_seen: list[int] = []
    deadline = time.perf_counter() + sizes.budget
    began = time.perf_counter()
    while len(latencies) < sizes.requests and time.perf_counter() < deadline:
        latency, size = await one()
        latencies.append(latency)
        sizes_seen.append(size)
    wall = time.perf_counter() - began
    summary = report.latency_summary(latencies)
    return {
        "group": endpoint.group,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / wall, 1) if wall > 0 else None,
        "latency_ms": {name: round(value, 3) for name, value in summary.items()},
        "mean_response_bytes": round(sum(sizes_seen) / len(sizes_seen)) if sizes_seen else 0,
        "latencies": latencies,
    }


def _charts(measured: dict[str, Any]) -> list[dict[str, Any]]:
    charts = []
    for group, title in (
        ("views", "Redis views: latency quantiles"),
        ("search", "Catalog search (Elasticsearch): latency quantiles"),
        ("analytics", "Analytics (chdb): latency quantiles"),
    ):
        series = {
            name: report.quantile_curve(row["latencies"])
            for name, row in measured.items()
            if row["group"] == group
        }
        if series:
            charts.append(
                report.chart(
                    f"queries-{group}",
                    title,
                    "quantiles",
                    series,
                    x_label="quantile",
                    y_label="ms",
                )
            )
    return charts


def goals_of(result: dict[str, Any]) -> list[report.Goal]:
    goals = []
    for name, row in result.get("endpoints", {}).items():
        p99 = row["latency_ms"].get("p99")
        if row["group"] == "views":
            goals.append(report.Goal(f"p99 {name} (Redis)", p99, REDIS_P99_GOAL_MS, False, " ms"))
        elif row["group"] == "analytics":
            goals.append(
                report.Goal(f"p99 {name} (chdb)", p99, ANALYTICS_P99_GOAL_MS, False, " ms")
            )
    return goals


def results_table(result: dict[str, Any]) -> Table:
    rows = []
    for name, row in result.get("endpoints", {}).items():
        latency = row["latency_ms"]
        rows.append(
            (
                name,
                row["group"],
                f"{row['requests']:,}",
                report.format_ms(latency.get("p50")),
                report.format_ms(latency.get("p99")),
                report.format_ms(latency.get("p99.9")),
                report.format_ms(latency.get("max")),
                report.format_rate(row["requests_per_second"]),
            )
        )
    events = result.get("data_set", {}).get("events", 0)
    memory = (result.get("memory") or [{}])[0].get("peak_rss_mib")
    title = f"Queries over the rebuilt data set ({events:,} events"
    title += f"; API peak RSS {memory:.0f} MiB)" if memory else ")"
    return report.table(
        title,
        ("endpoint", "store", "requests", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "req/s"),
        rows,
    )
