"""The HTTP API's telemetry on the embedded profile: one server span per request, named and
labelled by its route template, continuing the caller's trace, holding no secret; the request
metrics at `GET /metrics`; the request id and the span in the handler's context."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from infrastructure.telemetry import context
from infrastructure.telemetry.metrics import REGISTRY, serve_metrics
from infrastructure.telemetry.tracing import traceparent_of_current_span
from interfaces.http.dependencies import CurrentActor
from tests.e2e.http_support import (
    create_product,
    embedded_settings,
    place_order,
    running,
    signed_up,
    until_sagas_rest,
)
from tests.e2e.span_recording import recording_spans

pytestmark = pytest.mark.e2e

# Every metric the issue names; each must be exposed (with its HELP) from the first scrape.
METRIC_NAMES = (
    "mercato_http_requests_total",
    "mercato_http_request_duration_seconds",
    "mercato_commands_total",
    "mercato_event_appends_total",
    "mercato_event_append_duration_seconds",
    "mercato_events_published_total",
    "mercato_relay_lag_events",
    "mercato_projection_lag_events",
    "mercato_projection_lag_seconds",
    "mercato_projection_checkpoint_position",
    "mercato_projection_events_applied_total",
    "mercato_dead_letters_parked",
    "mercato_saga_instances",
    "mercato_saga_deadlines_pending",
)


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as recorder:
        yield recorder


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, exporter: InMemorySpanExporter
) -> Iterator[TestClient]:
    def add_probe_routes(app: FastAPI) -> None:
        async def boom() -> None:
            raise RuntimeError("an unexpected failure")

        async def context_of_the_handler() -> dict[str, str | None]:
            return {
                "request_id": context.request_id.get(),
                "traceparent": traceparent_of_current_span(),
                "tenant": context.tenant.get(),
            }

        async def tenant_of_the_handler(actor: CurrentActor) -> dict[str, str | None]:
            return {"tenant": context.tenant.get(), "actor_tenant": actor.tenant_id}

        app.add_api_route("/test/boom", boom)
        app.add_api_route("/test/context", context_of_the_handler)
        app.add_api_route("/test/tenant", tenant_of_the_handler)

    settings = embedded_settings(tmp_path_factory.mktemp("telemetry") / "state")
    with running(settings, prepare=add_probe_routes) as client:
        yield client


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def server_span(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == name
    return span


def requests_counted(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("mercato_http_requests_total", labels) or 0.0


def test_a_request_is_one_server_span_named_by_its_route_template(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    order_id = uuid4()
    response = client.get(f"/orders/{order_id}")
    assert response.status_code == 401
    span = server_span(spans, "GET /orders/{order_id}")
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.route"] == "/orders/{order_id}"
    assert span.attributes["url.path"] == f"/orders/{order_id}"
    assert span.attributes["http.response.status_code"] == 401
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is the client's error


def test_span_attributes_hold_no_query_string_and_no_credentials(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    secret_token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXZhbHVl"
    client.get(
        "/products",
        params={"q": "very private words", "email": "ada@example.com"},
        headers={"Authorization": f"Bearer {secret_token}", "Cookie": "session=s3cr3t"},
    )
    span = server_span(spans, "GET /products")
    assert span.attributes is not None
    recorded = repr(dict(span.attributes))
    for secret in ("private", "ada@example.com", secret_token, "s3cr3t", "Bearer"):
        assert secret not in recorded
    assert not any("authorization" in key or "cookie" in key for key in span.attributes)


def test_a_caller_traceparent_is_continued(client: TestClient, spans: InMemorySpanExporter) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    client.get("/products", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    span = server_span(spans, "GET /products")
    assert span.context is not None and span.parent is not None
    assert f"{span.context.trace_id:032x}" == trace_id
    assert f"{span.parent.span_id:016x}" == parent_id


def test_the_handler_sees_the_request_id_and_the_server_span(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    response = client.get("/test/context", headers={"X-Request-ID": "req-telemetry-1"})
    assert response.json()["request_id"] == "req-telemetry-1"
    span = server_span(spans, "GET /test/context")
    assert span.context is not None
    _version, trace_id, span_id, _flags = response.json()["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
    assert context.request_id.get() is None  # bound for the request only


def test_an_authenticated_request_names_its_tenant_in_the_logs_and_on_its_span(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    user = signed_up(client, "tenant.probe@example.org", tenant="globex")
    spans.clear()
    answer = client.get("/test/tenant", headers=user.headers).json()
    assert answer == {"tenant": "globex", "actor_tenant": "globex"}
    span = server_span(spans, "GET /test/tenant")
    assert span.attributes is not None and span.attributes["mercato.tenant"] == "globex"
    # The next request, served by the same server, starts with no tenant.
    assert client.get("/test/context").json()["tenant"] is None


def test_an_unexpected_error_is_a_500_on_the_span_and_in_the_metrics(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    before = requests_counted("/test/boom", "GET", 500)
    response = client.get("/test/boom")
    assert response.status_code == 500
    span = server_span(spans, "GET /test/boom")
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 500
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert requests_counted("/test/boom", "GET", 500) == before + 1


def test_probes_and_scrapes_are_counted_but_not_traced(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    before = requests_counted("/healthz", "GET", 200)
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER] == []
    assert requests_counted("/healthz", "GET", 200) == before + 1


def test_metrics_are_labelled_by_route_template_never_by_raw_path(client: TestClient) -> None:
    order_id = uuid4()
    client.get(f"/orders/{order_id}")
    client.get(f"/no/such/{order_id}")
    client.delete("/healthz")  # a known path, another method: 405, under its template
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert (
        'mercato_http_requests_total{method="GET",route="/orders/{order_id}",status="401"}' in text
    )
    assert 'mercato_http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert 'mercato_http_requests_total{method="DELETE",route="/healthz",status="405"}' in text
    bucket = '{le="0.005",method="GET",route="/orders/{order_id}"}'
    assert f"mercato_http_request_duration_seconds_bucket{bucket}" in text
    assert str(order_id) not in text


def test_metrics_expose_every_metric_with_its_help(client: TestClient) -> None:
    text = client.get("/metrics").text
    for name in METRIC_NAMES:
        assert f"# HELP {name} " in text, name


def test_the_embedded_api_counts_its_sagas_by_status_and_their_deadlines(
    client: TestClient,
) -> None:
    creator = signed_up(client, "saga.gauges.creator@example.org", roles=("creator",))
    buyer = signed_up(client, "saga.gauges.buyer@example.org")
    order_id = place_order(client, buyer, create_product(client, creator))
    until_sagas_rest(client, buyer, order_id)

    text = client.get("/metrics").text

    assert 'mercato_saga_instances{saga="checkout",state="completed"} 1.0' in text
    assert 'mercato_saga_instances{saga="escrow",state="awaiting_confirmation"} 1.0' in text
    assert 'mercato_saga_instances{saga="checkout",state="reserving"} 0.0' in text
    assert "mercato_saga_deadlines_pending 1.0" in text  # the dispute window


def test_commands_and_appends_are_counted_by_type_and_outcome(client: TestClient) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    placed_before = sample("mercato_commands_total", command="PlaceOrder", outcome="ok")
    missing_before = sample("mercato_commands_total", command="PlaceOrder", outcome="not_found")
    appends_before = sample("mercato_event_appends_total")
    timed_before = sample("mercato_event_append_duration_seconds_count")
    creator = signed_up(client, "commands.creator@example.org", roles=("creator",))
    buyer = signed_up(client, "commands.buyer@example.org")
    place_order(client, buyer, create_product(client, creator))
    refused = client.post(
        "/orders",
        json={"lines": [{"product_id": str(uuid4()), "quantity": 1}]},
        headers=buyer.headers | {"Idempotency-Key": str(uuid4())},
    )
    assert refused.status_code == 404

    assert client.get("/metrics").status_code == 200
    assert sample("mercato_commands_total", command="PlaceOrder", outcome="ok") > placed_before
    missing = sample("mercato_commands_total", command="PlaceOrder", outcome="not_found")
    assert missing == missing_before + 1
    appends = sample("mercato_event_appends_total") - appends_before
    assert appends >= 3  # the product's creation and publication, the order's placing
    # Timed as often as counted (the sagas keep appending meanwhile, hence no equality).
    assert sample("mercato_event_append_duration_seconds_count") - timed_before >= 3


async def test_a_worker_serves_its_metrics_on_its_own_port_until_stopped() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_metrics(port, stop, host="127.0.0.1"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await _when_listening(http, "/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert "# HELP mercato_projection_lag_events " in response.text
            assert (await http.get("/other")).status_code == 404
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=10)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/metrics")


async def _when_listening(http: httpx.AsyncClient, path: str) -> httpx.Response:
    async with asyncio.timeout(10):
        while True:
            try:
                return await http.get(path)
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
