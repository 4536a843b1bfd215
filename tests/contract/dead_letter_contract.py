"""The contract every `DeadLetterStore` adapter honours.

An adapter's test module subclasses `DeadLetterStoreContract` in a class named `Test…` and
overrides the `store` fixture to yield an open store (closed afterwards), and `other_store` to
yield a second one on the same database (another process, as far as the store can tell: the
worker, while `store` is the operator's `mercato dlq retry`). Projections and streams are
unique per test, so a store may be shared between tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from application.ports.dead_letters import DeadLetter, DeadLetterStore
from application.ports.event_store import RecordedEvent

RECORDED_AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
WAIT = 30.0
"""Generous bound for things that must happen (the machine is shared and slow)."""
BLOCKED = 0.2
"""How long a call that must wait is watched to stay waiting (never a cause of failure)."""


def an_event(
    stream_id: str,
    position: int,
    *,
    version: int = 1,
    tenant_id: str = "tenant-1",
    full_metadata: bool = False,
) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=stream_id,
        stream_version=version,
        position=position,
        type="shop.Order.Placed",
        schema_version=2,
        tenant_id=tenant_id,
        recorded_at=RECORDED_AT + timedelta(microseconds=position % 1000),
        correlation_id=uuid.uuid4() if full_metadata else None,
        causation_id=uuid.uuid4() if full_metadata else None,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        if full_metadata
        else None,
        payload=b'{"total": 1200}\x00\xff',  # bytes, not text: kept exactly
    )


def stream_events(stream_id: str, positions: range) -> list[RecordedEvent]:
    """One event per position, in version order."""
    return [
        an_event(stream_id, position, version=version)
        for version, position in enumerate(positions, start=1)
    ]


class DeadLetterStoreContract:
    @pytest.fixture
    async def store(self) -> AsyncIterator[DeadLetterStore]:
        raise NotImplementedError("override the store fixture in the adapter's test class")
        yield  # pragma: no cover

    @pytest.fixture
    async def other_store(self) -> AsyncIterator[DeadLetterStore]:
        raise NotImplementedError("override the other_store fixture in the adapter's test class")
        yield  # pragma: no cover

    @pytest.fixture
    def projection(self) -> str:
        return f"projection-{uuid.uuid4()}"

    @pytest.fixture
    def stream(self) -> str:
        return str(uuid.uuid4())

    # -- parking -----------------------------------------------------------------------------

    async def test_nothing_is_parked_at_first(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        events = stream_events(stream, range(1, 4))

        assert await store.hold_back(projection, events) == set()
        assert await store.hold_back(projection, []) == set()
        assert await store.parked(projection) == []
        assert await store.letters(projection, stream) == []

    async def test_parking_an_event_parks_its_stream_with_the_event_as_a_letter(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison = an_event(stream, 1 << 40, tenant_id="tenant-7")
        before = datetime.now(UTC)

        await store.park(projection, poison, "KeyError: 'total'")

        [parked] = await store.parked(projection)
        assert (parked.projection, parked.stream_id, parked.tenant_id) == (
            projection,
            stream,
            "tenant-7",
        )
        assert (parked.error, parked.first_position, parked.events) == (
            "KeyError: 'total'",
            1 << 40,
            1,
        )
        assert before - timedelta(minutes=1) < parked.parked_at < before + timedelta(minutes=1)
        assert await store.letters(projection, stream) == [DeadLetter(poison, "KeyError: 'total'")]

    async def test_parking_the_same_event_twice_keeps_one_letter(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison = an_event(stream, 5)

        await store.park(projection, poison, "boom")
        await store.park(projection, poison, "boom")

        assert await store.letters(projection, stream) == [DeadLetter(poison, "boom")]
        assert [p.events for p in await store.parked(projection)] == [1]

    async def test_parking_a_parked_stream_again_keeps_its_first_error(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        first, second = stream_events(stream, range(5, 7))

        await store.park(projection, first, "first failure")
        await store.park(projection, second, "second failure")

        [parked] = await store.parked(projection)
        assert (parked.error, parked.first_position, parked.events) == ("first failure", 5, 2)
        assert await store.letters(projection, stream) == [
            DeadLetter(first, "first failure"),
            DeadLetter(second, "second failure"),
        ]

    async def test_a_stream_is_parked_per_projection(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        other = f"{projection}-other"
        poison, later = stream_events(stream, range(1, 3))
        await store.park(projection, poison, "boom")

        assert await store.hold_back(other, [later]) == set()
        assert await store.parked(other) == []
        assert await store.letters(other, stream) == []
        assert await store.hold_back(projection, [later]) == {2}

    async def test_letters_keep_every_field_of_their_event(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        bare = an_event(stream, 10, version=3)
        full = an_event(stream, 11, version=4, full_metadata=True)
        elsewhere = replace(
            an_event(stream, 12, version=5),
            recorded_at=datetime(2026, 3, 1, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
        )

        await store.park(projection, bare, "boom")
        await store.hold_back(projection, [full, elsewhere])

        letters = await store.letters(projection, stream)
        assert [letter.event for letter in letters] == [bare, full, elsewhere]
        for letter, event in zip(letters, [bare, full, elsewhere], strict=True):
            assert vars(letter.event) == vars(event)
            assert letter.event.recorded_at.utcoffset() is not None

    # -- holding back ------------------------------------------------------------------------

    async def test_only_events_of_parked_streams_are_held_back(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        flowing = str(uuid.uuid4())
        poison, *later = stream_events(stream, range(10, 40, 10))
        await store.park(projection, poison, "boom")
        batch = [
            an_event(flowing, 15),
            later[0],
            an_event(flowing, 25, version=2),
            later[1],
        ]

        held = await store.hold_back(projection, batch)

        assert held == {20, 30}
        assert await store.letters(projection, stream) == [
            DeadLetter(poison, "boom"),
            DeadLetter(later[0], None),
            DeadLetter(later[1], None),
        ]
        assert await store.letters(projection, flowing) == []

    async def test_holding_back_the_same_events_twice_keeps_one_letter_each(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, *later = stream_events(stream, range(1, 4))
        await store.park(projection, poison, "boom")

        first = await store.hold_back(projection, later)
        again = await store.hold_back(projection, [*later, later[0]])

        assert first == again == {2, 3}
        assert [p.events for p in await store.parked(projection)] == [3]

    async def test_many_letters_are_held_back_listed_and_settled(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, *later = stream_events(stream, range(1, 3002))
        await store.park(projection, poison, "boom")

        held = await store.hold_back(projection, later)

        assert held == set(range(2, 3002))
        letters = await store.letters(projection, stream)
        assert [letter.event.position for letter in letters] == list(range(1, 3002))
        [parked] = await store.parked(projection)
        assert (parked.first_position, parked.events) == (1, 3001)
        async with store.retrying(projection, stream) as retry:
            assert len(retry.letters) == 3001
            retry.settle(2000, "still failing at 2001")
        [parked] = await store.parked(projection)
        assert (parked.first_position, parked.events) == (2001, 1001)
        async with store.retrying(projection, stream) as retry:
            retry.settle(retry.letters[-1].event.position)
        assert await store.parked(projection) == []

    # -- listing -----------------------------------------------------------------------------

    async def test_parked_streams_are_listed_oldest_first_per_projection_or_all(
        self, store: DeadLetterStore, projection: str
    ) -> None:
        other = f"{projection}-other"
        streams = [str(uuid.uuid4()) for _ in range(3)]
        await store.park(projection, an_event(streams[0], 30, tenant_id="tenant-a"), "a")
        await store.park(other, an_event(streams[1], 10, tenant_id="tenant-b"), "b")
        await store.park(projection, an_event(streams[2], 20, tenant_id="tenant-c"), "c")

        mine = await store.parked(projection)
        everyone = [p for p in await store.parked() if p.projection in (projection, other)]

        assert [(p.stream_id, p.tenant_id, p.error) for p in mine] == [
            (streams[0], "tenant-a", "a"),
            (streams[2], "tenant-c", "c"),
        ]
        assert [(p.projection, p.stream_id) for p in everyone] == [
            (projection, streams[0]),
            (other, streams[1]),
            (projection, streams[2]),
        ]
        assert all(p.parked_at.utcoffset() is not None for p in everyone)

    # -- retrying ----------------------------------------------------------------------------

    async def test_a_stream_that_is_not_parked_cannot_be_retried(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        with pytest.raises(LookupError):
            async with store.retrying(projection, stream):
                pytest.fail("the retry must not start")

    async def test_a_retry_sees_the_letters_and_settling_them_all_unparks_the_stream(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, *later = stream_events(stream, range(1, 4))
        await store.park(projection, poison, "boom")
        await store.hold_back(projection, later)

        async with store.retrying(projection, stream) as retry:
            assert list(retry.letters) == [
                DeadLetter(poison, "boom"),
                DeadLetter(later[0], None),
                DeadLetter(later[1], None),
            ]
            retry.settle(3)

        assert await store.parked(projection) == []
        assert await store.letters(projection, stream) == []
        assert await store.hold_back(projection, [an_event(stream, 4, version=4)]) == set()
        with pytest.raises(LookupError):
            async with store.retrying(projection, stream):
                pytest.fail("the retry must not start")

    async def test_a_retry_that_fails_again_keeps_the_rest_parked_with_the_new_error(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, *later = stream_events(stream, range(1, 5))
        await store.park(projection, poison, "boom")
        await store.hold_back(projection, later)

        async with store.retrying(projection, stream) as retry:
            retry.settle(2, "ValueError: at 3")

        [parked] = await store.parked(projection)
        assert (parked.error, parked.first_position, parked.events) == ("ValueError: at 3", 3, 2)
        assert await store.letters(projection, stream) == [
            DeadLetter(later[1], "ValueError: at 3"),
            DeadLetter(later[2], None),
        ]

    async def test_a_retry_that_fails_on_the_first_letter_only_updates_the_error(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, later = stream_events(stream, range(1, 3))
        await store.park(projection, poison, "boom")
        await store.hold_back(projection, [later])

        async with store.retrying(projection, stream) as retry:
            retry.settle(None, "boom again")

        assert [(p.error, p.events) for p in await store.parked(projection)] == [("boom again", 2)]
        assert await store.letters(projection, stream) == [
            DeadLetter(poison, "boom again"),
            DeadLetter(later, None),
        ]

    async def test_a_retry_that_handles_some_letters_without_error_keeps_the_rest_parked(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, later = stream_events(stream, range(1, 3))
        await store.park(projection, poison, "boom")
        await store.hold_back(projection, [later])

        async with store.retrying(projection, stream) as retry:
            retry.settle(1)

        assert [(p.error, p.first_position) for p in await store.parked(projection)] == [
            ("boom", 2)
        ]
        assert await store.letters(projection, stream) == [DeadLetter(later, None)]

    async def test_a_retry_that_settles_nothing_changes_nothing(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison = an_event(stream, 1)
        await store.park(projection, poison, "boom")
        before = await store.parked(projection)

        async with store.retrying(projection, stream) as retry:
            assert len(retry.letters) == 1

        assert await store.parked(projection) == before
        assert await store.letters(projection, stream) == [DeadLetter(poison, "boom")]

    async def test_a_retry_that_raises_changes_nothing_and_lets_the_next_retry_in(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, later = stream_events(stream, range(1, 3))
        await store.park(projection, poison, "boom")
        await store.hold_back(projection, [later])
        before = await store.parked(projection)

        with pytest.raises(RuntimeError, match="the sink is down"):
            async with store.retrying(projection, stream) as retry:
                retry.settle(2)
                raise RuntimeError("the sink is down")

        assert await store.parked(projection) == before
        assert len(await store.letters(projection, stream)) == 2
        async with asyncio.timeout(WAIT), store.retrying(projection, stream) as retry:
            assert len(retry.letters) == 2

    async def test_an_error_with_no_letter_left_to_blame_is_refused(
        self, store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        await store.park(projection, an_event(stream, 1), "boom")

        with pytest.raises(ValueError):
            async with store.retrying(projection, stream) as retry:
                retry.settle(1, "what failed?")

        assert [p.events for p in await store.parked(projection)] == [1]

    # -- retries and workers at the same time ------------------------------------------------

    async def test_a_worker_waits_for_a_retry_and_then_finds_the_stream_unparked(
        self, store: DeadLetterStore, other_store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, later = stream_events(stream, range(1, 3))
        await store.park(projection, poison, "boom")

        async with store.retrying(projection, stream) as retry:
            holding = asyncio.create_task(other_store.hold_back(projection, [later]))
            await asyncio.sleep(BLOCKED)
            assert not holding.done(), "hold_back must wait while the stream is retried"
            retry.settle(1)

        assert await asyncio.wait_for(holding, WAIT) == set()
        assert await store.parked(projection) == []
        assert await store.letters(projection, stream) == []

    async def test_a_worker_waits_for_a_retry_that_fails_and_then_holds_back(
        self, store: DeadLetterStore, other_store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        poison, later = stream_events(stream, range(1, 3))
        await store.park(projection, poison, "boom")

        async with store.retrying(projection, stream) as retry:
            holding = asyncio.create_task(other_store.hold_back(projection, [later]))
            await asyncio.sleep(BLOCKED)
            retry.settle(None, "boom again")

        assert await asyncio.wait_for(holding, WAIT) == {2}
        assert [letter.event for letter in await store.letters(projection, stream)] == [
            poison,
            later,
        ]

    async def test_a_retry_blocks_nothing_of_other_projections_or_streams(
        self, store: DeadLetterStore, other_store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        other = f"{projection}-other"
        elsewhere = str(uuid.uuid4())
        poison, later, last = stream_events(stream, range(1, 4))
        await store.park(projection, poison, "boom")
        await store.park(projection, an_event(elsewhere, 5), "boom")
        await store.park(other, poison, "also boom")

        async with store.retrying(projection, stream) as retry:
            async with asyncio.timeout(WAIT):
                assert await other_store.hold_back(other, [later]) == {2}
                await other_store.park(other, last, "and again")
                assert await other_store.hold_back(projection, [an_event(elsewhere, 6)]) == {6}
                async with other_store.retrying(other, stream) as other_retry:
                    other_retry.settle(3)
            retry.settle(1)

        assert await store.parked(other) == []
        assert [p.stream_id for p in await store.parked(projection)] == [elsewhere]

    async def test_retries_of_one_stream_take_turns(
        self, store: DeadLetterStore, other_store: DeadLetterStore, projection: str, stream: str
    ) -> None:
        await store.park(projection, an_event(stream, 1), "boom")

        async def retry_again() -> None:
            async with other_store.retrying(projection, stream):
                pytest.fail("the first retry un-parked the stream")

        async with store.retrying(projection, stream) as retry:
            second = asyncio.create_task(retry_again())
            await asyncio.sleep(BLOCKED)
            assert not second.done(), "a second retry must wait for the first"
            retry.settle(1)

        with pytest.raises(LookupError):
            await asyncio.wait_for(second, WAIT)
