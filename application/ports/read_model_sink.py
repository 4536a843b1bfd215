"""The port every read-model store implements for the projection runtime.

A projection turns events into *writes*; a sink stores them in a *target* (one versioned copy of
a read model: an Elasticsearch index, a Redis key prefix, a ClickHouse table, an embedded
table). The runtime never assumes events arrive in order across streams: Kafka delivers each
partition in order, but partitions interleave freely, a rebuild writes alongside live workers,
and a crash redelivers. So every write is *convergent* — applying any set of writes, in any
order, any number of times, gives the same state:

- `SetFields`: each field is a last-writer-wins register versioned by the event position; a
  write lands when its position is at least the field's (equal positions overwrite, so a replay
  with a fixed handler corrects what an earlier version wrote).
- `Contribute`: a counter is the sum of per-source contributions; each source (usually the
  stream that caused it) owns one contribution, replaced last-writer-wins by position, and the
  counter moves by the difference. Totals across many orders stay exact under redelivery.
- `InsertRow`: an analytics fact, keyed; the row with the highest position wins
  (ClickHouse `ReplacingMergeTree(position)`).

Checkpoints live in the target too, written with the data: per source *partition* (a Kafka
topic-partition, or `log` for the embedded in-process feed) the position of the last event
applied, plus a *base* — the position a rebuild has written everything up to. `watermark` turns
them into the one position a query can wait for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

JsonValue = Any
"""A value that survives JSON: None, bool, int, str, float, lists and string-keyed dicts."""

EMBEDDED_PARTITION = "log"
"""The one partition of the embedded profile: the store's global log, applied in order."""


@dataclass(frozen=True)
class SetFields:
    """Set `fields` of document `doc`; each field keeps the value of the highest position."""

    doc: str
    fields: Mapping[str, JsonValue]


@dataclass(frozen=True)
class Contribute:
    """Set `source`'s share of `counter` in document `doc` to `amount` (not add: *set*)."""

    doc: str
    counter: str
    source: str
    amount: int


@dataclass(frozen=True)
class InsertRow:
    """An analytics fact for table `table`, identified by `key` (a tuple of column values)."""

    table: str
    key: tuple[JsonValue, ...]
    row: Mapping[str, JsonValue]


Operation = SetFields | Contribute | InsertRow


@dataclass(frozen=True)
class Write:
    """One operation and the position of the event that caused it (its version)."""

    operation: Operation
    position: int
    tenant_id: str


@dataclass(frozen=True)
class Checkpoints:
    """What a target has applied: a rebuild's `base` and each partition's last position."""

    base: int = 0
    partitions: Mapping[str, int] = field(default_factory=dict)
    complete: bool = True
    """False while a rebuild is still filling the target: only `base` can be trusted then."""


def watermark(checkpoints: Checkpoints, partitions: Collection[str]) -> int:
    """The highest position P such that every event at or below P is reflected in the target.

    A partition's checkpoint covers the events routed to it; the base covers everything below it
    (a rebuild reads the whole log). The target has reached P once every partition it is fed
    from has: so the watermark is the lowest partition's, never below the base.
    """
    if not checkpoints.complete or not partitions:
        return checkpoints.base
    return min(max(checkpoints.partitions.get(p, 0), checkpoints.base) for p in partitions)


@dataclass(frozen=True)
class Routing:
    """Which target readers and live workers use, and which one a rebuild is filling."""

    live: str | None
    building: str | None = None


@dataclass(frozen=True)
class Entry:
    """One comparable piece of a target, for `verify`: a field, a contribution, or a row."""

    value: JsonValue
    position: int


EntryKey = tuple[str, ...]
"""(document, "field", name) | (document, "counter", name, source) | (table, "row", *key)."""


class ReadStoreUnavailableError(Exception):
    """A read-model store refused a call, dropped it, or did not answer within its timeout.

    Transient by nature: a query answers 503 with `Retry-After`, a worker waits and tries again.
    Adapters raise it in place of their client's connection and timeout errors, so nothing above
    them has to know which client that was."""

    def __init__(self, store: str, reason: str) -> None:
        self.store = store
        super().__init__(f"the {store} read-model store is unavailable ({reason}); retry shortly")


class ReadModelSink(Protocol):
    """A read-model store the projection runtime writes to. One sink serves many projections;
    each projection's targets are named by the runtime (`<projection>_v<version>_<n>`).

    A store out of reach (refused, reset, or silent past the adapter's timeout) raises
    `ReadStoreUnavailableError` from any method, never the client's own error."""

    async def routing(self, projection: str) -> Routing: ...

    async def create_target(self, projection: str, target: str) -> None:
        """Create an empty target (idempotent) and mark it as being built (`building`)."""
        ...

    async def promote(self, projection: str, target: str) -> None:
        """Make `target` the live one for readers and workers, in one atomic step."""
        ...

    async def drop_target(self, projection: str, target: str) -> None:
        """Delete a target that is not live (idempotent). Refuses the live target."""
        ...

    async def targets(self, projection: str) -> list[str]:
        """Every target of the projection that exists, live or not."""
        ...

    async def apply(
        self,
        projection: str,
        target: str,
        writes: Sequence[Write],
        checkpoints: Mapping[str, int],
    ) -> None:
        """Apply `writes` and raise the partition checkpoints to `checkpoints` (never lower
        them), as one atomic step where the store allows, else writes first, checkpoints last."""
        ...

    async def set_base(self, projection: str, target: str, base: int, *, complete: bool) -> None:
        """Record that the target holds every event at or below `base` (a rebuild's progress)."""
        ...

    async def checkpoints(self, projection: str, target: str) -> Checkpoints: ...

    async def entries(self, projection: str, target: str) -> dict[EntryKey, Entry]:
        """Every field, contribution and row of the target with its position (for `verify`)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class TargetName:
    """`<projection>_v<version>_<generation>`: the projection's handler version and a counter
    that grows with every rebuild of that version."""

    projection: str
    version: int
    generation: int

    def __str__(self) -> str:
        return f"{self.projection}_v{self.version}_{self.generation}"

    @classmethod
    def parse(cls, text: str) -> TargetName:
        projection, version, generation = text.rsplit("_", 2)
        if not version.startswith("v"):
            raise ValueError(f"not a target name: {text!r}")
        return cls(projection, int(version[1:]), int(generation))
