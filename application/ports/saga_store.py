"""What saga runners keep besides the sagas' own streams: checkpoints, timers and leadership.

- A *checkpoint* is how far a runner group has processed the global log. It only moves forward.
- A *timer* is a saga's durable deadline. Runners claim due timers, fire them, then complete
  them; a claim expires after a lease, so the timers of a runner that died come due again.
- *Leadership*: one runner of a group at a time follows the log (the others stand by), so no
  two runners do the same step. Timers need no leader: a claim gives each to one runner.

Times of timers and claims are business time, from the runner's `Clock` (tests fast-forward
it). Leadership is about whether a process is alive, so adapters measure it their own way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


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

    async def close(self) -> None: ...
