"""`mercato bench --only lag`: end-to-end lag — from a command's HTTP answer to the moment each
read model reflects it — at fixed command rates, on both profiles.

- **services**: `mercato serve` + `mercato worker relay` + `mercato worker projector views` +
  `mercato worker projector search`; the analytics projection runs inside the API (ClickHouse
  is chdb, one process per folder). The path is Postgres → relay → Kafka → projector → Redis /
  Elasticsearch, and Kafka → the API's analytics worker → chdb.
- **embedded**: `mercato serve` alone; every projection runs in it, fed by the SQLite store's
  own subscription (SQLite views, SQLite FTS5 search, chdb analytics).

The load generator (`mercato_bench.loadgen`, a process of its own) places orders in an open
loop at the rate (one line, quantity 1, products and buyers cycled); each answer carries the
command's `position`. No saga runner runs: each command appends exactly one `Order.Placed`.

"Visible" means the projection's live watermark has reached the command's position: the write
and the checkpoint move together (one Redis Lua script; Elasticsearch refreshes before the
checkpoint rises; one SQLite transaction), so a query with `min_position` would answer then.

- views (`order_views`) and search (`catalog_search`): the benchmark process reads the live
  target's checkpoints itself — Redis, Elasticsearch and the SQLite files are readable from
  another process — every `poll_interval` (1 ms), and records when the watermark rises. A
  command's visibility is the end of the first read that saw the watermark at or above its
  position; the lag is that minus the moment the generator received the answer (both
  CLOCK_MONOTONIC), 0 when the model was there first. The resolution is the poll period
  (reported as achieved).
- analytics (`analytics_facts`): only the API process can read chdb, so the generator follows
  every k-th command with `GET /analytics/sales` for an empty day of the year 2000 (so the
  query itself costs next to nothing) carrying `Mercato-Min-Position`, timed from the
  command's answer. The server checks the watermark every 10 ms while it waits: that is the
  resolution, plus the query (its own time without a wait is reported beside).

`catalog_search` holds no order data: an `Order.Placed` is outside its categories, and its
watermark passes the command's position through the relay's watermark ticks (services; at
most one round per 50 ms) or the store feed's unfiltered reads (embedded) — which is what a
search with `min_position` waits for.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from application.ports.read_model_sink import ReadModelSink, watermark
from infrastructure.postgres_databases import throwaway_database
from infrastructure.settings import Settings
from mercato_bench import report
from mercato_bench.cleanup import clean_namespace
from mercato_bench.commands import order_job
from mercato_bench.database import dsn_parts, new_database_name
from mercato_bench.loadgen import run_in_process
from mercato_bench.processes import (
    BenchEnvironment,
    MercatoProcess,
    free_port,
    stopped_at_exit,
)
from mercato_bench.tenant import PreparedTenant, TenantSpec, prepare_tenant
from projections.analytics_facts import ANALYTICS_FACTS
from projections.catalog_search import CATALOG_SEARCH
from projections.definition import Projection
from projections.order_views import ORDER_VIEWS
from projections.targets import EMBEDDED, Partitioning

LIBRARIES = ("aiokafka", "redis", "elasticsearch", "chdb", "clickhouse-connect", "asyncpg")
SERVER_POLL_MS = 10.0
"""How often the API re-reads a watermark while a `min_position` query waits
(`projections.status.wait_for_position`)."""
ANALYTICS_PATH = (
    "/analytics/sales?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z&granularity=day"
)
GOAL_RATE = 500
GOALS_MS = {"services": 100.0, "embedded": 20.0}


@dataclass(frozen=True)
class LagSettings:
    rate: float = 500.0
    """Commands per second (open loop): the rate the goals are judged at."""
    lower_rates: tuple[float, ...] = (250.0,)
    """Rates run first, each on both profiles, to show lag where the machine is not saturated
    (on 2 cores one API process answers about 460 POST /orders per second at most)."""
    duration: float = 20.0
    warmup: float = 3.0
    profiles: tuple[str, ...] = ("services", "embedded")
    poll_interval: float = 0.001
    analytics_per_second: float = 10.0
    """How many commands per second get an analytics read-your-writes follow-up."""
    buyers: int = 100
    products: int = 500
    catch_up_within: float = 60.0
    """Seconds the projections may take to reach the prepared tenant's events."""
    read_your_writes_wait: float = 10.0
    """MERCATO_READ_YOUR_WRITES_WAIT for the API: a follow-up waits this long before a 503."""

    @classmethod
    def of(cls, quick: bool) -> LagSettings:
        if not quick:
            return cls()
        return cls(rate=200.0, lower_rates=(), duration=2.0, warmup=0.5, buyers=20, products=50)


