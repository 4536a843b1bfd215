"""Capped exponential backoff: how long a worker waits before trying a failed call again."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """`first` before the first retry, doubling up to `cap`. With `jitter`, the wait is drawn
    uniformly between nothing and that ("full jitter"), so contenders racing on one stream do
    not wake in step and clash again (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)."""

    first: float = 0.05
    cap: float = 5.0
    jitter: bool = False

    def delay(self, attempt: int) -> float:
        """The wait after the `attempt`-th failure (counted from 1)."""
        ceiling = min(self.cap, self.first * 2.0 ** max(0, attempt - 1))
        return random.uniform(0, ceiling) if self.jitter else ceiling
