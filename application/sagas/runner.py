"""The saga runner: follows the global log and the timer table, and moves sagas forward.

`SagaRunner.run()` is the entry point for both profiles: the embedded profile runs it as a task
of the API process, the services profile in a worker process. Several runners may run at once:

- **The log**: only the group's leader follows it (`SagaStore.try_lead`), from the group's
  durable checkpoint. A batch is routed to sagas; different sagas run concurrently, one saga's
  inputs in log order. The checkpoint moves only after the whole batch is done, so a runner
  killed mid-batch leaves the batch to the next leader, which finds the finished sagas
  finished (`Saga.has_seen`) and the half-done ones where their steps' keys left them.
- **Timers**: every runner drains them; a claim gives each due timer to one runner, and a
  timer is deleted only after its saga has moved on (a dead runner's claims expire).
- **Within a process**, one lock per saga keeps the log and the timers from moving the same
  saga at once. Across processes the saga's stream version does (`SagaDriver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Hashable, Sequence
from datetime import timedelta

from application.ports.clock import Clock
from application.ports.event_store import EventStore, LogFilter, RecordedEvent
from application.ports.saga_store import SagaStore, Timer
from application.sagas.cancellation import cancel_and_wait
from application.sagas.driver import SagaDriver
from application.sagas.inputs import ROUTES
from application.sagas.router import Router, SagaInput

logger = logging.getLogger(__name__)

SAGA_LOG_FILTER = LogFilter(event_types=frozenset(ROUTES))


class KeyedLocks:
    """One `asyncio.Lock` per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class SagaRunner:
    def __init__(
        self,
        *,
        events: EventStore,
        saga_store: SagaStore,
        driver: SagaDriver,
        router: Router,
        clock: Clock,
        group: str = "sagas",
        owner: str | None = None,
        batch_size: int = 100,
        concurrency: int = 16,
        poll_interval: float = 1.0,
        retry_delay: float = 1.0,
        leadership_lease: timedelta = timedelta(seconds=15),
        claim_lease: timedelta = timedelta(minutes=1),
    ) -> None:
        """`poll_interval`: how often timers are looked for (seconds of real time);
        `leadership_lease`: how long a silent leader keeps the log (renewed at a third);
        `claim_lease`: how long (in clock time) a claimed timer stays with its runner."""
        self._events = events
        self._saga_store = saga_store
        self._driver = driver
        self._router = router
        self._clock = clock
        self.group = group
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._retry_delay = retry_delay
        self._leadership_lease = leadership_lease
        self._claim_lease = claim_lease
        self._locks = KeyedLocks()
        self.leading = False

    async def run(self) -> None:
        """Follow the log (while leading the group) and fire due timers, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._lead(), name=f"saga-log-{self.owner}")
            tasks.create_task(self._fire_timers(), name=f"saga-timers-{self.owner}")

    # -- the log ---------------------------------------------------------------------------

    async def _lead(self) -> None:
        lease = self._leadership_lease
        while True:
            try:
                if await self._saga_store.try_lead(self.group, self.owner, lease=lease):
                    self.leading = True
                    try:
                        await self._follow_log_while_leading()
                    finally:
                        self.leading = False
                        await self._saga_store.resign(self.group, self.owner)
            except Exception:
                logger.exception("saga runner %s stopped following the log; retrying", self.owner)
            await asyncio.sleep(self._retry_delay)

    async def _follow_log_while_leading(self) -> None:
        """Follow the log, renewing the lead every third of the lease, until the lead is lost
        or following fails (then raise what stopped it)."""
        lease = self._leadership_lease
        follow = asyncio.create_task(self._follow_log(), name=f"saga-log-follow-{self.owner}")
        try:
            while True:
                done, _ = await asyncio.wait({follow}, timeout=lease.total_seconds() / 3)
                if done:
                    follow.result()
                    return
                if not await self._saga_store.try_lead(self.group, self.owner, lease=lease):
                    logger.warning("saga runner %s lost the lead of %s", self.owner, self.group)
                    return
        finally:
            await cancel_and_wait(follow)

    async def _follow_log(self) -> None:
        position = await self._saga_store.checkpoint(self.group)
        subscription = self._events.subscribe(position, SAGA_LOG_FILTER, self._batch_size)
        try:
            async for batch in subscription:
                await self._process(batch)
                await self._saga_store.save_checkpoint(self.group, batch[-1].position)
        finally:
            # A cancelled `async for` leaves the generator suspended; close it now, so what it
            # holds (a listening connection) is given back at once rather than at collection.
            aclose = getattr(subscription, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _process(self, batch: Sequence[RecordedEvent]) -> None:
        routed = await asyncio.gather(*(self._router.route(event) for event in batch))
        by_saga: dict[uuid.UUID, list[SagaInput]] = {}
        for saga_input in routed:
            if saga_input is not None:
                by_saga.setdefault(saga_input.saga_id, []).append(saga_input)
        limit = asyncio.Semaphore(self._concurrency)

        async def feed(inputs: list[SagaInput]) -> None:
            async with limit:
                for saga_input in inputs:
                    async with self._locks.hold(saga_input.saga_id):
                        await self._driver.receive(saga_input)

        # Every saga of the batch gets its turn even if one fails (a provider outage, say):
        # the batch is then retried, and the sagas that moved on find their inputs seen.
        outcomes = await asyncio.gather(
            *(feed(inputs) for inputs in by_saga.values()), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise failures[0]

    # -- timers ----------------------------------------------------------------------------

    async def _fire_timers(self) -> None:
        while True:
            try:
                timers = await self._saga_store.claim_due(
                    self.group,
                    now=self._clock.now(),
                    owner=self.owner,
                    limit=self._batch_size,
                    lease=self._claim_lease,
                )
            except Exception:
                logger.exception("saga runner %s could not claim timers; retrying", self.owner)
                await asyncio.sleep(self._retry_delay)
                continue
            if not timers:
                await asyncio.sleep(self._poll_interval)
                continue
            await asyncio.gather(*(self._fire(timer) for timer in timers))

    async def _fire(self, timer: Timer) -> None:
        try:
            async with self._locks.hold(uuid.UUID(timer.saga_id)):
                await self._driver.fire(timer)
            await self._saga_store.complete(timer, owner=self.owner)
        except Exception:
            # The timer stays claimed until its lease ends, then comes due again.
            logger.exception("saga runner %s could not fire timer %s", self.owner, timer.timer_id)