# -- watermark observations (pure) -------------------------------------------------------------


@dataclass
class Observations:
    """When a projection's watermark rose, as seen by a poller: (seconds, watermark) pairs with
    rising watermarks, and how often it looked."""

    times: list[float] = field(default_factory=list)
    watermarks: list[int] = field(default_factory=list)
    polls: int = 0
    read_seconds: list[float] = field(default_factory=list)
    """How long each read took (sampled: every read until 100,000)."""
    first_poll: float | None = None
    last_poll: float | None = None

    def record(self, started: float, ended: float, seen: int) -> None:
        self.polls += 1
        if self.first_poll is None:
            self.first_poll = ended
        self.last_poll = ended
        if len(self.read_seconds) < 100_000:
            self.read_seconds.append(ended - started)
        if not self.watermarks or seen > self.watermarks[-1]:
            self.times.append(ended)
            self.watermarks.append(seen)

    def visible_at(self, position: int) -> float | None:
        """The end of the first read that saw the watermark at or above `position`."""
        index = bisect.bisect_left(self.watermarks, position)
        return self.times[index] if index < len(self.times) else None

    def resolution(self) -> dict[str, float | None]:
        period = None
        if self.polls > 1 and self.first_poll is not None and self.last_poll is not None:
            period = (self.last_poll - self.first_poll) / (self.polls - 1) * 1000
        read = statistics.median(self.read_seconds) * 1000 if self.read_seconds else None
        return {
            "polls": self.polls,
            "mean_poll_period_ms": None if period is None else round(period, 3),
            "median_read_ms": None if read is None else round(read, 3),
        }


def lags(
    answered_at: Sequence[float], positions: Sequence[int], observations: Observations
) -> tuple[list[float], int, int]:
    """Per command, seconds from its answer to its visibility (0 when it was visible first);
    plus how many were never seen and how many were visible before their answer arrived."""
    found: list[float] = []
    unseen = early = 0
    for answered, position in zip(answered_at, positions, strict=True):
        visible = observations.visible_at(position)
        if visible is None:
            unseen += 1
            continue
        if visible <= answered:
            early += 1
        found.append(max(0.0, visible - answered))
    return found, unseen, early


def commands_of(result: dict[str, Any]) -> tuple[list[float], list[int], list[int]]:
    """(monotonic answer times, positions, record indexes) of the measured 2xx commands."""
    records = result["records"]
    t0, warmup = float(result["t0_monotonic"]), float(result["warmup"])
    answered, positions, indexes = [], [], []
    for index, (offset, latency, status, position) in enumerate(
        zip(
            records["offsets"],
            records["latencies"],
            records["statuses"],
            records["positions"],
            strict=True,
        )
    ):
        if offset >= warmup and 200 <= status < 300 and position is not None:
            answered.append(t0 + offset + latency)
            positions.append(int(position))
            indexes.append(index)
    return answered, positions, indexes


# -- polling -----------------------------------------------------------------------------------


async def _poll(
    sink: ReadModelSink,
    projection: Projection,
    partitions: Sequence[str],
    observations: Observations,
    stop: asyncio.Event,
    interval: float,
) -> None:
    """Read the live target's checkpoints every `interval` until `stop` (the target does not
    change during a run, so the routing is read once)."""
    target = (await sink.routing(projection.name)).live
    assert target is not None, f"{projection.name} has no live target"
    clock = time.monotonic
    while not stop.is_set():
        started = clock()
        seen = watermark(await sink.checkpoints(projection.name, target), partitions)
        observations.record(started, clock(), seen)
        delay = interval - (clock() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)


async def _live_watermark(
    sink: ReadModelSink, projection: Projection, partitions: Sequence[str]
) -> int:
    target = (await sink.routing(projection.name)).live
    if target is None:
        return 0
    return watermark(await sink.checkpoints(projection.name, target), partitions)


