"""Stopping a task for certain, on the Python this project runs (3.11)."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any], *, every: float = 0.1) -> None:
    """Cancel `task` and wait until it is done, cancelling it again while it is not.

    Once is not always enough: in Python 3.11, `asyncio.wait_for` swallows a cancellation that
    arrives as the awaited future completes (https://github.com/python/cpython/issues/86296,
    fixed in 3.12), and the event stores' subscriptions wait with it. A task cancelled at
    that instant carries on as if nothing happened, and awaiting it would hang for ever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
