"""The convergent document: how `SetFields` and `Contribute` writes combine, in one place.

Sinks that can run Python next to their data (the embedded twins, Elasticsearch with optimistic
concurrency, the in-memory target of `verify`) merge with these functions; the Redis sink does the
same in Lua, and its contract tests hold it to this behaviour.

A document's stored form (JSON) keeps, beside the visible fields, each field's position and each
counter's contributions, so that a later write can be merged without knowing what came before:

    {"tenant": "t1",
     "fields": {"status": "paid", "sales": 3},
     "positions": {"status": 1048577},
     "contributions": {"sales": {"order-1": [1, 1048577], "order-2": [2, 2097153]}}}

Counters appear among `fields` as the sum of their contributions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from application.ports.read_model_sink import (
    Contribute,
    Entry,
    EntryKey,
    JsonValue,
    SetFields,
    Write,
)


@dataclass
class Document:
    tenant: str = ""
    fields: dict[str, JsonValue] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    contributions: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "fields": self.fields,
            "positions": self.positions,
            "contributions": self.contributions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Document:
        if not data:
            return cls()
        return cls(
            tenant=data.get("tenant", ""),
            fields=dict(data.get("fields", {})),
            positions={k: int(v) for k, v in data.get("positions", {}).items()},
            contributions={
                counter: {source: [int(a), int(p)] for source, (a, p) in sources.items()}
                for counter, sources in data.get("contributions", {}).items()
            },
        )


def merge(document: Document, writes: Iterable[Write]) -> None:
    """Merge `writes` (all for this document) into it."""
    for write in writes:
        operation = write.operation
        if not document.tenant:
            document.tenant = write.tenant_id
        if isinstance(operation, SetFields):
            for name, value in operation.fields.items():
                if write.position >= document.positions.get(name, 0):
                    document.fields[name] = value
                    document.positions[name] = write.position
        elif isinstance(operation, Contribute):
            sources = document.contributions.setdefault(operation.counter, {})
            amount, position = sources.get(operation.source, (0, 0))
            if write.position >= position:
                sources[operation.source] = [operation.amount, write.position]
                total = int(document.fields.get(operation.counter, 0))
                document.fields[operation.counter] = total + operation.amount - amount
        else:
            raise TypeError(f"not a document write: {operation!r}")


def document_entries(doc_id: str, document: Document) -> dict[EntryKey, Entry]:
    """The document as comparable entries (see `ReadModelSink.entries`)."""
    entries: dict[EntryKey, Entry] = {}
    for name, position in document.positions.items():
        entries[(doc_id, "field", name)] = Entry(document.fields.get(name), position)
    for counter, sources in document.contributions.items():
        for source, (amount, position) in sources.items():
            entries[(doc_id, "counter", counter, source)] = Entry(amount, position)
    return entries


def group_by_document(writes: Iterable[Write]) -> dict[str, list[Write]]:
    """Document writes grouped by document, each group in the order given."""
    grouped: dict[str, list[Write]] = {}
    for write in writes:
        operation = write.operation
        if not isinstance(operation, SetFields | Contribute):
            raise TypeError(f"not a document write: {operation!r}")
        grouped.setdefault(operation.doc, []).append(write)
    return grouped