async def _until_reached(
    sinks: dict[str, tuple[ReadModelSink, Projection]],
    partitioning: Partitioning,
    position: int,
    *,
    within: float,
) -> dict[str, int]:
    """Wait until every polled projection's watermark is at `position`; where each stands."""
    deadline = time.monotonic() + within
    reached: dict[str, int] = {}
    while True:
        for name, (sink, projection) in sinks.items():
            with contextlib.suppress(LookupError):
                partitions = partitioning.partitions_of(projection)
                reached[name] = await _live_watermark(sink, projection, partitions)
        if all(reached.get(name, 0) >= position for name in sinks):
            return reached
        if time.monotonic() > deadline:
            return reached
        await asyncio.sleep(0.05)


async def _until_analytics(api: MercatoProcess, token: str, position: int, within: float) -> bool:
    """Wait until the API's analytics model reflects `position` (read-your-writes)."""
    deadline = time.monotonic() + within
    headers = {"Authorization": f"Bearer {token}", "Mercato-Min-Position": str(position)}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(ANALYTICS_PATH, headers=headers)).status_code == 200:
                    return True
            await asyncio.sleep(0.2)
    return False


async def _analytics_query_ms(api: MercatoProcess, token: str, times: int = 20) -> float | None:
    """The median time of the analytics follow-up's query without a wait."""
    headers = {"Authorization": f"Bearer {token}"}
    spent = []
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        for _ in range(times):
            started = time.monotonic()
            response = await client.get(ANALYTICS_PATH, headers=headers)
            if response.status_code == 200:
                spent.append(time.monotonic() - started)
    return round(statistics.median(spent) * 1000, 3) if spent else None


# -- sinks the benchmark reads itself ----------------------------------------------------------


def _default(name: str) -> str:
    return str(Settings.model_fields[name].default)


async def _open_sinks(
    environment: BenchEnvironment,
) -> tuple[dict[str, tuple[ReadModelSink, Projection]], Partitioning]:
    if environment.profile == "services":
        from infrastructure.read_models.elasticsearch_search import ElasticsearchSearchSink
        from infrastructure.read_models.redis_documents import RedisDocumentSink

        views: ReadModelSink = await RedisDocumentSink.connect(
            _default("redis_url"), key_prefix=environment.redis_key_prefix
        )
        search: ReadModelSink = await ElasticsearchSearchSink.connect(
            _default("elasticsearch_url"), index_prefix=environment.elasticsearch_index_prefix
        )
        partitions = int(Settings.model_fields["kafka_partitions"].default)
        partitioning = Partitioning(environment.kafka_topic_prefix, partitions)
    else:
        from infrastructure.read_models.sqlite_documents import SqliteDocumentSink
        from infrastructure.read_models.sqlite_search import SqliteSearchSink

        data = environment.run_dir / "data"
        views = await SqliteDocumentSink.open(data / "views.sqlite3")
        search = await SqliteSearchSink.open(data / "search.sqlite3")
        partitioning = EMBEDDED
    return {"views": (views, ORDER_VIEWS), "search": (search, CATALOG_SEARCH)}, partitioning


# -- one profile -------------------------------------------------------------------------------


async def _start(environment: BenchEnvironment, running: list[MercatoProcess]) -> MercatoProcess:
    api_port = free_port()
    api = await MercatoProcess.start(
        "api", ["serve", "--port", str(api_port), "--workers", "1"], environment, port=api_port
    )
    running.append(api)
    workers = []
    if environment.profile == "services":
        for name, arguments in (
            ("relay", ["worker", "relay"]),
            ("projector views", ["worker", "projector", "views"]),
            ("projector search", ["worker", "projector", "search"]),
        ):
            port = free_port()
            process = await MercatoProcess.start(
                name, [*arguments, "--metrics-port", str(port)], environment, port=port
            )
            running.append(process)
            workers.append(process)
    await asyncio.gather(
        api.wait_http("/readyz"), *(worker.wait_http("/metrics") for worker in workers)
    )
    return api


