"""The contract every analytics (row) read-model sink honours: `InsertRow` writes.

A sink's test module subclasses `RowSinkContract` in a class named `Test…` and overrides the
`sink` fixture to yield a fresh sink that knows `CONTRACT_TABLES`, closed afterwards. Projections
are unique per test, so the assertions hold on a shared store.

`InMemorySink` is the reference: the convergence tests apply random rows, shuffled, redelivered
and cut into random batches, to the sink under test and compare its entries with the reference's.
Targets, routing and checkpoints are `TargetContract`'s tests, written here as sales rows.

`RowStoreContract` adds what a store with typed tables promises beyond the reference: a document
write, or a row that does not fit its table, is refused before anything is written.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.ports.read_model_sink import (
    Checkpoints,
    Entry,
    EntryKey,
    InsertRow,
    ReadModelSink,
    Write,
)
from application.read_models.analytics import ColumnKind, FactTable, typed_columns, utc_text
from tests.contract.read_model_sink_contract import (
    BIG,
    TENANT,
    created,
    redelivered,
    reference_of,
    set_fields,
)
from tests.contract.target_contract import TargetContract

SALES = FactTable(
    name="sales",
    columns=typed_columns(
        tenant=ColumnKind.LABEL,
        order_id=ColumnKind.TEXT,
        line_no=ColumnKind.INT,
        status=ColumnKind.LABEL,
        amount=ColumnKind.INT,
        note=ColumnKind.TEXT,
        at=ColumnKind.TIME,
    ),
    key=("tenant", "order_id", "line_no"),
    time_column="at",
)
MOVES = FactTable(
    name="moves",
    columns=typed_columns(tenant=ColumnKind.LABEL, order_id=ColumnKind.TEXT, at=ColumnKind.TIME),
    key=("tenant", "order_id"),
    time_column="at",
)
CONTRACT_TABLES = (SALES, MOVES)
"""The fact tables the contract writes (a sink with typed tables is opened with them)."""

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def sale(
    order_id: str,
    position: int,
    *,
    line_no: int = 1,
    tenant: str = TENANT,
    status: str = "paid",
    amount: int = 100,
    note: str = "",
    at: datetime = AT,
) -> Write:
    row: dict[str, Any] = {
        "tenant": tenant,
        "order_id": order_id,
        "line_no": line_no,
        "status": status,
        "amount": amount,
        "note": note,
        "at": utc_text(at),
    }
    return Write(InsertRow("sales", SALES.key_of(row), row), position, tenant)


def move(order_id: str, position: int, *, at: datetime = AT) -> Write:
    row: dict[str, Any] = {"tenant": TENANT, "order_id": order_id, "at": utc_text(at)}
    return Write(InsertRow("moves", MOVES.key_of(row), row), position, TENANT)


def sale_entry(write: Write) -> tuple[tuple[str, ...], Entry]:
    """The entry a sale write leaves when it wins."""
    operation = write.operation
    assert isinstance(operation, InsertRow)
    key = ("sales", "row", *map(str, operation.key))
    return key, Entry(dict(operation.row), write.position)


# -- random rows for the convergence tests -------------------------------------------------

_NOTES = ["", "paid", 'é😀"\\/\x00', "a" * 300, "line\nbreak", "'; DROP TABLE x; --"]
_AMOUNTS = [0, -7, 1, 2**63 - 1, -(2**63), 10**15]


def random_rows(rng: random.Random, count: int) -> list[Write]:
    """Rows as a projection makes them: one per event position, positions all distinct; few
    keys, so most rows replace others; times spread over months (so a key's copies can sit in
    different partitions)."""
    writes = []
    for position in rng.sample(range(2**50, 2**50 + 100_000), count):
        order_id = rng.choice(["order-1", "order-2", "order:3*"])
        at = AT + timedelta(days=rng.randint(-90, 90), microseconds=rng.randint(0, 10**6 - 1))
        if rng.random() < 0.2:
            writes.append(move(order_id, position, at=at))
            continue
        writes.append(
            sale(
                order_id,
                position,
                line_no=rng.randint(1, 3),
                tenant=rng.choice([TENANT, "tenant-2"]),
                status=rng.choice(["paid", "refunded"]),
                amount=rng.choice([*_AMOUNTS, rng.randint(-1000, 1000)]),
                note=rng.choice(_NOTES),
                at=at,
            )
        )
    return writes


class RowSinkContract(TargetContract):
    """The sink fixture yields a sink that knows `CONTRACT_TABLES`."""

    def written(self, key: str, position: int, value: str) -> Write:
        return sale(key, position, note=value)

    def entries_of(self, *writes: Write) -> dict[EntryKey, Entry]:
        return dict(sale_entry(write) for write in writes)

    def awkward_writes(self, position: int) -> list[Write]:
        return [sale("o2", position), move("o2", position + 1)]

    # -- rows -------------------------------------------------------------------------------

    async def test_a_row_keeps_the_copy_of_its_highest_position(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        await sink.apply(projection, target, [sale("o1", 20, status="paid")], {})
        await sink.apply(projection, target, [sale("o1", 10, status="placed")], {})
        stale = await sink.entries(projection, target)
        corrected = sale("o1", 20, status="corrected", at=AT + timedelta(days=45))
        await sink.apply(projection, target, [corrected], {})

        assert stale == dict([sale_entry(sale("o1", 20, status="paid"))])
        assert await sink.entries(projection, target) == dict([sale_entry(corrected)])

    async def test_within_a_batch_the_highest_position_wins_then_the_last(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        batch = [sale("o1", 7, note="a"), sale("o1", 9, note="b"), sale("o1", 9, note="c")]

        await sink.apply(projection, target, [*batch, sale("o1", 8, note="d")], {})

        assert await sink.entries(projection, target) == dict([sale_entry(batch[2])])

    async def test_rows_are_keyed_by_table_and_key(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        writes = [sale("o1", 1, line_no=1), sale("o1", 2, line_no=2), move("o1", 3)]

        await sink.apply(projection, target, writes, {})

        entries = await sink.entries(projection, target)
        assert set(entries) == {
            ("sales", "row", TENANT, "o1", "1"),
            ("sales", "row", TENANT, "o1", "2"),
            ("moves", "row", TENANT, "o1"),
        }
        assert entries[("moves", "row", TENANT, "o1")] == Entry(
            {"tenant": TENANT, "order_id": "o1", "at": utc_text(AT)}, 3
        )

    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_any_order_with_redelivery_gives_the_reference_rows(
        self, sink: ReadModelSink, projection: str, seed: int
    ) -> None:
        rng = random.Random(seed)
        writes = random_rows(rng, 80)
        reference = await reference_of(writes, {})
        expected = await reference.entries("reference", "reference_v1_1")
        for generation in range(1, 3):
            target = await created(sink, projection, generation)
            for batch in redelivered(rng, writes):
                await sink.apply(projection, target, batch, {})
            assert await sink.entries(projection, target) == expected

    async def test_a_large_batch_lands_whole(self, sink: ReadModelSink, projection: str) -> None:
        writes = [
            sale(f"order-{n % 300}", n + 1, line_no=n % 3 + 1, amount=n, at=AT + timedelta(hours=n))
            for n in range(3_000)
        ]
        target = await created(sink, projection)

        await sink.apply(projection, target, writes, {"p0": 2_990, "p1": 3_000})

        reference = await reference_of(writes, {})
        assert await sink.entries(projection, target) == await reference.entries(
            "reference", "reference_v1_1"
        )
        assert (await sink.checkpoints(projection, target)).partitions == {
            "p0": 2_990,
            "p1": 3_000,
        }

    async def test_positions_above_2_to_the_52_stay_exact(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        for generation, order in ((1, [BIG - 1, BIG]), (2, [BIG, BIG - 1])):
            target = await created(sink, projection, generation)
            for position in order:
                write = sale("o1", position, amount=position)
                await sink.apply(projection, target, [write], {"p0": position})

            assert await sink.entries(projection, target) == dict(
                [sale_entry(sale("o1", BIG, amount=BIG))]
            )
            assert (await sink.checkpoints(projection, target)).partitions == {"p0": BIG}

    async def test_values_survive_exactly(self, sink: ReadModelSink, projection: str) -> None:
        target = await created(sink, projection)
        writes = [
            sale(f"o{n}", n + 1, note=note, amount=amount, at=at)
            for n, (note, amount, at) in enumerate(
                zip(
                    _NOTES,
                    _AMOUNTS,
                    [
                        AT,
                        AT + timedelta(microseconds=1),
                        datetime(1970, 1, 1, tzinfo=UTC),
                        datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
                        AT + timedelta(days=400, microseconds=123_456),
                        AT - timedelta(days=365 * 20),
                    ],
                    strict=True,
                )
            )
        ]

        await sink.apply(projection, target, writes, {})

        assert await sink.entries(projection, target) == dict(map(sale_entry, writes))

    # -- checkpoints --------------------------------------------------------------------------


class RowStoreContract(RowSinkContract):
    async def assert_nothing_written(self, sink: ReadModelSink, projection: str, target: str):
        assert await sink.entries(projection, target) == {}
        assert await sink.checkpoints(projection, target) == Checkpoints(0, {}, complete=False)

    async def test_a_document_write_is_refused_before_anything_is_written(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        with pytest.raises(TypeError, match="not an analytics row"):
            await sink.apply(projection, target, [sale("o1", 1), set_fields("d", 2, a=1)], {"p": 2})

        await self.assert_nothing_written(sink, projection, target)

    @pytest.mark.parametrize(
        ("change", "complaint"),
        [
            ({"table": "nope"}, "no fact table"),
            ({"drop": "note"}, "missing"),
            ({"add": ("extra", 1)}, "unknown"),
            ({"key": (TENANT, "other", 1)}, "key"),
            ({"tenant": "tenant-2"}, "tenant"),
            ({"set": ("amount", "12")}, "amount"),
            ({"set": ("amount", True)}, "amount"),
            ({"set": ("amount", 2**63)}, "amount"),
            ({"set": ("note", 5)}, "note"),
            ({"set": ("at", "2025-03-01T12:00:00+00:00")}, "utc_text"),
            ({"set": ("at", "2025-03-01T13:00:00.000000+01:00")}, "utc_text"),
            ({"position": -1}, "position"),
        ],
    )
    async def test_a_row_that_does_not_fit_its_table_is_refused_before_anything_is_written(
        self, sink: ReadModelSink, projection: str, change: dict[str, Any], complaint: str
    ) -> None:
        target = await created(sink, projection)
        good = sale("o1", 1)
        operation = good.operation
        assert isinstance(operation, InsertRow)
        row = dict(operation.row)
        table, key, tenant, position = operation.table, operation.key, TENANT, 2
        if "table" in change:
            table = change["table"]
        if "drop" in change:
            del row[change["drop"]]
        if "add" in change or "set" in change:
            name, value = change.get("add") or change["set"]
            row[name] = value
        key = change.get("key", key)
        tenant = change.get("tenant", tenant)
        position = change.get("position", position)
        bad = Write(InsertRow(table, key, row), position, tenant)

        with pytest.raises(ValueError, match=complaint):
            await sink.apply(projection, target, [good, bad], {"p0": 2})

        await self.assert_nothing_written(sink, projection, target)
