"""Waiting out a store that is away: backoff, the log, and a report for metrics.

The projection runtime treats a failed store call (the read-model sink, the dead-letter store,
the feed's commit) as transient until proven otherwise: it logs that it is waiting, backs off
(capped exponential) and tries again, for as long as it takes. A worker stalls rather than
skips: its lag shows it, and so do `OutageReport`'s metrics. Programming errors stall too,
visibly, rather than lose events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Protocol, TypeVar

from application.backoff import Backoff as Backoff  # the sagas' runner uses it too

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class OutageReport(Protocol):
    """Where a projection's failed store calls are reported (the interfaces plug in metrics:
    the runtime cannot import a metrics library)."""

    def failed(self, projection: str, error: Exception) -> None:
        """A store call failed; the projection waits and tries again."""
        ...

    def resumed(self, projection: str) -> None:
        """The call went through after failing: the projection is moving again."""
        ...


class NoOutageReport:
    def failed(self, projection: str, error: Exception) -> None:
        pass

    def resumed(self, projection: str) -> None:
        pass


NO_OUTAGE_REPORT: OutageReport = NoOutageReport()


class GaveUp(Exception):
    """`stop` was set while waiting: the work was not done (and nothing was committed)."""


async def until_done(
    call: Callable[[], Awaitable[_T]],
    *,
    projection: str,
    what: str,
    backoff: Backoff,
    report: OutageReport = NO_OUTAGE_REPORT,
    stop: asyncio.Event | None = None,
) -> _T:
    """`call()`'s result, calling it again after each failure (raises `GaveUp` if `stop` is set
    while waiting)."""
    attempt = 0
    while True:
        try:
            result = await call()
        except (asyncio.CancelledError, GaveUp):
            raise
        except Exception as error:
            attempt += 1
            delay = backoff.delay(attempt)
            report.failed(projection, error)
            logger.warning(
                "projection %s is waiting on its stores: %s failed (attempt %d, retry in %.2fs):"
                " %s: %s",
                projection,
                what,
                attempt,
                delay,
                type(error).__name__,
                error,
            )
            if stop is None:
                await asyncio.sleep(delay)
                continue
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            if stop.is_set():
                raise GaveUp(what) from error
            continue
        if attempt:
            report.resumed(projection)
            logger.warning(
                "projection %s resumed: %s went through after %d failed attempt(s)",
                projection,
                what,
                attempt,
            )
        return result
