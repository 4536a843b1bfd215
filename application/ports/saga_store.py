"""What saga runners keep besides the sagas' own streams: checkpoints, timers and leadership.

- A *checkpoint* is how far a runner group has processed the global log. It only moves forward.
- A *timer* is a saga's durable deadline. Runners claim due timers, fire them, then complete
  them; a claim expires after a lease, so the timers of a runner that died come due again.
- *Leadership*: one runner of a group at a time follows the log (the others stand by), so no
  two runners do the same step. Timers need no leader: a claim gives each to one runner.

- *Dead letters*: a saga whose input (an event of the log, or a timer that fired) fails for
  good is *parked*: that input is kept as its first letter, and every later input of the saga
  is held back behind it, in order, while every other saga flows. An operator removes the
  cause and retries (`application.sagas.dead_letters`): the letters are fed again in order,
  and the saga is un-parked once none is left.

Times of timers and claims are business time, from the runner's `Clock` (tests fast-forward
it). Leadership is about whether a process is alive, so adapters measure it their own way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from application.ports.event_store import RecordedEvent


@dataclass(frozen=True)
class Timer:
    group: str
    saga_type: str
    """Which kind of saga to wake (`checkout`, `escrow`)."""
    saga_id: str
    tenant_id: str
    name: str
    """The deadline's name within the saga (`payment-deadline`)."""
    due_at: datetime

    @property
    def timer_id(self) -> str:
        return f"{self.saga_id}:{self.name}"


SagaInputRecord = RecordedEvent | Timer
"""What moves a saga: an event of the global log, or one of its timers coming due."""


def input_key(record: SagaInputRecord) -> str:
    """Names an input within its saga, so storing it twice as a letter keeps one letter."""
    if isinstance(record, Timer):
        return f"timer:{record.name}:{record.due_at.isoformat()}"
    return f"event:{record.position}"


@dataclass(frozen=True)
class SagaLetter:
    key: str
    """`input_key(input)`."""
    input: SagaInputRecord
    error: str | None
    """Why this input failed (the one that parked the saga, or the last retried); None for
    inputs that only wait behind it."""


@dataclass(frozen=True)
class ParkedSaga:
    group: str
    saga_id: str
    saga_type: str
    """`checkout`, `escrow`, or `unrouted` (an event whose saga could not be found)."""
    tenant_id: str
    error: str
    """Why its first letter failed (the last error, after a failed retry)."""
    letters: int
    parked_at: datetime


@dataclass(frozen=True)
class HeldInput:
    """An input for `SagaStore.hold_back`: the saga it is for, and the input."""

    saga_id: str
    input: SagaInputRecord


class SagaStore(Protocol):
    async def checkpoint(self, group: str) -> int:
        """The last log position the group finished (0 when it never ran)."""
        ...

    async def save_checkpoint(self, group: str, position: int) -> None:
        """Record progress; a position below the stored one is ignored (never moves back)."""
        ...

    async def schedule(self, timer: Timer) -> None:
        """Add the timer, or move an existing one with the same id to the new due time (which
        also drops any claim on it). Scheduling the same timer twice is harmless."""
        ...

    async def unschedule(self, timer_id: str) -> None:
        """Remove the timer if it exists."""
        ...

    async def claim_due(
        self, group: str, *, now: datetime, owner: str, limit: int, lease: timedelta
    ) -> list[Timer]:
        """Claim up to `limit` of the group's timers due at `now` that nobody holds (or whose
        claim expired), earliest first. Concurrent callers never get the same timer."""
        ...

    async def complete(self, timer: Timer, *, owner: str) -> None:
        """Delete a fired timer, unless it was rescheduled or claimed by another runner since."""
        ...

    async def count_timers(self, group: str) -> int:
        """How many of the group's timers are scheduled and not yet completed (the deadlines
        pending, for a metric)."""
        ...

    async def try_lead(self, group: str, owner: str, *, lease: timedelta) -> bool:
        """Become (or stay) the group's leader. False while another live runner leads; a
        leader that stopped renewing for `lease` (or whose process died) is replaced."""
        ...

    async def resign(self, group: str, owner: str) -> None:
        """Stop leading, so a standby runner takes over at once."""
        ...

    # -- dead letters --------------------------------------------------------------------------

    async def park(
        self,
        group: str,
        saga_id: str,
        *,
        saga_type: str,
        tenant_id: str,
        record: SagaInputRecord,
        error: str,
    ) -> None:
        """Park the saga (unless it already is) and store `record` as a letter behind the ones
        it has (the error stays with the letter). Idempotent."""
        ...

    async def hold_back(self, group: str, inputs: Sequence[HeldInput]) -> set[str]:
        """Store each input whose saga is parked as that saga's next letter (idempotent:
        a letter stored before keeps its place); return their `input_key`s. The caller feeds
        the others. Atomic with `unpark_if_empty`: an input is either held back before the
        saga is un-parked (and the retry finds it), or finds the saga un-parked."""
        ...

    async def parked(self, group: str, *, tenant_id: str | None = None) -> list[ParkedSaga]:
        """The group's parked sagas (of one tenant, or all), oldest first."""
        ...

    async def letters(self, group: str, saga_id: str) -> list[SagaLetter]:
        """A parked saga's letters, in the order they came (empty when it is not parked)."""
        ...

    async def drop_letter(self, group: str, saga_id: str, key: str) -> None:
        """Delete one letter (fed again with success, or skipped). The saga stays parked."""
        ...

    async def record_failure(self, group: str, saga_id: str, key: str, error: str) -> None:
        """A retry failed again on letter `key`: keep `error` as the saga's and the letter's."""
        ...

    async def unpark_if_empty(self, group: str, saga_id: str) -> bool:
        """Un-park the saga unless letters wait; True when it is not parked afterwards (also
        when it was not parked), False while letters wait."""
        ...

    async def close(self) -> None: ...
