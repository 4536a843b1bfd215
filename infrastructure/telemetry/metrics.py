"""Prometheus metrics: every metric Mercato exposes, defined once, in one registry.

The API serves them at `GET /metrics`; each worker with `serve_metrics` on its `--metrics-port`.
Labels take values from small fixed sets (a route *template* such as `/orders/{order_id}`, never
the raw path; a command's class name; a projection's name), so the number of series stays
bounded whatever the traffic.

One process, one registry: with several uvicorn worker processes each has its own counters and
a scrape reaches one of them — run one process per container and scale with replicas.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# The `_created` timestamp series would double the series of every counter and histogram, and
# the text format Prometheus scrapes does not use them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client's own gap

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# An append is a few milliseconds; the default buckets (5 ms and up) would hide its shape.
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "mercato_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "mercato_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its answer, by route template and method.",
    ["route", "method"],
    registry=REGISTRY,
)
COMMANDS = Counter(
    "mercato_commands_total",
    "Commands handled, by command type (its class name) and outcome.",
    ["command", "outcome"],
    registry=REGISTRY,
)
EVENT_APPENDS = Counter(
    "mercato_event_appends_total",
    "Appends to the event store acknowledged (each may hold several events).",
    registry=REGISTRY,
)
EVENT_APPEND_DURATION = Histogram(
    "mercato_event_append_duration_seconds",
    "Time from asking for an append to its acknowledgement (events final and readable).",
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "mercato_events_published_total",
    "Events the relay published to Kafka (acknowledged by the broker).",
    registry=REGISTRY,
)
RELAY_LAG = Gauge(
    "mercato_relay_lag_events",
    "Events in the store not yet published to Kafka by the relay.",
    registry=REGISTRY,
)
PROJECTION_LAG_EVENTS = Gauge(
    "mercato_projection_lag_events",
    "Events in the log a projection has not applied yet.",
    ["projection"],
    registry=REGISTRY,
)
PROJECTION_LAG_SECONDS = Gauge(
    "mercato_projection_lag_seconds",
    "Age of the oldest event a projection has not applied yet (0 when caught up).",
    ["projection"],
    registry=REGISTRY,
)
PROJECTION_CHECKPOINT = Gauge(
    "mercato_projection_checkpoint_position",
    "The global position up to which a projection has applied the log (its checkpoint).",
    ["projection"],
    registry=REGISTRY,
)
PROJECTION_EVENTS_APPLIED = Counter(
    "mercato_projection_events_applied_total",
    "Events a projection has applied to its read model.",
    ["projection"],
    registry=REGISTRY,
)
PROJECTION_STORE_ERRORS = Counter(
    "mercato_projection_store_errors_total",
    "Failed store calls a projection worker waited out (a store refusing or timing out); "
    "it backs off and tries again.",
    ["projection"],
    registry=REGISTRY,
)
PROJECTION_STALLED = Gauge(
    "mercato_projection_stalled",
    "1 while a projection worker waits for a failing store to come back, else 0.",
    ["projection"],
    registry=REGISTRY,
)
DEAD_LETTERS_PARKED = Gauge(
    "mercato_dead_letters_parked",
    "Streams a projection has parked after a poison event (their events wait in dead letters).",
    ["projection"],
    registry=REGISTRY,
)
SAGA_INSTANCES = Gauge(
    "mercato_saga_instances",
    "Saga instances by saga and state.",
    ["saga", "state"],
    registry=REGISTRY,
)
SAGA_DEADLINES_PENDING = Gauge(
    "mercato_saga_deadlines_pending",
    "Saga deadlines (payment timeouts, dispute windows) scheduled and not yet fired.",
    registry=REGISTRY,
)
SAGAS_PARKED = Gauge(
    "mercato_sagas_parked",
    "Sagas parked after an input failed for good (their inputs wait in dead letters; "
    "`mercato sagas list`), by saga and tenant.",
    ["saga", "tenant"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "mercato_rate_limited_total",
    "Requests refused with 429 by a rate-limit rule (login_ip, command_tenant, ...).",
    ["rule"],
    registry=REGISTRY,
)
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "mercato_rate_limit_storage_errors_total",
    "Rate-limit checks the shared store (Redis) failed to answer; this process's own "
    "in-memory budget judged them instead.",
    registry=REGISTRY,
)


def render_latest() -> tuple[bytes, str]:
    """Every metric in the Prometheus text format, with its content type.

    Labelled version 0.0.4, what every Prometheus reads, as prometheus_client's own server
    does for a scraper that asks for nothing else (1.0.0 only adds UTF-8 names, which ours
    are not).
    """
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4


async def serve_metrics(port: int, stop: asyncio.Event, *, host: str = "0.0.0.0") -> None:
    """Answer `GET /metrics` on `host:port` until `stop` is set (a worker's `--metrics-port`).

    A few lines of asyncio rather than prometheus_client's server thread: it starts and stops
    with the worker's event loop, and a port already taken fails the start, not a thread.
    """
    server = await asyncio.start_server(_answer, host, port)
    async with server:
        await stop.wait()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(10):
            request_line = await reader.readline()
            while (await reader.readline()).strip():  # the headers, unused
                pass
        method, _, target = request_line.decode("latin-1").partition(" ")
        path = target.split(" ", 1)[0].split("?", 1)[0]
        if method == "GET" and path == "/metrics":
            body, content_type = render_latest()
            status = "200 OK"
        else:
            body, content_type, status = b"not found\n", "text/plain", "404 Not Found"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass  # a scraper that went away or never spoke: nothing to answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class PrometheusInstruments:
    """The write side's `Instruments` port, on this registry's command and append metrics."""

    def command_handled(self, command: str, outcome: str) -> None:
        COMMANDS.labels(command=command, outcome=outcome).inc()

    def append_acknowledged(self, events: int, seconds: float) -> None:
        EVENT_APPENDS.inc()
        EVENT_APPEND_DURATION.observe(seconds)


class PrometheusOutageReport:
    """The projection runtime's `OutageReport`, on the store-error counter and stall gauge."""

    def failed(self, projection: str, error: Exception) -> None:
        PROJECTION_STORE_ERRORS.labels(projection).inc()
        PROJECTION_STALLED.labels(projection).set(1)

    def resumed(self, projection: str) -> None:
        PROJECTION_STALLED.labels(projection).set(0)
