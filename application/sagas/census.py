"""How many sagas are in each status: a count folded from the sagas' own events in the log.

For the `mercato_saga_instances{saga, state}` gauge. A saga announces its status in its events:
`Started` (the first status, set by its constructor), `Advanced` (the status is in the event),
and each saga's own transitions (`STATUS_SET_BY`); the step events leave it alone. So the census
reads each saga event once, in log order, decodes none but those, and never loads a saga —
except, rarely, one whose earlier status it has forgotten (below).

Memory: the census keeps the status of each saga that may still move; a saga that reaches a
final status (`FINAL_STATUSES`) is only counted. Should one move again after all, its previous
status is read from its stream as it stood just before (`Repository.get_as_of`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.errors import AggregateNotFoundError
from application.ports.event_store import EventStore, LogFilter, RecordedEvent
from application.repository import Repository
from application.saga_statuses import CheckoutStatus, EscrowSagaStatus
from application.sagas.checkout import CheckoutSaga
from application.sagas.escrow import EscrowSaga
from application.sagas.inputs import SAGA_TYPES
from application.sagas.saga import Saga
from application.serialization import EventSerializer

Status = tuple[str, str]
"""(saga kind, status), e.g. `("checkout", "awaiting_payment")`."""

STATUS_SET_BY: Mapping[type[object], str] = {
    CheckoutSaga.CompensationStarted: CheckoutStatus.COMPENSATING,  # type: ignore[attr-defined]
    CheckoutSaga.FulfilmentStarted: CheckoutStatus.FULFILLING,  # type: ignore[attr-defined]
    EscrowSaga.AwaitingConfirmation: EscrowSagaStatus.AWAITING_CONFIRMATION,  # type: ignore[attr-defined]
    EscrowSaga.ReleaseStarted: EscrowSagaStatus.RELEASING,  # type: ignore[attr-defined]
    EscrowSaga.DisputeOpened: EscrowSagaStatus.DISPUTED,  # type: ignore[attr-defined]
    EscrowSaga.Settling: EscrowSagaStatus.SETTLING,  # type: ignore[attr-defined]
    EscrowSaga.RefundStarted: EscrowSagaStatus.REFUNDING,  # type: ignore[attr-defined]
}
"""The status each saga's own transition events set, whatever the status before."""

FINAL_STATUSES: frozenset[Status] = frozenset(
    {
        (CheckoutSaga.kind, CheckoutStatus.COMPLETED),
        (EscrowSaga.kind, EscrowSagaStatus.SETTLED),
        (EscrowSaga.kind, EscrowSagaStatus.REFUNDED),
    }
)
"""Statuses no saga leaves (a cancelled checkout may: a late capture reopens it for a refund)."""

_STEP_EVENTS = ("StepCompleted", "StepRefused")
_BASE_EVENTS = ("Advanced", *_STEP_EVENTS)


def _event_types() -> dict[str, tuple[type[Saga] | None, str]]:
    """Every event type a saga stream holds: its topic → (saga class, event name). The events
    `Saga` itself records (`Advanced`, the steps) are stored under its name whatever the saga:
    their saga class is None, and the stream says which saga it is."""
    found: dict[str, tuple[type[Saga] | None, str]] = {
        get_topic(getattr(Saga, name)): (None, name) for name in _BASE_EVENTS
    }
    for saga_type in SAGA_TYPES.values():
        for name in ("Started", *_BASE_EVENTS):  # its own class of each, should one be stored
            found[get_topic(getattr(saga_type, name))] = (saga_type, name)
        for event_class in STATUS_SET_BY:
            if issubclass(event_class, saga_type.Event):
                found[get_topic(event_class)] = (saga_type, event_class.__name__)
    return found


SAGA_EVENT_TYPES = _event_types()


class SagaCensus:
    def __init__(
        self,
        events: EventStore,
        repository: Repository,
        serializer: EventSerializer,
        *,
        batch_size: int = 1000,
    ) -> None:
        self._events = events
        self._repository = repository
        self._serializer = serializer
        self._batch_size = batch_size
        self._filter = LogFilter(event_types=frozenset(SAGA_EVENT_TYPES))
        self._open: dict[UUID, Status] = {}
        self._counts: Counter[Status] = Counter()
        self.position = 0
        """The log position the census has read up to."""

    async def refresh(self) -> dict[Status, int]:
        """Read the saga events appended since the last refresh; the count per status."""
        while batch := await self._events.read_all(self.position, self._batch_size, self._filter):
            for recorded in batch:
                # One event at a time, so a refresh cut short (a scrape's timeout) counts each
                # event once: `_count` changes nothing before its last await.
                await self._count(recorded)
                self.position = recorded.position
        return self.counts()

    def counts(self) -> dict[Status, int]:
        """Sagas per status, including statuses every saga has left (0), so a gauge set from
        an earlier count is set back to 0."""
        return dict(self._counts)

    async def _count(self, recorded: RecordedEvent) -> None:
        _, name = SAGA_EVENT_TYPES[recorded.type]
        if name in _STEP_EVENTS:
            return
        saga_id = UUID(recorded.stream_id)
        domain_event: Any = self._serializer.to_domain_event(recorded)
        before: Status | None = None
        if name == "Started":
            started = domain_event.mutate(None)  # its constructor sets the first status
            kind, status = started.kind, started.status
        else:
            before = self._open.get(saga_id) or await self._status_before(recorded)
            kind = before[0]
            set_by = STATUS_SET_BY.get(type(domain_event))
            status = domain_event.status if set_by is None else set_by
        if before is not None:
            self._counts[before] -= 1
        now = (str(kind), str(status))
        self._counts[now] += 1
        if now in FINAL_STATUSES:
            self._open.pop(saga_id, None)
        else:
            self._open[saga_id] = now

    async def _status_before(self, recorded: RecordedEvent) -> Status:
        """The status of a saga the census no longer holds (it was final), from its stream as
        it stood just before this event (whichever kind of saga it is)."""
        for saga_type in SAGA_TYPES.values():
            try:
                saga = await self._repository.get_as_of(
                    saga_type,
                    recorded.stream_id,
                    tenant_id=recorded.tenant_id,
                    as_of_position=recorded.position - 1,
                )
            except AggregateNotFoundError:
                continue
            return (saga_type.kind, str(saga.status))
        raise AggregateNotFoundError(Saga, recorded.stream_id)
