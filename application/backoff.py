"""Capped exponential backoff: how long a worker waits before trying a failed call again."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float = 0.05
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, attempt - 1))
