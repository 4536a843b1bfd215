"""What every read-model sink honours whatever it stores: targets, routing and checkpoints.

`DocumentSinkContract` and `RowSinkContract` build on `TargetContract`; each says how to write
one value under a key (`written`), what entries a winning write leaves (`entries_of`), and
which writes exercise awkward keys (`awkward_writes`). The sink and projection fixtures are
theirs too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from application.ports.read_model_sink import (
    Checkpoints,
    Entry,
    EntryKey,
    ReadModelSink,
    Routing,
    TargetName,
    Write,
)

TENANT = "tenant-1"


def new_projection() -> str:
    return f"views{uuid.uuid4().hex[:10]}"


def target_of(projection: str, generation: int = 1) -> str:
    return str(TargetName(projection, 1, generation))


async def created(sink: ReadModelSink, projection: str, generation: int = 1) -> str:
    target = target_of(projection, generation)
    await sink.create_target(projection, target)
    return target


async def live(sink: ReadModelSink, projection: str, generation: int = 1) -> str:
    target = await created(sink, projection, generation)
    await sink.promote(projection, target)
    return target


class TargetContract:
    @pytest.fixture
    async def sink(self) -> AsyncIterator[ReadModelSink]:
        """A fresh sink: each sink's test class overrides this fixture."""
        raise NotImplementedError("override the sink fixture in the sink's test class")
        yield  # pragma: no cover

    @pytest.fixture
    def projection(self) -> str:
        return new_projection()

    def written(self, key: str, position: int, value: str) -> Write:
        """A write of `value` under `key` (a document, a row) at `position`."""
        raise NotImplementedError

    def entries_of(self, *writes: Write) -> dict[EntryKey, Entry]:
        """The entries `writes` leave in an empty target (each wins alone)."""
        raise NotImplementedError

    def awkward_writes(self, position: int) -> Sequence[Write]:
        """Writes under keys a store might trip on, to show a drop removes them all."""
        raise NotImplementedError

    async def test_a_new_projection_has_no_target(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        assert await sink.routing(projection) == Routing(live=None)
        assert await sink.targets(projection) == []

    async def test_a_created_target_is_empty_incomplete_and_building(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        assert await sink.routing(projection) == Routing(live=None, building=target)
        assert await sink.targets(projection) == [target]
        assert await sink.checkpoints(projection, target) == Checkpoints(0, {}, complete=False)
        assert await sink.entries(projection, target) == {}

    async def test_creating_a_target_again_keeps_what_it_holds(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        write = self.written("d", 5, "paid")
        await sink.apply(projection, target, [write], {"p0": 5})
        await sink.set_base(projection, target, 3, complete=False)

        await sink.create_target(projection, target)

        assert await sink.targets(projection) == [target]
        assert await sink.checkpoints(projection, target) == Checkpoints(3, {"p0": 5}, False)
        assert await sink.entries(projection, target) == self.entries_of(write)

    async def test_promote_makes_a_target_live_and_ends_its_build(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)

        await sink.promote(projection, target)

        assert await sink.routing(projection) == Routing(live=target)

    async def test_promote_flips_readers_from_the_live_target_to_the_next(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        first = await live(sink, projection, 1)
        old = self.written("d", 1, "old")
        await sink.apply(projection, first, [old], {})
        second = await created(sink, projection, 2)
        await sink.apply(projection, second, [self.written("d", 1, "new")], {})
        assert await sink.routing(projection) == Routing(live=first, building=second)

        await sink.promote(projection, second)

        assert await sink.routing(projection) == Routing(live=second)
        assert await sink.targets(projection) == [first, second]
        assert await sink.entries(projection, first) == self.entries_of(old)

    async def test_promote_refuses_a_target_that_does_not_exist(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        current = await live(sink, projection)

        with pytest.raises(LookupError):
            await sink.promote(projection, target_of(projection, 9))

        assert await sink.routing(projection) == Routing(live=current)

    async def test_drop_refuses_the_live_target(self, sink: ReadModelSink, projection: str) -> None:
        target = await live(sink, projection)
        kept = self.written("d", 1, "kept")
        await sink.apply(projection, target, [kept], {"p0": 1})

        with pytest.raises(ValueError):
            await sink.drop_target(projection, target)

        assert await sink.targets(projection) == [target]
        assert await sink.checkpoints(projection, target) == Checkpoints(0, {"p0": 1}, False)
        assert await sink.entries(projection, target) == self.entries_of(kept)

    async def test_drop_removes_a_target_its_data_and_checkpoints(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        first = await live(sink, projection, 1)
        kept = self.written("d", 1, "live")
        await sink.apply(projection, first, [kept], {"p0": 1})
        second = await created(sink, projection, 2)
        await sink.apply(projection, second, self.awkward_writes(2), {"p0": 3})

        await sink.drop_target(projection, second)

        assert await sink.targets(projection) == [first]
        assert await sink.routing(projection) == Routing(live=first)
        for refused in (sink.checkpoints(projection, second), sink.entries(projection, second)):
            with pytest.raises(LookupError):
                await refused
        assert await sink.entries(projection, first) == self.entries_of(kept)
        await sink.drop_target(projection, second)  # idempotent
        await sink.create_target(projection, second)
        assert await sink.entries(projection, second) == {}
        assert await sink.checkpoints(projection, second) == Checkpoints(0, {}, complete=False)

    async def test_a_target_that_does_not_exist_takes_no_writes(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        missing = target_of(projection)
        with pytest.raises(LookupError):
            await sink.apply(projection, missing, [self.written("d", 1, "x")], {"p0": 1})
        with pytest.raises(LookupError):
            await sink.set_base(projection, missing, 1, complete=True)
        with pytest.raises(LookupError):
            await sink.checkpoints(projection, missing)
        with pytest.raises(LookupError):
            await sink.entries(projection, missing)
        assert await sink.targets(projection) == []

    async def test_targets_and_projections_are_isolated(self, sink: ReadModelSink) -> None:
        one, other = new_projection(), new_projection()
        shared = "shared_v1_1"
        for projection, value in ((one, "one"), (other, "other")):
            await sink.create_target(projection, shared)
            await sink.apply(projection, shared, [self.written("d", 1, value)], {"p0": len(value)})
        second = await created(sink, one, 2)
        await sink.apply(one, second, [self.written("d", 1, "second")], {"p0": 99})

        await sink.drop_target(other, shared)

        assert await sink.targets(one) == sorted([second, shared])
        assert await sink.entries(one, shared) == self.entries_of(self.written("d", 1, "one"))
        assert (await sink.checkpoints(one, shared)).partitions == {"p0": 3}
        assert await sink.entries(one, second) == self.entries_of(self.written("d", 1, "second"))
        assert await sink.targets(other) == []

    async def test_checkpoints_only_rise(self, sink: ReadModelSink, projection: str) -> None:
        target = await created(sink, projection)

        await sink.apply(projection, target, [], {"p0": 10, "p1": 5})
        await sink.apply(projection, target, [self.written("d", 3, "a")], {"p0": 7, "p2": 1})
        await sink.apply(projection, target, [self.written("d", 4, "b")], {})

        assert (await sink.checkpoints(projection, target)).partitions == {
            "p0": 10,
            "p1": 5,
            "p2": 1,
        }

    async def test_set_base_records_a_rebuild_s_progress(
        self, sink: ReadModelSink, projection: str
    ) -> None:
        target = await created(sink, projection)
        await sink.apply(projection, target, [], {"log": 40})

        await sink.set_base(projection, target, 100, complete=False)
        building = await sink.checkpoints(projection, target)
        await sink.set_base(projection, target, 120, complete=True)

        assert building == Checkpoints(100, {"log": 40}, complete=False)
        assert await sink.checkpoints(projection, target) == Checkpoints(120, {"log": 40}, True)
