"""Tracing: the provider the OTEL_* variables ask for, a trace carried by a stored
`traceparent`, span attributes that never leak a secret, and a collector that cannot slow us."""

from __future__ import annotations

import asyncio
import socket
import time
from enum import Enum
from typing import NoReturn
from uuid import UUID

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

from application import tracing as tracing_module
from application.commerce.bus import command_outcome
from application.errors import AggregateNotFoundError
from application.ports.event_store import ConcurrencyError, IdempotencyKeyReusedError
from application.tracing import MAX_LINKS, SpanCause, traced
from domain.errors import Conflict
from domain.order import Order
from infrastructure.telemetry.tracing import (
    build_tracer_provider,
    context_from_traceparent,
    link_from_traceparent,
    safe_attributes,
    span_exporter_from_environment,
    traceparent_of_current_span,
)

pytestmark = pytest.mark.unit

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
)


@pytest.fixture(autouse=True)
def clean_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in OTEL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def recorded() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- the provider -------------------------------------------------------------------------


def test_otel_sdk_disabled_installs_no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert build_tracer_provider("mercato-api") is None


def test_without_an_endpoint_spans_are_recorded_and_not_exported() -> None:
    assert span_exporter_from_environment() is None
    provider = build_tracer_provider("mercato-api")
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("work") as span:
        assert span.is_recording()
    provider.shutdown()


@pytest.mark.parametrize(
    ("variable", "value", "expected_endpoint"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "http://collector:4318/v1/traces"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4318/t",
            "http://collector:4318/t",
        ),
    ],
)
def test_an_endpoint_asks_for_an_otlp_http_exporter(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected_endpoint: str
) -> None:
    monkeypatch.setenv(variable, value)
    exporter = span_exporter_from_environment()
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == expected_endpoint


def test_otel_traces_exporter_none_exports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert span_exporter_from_environment() is None


def test_the_service_name_is_ours_unless_otel_service_name_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = build_tracer_provider("mercato-relay")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "mercato-relay"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "relay-eu-1")
    renamed = build_tracer_provider("mercato-relay")
    assert renamed is not None
    assert renamed.resource.attributes["service.name"] == "relay-eu-1"


def test_an_unreachable_collector_neither_fails_nor_slows_the_spans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    provider = build_tracer_provider("mercato-api")
    assert provider is not None
    tracer = provider.get_tracer("test")
    started = time.perf_counter()
    for number in range(300):
        with tracer.start_as_current_span(f"request {number}"):
            pass
    spans_took = time.perf_counter() - started
    provider.force_flush(timeout_millis=100)  # an export attempt now fails in the background
    started = time.perf_counter()
    provider.shutdown()
    shutdown_took = time.perf_counter() - started
    # Generous bounds for a busy machine: 300 spans take milliseconds; the shutdown waits for
    # at most one export attempt, bounded by the 2 s export timeout (and its retries within it).
    assert spans_took < 2.0
    assert shutdown_took < 20.0


# --- a trace carried by a stored traceparent ----------------------------------------------


def test_a_stored_traceparent_continues_the_trace_of_the_span_it_names(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /orders") as request_span:
        traceparent = traceparent_of_current_span()
    assert traceparent is not None
    request_context = request_span.get_span_context()
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{request_context.trace_id:032x}",
        f"{request_context.span_id:016x}",
    )

    with tracer.start_as_current_span("apply", context=context_from_traceparent(traceparent)):
        pass
    apply = next(span for span in exporter.get_finished_spans() if span.name == "apply")
    assert apply.context is not None and apply.parent is not None
    assert apply.context.trace_id == request_context.trace_id
    assert apply.parent.span_id == request_context.span_id


