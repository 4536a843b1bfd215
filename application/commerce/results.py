"""What every command handler returns."""

from __future__ import annotations

from dataclasses import dataclass

from application.ports.event_store import AppendResult


@dataclass(frozen=True)
class CommandResult:
    stream_id: str
    """The aggregate the command changed (for a creation, the new aggregate's id)."""
    stream_version: int
    position: int
    """The consistency token: a read model that reached this position reflects the command."""
    appended: int = 0
    """How many events the command stored (0 when it changed nothing, or was replayed)."""
    replayed: bool = False
    """True when the idempotency key matched an earlier command: this is its result."""

    @classmethod
    def of_append(cls, result: AppendResult) -> CommandResult:
        return cls(
            stream_id=result.stream_id,
            stream_version=result.stream_version,
            position=result.position,
            appended=0 if result.replayed else len(result.positions),
            replayed=result.replayed,
        )
