"""The contract every document read-model sink honours (`SetFields` and `Contribute` writes).

A sink's test module subclasses `DocumentSinkContract` in a class named `Test…` and overrides the
`sink` fixture to yield a fresh sink (closed afterwards), and `read` if its `document` reader is
not a coroutine. Projections are unique per test, so the assertions hold on a shared store.
Targets, routing and checkpoints are `TargetContract`'s tests, written here as fields.

`InMemorySink` is the reference: the convergence tests apply random writes, shuffled, redelivered
and cut into random batches, to the sink under test and compare it with the reference.

`DocumentStoreContract` adds what the stores behind the query side offer beyond the port (the
`document`, `documents` and `live_document` readers), and what they promise that the in-memory
reference does not: an analytics row is refused, and a batch is applied whole or not at all.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from application.ports.read_model_sink import (
    Checkpoints,
    Contribute,
    Entry,
    EntryKey,
    InsertRow,
    ReadModelSink,
    SetFields,
    Write,
)
from application.read_models.documents import Document
from application.read_models.memory_sink import InMemorySink
from tests.contract.target_contract import (
    TENANT,
    TargetContract,
    created,
    live,
    new_projection,
    target_of,
)

__all__ = ["TENANT", "created", "live", "new_projection", "target_of"]

BIG = 2**52 + 1
"""A position a double holds exactly but 15 significant digits do not."""


def set_fields(doc: str, position: int, tenant: str = TENANT, **fields: Any) -> Write:
    return Write(SetFields(doc, fields), position, tenant)


def contribute(
    doc: str, counter: str, source: str, amount: int, position: int, tenant: str = TENANT
) -> Write:
    return Write(Contribute(doc, counter, source, amount), position, tenant)


# -- random writes for the convergence tests ------------------------------------------------

_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**63 + 5,
    3.0,
    0.1 + 0.2,
    "",
    "paid",
    'é😀"\\/\x00',
    [],
    {},
    [1, None, {"a": []}],
    {"nested": {"x": [None, 1.5], "empty": {}}},
]
_DOCS = ["order-1", "order-2", "order:3*"]
_FIELDS = ["status", "title", "meta"]
_COUNTERS = ["sales", "stock"]
_SOURCES = ["stream-a", "stream-b", "stream-c"]


def random_writes(rng: random.Random, count: int) -> list[Write]:
    """Writes as a projection makes them: one per event position, positions all distinct (two
    different writes of one field at one position would have no single right answer)."""
    writes = []
    for position in rng.sample(range(2**50, 2**50 + 100_000), count):
        doc = rng.choice(_DOCS)
        tenant = f"tenant-of-{doc}"
        if rng.random() < 0.5:
            names = rng.sample(_FIELDS, rng.randint(1, len(_FIELDS)))
            fields = {name: rng.choice([*_VALUES, rng.random()]) for name in names}
            writes.append(Write(SetFields(doc, fields), position, tenant))
        else:
            counter, source = rng.choice(_COUNTERS), rng.choice(_SOURCES)
            amount = rng.randint(-5, 10)
            writes.append(Write(Contribute(doc, counter, source, amount), position, tenant))
    return writes


def redelivered(rng: random.Random, writes: Sequence[Write]) -> list[list[Write]]:
    """`writes` in a random order, about a third of them twice, cut into random batches."""
    delivered = [*writes, *rng.sample(list(writes), len(writes) // 3)]
    rng.shuffle(delivered)
    batches = []
    while delivered:
        size = rng.randint(1, 12)
        batches.append(delivered[:size])
        delivered = delivered[size:]
    return batches


async def reference_of(writes: Sequence[Write], checkpoints: Mapping[str, int]) -> InMemorySink:
    reference = InMemorySink()
    await reference.create_target("reference", "reference_v1_1")
    await reference.apply("reference", "reference_v1_1", writes, checkpoints)
    return reference


class DocumentSinkContract(TargetContract):
    def written(self, key: str, position: int, value: str) -> Write:
        return set_fields(key, position, status=value)

    def entries_of(self, *writes: Write) -> dict[EntryKey, Entry]:
        entries: dict[EntryKey, Entry] = {}
        for write in writes:
            assert isinstance(write.operation, SetFields)
            for name, value in write.operation.fields.items():
                entries[(write.operation.doc, "field", name)] = Entry(value, write.position)
        return entries

    def awkward_writes(self, position: int) -> list[Write]:
        odd_ids = ["d", "a:b", "x*y", "[z]", "q?", "back\\slash", "ü😀"]
        return [set_fields(d, position, n=1) for d in odd_ids]

    async def read(self, sink: Any, projection: str, target: str, doc_id: str) -> Document | None:
        """The stored document (the in-memory sink's test class overrides this: its reader is
        synchronous)."""
        result: Document | None = await sink.document(projection, target, doc_id)
        return result

    async def assert_same_as_reference(
        self, sink: ReadModelSink, projection: str, target: str, reference: InMemorySink
    ) -> None:
        expected = await reference.entries("reference", "reference_v1_1")
        assert await sink.entries(projection, target) == expected
        for doc in {key[0] for key in expected}:
            wanted = reference.document("reference", "reference_v1_1", doc)
            assert await self.read(sink, projection, target, doc) == wanted

    # -- SetFields ----------------------------------------------------------------------------

    async def test_a_field_keeps_the_value_of_its_highest_position(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        await sink.apply(projection, target, [set_fields("d", 20, status="paid")], {})
        await sink.apply(projection, target, [set_fields("d", 10, status="placed")], {})
        stale = await self.read(sink, projection, target, "d")
        await sink.apply(projection, target, [set_fields("d", 20, status="corrected")], {})
        replayed = await self.read(sink, projection, target, "d")

        assert stale is not None and stale.fields == {"status": "paid"}
        assert replayed == Document(TENANT, {"status": "corrected"}, {"status": 20})

    async def test_fields_are_versioned_one_by_one(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        await sink.apply(
            projection,
            target,
            [set_fields("d", 10, a="a10", b="b10"), set_fields("d", 5, a="a5", c="c5")],
            {},
        )

        document = await self.read(sink, projection, target, "d")
        assert document == Document(
            TENANT, {"a": "a10", "b": "b10", "c": "c5"}, {"a": 10, "b": 10, "c": 5}
        )

    # -- Contribute -------------------------------------------------------------------------

    async def test_a_contribution_replaces_its_source_s_share_of_the_counter(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        steps = [
            (contribute("d", "sales", "o1", 2, 10), 2),
            (contribute("d", "sales", "o2", 3, 11), 5),
            (contribute("d", "sales", "o1", 5, 12), 8),
            (contribute("d", "sales", "o1", 1, 9), 8),  # older than o1's share: ignored
            (contribute("d", "sales", "o2", 3, 11), 8),  # redelivered
            (contribute("d", "sales", "o2", 0, 20), 5),
        ]
        totals = []
        for write, _ in steps:
            await sink.apply(projection, target, [write], {})
            document = await self.read(sink, projection, target, "d")
            totals.append(None if document is None else document.fields["sales"])

        assert totals == [total for _, total in steps]
        assert document == Document(
            TENANT, {"sales": 5}, {}, {"sales": {"o1": [5, 12], "o2": [0, 20]}}
        )
        assert await sink.entries(projection, target) == {
            ("d", "counter", "sales", "o1"): Entry(5, 12),
            ("d", "counter", "sales", "o2"): Entry(0, 20),
        }

    async def test_a_zero_contribution_still_shows_the_counter(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        await sink.apply(projection, target, [contribute("d", "stock", "s", 0, 1)], {})

        document = await self.read(sink, projection, target, "d")
        assert document is not None and document.fields == {"stock": 0}

    # -- convergence --------------------------------------------------------------------------

    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_any_order_with_redelivery_gives_the_reference_state(
        self, sink: ReadModelSink, projection: str, seed: int
    ) -> None:
        rng = random.Random(seed)
        writes = random_writes(rng, 80)
        reference = await reference_of(writes, {})
        for generation in range(1, 4):
            target = await created(sink, projection, generation)
            for batch in redelivered(rng, writes):
                await sink.apply(projection, target, batch, {})
            await self.assert_same_as_reference(sink, projection, target, reference)

    async def test_a_large_batch_lands_whole(self, sink: ReadModelSink, projection: str) -> None:
        writes = [
            write
            for n in range(500)
            for write in (
                set_fields(f"doc-{n % 40}", 10 * n + 1, last=n, title=f"t{n}"),
                contribute(f"doc-{n % 40}", "sales", f"order-{n % 7}", n % 5, 10 * n + 2),
            )
        ]
        target = await created(sink, projection)

        await sink.apply(projection, target, writes, {"p0": 4_990, "p1": 4_992})

        reference = await reference_of(writes, {})
        await self.assert_same_as_reference(sink, projection, target, reference)
        assert (await sink.checkpoints(projection, target)).partitions == {
            "p0": 4_990,
            "p1": 4_992,
        }

    # -- documents ----------------------------------------------------------------------------

    async def test_entries_hold_every_field_and_contribution_with_its_position(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        writes = [
            set_fields("d1", 5, status="paid", total=1200),
            contribute("d1", "sales", "o1", 2, 6),
            contribute("d2", "sales", "o1", -1, 7),
        ]

        await sink.apply(projection, target, writes, {})

        assert await sink.entries(projection, target) == {
            ("d1", "field", "status"): Entry("paid", 5),
            ("d1", "field", "total"): Entry(1200, 5),
            ("d1", "counter", "sales", "o1"): Entry(2, 6),
            ("d2", "counter", "sales", "o1"): Entry(-1, 7),
        }

    async def test_a_document_keeps_the_tenant_of_its_first_write(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        await sink.apply(projection, target, [set_fields("d", 5, "tenant-a", x=1)], {})
        await sink.apply(projection, target, [contribute("d", "c", "s", 1, 9, "tenant-b")], {})

        document = await self.read(sink, projection, target, "d")
        assert document is not None and document.tenant == "tenant-a"

    async def test_positions_above_2_to_the_52_stay_exact(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        for generation, order in ((1, [BIG - 1, BIG]), (2, [BIG, BIG - 1])):
            target = await created(sink, projection, generation)
            for position in order:
                writes = [
                    set_fields("d", position, at=position),
                    contribute("d", "c", "s", position - BIG + 2, position),
                ]
                await sink.apply(projection, target, writes, {"p0": position})

            assert await sink.entries(projection, target) == {
                ("d", "field", "at"): Entry(BIG, BIG),
                ("d", "counter", "c", "s"): Entry(2, BIG),
            }
            assert (await sink.checkpoints(projection, target)).partitions == {"p0": BIG}

    async def test_field_values_survive_exactly(self, sink: ReadModelSink, projection: str) -> None:
        values = {f"v{n}": value for n, value in enumerate(_VALUES)}
        target = await created(sink, projection)
        await sink.apply(projection, target, [set_fields("d", 1, **values)], {})
        # A later write makes the sink read the document back and store it again.
        await sink.apply(projection, target, [contribute("d", "c", "s", 1, 2)], {})

        document = await self.read(sink, projection, target, "d")

        assert document is not None
        # JSON text tells 3.0 from 3 and {} from [], which == does not.
        assert {k: json.dumps(document.fields[k]) for k in values} == {
            k: json.dumps(v) for k, v in values.items()
        }


class DocumentStoreContract(DocumentSinkContract):
    async def test_documents_are_read_many_at_once_in_the_order_asked(
        self, sink: Any, projection: str
    ) -> None:
        target = await created(sink, projection)
        await sink.apply(projection, target, [set_fields("a", 1, n=1), set_fields("b", 2, n=2)], {})

        found = await sink.documents(projection, target, ["b", "missing", "a"])

        assert found == [
            Document(TENANT, {"n": 2}, {"n": 2}),
            None,
            Document(TENANT, {"n": 1}, {"n": 1}),
        ]
        assert await sink.documents(projection, target, []) == []
        assert await sink.document(projection, target, "missing") is None

    async def test_live_document_follows_the_live_target(self, sink: Any, projection: str) -> None:
        assert await sink.live_document(projection, "d") is None
        first = await live(sink, projection, 1)
        await sink.apply(projection, first, [set_fields("d", 1, v="first")], {})
        second = await created(sink, projection, 2)
        await sink.apply(projection, second, [set_fields("d", 1, v="second")], {})

        before = await sink.live_document(projection, "d")
        await sink.promote(projection, second)
        after = await sink.live_document(projection, "d")

        assert before.fields == {"v": "first"}
        assert after.fields == {"v": "second"}

    async def test_an_analytics_row_is_refused_before_anything_is_written(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        writes = [set_fields("d", 1, a=1), Write(InsertRow("sales", ("k",), {"n": 1}), 2, TENANT)]

        with pytest.raises(TypeError):
            await sink.apply(projection, target, writes, {"p0": 2})

        assert await sink.entries(projection, target) == {}
        assert await sink.checkpoints(projection, target) == Checkpoints(0, {}, complete=False)

    async def test_a_batch_that_cannot_be_merged_changes_nothing(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        await sink.apply(projection, target, [set_fields("x", 1, status="paid")], {"p0": 1})
        before = await sink.entries(projection, target)
        # The second document comes after the first in the batch: a sink that wrote as it
        # went would have written it.
        writes = [set_fields("y", 5, a=1), contribute("x", "status", "s", 1, 6)]

        with pytest.raises(ValueError):
            await sink.apply(projection, target, writes, {"p0": 6})

        assert await sink.entries(projection, target) == before
        assert (await sink.checkpoints(projection, target)).partitions == {"p0": 1}