def test_a_link_names_the_span_of_a_stored_traceparent(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /orders"):
        traceparent = traceparent_of_current_span()
    link = link_from_traceparent(traceparent)
    assert link is not None
    with tracer.start_as_current_span("batch", links=[link]):
        pass
    batch = next(span for span in exporter.get_finished_spans() if span.name == "batch")
    assert [link.context.span_id for link in batch.links] == [link.context.span_id]
    assert batch.parent is None


@pytest.mark.parametrize("stored", [None, "", "not-a-traceparent", "00-" + "0" * 32 + "-1-01"])
def test_a_missing_or_malformed_traceparent_starts_a_new_trace(
    recorded: tuple[TracerProvider, InMemorySpanExporter], stored: str | None
) -> None:
    provider, exporter = recorded
    with provider.get_tracer("test").start_as_current_span(
        "apply", context=context_from_traceparent(stored)
    ):
        pass
    (apply,) = exporter.get_finished_spans()
    assert apply.parent is None
    assert link_from_traceparent(stored) is None


def test_outside_any_span_there_is_no_traceparent() -> None:
    assert traceparent_of_current_span() is None


# --- attributes that leak nothing ---------------------------------------------------------


class Kind(Enum):
    TRACK = "track"


def test_safe_attributes_keep_what_names_the_work() -> None:
    stream = UUID("12345678-1234-5678-1234-567812345678")
    assert safe_attributes(
        {"mercato.stream_id": stream, "mercato.position": 42},
        tenant="acme",
        kind=Kind.TRACK,
        replayed=False,
        ratio=0.5,
        event_types=["OrderPlaced", "StockReserved"],
    ) == {
        "mercato.stream_id": str(stream),
        "mercato.position": 42,
        "tenant": "acme",
        "kind": "track",
        "replayed": False,
        "ratio": 0.5,
        "event_types": ["OrderPlaced", "StockReserved"],
    }


def test_safe_attributes_drop_every_key_that_names_a_secret_or_a_person() -> None:
    assert (
        safe_attributes(
            {
                "enduser.email": "x",
                "http.request.header.authorization": "x",
                "refresh_token": "x",
                "mercato.password_hash": "x",
                "webhook_secret": "x",
                "Cookie": "x",
                "credentials": "x",
            },
            email="x",
            password="x",
            access_token="x",
        )
        == {}
    )


def test_safe_attributes_drop_values_that_look_like_a_secret_whatever_their_key() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert (
        safe_attributes(
            note="mail ada@example.com now",
            header="Bearer abc",
            basic="Basic dXNlcjpwYXNz",
            blob=jwt,
            names=["ok", "ada@example.com"],
            missing=None,
        )
        == {}
    )


def test_search_text_is_kept_as_its_length_only() -> None:
    assert safe_attributes(
        {"mercato.search.text": "lofi beats", "url.query": "q=lofi"}, q="drum kit", query="abc"
    ) == {
        "mercato.search.text.length": 10,
        "url.query.length": 6,
        "q.length": 8,
        "query.length": 3,
    }


# --- where a span handling stored events belongs ------------------------------------------


def spans_named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [span for span in exporter.get_finished_spans() if span.name == name]
    return span


def test_events_of_one_span_make_the_batch_its_child(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("append"):
        traceparent = traceparent_of_current_span()
    cause = SpanCause.of([traceparent, traceparent, None])
    with tracer.start_as_current_span("apply", context=cause.context, links=cause.links):
        pass
    append, apply = spans_named(exporter, "append"), spans_named(exporter, "apply")
    assert apply.parent is not None and append.context is not None
    assert apply.parent.span_id == append.context.span_id
    assert list(apply.links) == []


def test_events_of_one_trace_make_the_batch_a_child_of_the_last_linked_to_the_others(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        parents = []
        for name in ("first append", "second append"):
            with tracer.start_as_current_span(name):
                parents.append(traceparent_of_current_span())
    cause = SpanCause.of(parents)
    with tracer.start_as_current_span("apply", context=cause.context, links=cause.links):
        pass
    first, second = spans_named(exporter, "first append"), spans_named(exporter, "second append")
    apply = spans_named(exporter, "apply")
    assert apply.parent is not None and second.context is not None and first.context is not None
    assert apply.parent.span_id == second.context.span_id
    assert [link.context.span_id for link in apply.links] == [first.context.span_id]


def test_events_of_several_traces_make_the_batch_a_trace_linked_to_each(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    tracer = provider.get_tracer("test")
    causes = []
    for name in ("request a", "request b"):
        with tracer.start_as_current_span(name):
            causes.append(traceparent_of_current_span())
    with tracer.start_as_current_span("unrelated current span"):
        cause = SpanCause.of(causes)
        with tracer.start_as_current_span("apply", context=cause.context, links=cause.links):
            pass
    apply = spans_named(exporter, "apply")
    requests = [spans_named(exporter, name) for name in ("request a", "request b")]
    assert apply.parent is None  # not the current span's child either
    assert [link.context.trace_id for link in apply.links] == [
        request.context.trace_id for request in requests if request.context is not None
    ]


def test_a_batch_links_to_at_most_max_links_traces(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = recorded
    tracer = provider.get_tracer("test")
    causes = []
    for number in range(MAX_LINKS + 20):
        with tracer.start_as_current_span(f"request {number}"):
            causes.append(traceparent_of_current_span())
    assert len(SpanCause.of(causes).links) == MAX_LINKS
    assert SpanCause.of([None, "garbage"]).links == ()


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (Conflict("sold out"), "refused"),
        (AggregateNotFoundError(Order, "o-1"), "not_found"),
        (ConcurrencyError("o-1", 3, 4), "conflict"),
        (IdempotencyKeyReusedError("k"), "key_reused"),
        (asyncio.CancelledError(), "cancelled"),
        (RuntimeError("boom"), "error"),
    ],
)
def test_a_failed_command_names_its_outcome_in_a_word(error: BaseException, outcome: str) -> None:
    assert command_outcome(error) == outcome


def test_traced_spans_get_safe_attributes_and_a_no_op_span_costs_no_filtering(
    recorded: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, exporter = recorded
    attributes = {"mercato.tenant": "acme", "email": "ada@example.com"}
    with traced(provider.get_tracer("test"), "work", attributes=attributes):
        pass
    assert dict(spans_named(exporter, "work").attributes or {}) == {"mercato.tenant": "acme"}

    def not_called(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("attributes filtered for a span nobody records")

    monkeypatch.setattr(tracing_module, "safe_attributes", not_called)
    with traced(NoOpTracerProvider().get_tracer("test"), "work", attributes=attributes) as span:
        assert not span.is_recording()
