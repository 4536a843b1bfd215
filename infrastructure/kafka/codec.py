"""Kafka records of Mercato events: CloudEvents binary mode, plus what a projection needs to
rebuild the `RecordedEvent` exactly.

An event record: key = stream id, value = the event payload (JSON, as stored), headers
`ce_id`, `ce_type`, `ce_source`, `ce_specversion`, `ce_time`, `ce_subject` (CloudEvents 1.0
binary mode, the `ce_` prefix of its Kafka binding), `position`, `tenant`, `traceparent` (when
known), and `mercato_version`, `mercato_schema`, `mercato_correlation`, `mercato_causation`.

A watermark *tick* (sent by the relay to every partition it feeds): no key, empty value, and one
header `mercato_tick` = a position. It says: every event at or below this position that belongs
to this partition has already been written to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from application.ports.event_store import RecordedEvent

Headers = list[tuple[str, bytes]]

CE_SOURCE = "urn:mercato:event-store"
TICK_HEADER = "mercato_tick"


@dataclass(frozen=True)
class EventRecord:
    key: bytes
    value: bytes
    headers: Headers


def encode_event(event: RecordedEvent) -> EventRecord:
    headers: Headers = [
        ("ce_id", str(event.event_id).encode()),
        ("ce_type", event.type.encode()),
        ("ce_source", CE_SOURCE.encode()),
        ("ce_specversion", b"1.0"),
        ("ce_time", event.recorded_at.isoformat().encode()),
        ("ce_subject", event.stream_id.encode()),
        ("content-type", b"application/json"),
        ("position", str(event.position).encode()),
        ("tenant", event.tenant_id.encode()),
        ("mercato_version", str(event.stream_version).encode()),
        ("mercato_schema", str(event.schema_version).encode()),
    ]
    if event.traceparent:
        headers.append(("traceparent", event.traceparent.encode()))
    if event.correlation_id:
        headers.append(("mercato_correlation", str(event.correlation_id).encode()))
    if event.causation_id:
        headers.append(("mercato_causation", str(event.causation_id).encode()))
    return EventRecord(key=event.stream_id.encode(), value=event.payload, headers=headers)


def encode_tick(position: int) -> Headers:
    return [(TICK_HEADER, str(position).encode())]


def tick_position(headers: Sequence[tuple[str, bytes]]) -> int | None:
    """The position of a watermark tick, or None when the record is an event."""
    for name, value in headers:
        if name == TICK_HEADER:
            return int(value)
    return None


def decode_event(value: bytes, headers: Sequence[tuple[str, bytes]]) -> RecordedEvent:
    """The `RecordedEvent` an event record was made from. Raises `ValueError` when a required
    header is missing or malformed."""
    found = {name: raw.decode() for name, raw in headers}
    try:
        return RecordedEvent(
            event_id=UUID(found["ce_id"]),
            stream_id=found["ce_subject"],
            stream_version=int(found["mercato_version"]),
            position=int(found["position"]),
            type=found["ce_type"],
            schema_version=int(found.get("mercato_schema", "1")),
            tenant_id=found["tenant"],
            recorded_at=datetime.fromisoformat(found["ce_time"]),
            correlation_id=_uuid(found.get("mercato_correlation")),
            causation_id=_uuid(found.get("mercato_causation")),
            traceparent=found.get("traceparent"),
            payload=value,
        )
    except KeyError as missing:
        raise ValueError(f"not a Mercato event record: no {missing.args[0]} header") from None


def _uuid(text: str | None) -> UUID | None:
    return UUID(text) if text else None
