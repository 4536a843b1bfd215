"""One trace from `POST /orders` to the read model and the sagas, on both profiles.

The request's server span is the parent of the command's span, which is the parent of the
append; the events are stored with the append's `traceparent`, so the sagas' input spans are
its children (and their steps, and the commands the steps issue, theirs), and the projector's
batch spans belong to the trace or link to it. On the services profile the relay's publish
span and the Kafka consumer's span do too. No span holds an email, a password or a token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from application.tracing import POSITION, PROJECTION, SINK, STREAM, TENANT
from infrastructure.settings import load_settings
from infrastructure.telemetry.metrics import REGISTRY
from tests.e2e.http_support import (
    CHEAP_ARGON2,
    PASSWORD,
    User,
    call,
    container_of,
    create_product,
    embedded_settings,
    eventually,
    placed_order,
    running,
    sagas_running,
    signed_up,
    unique_topic_prefix,
    until_order_is,
    views_projected,
)
from tests.e2e.span_recording import (
    belongs_or_links_to,
    recording_spans,
    span_id_of,
    trace_id_of,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as recorder:
        yield recorder


@contextlib.contextmanager
def services_app(postgres_dsn: str, data_dir: Path) -> Iterator[TestClient]:
    """The API on the services profile, with beside it what a deployment runs in workers: the
    relay, the `views` projectors and a saga runner (as tasks on the app's loop)."""
    settings = load_settings(
        profile="services",
        data_dir=data_dir,
        postgres_dsn=postgres_dsn,
        kafka_topic_prefix=unique_topic_prefix(),
        **CHEAP_ARGON2,
    )
    with running(settings) as client, views_projected(client), sagas_running(client):
        yield client


@pytest.fixture(params=["embedded", "services"])
def client(
    request: pytest.FixtureRequest,
    exporter: InMemorySpanExporter,
    fresh_postgres_dsn: str,
    tmp_path: Path,
) -> Iterator[TestClient]:
    if request.param == "embedded":
        with running(embedded_settings(tmp_path / "state")) as client:
            yield client
    else:
        with services_app(fresh_postgres_dsn, tmp_path) as client:
            yield client


def the_span(spans: Sequence[ReadableSpan], name: str, *, parent: ReadableSpan) -> ReadableSpan:
    """The one span called `name` whose parent is `parent`."""
    found = [
        span
        for span in spans
        if span.name == name and span.parent is not None
        if span.parent.span_id == span_id_of(parent)
    ]
    assert len(found) == 1, (name, [span.name for span in spans])
    assert trace_id_of(found[0]) == trace_id_of(parent)
    return found[0]


def spans_named(exporter: InMemorySpanExporter, name: str, trace_id: int) -> list[ReadableSpan]:
    """Spans called `name` that belong to the trace or link to it, once one has ended — or
    that sit in a trace whose root links to it: a Kafka batch holding events of several traces
    starts a trace of its own, its `consume` span links to each, and `apply` is its child."""

    def ended() -> list[ReadableSpan] | None:
        spans = exporter.get_finished_spans()
        linking = {trace_id_of(span) for span in spans if belongs_or_links_to(span, trace_id)}
        found = [span for span in spans if span.name == name and trace_id_of(span) in linking]
        return found or None

    return eventually(ended, what=f"a span {name} of the trace has ended")


def test_one_order_is_one_trace_from_the_request_to_the_read_model_and_the_sagas(
    client: TestClient, exporter: InMemorySpanExporter
) -> None:
    services = container_of(client).settings.profile.value == "services"
    creator = signed_up(client, "creator@example.org", roles=("creator",))
    buyer = signed_up(client, "buyer@example.org")
    product_id = create_product(client, creator, stock=5)
    exporter.clear()

    order_id, position = placed_order(client, buyer, product_id)
    until_order_is(client, buyer, order_id, "delivered")

    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST /orders"]
    trace_id = trace_id_of(request)
    command = the_span(spans, "command PlaceOrder", parent=request)
    append = the_span(spans, "append Order", parent=command)
    assert command.attributes is not None and append.attributes is not None
    assert (command.attributes["mercato.outcome"], command.attributes[TENANT]) == ("ok", "acme")
    assert (append.attributes[STREAM], append.attributes[POSITION]) == (str(order_id), position)
    assert ids_in(stored_traceparent_of(client, order_id, buyer)) == (trace_id, span_id_of(append))

    # The checkout saga took the order from the append's span, and its steps are its children.
    saga = the_span(spans, "saga checkout on Order.Placed", parent=append)
    reserve = the_span(spans, "saga step checkout reserve", parent=saga)
    the_span(spans, "command ReserveStock", parent=reserve)

    # The order's view was written by a batch of this trace (or one linked to it).
    (apply, *_) = spans_named(exporter, "apply order_views", trace_id)
    assert apply.attributes is not None
    assert (apply.attributes[PROJECTION], apply.attributes[SINK]) == ("order_views", "views")
    consumed = spans_named(exporter, "consume order_views", trace_id)
    assert any(span_id_of(c) == apply.parent.span_id for c in consumed if apply.parent)
    if services:
        (publish, *_) = spans_named(exporter, "relay publish", trace_id)
        assert publish.kind is SpanKind.PRODUCER
        assert all(c.kind is SpanKind.CONSUMER for c in consumed)
        assert (REGISTRY.get_sample_value("mercato_events_published_total") or 0) > 0


def test_no_span_holds_an_email_a_password_or_a_token(
    client: TestClient, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    creator = signed_up(client, "maker.of.loops@example.org", roles=("creator",))
    buyer = signed_up(client, "listener@example.org")
    product_id = create_product(client, creator)
    order_id, _ = placed_order(client, buyer, product_id)
    until_order_is(client, buyer, order_id, "delivered")
    client.get("/products", params={"q": "night drive"}, headers=buyer.headers)

    spans = exporter.get_finished_spans()
    assert len({trace_id_of(span) for span in spans}) > 5
    secrets = [
        creator.email,
        buyer.email,
        PASSWORD,
        "night drive",
        *(user.access_token for user in (creator, buyer)),
        *(user.refresh_token for user in (creator, buyer)),
    ]
    for span in spans:
        recorded = repr(
            [dict(span.attributes or {}), [dict(e.attributes or {}) for e in span.events]]
            + [dict(link.attributes or {}) for link in span.links]
        )
        for secret in secrets:
            assert secret not in recorded, (span.name, secret)


def ids_in(traceparent: str | None) -> tuple[int, int]:
    """The trace id and span id a `traceparent` names."""
    assert traceparent is not None
    _version, trace_id, span_id, _flags = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def stored_traceparent_of(client: TestClient, order_id: UUID, buyer: User) -> str | None:
    """The `traceparent` stored with the order's first event."""
    store = container_of(client).event_store
    (placed, *_) = call(client, store.read_stream, str(order_id))
    assert placed.tenant_id == buyer.tenant
    return placed.traceparent
