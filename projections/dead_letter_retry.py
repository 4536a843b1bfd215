"""Draining a parked stream after a fix: `mercato dlq retry` and `mercato dlq skip`."""

from __future__ import annotations

from dataclasses import dataclass

from application.ports.read_model_sink import Write
from projections.applier import ProjectionApplier
from projections.targets import ensure_live_target


@dataclass(frozen=True)
class RetryOutcome:
    stream_id: str
    applied: int
    skipped: int
    remaining: int
    error: str | None
    """Why the stream is still parked (the handler failed again), or None when it is drained."""


async def retry_parked_stream(
    applier: ProjectionApplier, stream_id: str, *, skip_first: bool = False
) -> RetryOutcome:
    """Re-run the handlers over the stream's letters, in order, and write the result to the live
    target. Stops at the first letter that fails again (the stream stays parked from there);
    with `skip_first`, the poison letter is dropped without being applied."""
    projection = applier.projection
    target = await ensure_live_target(applier.sink, projection)
    async with applier.dead_letters.retrying(projection.name, stream_id) as retry:
        letters = list(retry.letters)
        skipped = 1 if skip_first and letters else 0
        through = letters[0].event.position if skipped else None
        writes: list[Write] = []
        applied = 0
        error = None
        for letter in letters[skipped:]:
            try:
                writes.extend(projection.writes(letter.event, applier.serializer))
            except Exception as failure:
                error = f"{type(failure).__name__}: {failure}"
                break
            through = letter.event.position
            applied += 1
        await applier.sink.apply(projection.name, target, writes, {})
        retry.settle(through, error)
    return RetryOutcome(
        stream_id=stream_id,
        applied=applied,
        skipped=skipped,
        remaining=len(letters) - applied - skipped,
        error=error,
    )
