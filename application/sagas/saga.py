"""The state every saga keeps in its own stream: its status, and the steps it has taken.

A saga is a state machine. Its status says what it waits for and which steps it still has to
take (`plan()`); the runner takes `next_step()`, reports back with `complete_step` or
`refuse_step` (the domain refused the command), and saves. When the plan of a status is done
the saga moves on by itself (`_after_plan`).

Every transition is recorded as a fact (`Advanced`, `StepCompleted`, `StepRefused`, and each
saga's own input events), never recomputed on replay: a saga stream keeps meaning what it
meant when it was written.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from application.sagas.steps import Step
from domain.ids import MERCATO_NAMESPACE

REASON_MAX_LENGTH = 500
NEEDS_ATTENTION = "needs_attention"
"""The status, in every saga, of one that stopped for a person to look at."""


def saga_id_for(kind: str, order_id: UUID) -> UUID:
    """The one saga of `kind` for an order: a replayed start addresses the same stream."""
    return uuid5(MERCATO_NAMESPACE, f"{kind}-saga:{order_id}")


class Saga(Aggregate):
    """Base of the checkout and escrow sagas. Subclasses set the fields below when started."""

    kind = ""
    """The saga's type, as timers name it."""

    def plan(self) -> list[Step]:
        """The steps of the current status, taken or not, in order."""
        raise NotImplementedError

    def _after_plan(self) -> str | None:
        """The status that follows the current one once its plan is done (`None`: wait)."""
        raise NotImplementedError

    def _on_refused(self, key: str, reason: str) -> None:
        """React to a refused step, say by compensating; by default it only counts as taken."""

    def on_timer(self, timer: str) -> None:
        """A deadline this saga scheduled has passed (a subclass reacts if still waiting)."""

    @property
    def needs_attention(self) -> bool:
        """A step was refused where nothing can compensate: a person has to look."""
        return self.status == NEEDS_ATTENTION

    def next_step(self) -> Step | None:
        return next((step for step in self.plan() if step.key not in self.done), None)

    def has_seen(self, position: int) -> bool:
        """Whether the input at this log position was already taken into account.

        Inputs arrive in log order, so a saga only needs the position of the last one that
        changed it. An input that changed nothing is not recorded; seen again, it changes
        nothing again, because statuses only move forward.
        """
        return position <= self.last_position

    def timer_id(self, timer: str) -> str:
        return f"{self.id}:{timer}"

    def complete_step(self, key: str) -> None:
        self._complete_step(key=key)
        self._settle()

    def refuse_step(self, key: str, reason: str) -> None:
        self._refuse_step(key=key, reason=reason[:REASON_MAX_LENGTH])
        self._on_refused(key, reason[:REASON_MAX_LENGTH])
        self._settle()

    def _settle(self) -> None:
        """Move on through every status whose plan is already done."""
        while self.next_step() is None and (following := self._after_plan()) is not None:
            self._advance(status=following)

    def _init_saga(
        self, tenant_id: str, order_id: UUID, status: str, position: int, correlation_id: UUID
    ) -> None:
        """The fields every saga has (class annotations would become event fields)."""
        self.tenant_id = tenant_id
        self.order_id = order_id
        self.status = status
        self.done: frozenset[str] = frozenset()
        """Keys of the steps taken (completed or refused)."""
        self.refusals: tuple[tuple[str, str], ...] = ()
        """(step key, why the domain refused it), in order."""
        self.last_position = position
        """The log position of the last input that changed the saga."""
        self.correlation_id = correlation_id

    def _seen(self, position: int) -> None:
        self.last_position = max(self.last_position, position)

    @event("StepCompleted")
    def _complete_step(self, key: str) -> None:
        self.done = self.done | {key}

    @event("StepRefused")
    def _refuse_step(self, key: str, reason: str) -> None:
        self.done = self.done | {key}
        self.refusals = (*self.refusals, (key, reason))

    @event("Advanced")
    def _advance(self, status: str) -> None:
        self.status = status
