"""How both saga stores keep a dead letter: its kind, a JSON document of its fields, and (for
an event) its payload as bytes, as the event store keeps it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from application.ports.event_store import RecordedEvent
from application.ports.saga_store import SagaInputRecord, Timer

EVENT, TIMER = "event", "timer"


def encode(record: SagaInputRecord) -> tuple[str, str, bytes | None]:
    """(kind, document, payload) of a letter."""
    if isinstance(record, Timer):
        document: dict[str, Any] = {**vars(record), "due_at": record.due_at.isoformat()}
        return TIMER, json.dumps(document), None
    fields = {name: value for name, value in vars(record).items() if name != "payload"}
    return EVENT, json.dumps(fields, default=_text), record.payload


def decode(kind: str, document: str, payload: bytes | None) -> SagaInputRecord:
    fields = json.loads(document)
    if kind == TIMER:
        return Timer(**{**fields, "due_at": datetime.fromisoformat(fields["due_at"])})
    if payload is None:
        raise ValueError("an event letter without its payload")
    return RecordedEvent(
        **{
            **fields,
            "event_id": UUID(fields["event_id"]),
            "recorded_at": datetime.fromisoformat(fields["recorded_at"]),
            "correlation_id": _uuid(fields["correlation_id"]),
            "causation_id": _uuid(fields["causation_id"]),
            "payload": bytes(payload),
        }
    )


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)
