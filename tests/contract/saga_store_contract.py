"""The contract every `SagaStore` adapter honours.

An adapter's test module subclasses `SagaStoreContract` in a class named `Test…` and overrides
the `store` fixture to yield a started store (closed afterwards), and `other_store` to yield a
second one on the same database (another process, as far as the store can tell). Groups and
saga ids are unique per test, so a store may be shared between tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from application.ports.event_store import RecordedEvent
from application.ports.saga_store import HeldInput, SagaStore, Timer, input_key

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)


def a_timer(group: str, *, due_at: datetime = NOW, name: str = "payment-deadline") -> Timer:
    return Timer(group, "checkout", str(uuid.uuid4()), "tenant-1", name, due_at)


def an_event(position: int) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=str(uuid.uuid4()),
        stream_version=1,
        position=position,
        type="domain.order:Order.Placed",
        schema_version=1,
        tenant_id="tenant-1",
        recorded_at=NOW,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        payload=b'{"lines": []}',
    )


class SagaStoreContract:
    @pytest.fixture
    async def store(self) -> AsyncIterator[SagaStore]:
        raise NotImplementedError("override the store fixture in the adapter's test class")
        yield  # pragma: no cover

    @pytest.fixture
    async def other_store(self) -> AsyncIterator[SagaStore]:
        raise NotImplementedError("override the other_store fixture in the adapter's test class")
        yield  # pragma: no cover

    @pytest.fixture
    def group(self) -> str:
        return f"group-{uuid.uuid4()}"

    # -- checkpoints -------------------------------------------------------------------------

    async def test_a_group_that_never_ran_is_at_position_zero(
        self, store: SagaStore, group: str
    ) -> None:
        assert await store.checkpoint(group) == 0

    async def test_a_saved_checkpoint_is_read_back(self, store: SagaStore, group: str) -> None:
        await store.save_checkpoint(group, 42)
        await store.save_checkpoint(group, 1 << 40)

        assert await store.checkpoint(group) == 1 << 40

    async def test_a_checkpoint_never_moves_back(self, store: SagaStore, group: str) -> None:
        await store.save_checkpoint(group, 100)
        await store.save_checkpoint(group, 99)

        assert await store.checkpoint(group) == 100

    async def test_groups_keep_their_own_checkpoints(self, store: SagaStore, group: str) -> None:
        await store.save_checkpoint(group, 7)

        assert await store.checkpoint(f"{group}-other") == 0

    # -- timers ------------------------------------------------------------------------------

    async def test_timers_are_counted_until_completed_or_unscheduled(
        self, store: SagaStore, group: str
    ) -> None:
        fired, dropped, waiting = (a_timer(group), a_timer(group), a_timer(group))
        for timer in (fired, dropped, waiting):
            await store.schedule(timer)
        await store.schedule(waiting)  # scheduled again: still one timer
        counted = await store.count_timers(group)

        await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE)
        claimed = await store.count_timers(group)  # claimed timers are still pending
        await store.complete(fired, owner="a")
        await store.unschedule(dropped.timer_id)

        assert (counted, claimed, await store.count_timers(group)) == (3, 3, 1)
        assert await store.count_timers(f"{group}-other") == 0

    async def test_only_due_timers_are_claimed_earliest_first(
        self, store: SagaStore, group: str
    ) -> None:
        later, early, future = (
            a_timer(group, due_at=NOW - timedelta(seconds=1)),
            a_timer(group, due_at=NOW - timedelta(minutes=5)),
            a_timer(group, due_at=NOW + timedelta(microseconds=1)),
        )
        for timer in (later, early, future):
            await store.schedule(timer)

        claimed = await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE)

        assert claimed == [early, later]

    async def test_a_claim_takes_at_most_the_limit(self, store: SagaStore, group: str) -> None:
        for _ in range(5):
            await store.schedule(a_timer(group))

        claimed = await store.claim_due(group, now=NOW, owner="a", limit=3, lease=LEASE)

        assert len(claimed) == 3

    async def test_a_claimed_timer_is_nobody_elses_until_its_lease_ends(
        self, store: SagaStore, group: str
    ) -> None:
        timer = a_timer(group)
        await store.schedule(timer)
        await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE)

        during = await store.claim_due(
            group, now=NOW + LEASE - timedelta(seconds=1), owner="b", limit=10, lease=LEASE
        )
        after = await store.claim_due(group, now=NOW + LEASE, owner="b", limit=10, lease=LEASE)

        assert (during, after) == ([], [timer])

    async def test_concurrent_claimers_never_get_the_same_timer(
        self, store: SagaStore, other_store: SagaStore, group: str
    ) -> None:
        timers = [a_timer(group) for _ in range(40)]
        for timer in timers:
            await store.schedule(timer)

        claims = await asyncio.gather(
            *(
                claimer.claim_due(group, now=NOW, owner=f"{n}", limit=7, lease=LEASE)
                for n, claimer in enumerate([store, other_store] * 4)
            )
        )

        claimed = [timer.timer_id for claim in claims for timer in claim]
        assert len(claimed) == len(set(claimed))
        assert len(claimed) == min(40, 7 * 8)

    async def test_a_completed_timer_is_gone(self, store: SagaStore, group: str) -> None:
        timer = a_timer(group)
        await store.schedule(timer)
        [claimed] = await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE)

        await store.complete(claimed, owner="a")

        later = NOW + 2 * LEASE
        assert await store.claim_due(group, now=later, owner="a", limit=10, lease=LEASE) == []

    async def test_a_runner_cannot_complete_a_timer_another_runner_claimed(
        self, store: SagaStore, group: str
    ) -> None:
        timer = a_timer(group)
        await store.schedule(timer)
        await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE)
        later = NOW + LEASE
        [reclaimed] = await store.claim_due(group, now=later, owner="b", limit=10, lease=LEASE)

        await store.complete(timer, owner="a")

        again = later + LEASE
        assert await store.claim_due(group, now=again, owner="c", limit=10, lease=LEASE) == [
            reclaimed
        ]

    async def test_a_timer_moved_while_it_fired_is_not_completed_away(
        self, store: SagaStore, group: str
    ) -> None:
        timer = a_timer(group)
        await store.schedule(timer)
        [claimed] = await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE)
        moved = Timer(**{**vars(timer), "due_at": NOW + timedelta(hours=1)})
        await store.schedule(moved)

        await store.complete(claimed, owner="a")

        later = NOW + timedelta(hours=1)
        assert await store.claim_due(group, now=later, owner="b", limit=10, lease=LEASE) == [moved]

    async def test_scheduling_a_timer_again_as_it_was_keeps_one_timer_and_its_claim(
        self, store: SagaStore, group: str
    ) -> None:
        timer = a_timer(group)
        await store.schedule(timer)
        await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE)

        await store.schedule(timer)

        assert await store.claim_due(group, now=NOW, owner="b", limit=10, lease=LEASE) == []
        assert await store.claim_due(group, now=NOW + LEASE, owner="b", limit=10, lease=LEASE) == [
            timer
        ]

    async def test_an_unscheduled_timer_never_fires(self, store: SagaStore, group: str) -> None:
        timer = a_timer(group)
        await store.schedule(timer)

        await store.unschedule(timer.timer_id)
        await store.unschedule(timer.timer_id)

        assert await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE) == []

    async def test_timers_of_other_groups_are_not_claimed(
        self, store: SagaStore, group: str
    ) -> None:
        await store.schedule(a_timer(f"{group}-other"))

        assert await store.claim_due(group, now=NOW, owner="a", limit=10, lease=LEASE) == []

    # -- leadership --------------------------------------------------------------------------

    async def test_one_runner_leads_a_group_at_a_time(
        self, store: SagaStore, other_store: SagaStore, group: str
    ) -> None:
        lease = timedelta(seconds=30)

        first = await store.try_lead(group, "a", lease=lease)
        second = await other_store.try_lead(group, "b", lease=lease)
        renewed = await store.try_lead(group, "a", lease=lease)

        assert (first, second, renewed) == (True, False, True)
        await store.resign(group, "a")

    async def test_a_resigned_leader_is_replaced_at_once(
        self, store: SagaStore, other_store: SagaStore, group: str
    ) -> None:
        lease = timedelta(seconds=30)
        await store.try_lead(group, "a", lease=lease)

        await store.resign(group, "a")

        assert await other_store.try_lead(group, "b", lease=lease)
        await other_store.resign(group, "b")

    async def test_groups_are_led_independently(
        self, store: SagaStore, other_store: SagaStore, group: str
    ) -> None:
        lease = timedelta(seconds=30)
        await store.try_lead(group, "a", lease=lease)

        assert await other_store.try_lead(f"{group}-other", "b", lease=lease)
        await store.resign(group, "a")
        await other_store.resign(f"{group}-other", "b")

    # -- dead letters ------------------------------------------------------------------------

    async def test_a_parked_saga_keeps_its_failed_input_and_holds_its_later_inputs_back(
        self, store: SagaStore, group: str
    ) -> None:
        saga, other = str(uuid.uuid4()), str(uuid.uuid4())
        poison, later, timer = an_event(10), an_event(12), a_timer(group)
        await store.park(
            group, saga, saga_type="checkout", tenant_id="t1", record=poison, error="boom"
        )

        held = await store.hold_back(
            group,
            [HeldInput(saga, later), HeldInput(other, an_event(11)), HeldInput(saga, timer)],
        )

        assert held == {input_key(later), input_key(timer)}
        letters = await store.letters(group, saga)
        assert [(letter.input, letter.error) for letter in letters] == [
            (poison, "boom"),
            (later, None),
            (timer, None),
        ]
        assert [letter.key for letter in letters] == [input_key(r) for r in (poison, later, timer)]
        assert await store.letters(group, other) == []

    async def test_parking_and_holding_back_twice_keeps_one_letter_in_its_place(
        self, store: SagaStore, group: str
    ) -> None:
        saga, first, second = str(uuid.uuid4()), an_event(1), an_event(2)
        for _ in range(2):
            await store.park(
                group, saga, saga_type="checkout", tenant_id="t1", record=first, error="boom"
            )
            await store.hold_back(group, [HeldInput(saga, second)])

        assert [letter.input for letter in await store.letters(group, saga)] == [first, second]

    async def test_nothing_is_held_back_while_no_saga_is_parked(
        self, store: SagaStore, group: str
    ) -> None:
        assert await store.hold_back(group, [HeldInput(str(uuid.uuid4()), an_event(1))]) == set()
        assert await store.hold_back(group, []) == set()

    async def test_parked_sagas_are_listed_oldest_first_and_per_tenant(
        self, store: SagaStore, group: str
    ) -> None:
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        await store.park(
            group, first, saga_type="checkout", tenant_id="t1", record=an_event(1), error="a"
        )
        await store.park(
            group, second, saga_type="escrow", tenant_id="t2", record=a_timer(group), error="b"
        )
        await store.hold_back(group, [HeldInput(first, an_event(5))])

        everyone = await store.parked(group)
        only_t2 = await store.parked(group, tenant_id="t2")

        assert [(p.saga_id, p.saga_type, p.tenant_id, p.error, p.letters) for p in everyone] == [
            (first, "checkout", "t1", "a", 2),
            (second, "escrow", "t2", "b", 1),
        ]
        assert [p.saga_id for p in only_t2] == [second]
        assert await store.parked(f"{group}-other") == []

    async def test_a_saga_is_unparked_only_once_its_letters_are_gone(
        self, store: SagaStore, group: str
    ) -> None:
        saga, poison, later = str(uuid.uuid4()), an_event(1), an_event(2)
        await store.park(
            group, saga, saga_type="checkout", tenant_id="t1", record=poison, error="x"
        )
        await store.hold_back(group, [HeldInput(saga, later)])
        await store.drop_letter(group, saga, input_key(poison))

        while_waiting = await store.unpark_if_empty(group, saga)
        await store.drop_letter(group, saga, input_key(later))
        once_empty = await store.unpark_if_empty(group, saga)

        assert (while_waiting, once_empty) == (False, True)
        assert await store.parked(group) == []
        assert await store.hold_back(group, [HeldInput(saga, an_event(3))]) == set()
        assert await store.unpark_if_empty(group, saga)  # not parked: nothing to wait for

    async def test_a_failed_retry_keeps_its_error_on_the_saga_and_the_letter(
        self, store: SagaStore, group: str
    ) -> None:
        saga, poison = str(uuid.uuid4()), an_event(1)
        await store.park(
            group, saga, saga_type="checkout", tenant_id="t1", record=poison, error="x"
        )

        await store.record_failure(group, saga, input_key(poison), "still broken")

        [parked] = await store.parked(group)
        [letter] = await store.letters(group, saga)
        assert (parked.error, letter.error) == ("still broken", "still broken")

    async def test_an_input_held_back_while_a_retry_empties_the_saga_is_never_lost(
        self, store: SagaStore, other_store: SagaStore, group: str
    ) -> None:
        for _ in range(10):
            saga, poison, late = str(uuid.uuid4()), an_event(1), an_event(2)
            await store.park(
                group, saga, saga_type="checkout", tenant_id="t1", record=poison, error="x"
            )
            await store.drop_letter(group, saga, input_key(poison))

            held, unparked = await asyncio.gather(
                other_store.hold_back(group, [HeldInput(saga, late)]),
                store.unpark_if_empty(group, saga),
            )

            # Either the input waits as a letter of a still-parked saga, or the saga was
            # un-parked first and the input was the caller's to feed: never both, never neither.
            letters = await store.letters(group, saga)
            assert (held == {input_key(late)}) == (not unparked) == (len(letters) == 1)
            if letters:
                await store.drop_letter(group, saga, input_key(late))
                assert await store.unpark_if_empty(group, saga)
