"""Tracing: one OpenTelemetry tracer provider per process, configured from the standard `OTEL_*`
variables, and the helpers that carry a trace across the event log.

- `OTEL_SDK_DISABLED=true`: no provider is installed; every span is a no-op.
- `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set: spans are batched
  and exported over OTLP/HTTP (`OTEL_TRACES_EXPORTER=none` says not to).
- Neither: spans are recorded (so trace ids reach the logs and the event metadata) and dropped.

The helpers that need only the OpenTelemetry API (the stored `traceparent`, span causes, safe
attributes) live in `application.tracing`, where the application and projections layers use
them; they are re-exported here for the interfaces.

The collector is never on a request's path: spans wait in the batch processor's bounded queue
(dropped when full) and a background thread exports them, each attempt bounded by the export
timeout. `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*`
work as the SDK documents.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_SDK_DISABLED,
    OTEL_SERVICE_NAME,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from application.tracing import (
    context_from_traceparent,
    link_from_traceparent,
    safe_attributes,
    traceparent_of_current_span,
)

__all__ = [
    "DEFAULT_EXPORT_TIMEOUT_SECONDS",
    "build_tracer_provider",
    "configure_tracing",
    "context_from_traceparent",
    "link_from_traceparent",
    "process_tracing",
    "safe_attributes",
    "span_exporter_from_environment",
    "traceparent_of_current_span",
]

DEFAULT_EXPORT_TIMEOUT_SECONDS = 2.0
"""Each export attempt's bound unless `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` says otherwise
(the SDK's own default, 10 s, would hold a shutting-down process that long)."""


def configure_tracing(service_name: str) -> TracerProvider | None:
    """Install this process's tracer provider (once, at start-up); None when the SDK is disabled.

    `service_name` names the process (`mercato-api`, `mercato-relay`…) unless
    `OTEL_SERVICE_NAME` is set. Call `shutdown()` on the result when the process stops, to
    export the spans still queued.
    """
    provider = build_tracer_provider(service_name)
    if provider is not None:
        trace.set_tracer_provider(provider)
    return provider


@contextmanager
def process_tracing(service_name: str) -> Iterator[TracerProvider | None]:
    """Tracing for the life of a process (`mercato serve`, each `mercato worker`): the provider
    is installed on entry and shut down on exit, which exports the spans still queued (each
    attempt bounded by the export timeout, so an absent collector delays the exit by little)."""
    provider = configure_tracing(service_name)
    try:
        yield provider
    finally:
        if provider is not None:
            provider.shutdown()


def build_tracer_provider(service_name: str) -> TracerProvider | None:
    """The provider `configure_tracing` installs, without installing it."""
    if os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return None
    resource = Resource.create({SERVICE_NAME: os.environ.get(OTEL_SERVICE_NAME) or service_name})
    provider = TracerProvider(resource=resource)
    exporter = span_exporter_from_environment()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def span_exporter_from_environment() -> SpanExporter | None:
    """An OTLP/HTTP exporter when an endpoint is configured, else None (nothing is exported)."""
    endpoint = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or os.environ.get(
        OTEL_EXPORTER_OTLP_ENDPOINT
    )
    if not endpoint or os.environ.get(OTEL_TRACES_EXPORTER, "").strip().lower() == "none":
        return None
    timeout_is_configured = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) or os.environ.get(
        OTEL_EXPORTER_OTLP_TIMEOUT
    )
    # The exporter reads the endpoint, headers, compression and a configured timeout itself.
    timeout = None if timeout_is_configured else DEFAULT_EXPORT_TIMEOUT_SECONDS
    return OTLPSpanExporter(timeout=timeout)