async def _one_profile(
    profile: str,
    run_root: Path,
    bench_dsn: str,
    s: LagSettings,
    on_progress: Callable[[str], None],
) -> dict[str, Any]:
    environment = BenchEnvironment(
        profile,
        run_root / profile,
        bench_dsn if profile == "services" else "",
        variables={"READ_YOUR_WRITES_WAIT": f"{s.read_your_writes_wait:g}"},
    )
    memory: list[dict[str, Any]] = []
    try:
        spec = TenantSpec(buyers=s.buyers, products=s.products)
        prepared = await prepare_tenant(environment, spec)
        async with stopped_at_exit() as running:
            try:
                api = await _start(environment, running)
                outcome = await _measure(environment, api, prepared, s, on_progress)
            finally:
                for process in reversed(running):
                    await process.stop()
                memory = [process.memory_row() for process in running]
    finally:
        cleaned = await clean_namespace(environment)
    processes = [process.name for process in running]
    return {
        "profile": profile,
        "processes": processes,
        "tenant": prepared.summary(),
        **outcome,
        "memory": memory,
        "cleanup": cleaned,
    }


async def _measure(
    environment: BenchEnvironment,
    api: MercatoProcess,
    prepared: PreparedTenant,
    s: LagSettings,
    on_progress: Callable[[str], None],
) -> dict[str, Any]:
    profile = environment.profile
    sinks, partitioning = await _open_sinks(environment)
    try:
        started = time.monotonic()
        reached = await _until_reached(
            sinks, partitioning, prepared.head_position, within=s.catch_up_within
        )
        analytics_ready = await _until_analytics(
            api, prepared.admin_token, prepared.head_position, s.catch_up_within
        )
        if min(reached.values(), default=0) < prepared.head_position or not analytics_ready:
            raise RuntimeError(
                f"{profile}: the projections did not catch up with the prepared tenant within "
                f"{s.catch_up_within:g} s (at {reached}, analytics ready: {analytics_ready})"
            )
        on_progress(f"lag, {profile}: projections caught up in {time.monotonic() - started:.1f} s")
        every = max(1, round(s.rate / s.analytics_per_second))
        job = order_job(
            api.base_url,
            prepared,
            mode="open",
            rate=s.rate,
            duration=s.duration,
            warmup=s.warmup,
            timeout=30.0,
            follow={"path": ANALYTICS_PATH, "token": prepared.admin_token, "every": every},
        )
        stop = asyncio.Event()
        observed = {name: Observations() for name in sinks}
        pollers = [
            asyncio.create_task(
                _poll(
                    sink,
                    projection,
                    partitioning.partitions_of(projection),
                    observed[name],
                    stop,
                    s.poll_interval,
                )
            )
            for name, (sink, projection) in sinks.items()
        ]
        try:
            result = await run_in_process(job, environment.run_dir / "loadgen", name=profile)
            answered, positions, indexes = commands_of(result)
            last = max(positions, default=0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                (o.watermarks[-1] if o.watermarks else 0) < last for o in observed.values()
            ):
                if any(p.done() for p in pollers):
                    break
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await asyncio.gather(*pollers, return_exceptions=True)
        for poller in pollers:
            if poller.exception() is not None:
                raise RuntimeError(f"a watermark poller failed: {poller.exception()!r}")
        query_ms = await _analytics_query_ms(api, prepared.admin_token)
    finally:
        for sink, _ in sinks.values():
            await sink.close()

    summary = result["summary"]
    by_sink: dict[str, Any] = {}
    curves: dict[str, list[tuple[float, float]]] = {}
    for name, observations in observed.items():
        found, unseen, early = lags(answered, positions, observations)
        by_sink[name] = {
            "projection": sinks[name][1].name,
            "method": "watermark polled by the benchmark process",
            "count": len(found),
            "never_seen": unseen,
            "visible_before_answer": early,
            "lag_ms": report.latency_summary(found),
            "resolution": observations.resolution(),
        }
        offsets = [result["records"]["offsets"][i] - s.warmup for i in indexes]
        curves[name] = [
            (offset, lag)
            for offset, answered_at, position in zip(offsets, answered, positions, strict=True)
            if (lag := _lag_of(observations, answered_at, position)) is not None
        ]
    follow = result["records"]["follow"]
    measured = set(indexes)
    follow_ok = [latency for row, latency, status in follow if row in measured and status == 200]
    follow_statuses: dict[str, int] = {}
    for row, _, status in follow:
        if row in measured:
            follow_statuses[str(status)] = follow_statuses.get(str(status), 0) + 1
    by_sink["analytics"] = {
        "projection": ANALYTICS_FACTS.name,
        "method": "HTTP read-your-writes (Mercato-Min-Position) on a sample of commands",
        "count": len(follow_ok),
        "sampled_every": every,
        "statuses": follow_statuses,
        "lag_ms": report.latency_summary(follow_ok),
        "resolution": {
            "server_poll_ms": SERVER_POLL_MS,
            "query_without_wait_ms": query_ms,
        },
    }
    curves["analytics"] = [
        (result["records"]["offsets"][row] - s.warmup, latency)
        for row, latency, status in follow
        if row in measured and status == 200
    ]
    line = ", ".join(
        f"{name} p99 {figures['lag_ms'].get('p99', float('nan')):.1f} ms"
        for name, figures in by_sink.items()
    )
    on_progress(
        f"lag, {profile}: {summary['achieved_rate']:,.0f} cmd/s answered "
        f"(command p99 {summary['latency_ms'].get('p99', float('nan')):.1f} ms); {line}"
    )
    return {
        "rate": s.rate,
        "commands": {
            key: summary[key]
            for key in ("requests", "ok", "achieved_rate", "errors", "error_count", "latency_ms")
        }
        | {
            "send_lag_ms": summary["send_lag_ms"],
            "client_errors": result["records"]["client_errors"],
        },
        "sinks": by_sink,
        "charts": {name: samples for name, samples in curves.items()},
    }


