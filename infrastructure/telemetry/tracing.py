"""Tracing: one OpenTelemetry tracer provider per process, configured from the standard `OTEL_*`
variables, and the helpers that carry a trace across the event log.

- `OTEL_SDK_DISABLED=true`: no provider is installed; every span is a no-op.
- `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set: spans are batched
  and exported over OTLP/HTTP (`OTEL_TRACES_EXPORTER=none` says not to).
- Neither: spans are recorded (so trace ids reach the logs and the event metadata) and dropped.

The collector is never on a request's path: spans wait in the batch processor's bounded queue
(dropped when full) and a background thread exports them, each attempt bounded by the export
timeout. `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*`
work as the SDK documents.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from enum import Enum

from opentelemetry import trace
from opentelemetry.context import Context
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
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

DEFAULT_EXPORT_TIMEOUT_SECONDS = 2.0
"""Each export attempt's bound unless `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` says otherwise
(the SDK's own default, 10 s, would hold a shutting-down process that long)."""

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = "traceparent"


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


def traceparent_of_current_span() -> str | None:
    """The W3C `traceparent` of the current span, to store with the events it causes; None
    when there is no valid span (tracing disabled, or outside any span)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(_TRACEPARENT)


def context_from_traceparent(traceparent: str | None) -> Context:
    """A context whose parent is the span a stored `traceparent` names, to continue its trace
    (`tracer.start_as_current_span(name, context=...)`); an empty context, so a new trace, when
    the value is missing or malformed."""
    if not traceparent:
        return Context()
    return _PROPAGATOR.extract({_TRACEPARENT: traceparent}, context=Context())


def link_from_traceparent(traceparent: str | None) -> Link | None:
    """A link to the span a stored `traceparent` names, for a span that serves many traces at
    once (a batch of events from many requests); None when the value is missing or malformed."""
    span_context = trace.get_current_span(context_from_traceparent(traceparent)).get_span_context()
    return Link(span_context) if span_context.is_valid else None


# Keys naming a secret or a person: their values never reach a span.
_SECRET_KEY_PARTS = (
    "email",
    "password",
    "passwd",
    "token",
    "authorization",
    "secret",
    "cookie",
    "jwt",
    "credential",
)
# Keys naming text a user typed to search: only its length is kept.
_SEARCH_KEY_WORDS = frozenset({"search", "query", "q"})
# Values that look like a secret or a person whatever their key says.
_SECRET_LOOKING_VALUE = re.compile(
    r"[^@\s]+@[^@\s]+\.[^@\s]+"  # an email address
    r"|eyJ[\w-]*\.[\w-]+\.[\w-]*"  # a JWT
    r"|^(?:bearer|basic)\s",  # an Authorization header value
    re.IGNORECASE,
)


def safe_attributes(
    attributes: Mapping[str, object] | None = None, /, **more: object
) -> dict[str, AttributeValue]:
    """Span attributes with nothing that could leak a secret or a person.

    Dropped: keys naming an email, password, token, authorization, secret, cookie or credential,
    values that look like an email, a JWT or an `Authorization` value, and None. Search text
    (`search…`, `query`, `q`) becomes its length under `<key>.length`. Other values are kept as
    OpenTelemetry accepts them: str, bool, int, float; anything else (a UUID, an enum) as its
    text, and a sequence as a list of texts (dropped whole if one item is). Dotted names go in
    the mapping: `safe_attributes({"mercato.stream_id": stream}, position=7)`.
    """
    safe: dict[str, AttributeValue] = {}
    for key, value in {**(attributes or {}), **more}.items():
        lowered = key.lower()
        if value is None or any(part in lowered for part in _SECRET_KEY_PARTS):
            continue
        if _SEARCH_KEY_WORDS.intersection(re.split(r"[._\-]", lowered)):
            safe[f"{key}.length"] = len(str(value))
            continue
        converted = _attribute_value(value)
        if converted is not None:
            safe[key] = converted
    return safe


def _attribute_value(value: object) -> AttributeValue | None:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        texts = [_text(item) for item in value]
        return None if None in texts else [text for text in texts if text is not None]
    return _text(value)


def _text(value: object) -> str | None:
    text = str(value.value) if isinstance(value, Enum) else str(value)
    return None if _SECRET_LOOKING_VALUE.search(text) else text
