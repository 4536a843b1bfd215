"""The saga runner: follows the global log and the timer table, and moves sagas forward.

`SagaRunner.run()` is the entry point for both profiles: the embedded profile runs it as a task
of the API process, the services profile in a worker process. Several runners may run at once:

- **The log**: only the group's leader follows it (`SagaStore.try_lead`), from the group's
  durable checkpoint. A batch is routed to sagas; different sagas run concurrently, one saga's
  inputs in log order. The checkpoint moves only after the whole batch is done, so a runner
  killed mid-batch leaves the batch to the next leader, which finds the finished sagas
  finished (`Saga.has_seen`) and the half-done ones where their steps' keys left them.
- **Failures** never stop the log (`application.sagas.failures`). A transient one (a store or
  the provider out of reach) has the batch tried again, with backoff, for as long as it takes.
  Any other one parks *that saga*: the input is kept as a dead letter, the saga's later inputs
  are held back behind it (`SagaStore.hold_back`), and the batch, the checkpoint and every
  other saga move on. An operator retries it (`application.sagas.dead_letters`).
- **Timers**: every runner drains them; a claim gives each due timer to one runner, and a
  timer is deleted only after its saga has moved on (a dead runner's claims expire). A timer
  whose firing fails for good parks its saga the same way, and is kept as a letter.
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
from dataclasses import dataclass
from datetime import timedelta

from application.backoff import Backoff
from application.ports.clock import Clock
from application.ports.event_store import EventStore, LogFilter, RecordedEvent
from application.ports.saga_store import HeldInput, SagaStore, Timer, input_key
from application.sagas.cancellation import cancel_and_wait
from application.sagas.driver import SagaDriver
from application.sagas.failures import (
    TRANSIENT_FAILURES,
    TransientFailure,
    describe,
    is_transient,
)
from application.sagas.inputs import ROUTES
from application.sagas.router import Router, SagaInput

logger = logging.getLogger(__name__)

SAGA_LOG_FILTER = LogFilter(event_types=frozenset(ROUTES))
UNROUTED = "unrouted"
"""The saga type of an event whose saga could not be found: parked under its stream."""


@dataclass(frozen=True)
class _Entry:
    """One event of a batch, and where it goes: its saga's input, or why it has none."""

    saga_key: str
    saga_type: str
    recorded: RecordedEvent
    saga_input: SagaInput | None
    route_error: BaseException | None = None


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
        transient_failures: tuple[type[BaseException], ...] = TRANSIENT_FAILURES,
        backoff: Backoff | None = None,
    ) -> None:
        """`poll_interval`: how often timers are looked for (seconds of real time);
        `leadership_lease`: how long a silent leader keeps the log (renewed at a third);
        `claim_lease`: how long (in clock time) a claimed timer stays with its runner;
        `transient_failures`: what has a batch tried again (after `backoff`) rather than
        park a saga."""
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
        self._transient_failures = transient_failures
        self._backoff = backoff or Backoff(first=0.1, cap=30.0)
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
                await self._process_until_done(batch)
                await self._saga_store.save_checkpoint(self.group, batch[-1].position)
        finally:
            # A cancelled `async for` leaves the generator suspended; close it now, so what it
            # holds (a listening connection) is given back at once rather than at collection.
            aclose = getattr(subscription, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _process_until_done(self, batch: Sequence[RecordedEvent]) -> None:
        """Process the batch; after a transient failure, back off and process it again (the
        sagas that moved on find their inputs seen, the parked ones their letters stored)."""
        attempt = 0
        while True:
            try:
                await self._process(batch)
                return
            except Exception as failure:
                # The saga store's own calls (`hold_back`, `park`) may fail transiently too.
                if not isinstance(failure, TransientFailure) and not self._is_transient(failure):
                    raise
                attempt += 1
                delay = self._backoff.delay(attempt)
                logger.warning(
                    "saga runner %s: transient failure at positions %d-%d (%s); trying the"
                    " batch again in %.1f s (attempt %d)",
                    self.owner,
                    batch[0].position,
                    batch[-1].position,
                    describe(failure.__cause__ or failure),
                    delay,
                    attempt,
                )
                await asyncio.sleep(delay)

    async def _process(self, batch: Sequence[RecordedEvent]) -> None:
        """Feed the batch to its sagas. Raises `TransientFailure` when some saga should see
        its input again; every other failure parks its saga instead of raising."""
        entries = await self._route(batch)
        held = await self._saga_store.hold_back(
            self.group, [HeldInput(entry.saga_key, entry.recorded) for entry in entries]
        )
        by_saga: dict[str, list[_Entry]] = {}
        for entry in entries:
            if input_key(entry.recorded) not in held:
                by_saga.setdefault(entry.saga_key, []).append(entry)
        limit = asyncio.Semaphore(self._concurrency)

        async def feed(saga_entries: list[_Entry]) -> None:
            async with limit:
                await self._feed_saga(saga_entries)

        # Every saga of the batch gets its turn even if one fails transiently (a provider
        # outage, say): the batch is then tried again, and the sagas that moved on find their
        # inputs seen.
        outcomes = await asyncio.gather(
            *(feed(saga_entries) for saga_entries in by_saga.values()), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise TransientFailure() from failures[0]

    async def _route(self, batch: Sequence[RecordedEvent]) -> list[_Entry]:
        routed = await asyncio.gather(
            *(self._router.route(event) for event in batch), return_exceptions=True
        )
        entries = []
        for recorded, outcome in zip(batch, routed, strict=True):
            if isinstance(outcome, SagaInput):
                key = str(outcome.saga_id)
                entries.append(_Entry(key, outcome.route.saga_type.kind, recorded, outcome))
            elif isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                if self._is_transient(outcome):
                    raise TransientFailure() from outcome
                # No saga to park: the event waits under its own stream.
                key = f"{UNROUTED}:{recorded.stream_id}"
                entries.append(_Entry(key, UNROUTED, recorded, None, outcome))
        return entries

    async def _feed_saga(self, entries: list[_Entry]) -> None:
        """Feed one saga its inputs in order; a failure for good parks it, and its inputs
        after that one are held back behind it. Raises a transient failure."""
        parked = False
        for entry in entries:
            if parked:
                await self._saga_store.hold_back(
                    self.group, [HeldInput(entry.saga_key, entry.recorded)]
                )
                continue
            try:
                if entry.saga_input is None:
                    raise entry.route_error or LookupError("no saga for this event")
                async with self._locks.hold(entry.saga_input.saga_id):
                    await self._driver.receive(entry.saga_input)
            except Exception as error:
                if self._is_transient(error):
                    raise
                await self._park(entry.saga_key, entry.saga_type, entry.recorded, error)
                parked = True

    async def _park(
        self, saga_key: str, saga_type: str, record: RecordedEvent | Timer, error: Exception
    ) -> None:
        logger.error(
            "saga runner %s parked %s saga %s: its input %s failed for good",
            self.owner,
            saga_type,
            saga_key,
            input_key(record),
            exc_info=error,
        )
        await self._saga_store.park(
            self.group,
            saga_key,
            saga_type=saga_type,
            tenant_id=record.tenant_id,
            record=record,
            error=describe(error),
        )

    def _is_transient(self, error: BaseException) -> bool:
        return is_transient(error, self._transient_failures)

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
            if not await self._saga_store.hold_back(self.group, [HeldInput(timer.saga_id, timer)]):
                await self._fire_unless_it_fails_for_good(timer)
            # Fired, or kept as a letter of its parked saga: either way, done here.
            await self._saga_store.complete(timer, owner=self.owner)
        except Exception:
            # The timer stays claimed until its lease ends, then comes due again.
            logger.exception("saga runner %s could not fire timer %s", self.owner, timer.timer_id)

    async def _fire_unless_it_fails_for_good(self, timer: Timer) -> None:
        """Fire the timer; a failure for good parks its saga with the timer as a letter (so it
        does not come due again and again). Raises a transient failure."""
        try:
            async with self._locks.hold(uuid.UUID(timer.saga_id)):
                await self._driver.fire(timer)
        except Exception as error:
            if self._is_transient(error):
                raise
            await self._park(timer.saga_id, timer.saga_type, timer, error)