def _lag_of(observations: Observations, answered: float, position: int) -> float | None:
    visible = observations.visible_at(position)
    return None if visible is None else max(0.0, visible - answered)


# -- the scenario ------------------------------------------------------------------------------


async def run_lag_benchmark(
    *,
    quick: bool,
    results_dir: Path,
    dsn: str,
    settings: LagSettings | None = None,
    on_progress: Callable[[str], None] = report.progress,
) -> dict[str, Any]:
    """Run the scenario (see the module's docstring) on each profile, write
    `lag-<timestamp>.json` and `lag-latest.json` to `results_dir`, and return the result."""
    s = settings or LagSettings.of(quick)
    started = datetime.now(UTC)
    load_at_start = report.load_average()
    run_root = Path(tempfile.mkdtemp(prefix="mercato-bench-lag-"))
    profiles: list[dict[str, Any]] = []
    postgres: dict[str, Any] = {}
    succeeded = False
    try:
        # Each rate starts from nothing: its own database and folders (the tenant it prepares
        # registers the same accounts every time).
        for rate in (*s.lower_rates, s.rate):
            at_rate = replace(s, rate=rate)
            async with throwaway_database(dsn, new_database_name()) as bench_dsn:
                database = dsn_parts(bench_dsn).dbname
                postgres = await report.postgres_info(bench_dsn)
                for profile in s.profiles:
                    profiles.append(
                        await _one_profile(
                            profile, run_root / f"{rate:g}", bench_dsn, at_rate, on_progress
                        )
                    )
        succeeded = True
    finally:
        if succeeded:
            shutil.rmtree(run_root, ignore_errors=True)
        else:
            report.progress(f"lag: logs kept in {run_root}")
    finished = datetime.now(UTC)
    charts = _charts(profiles)
    for entry in profiles:
        entry.pop("charts", None)
    goals = evaluate_goals([entry for entry in profiles if entry["rate"] == s.rate])
    result: dict[str, Any] = {
        **report.result_header(
            "lag",
            started=started,
            finished=finished,
            database=database,
            server_dsn=dsn,
            load_at_start=load_at_start,
            postgres=postgres,
            libraries=LIBRARIES,
        ),
        "quick": quick,
        "settings": asdict(s),
        "notes": [
            "Each command is POST /orders (one line, quantity 1) and appends exactly one "
            "Order.Placed: no saga runner runs on either profile.",
            "Lag = from the command's HTTP answer (as the load generator received it) to the "
            "projection's live watermark reaching the command's position; 0 when the model "
            "was there before the answer arrived (counted as visible_before_answer).",
            "views/search: the benchmark process polls the checkpoints itself every "
            f"{s.poll_interval * 1000:g} ms (achieved period under resolution); analytics: "
            "HTTP long-poll with Mercato-Min-Position, the server re-checking every "
            f"{SERVER_POLL_MS:g} ms, on a sample of about {s.analytics_per_second:g} commands/s.",
            "catalog_search does not handle order events: its watermark passes an order's "
            "position by the relay's watermark ticks (services) or the unfiltered store feed "
            "(embedded), which is what a search with min_position waits for.",
            "Services: API + relay + projector views + projector search; the analytics "
            "projection runs in the API (chdb). Embedded: the API alone.",
        ],
        "profiles": profiles,
        "memory": [row | {"profile": p["profile"]} for p in profiles for row in p["memory"]],
        "goals": [goal.as_dict() for goal in goals],
        "charts": charts,
    }
    result["result_file"] = str(report.write_result("lag", result, results_dir))
    return result


