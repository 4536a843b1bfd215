"""A read-model sink held in memory: the scratch target of `verify`, and the reference the
contract suite holds every real sink to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from application.ports.read_model_sink import (
    Checkpoints,
    Entry,
    EntryKey,
    InsertRow,
    JsonValue,
    Routing,
    Write,
)
from application.read_models.documents import (
    Document,
    document_entries,
    group_by_document,
    merge,
)


@dataclass
class _Target:
    documents: dict[str, Document] = field(default_factory=dict)
    rows: dict[tuple[str, tuple[JsonValue, ...]], tuple[dict[str, JsonValue], int]] = field(
        default_factory=dict
    )
    base: int = 0
    complete: bool = True
    partitions: dict[str, int] = field(default_factory=dict)


class InMemorySink:
    def __init__(self) -> None:
        self._targets: dict[tuple[str, str], _Target] = {}
        self._routing: dict[str, Routing] = {}

    async def routing(self, projection: str) -> Routing:
        return self._routing.get(projection, Routing(live=None))

    async def create_target(self, projection: str, target: str) -> None:
        self._targets.setdefault((projection, target), _Target(complete=False))
        current = self._routing.get(projection, Routing(live=None))
        self._routing[projection] = Routing(live=current.live, building=target)

    async def promote(self, projection: str, target: str) -> None:
        if (projection, target) not in self._targets:
            raise LookupError(f"no target {target} for {projection}")
        self._routing[projection] = Routing(live=target)

    async def drop_target(self, projection: str, target: str) -> None:
        routing = self._routing.get(projection, Routing(live=None))
        if routing.live == target:
            raise ValueError(f"{target} is live: promote another target first")
        self._targets.pop((projection, target), None)
        if routing.building == target:
            self._routing[projection] = Routing(live=routing.live)

    async def targets(self, projection: str) -> list[str]:
        return sorted(t for (p, t) in self._targets if p == projection)

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        state = self._target(projection, target)
        rows = [w for w in writes if isinstance(w.operation, InsertRow)]
        documents = [w for w in writes if not isinstance(w.operation, InsertRow)]
        for doc_id, doc_writes in group_by_document(documents).items():
            merge(state.documents.setdefault(doc_id, Document()), doc_writes)
        for write in rows:
            operation = write.operation
            assert isinstance(operation, InsertRow)
            key = (operation.table, operation.key)
            existing = state.rows.get(key)
            if existing is None or write.position >= existing[1]:
                state.rows[key] = (dict(operation.row), write.position)
        for partition, position in checkpoints.items():
            state.partitions[partition] = max(state.partitions.get(partition, 0), position)

    async def set_base(self, projection: str, target: str, base: int, *, complete: bool) -> None:
        state = self._target(projection, target)
        state.base = base
        state.complete = complete

    async def checkpoints(self, projection: str, target: str) -> Checkpoints:
        state = self._target(projection, target)
        return Checkpoints(state.base, dict(state.partitions), state.complete)

    async def entries(self, projection: str, target: str) -> dict[EntryKey, Entry]:
        state = self._target(projection, target)
        entries: dict[EntryKey, Entry] = {}
        for doc_id, document in state.documents.items():
            entries.update(document_entries(doc_id, document))
        for (table, key), (row, position) in state.rows.items():
            entries[(table, "row", *map(str, key))] = Entry(row, position)
        return entries

    def document(self, projection: str, target: str, doc_id: str) -> Document | None:
        """A document as stored (for tests and the embedded query side)."""
        return self._target(projection, target).documents.get(doc_id)

    async def close(self) -> None:
        return None

    def _target(self, projection: str, target: str) -> _Target:
        try:
            return self._targets[(projection, target)]
        except KeyError:
            raise LookupError(f"no target {target} for {projection}") from None
