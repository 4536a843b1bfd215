"""The benchmark seed generator: valid, coherent and deterministic event histories."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from application.ports.event_store import RecordedEvent
from application.serialization import EventSerializer
from mercato_bench.seed import Row, SeedSpec, generate
from projections.catalog import core_projections

pytestmark = pytest.mark.unit

SPEC = SeedSpec(events=3000, seed=7, chunk_events=1000)


def _rows(spec: SeedSpec) -> list[Row]:
    chunks, _ = generate(spec)
    return [row for chunk in chunks for row in chunk]


def _recorded(rows: list[Row]) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            event_id=event_id,
            stream_id=stream_id,
            stream_version=version,
            position=position,
            type=type_,
            schema_version=schema_version,
            tenant_id=tenant_id,
            recorded_at=recorded_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
            payload=payload,
        )
        for position, (
            stream_id,
            version,
            event_id,
            type_,
            schema_version,
            tenant_id,
            recorded_at,
            correlation_id,
            causation_id,
            traceparent,
            payload,
        ) in enumerate(rows, start=1)
    ]


def test_the_same_spec_gives_the_same_events() -> None:
    assert _rows(SPEC) == _rows(SPEC)


def test_another_seed_gives_other_events() -> None:
    other = SeedSpec(events=SPEC.events, seed=SPEC.seed + 1, chunk_events=SPEC.chunk_events)
    assert [row[10] for row in _rows(SPEC)] != [row[10] for row in _rows(other)]


def test_chunks_hold_at_most_the_chunk_size_and_the_count_is_near_the_wish() -> None:
    chunks, marketplace = generate(SPEC)
    sizes = [len(chunk) for chunk in chunks]
    assert all(size == SPEC.chunk_events for size in sizes[:-1])
    assert 0 < sizes[-1] <= SPEC.chunk_events
    assert sum(sizes) == marketplace.events
    assert 0.8 * SPEC.events <= marketplace.events <= 1.2 * SPEC.events


def test_streams_are_contiguous_and_time_never_goes_back() -> None:
    rows = _rows(SPEC)
    versions: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        versions[row[0]].append(row[1])
    assert all(found == list(range(1, len(found) + 1)) for found in versions.values())
    times = [row[6] for row in rows]
    assert times == sorted(times)
    assert times[0] >= SPEC.start and times[-1] <= SPEC.end
    assert len({row[2] for row in rows}) == len(rows)  # event ids are unique


def test_every_event_decodes_and_every_projection_accepts_it() -> None:
    serializer = EventSerializer()
    projections = core_projections()
    handled: dict[str, int] = defaultdict(int)
    for record in _recorded(_rows(SPEC)):
        event: Any = serializer.to_domain_event(record)
        assert str(event.originator_id) == record.stream_id
        assert event.originator_version == record.stream_version
        assert event.timestamp == record.recorded_at
        for projection in projections:
            if projection.handles(record):
                projection.writes(record, serializer)  # a handler that raises fails the test
                handled[projection.name] += 1
    assert set(handled) == {projection.name for projection in projections}


def test_the_marketplace_is_coherent() -> None:
    chunks, marketplace = generate(SPEC)
    for _ in chunks:
        pass
    summary = marketplace.summary()
    assert summary["orders"] == len(marketplace.order_ids) > 100
    assert {"completed", "cancelled", "refunded"} <= set(marketplace.order_statuses)
    assert sum(marketplace.order_statuses.values()) == len(marketplace.order_ids)
    assert marketplace.order_statuses["completed"] > len(marketplace.order_ids) / 2
    for kind in ("Order.Placed", "Escrow.Released", "Wallet.Credited", "Payment.Failed"):
        assert marketplace.event_types[kind] > 0
    buyer_id, email = marketplace.busiest_buyer()
    assert UUID(buyer_id) and email.startswith("buyer")
    assert marketplace.period_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert marketplace.product_ids and marketplace.seller_ids and marketplace.admin_id


def test_a_spec_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        SeedSpec(events=10)
    with pytest.raises(ValueError):
        SeedSpec(chunk_events=2**20)