def _charts(profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    charts = []
    for entry in profiles:
        samples: dict[str, list[tuple[float, float]]] = entry.get("charts", {})
        profile = entry["profile"]
        charts.append(
            report.chart(
                f"lag-{profile}-{entry['rate']:g}",
                f"End-to-end lag at {entry['rate']:g} commands/s, {profile} profile",
                "quantiles",
                {
                    sink: report.quantile_curve(lag for _, lag in rows)
                    for sink, rows in samples.items()
                },
                x_label="quantile",
                y_label="ms",
            )
        )
        charts.append(
            report.chart(
                f"lag-{profile}-{entry['rate']:g}-timeline",
                f"End-to-end lag over time at {entry['rate']:g} commands/s, {profile} profile",
                "timeline",
                {sink: report.latency_timeline(rows) for sink, rows in samples.items()},
                x_label="s",
                y_label="ms",
            )
        )
    return charts


def evaluate_goals(profiles: list[dict[str, Any]]) -> list[report.Goal]:
    goals = []
    for entry in profiles:
        profile = entry["profile"]
        threshold = GOALS_MS.get(profile)
        if threshold is None:
            continue
        through = "through Kafka" if profile == "services" else "embedded"
        for sink, figures in entry["sinks"].items():
            goals.append(
                report.Goal(
                    f"{sink} lag p99 {through} at {entry['rate']:g} commands/s "
                    f"(goal at {GOAL_RATE})",
                    figures["lag_ms"].get("p99"),
                    threshold,
                    higher_is_better=False,
                    unit=" ms",
                )
            )
    return goals


goals_of = report.saved_goals
"""Rebuild the goals of a result (for printing)."""


def results_table(result: dict[str, Any]) -> Table:
    rows = []
    for entry in result["profiles"]:
        commands = entry["commands"]
        for sink, figures in entry["sinks"].items():
            lag = figures["lag_ms"]
            resolution = figures["resolution"]
            if "mean_poll_period_ms" in resolution:
                resolved = f"poll {report.format_ms(resolution['mean_poll_period_ms'])} ms"
            else:
                resolved = (
                    f"server {resolution['server_poll_ms']:g} ms + query "
                    f"{report.format_ms(resolution['query_without_wait_ms'])} ms"
                )
            rows.append(
                (
                    entry["profile"],
                    sink,
                    f"{entry['rate']:g} ({report.format_rate(commands['achieved_rate'])} ok, "
                    f"p99 {report.format_ms(commands['latency_ms'].get('p99'))} ms)",
                    str(figures["count"]),
                    report.format_ms(lag.get("p50")),
                    report.format_ms(lag.get("p99")),
                    report.format_ms(lag.get("p99.9")),
                    report.format_ms(lag.get("max")),
                    resolved,
                )
            )
    headers = (
        "profile", "read model", "commands/s (answered, command p99)", "samples", "p50 ms",
        "p99 ms", "p99.9 ms", "max ms", "resolution",
    )  # fmt: skip
    return report.table("End-to-end lag: command answer → read model reflects it", headers, rows)


__all__ = [
    "LagSettings",
    "Observations",
    "commands_of",
    "evaluate_goals",
    "goals_of",
    "lags",
    "results_table",
    "run_lag_benchmark",
]
