"""The steps a saga asks its runner to take: issue a command, or set or clear a deadline.

A step's `key` is unique within its saga and never reused for another step: the runner derives
the command's idempotency key from saga id + step key, so a step taken again is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from application.commerce.commands import Command


@dataclass(frozen=True)
class Issue:
    key: str
    command: Command


@dataclass(frozen=True)
class Schedule:
    key: str
    timer: str
    due_at: datetime


@dataclass(frozen=True)
class Unschedule:
    key: str
    timer: str


Step = Issue | Schedule | Unschedule
