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

from application.ports.saga_store import SagaStore, Timer

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)


def a_timer(group: str, *, due_at: datetime = NOW, name: str = "payment-deadline") -> Timer:
    return Timer(group, "checkout", str(uuid.uuid4()), "tenant-1", name, due_at)


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
