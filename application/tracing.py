"""Tracing through the OpenTelemetry API only: what the application and the projections need to
make spans that join the trace of the request that caused them.

The SDK (the provider, its exporter, sampling) is configured by `infrastructure.telemetry`
when a process starts; until then, and when it is disabled, every span here is a no-op that
costs next to nothing. A stored event carries the W3C `traceparent` of the span that appended
it, so whoever handles the event later (the relay, a projector, a saga) continues that trace
or links to it (`SpanCause`).

Span attributes go through `safe_attributes`: no email, password, token or search text ever
reaches a span, whoever adds one later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

# The attributes Mercato's own spans use, so a trace search can rely on one spelling.
TENANT = "mercato.tenant"
STREAM = "mercato.stream_id"
EVENT_TYPE = "mercato.event_type"
POSITION = "mercato.position"
EVENT_COUNT = "mercato.event_count"
PROJECTION = "mercato.projection"
SINK = "mercato.sink"
OUTCOME = "mercato.outcome"
COMMAND = "mercato.command"

MAX_LINKS = 100
"""Links kept on a span serving many traces at once (the SDK keeps 128 by default)."""

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = "traceparent"


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


@contextmanager
def traced(
    tracer: Tracer, name: str, *, attributes: Mapping[str, object], **options: Any
) -> Iterator[Span]:
    """`tracer.start_as_current_span(name, **options)` with `safe_attributes(attributes)` set,
    but only on a span that records: with tracing off the filtering would be wasted work on
    every command and append."""
    with tracer.start_as_current_span(name, **options) as span:
        if span.is_recording():
            span.set_attributes(safe_attributes(attributes))
        yield span


def in_a_span() -> bool:
    """Whether a valid span is current (then a new span is simply its child)."""
    return trace.get_current_span().get_span_context().is_valid


@dataclass(frozen=True)
class SpanCause:
    """Where a span that handles stored events belongs: the parent context and links to pass
    to `start_as_current_span(name, context=cause.context, links=cause.links)`.

    Events that all belong to one trace (one request, and what its sagas did): the new span is
    a child of the last event's span, in that trace, linked to the other events' spans. Events
    of several traces: a trace of its own, linked to each (a span cannot have several parents,
    and a batch belongs to no request more than another). None known: a trace of its own.
    """

    context: Context | None
    links: Sequence[Link] = field(default_factory=tuple)

    @classmethod
    def of(cls, traceparents: Iterable[str | None]) -> SpanCause:
        causes: dict[str, Link] = {}
        for traceparent in traceparents:
            if traceparent and traceparent not in causes:
                link = link_from_traceparent(traceparent)
                if link is not None:
                    causes[traceparent] = link
        if len({link.context.trace_id for link in causes.values()}) == 1:
            *others, parent = causes
            return cls(
                context_from_traceparent(parent),
                tuple(causes[other] for other in others[-MAX_LINKS:]),
            )
        return cls(Context(), tuple(list(causes.values())[:MAX_LINKS]))

    @classmethod
    def current(cls) -> SpanCause:
        """The current span, whatever it is, as the parent."""
        return cls(None)


def record_failure(span: Span, error: BaseException) -> None:
    """Mark a span failed by an unexpected error (not a refusal the caller caused)."""
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def short_event_type(event_type: str) -> str:
    """`domain.order:Order.Placed` → `Order.Placed`: readable, and few enough for span names."""
    return event_type.rpartition(":")[2] or event_type


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
