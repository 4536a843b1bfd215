"""Recording this process's spans in memory, for the tests that look at traces."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@contextmanager
def recording_spans() -> Iterator[InMemorySpanExporter]:
    """Spans of this process, recorded in memory for the block. The global provider is set
    once per process: install an SDK one if nobody has, and add a recorder to it either way."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another test installed a non-SDK provider"
    recorder = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    try:
        yield recorder
    finally:
        recorder.shutdown()  # keeps no more spans for the rest of the session
        recorder.clear()


def trace_id_of(span: ReadableSpan) -> int:
    assert span.context is not None
    trace_id: int = span.context.trace_id
    return trace_id


def span_id_of(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


def belongs_or_links_to(span: ReadableSpan, trace_id: int) -> bool:
    """The span is in the trace, or links to a span of it (a batch serving several traces)."""
    return trace_id_of(span) == trace_id or any(
        link.context.trace_id == trace_id for link in span.links
    )
