"""Moves one saga forward: feeds it an input (an event or a timer), then takes its steps.

How a step happens exactly once, whatever crashes:

1. The saga is loaded and first finishes the steps a previous run left untaken.
2. The input changes the saga in memory (or nothing, if the saga has seen it).
3. Each step is taken: a command with the idempotency key `saga:<saga id>:<step key>:<hash of
   the command>` (a system actor's, so the store keeps it in the `sys/` scope that no HTTP
   caller can write: `application.context.scoped_idempotency_key`), or a timer upserted
   (idempotent). The outcome is recorded in the saga.
4. The saga's new events are appended, expecting the version it was loaded at; then the timers
   it no longer waits for are deleted.

A crash before 4 loses only the record: the input comes back (the checkpoint or timer was not
advanced), the same steps are taken again with the same keys, and the command bus answers
each with its first result instead of running it twice. A step that was refused recorded
nothing, so running it again is a first time. Two runners on one saga both take the same
keyed steps, but only one appends (4): the other reloads and finds the work done.

Tracing: an input is a span, `saga <kind> on <Event>`, a child of the span that appended the
event (so the saga's work joins the trace of the request that caused it), or `saga <kind>
deadline <timer>` for a timer, a trace of its own; each step taken is a child span, `saga step
<kind> <step>`, and the commands it issues are children of the step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context

from application.backoff import Backoff
from application.commerce.bus import CommandBus
from application.context import Actor, CommandContext, fingerprint_command
from application.errors import AggregateNotFoundError
from application.ports.event_store import ConcurrencyError, EventMetadata
from application.ports.saga_store import SagaStore, Timer
from application.repository import Repository
from application.sagas.inputs import SAGA_TYPES
from application.sagas.policy import SagaPolicy
from application.sagas.router import SagaInput
from application.sagas.saga import Saga
from application.sagas.steps import Issue, Schedule, Step, Unschedule
from application.tracing import (
    COMMAND,
    EVENT_TYPE,
    OUTCOME,
    POSITION,
    STREAM,
    TENANT,
    SpanCause,
    short_event_type,
    traced,
)
from domain.errors import DomainError

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("mercato.sagas")
SAGA_KIND = "mercato.saga.kind"
SAGA_ID = "mercato.saga.id"

MAX_ATTEMPTS = 8
# Runners racing on one saga's stream wake at random (full jitter): up to 10 ms after the
# first clash, doubling to 640 ms before the last attempt.
_CLASH_BACKOFF = Backoff(first=0.01, cap=0.64, jitter=True)
MAX_STEPS = 1_000
"""A plan never has this many steps; reaching it means a saga is looping, so stop it."""

Change = Callable[[Saga | None], Saga | None]


class SagaDriver:
    def __init__(
        self,
        repository: Repository,
        bus: CommandBus,
        saga_store: SagaStore,
        *,
        group: str,
        policy: SagaPolicy | None = None,
    ) -> None:
        self._repository = repository
        self._bus = bus
        self._saga_store = saga_store
        self._group = group
        self._policy = policy or SagaPolicy()

    async def receive(self, saga_input: SagaInput) -> None:
        """Feed one event of the log to its saga and take the steps that follow."""
        saga_type, recorded = saga_input.route.saga_type, saga_input.recorded
        cause = SpanCause.of([recorded.traceparent])
        with traced(
            tracer,
            f"saga {saga_type.kind} on {short_event_type(recorded.type)}",
            context=cause.context,
            links=cause.links,
            attributes={
                SAGA_KIND: saga_type.kind,
                SAGA_ID: saga_input.saga_id,
                TENANT: saga_input.tenant_id,
                EVENT_TYPE: recorded.type,
                STREAM: recorded.stream_id,
                POSITION: recorded.position,
            },
        ):
            await self._advance(
                saga_type,
                saga_input.saga_id,
                saga_input.tenant_id,
                lambda saga: saga_input.apply(saga, self._policy),
            )

    async def fire(self, timer: Timer) -> None:
        """Tell a saga its deadline passed and take the steps that follow."""

        def deadline_passed(saga: Saga | None) -> Saga | None:
            if saga is not None:
                saga.on_timer(timer.name)
            return saga

        with traced(
            tracer,
            f"saga {timer.saga_type} deadline {timer.name}",
            context=Context(),  # a deadline is a cause of its own: no request is waiting
            attributes={
                SAGA_KIND: timer.saga_type,
                SAGA_ID: timer.saga_id,
                TENANT: timer.tenant_id,
                "mercato.saga.timer": timer.name,
                "mercato.saga.due_at": timer.due_at.isoformat(),
            },
        ):
            await self._advance(
                SAGA_TYPES[timer.saga_type], UUID(timer.saga_id), timer.tenant_id, deadline_passed
            )

    async def _advance(
        self, saga_type: type[Saga], saga_id: UUID, tenant_id: str, change: Change
    ) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                saga = await self._load(saga_type, saga_id, tenant_id)
                await self._take_steps(saga)
                await self._take_steps(change(saga))
                return
            except ConcurrencyError:
                # Another runner moved this saga on: reload, and see what is left to do.
                if attempt == MAX_ATTEMPTS:
                    raise
                await asyncio.sleep(_CLASH_BACKOFF.delay(attempt))

    async def _load(self, saga_type: type[Saga], saga_id: UUID, tenant_id: str) -> Saga | None:
        try:
            return await self._repository.get(saga_type, saga_id, tenant_id=tenant_id)
        except AggregateNotFoundError:
            return None

    async def _take_steps(self, saga: Saga | None) -> None:
        if saga is None:
            return
        unscheduled: list[str] = []
        try:
            for _ in range(MAX_STEPS):
                step = saga.next_step()
                if step is None:
                    break
                await self._take(saga, step, unscheduled)
            else:
                raise RuntimeError(f"saga {saga.id} took {MAX_STEPS} steps without finishing")
        except Exception:
            # Keep what was done (the failed step is retried later from where it stopped).
            await self._save_quietly(saga)
            raise
        await self._save(saga)
        # Timers are deleted only once the saga has recorded that it no longer waits for them.
        # Deleting one first, then crashing, would lose the deadline of a saga that never
        # recorded moving on; a timer a crash leaves behind fires into a saga that ignores it.
        for timer_id in unscheduled:
            await self._saga_store.unschedule(timer_id)
        if saga.needs_attention:
            logger.error("saga %s needs attention: %s", saga.id, saga.refusals[-1:])

    async def _take(self, saga: Saga, step: Step, unscheduled: list[str]) -> None:
        # A step's key may name a product (`reserve:<id>`): the span is named by its kind.
        step_kind = step.key.split(":", 1)[0]
        with traced(
            tracer,
            f"saga step {saga.kind} {step_kind}",
            attributes={
                SAGA_KIND: saga.kind,
                SAGA_ID: saga.id,
                TENANT: saga.tenant_id,
                "mercato.saga.status": saga.status,
                "mercato.saga.step": step.key,
                COMMAND: type(step.command).__name__ if isinstance(step, Issue) else None,
            },
        ) as span:
            refused = await self._take_step(saga, step, unscheduled)
            span.set_attribute(OUTCOME, "refused" if refused else "completed")

    async def _take_step(self, saga: Saga, step: Step, unscheduled: list[str]) -> bool:
        """Take the step and record it in the saga; True when the domain refused it."""
        if isinstance(step, Issue):
            try:
                await self._bus.dispatch(step.command, self._context(saga, step))
            except (DomainError, AggregateNotFoundError) as refusal:
                logger.info("saga %s: step %s refused: %s", saga.id, step.key, refusal)
                saga.refuse_step(step.key, str(refusal) or type(refusal).__name__)
                return True
        elif isinstance(step, Schedule):
            await self._saga_store.schedule(
                Timer(self._group, saga.kind, str(saga.id), saga.tenant_id, step.timer, step.due_at)
            )
        elif isinstance(step, Unschedule):
            unscheduled.append(saga.timer_id(step.timer))
        saga.complete_step(step.key)
        return False

    def _context(self, saga: Saga, step: Issue) -> CommandContext:
        # The key names the step and what it asks for. A step is taken again with the same
        # command unless a crash lost the decision that chose it; then the saga may decide
        # differently (cancel for another reason) and the command is a new one, for the
        # domain to accept or refuse, rather than a reuse of the key the store would refuse.
        fingerprint = fingerprint_command(step.command)[:16]
        return CommandContext(
            actor=Actor.system(saga.tenant_id),
            idempotency_key=f"saga:{saga.id}:{step.key}:{fingerprint}",
            correlation_id=saga.correlation_id,
            causation_id=saga.id,
        )

    async def _save(self, saga: Saga) -> None:
        if saga.pending_events:
            metadata = EventMetadata(
                tenant_id=saga.tenant_id, correlation_id=saga.correlation_id, causation_id=saga.id
            )
            await self._repository.save(saga, metadata=metadata)

    async def _save_quietly(self, saga: Saga) -> None:
        try:
            await self._save(saga)
        except Exception:
            logger.warning("could not save the progress of saga %s", saga.id, exc_info=True)
