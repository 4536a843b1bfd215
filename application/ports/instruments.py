"""What the write side reports for metrics: commands handled and appends made.

The application layer cannot import a metrics library (the dependency rule), so it calls this
port; the composition root plugs in the Prometheus adapter (`infrastructure.telemetry.metrics`),
and everything else (tests, one-off tools) gets `NO_INSTRUMENTS`.
"""

from __future__ import annotations

from typing import Protocol


class Instruments(Protocol):
    def command_handled(self, command: str, outcome: str) -> None:
        """A command ended: `outcome` is `ok`, `replayed`, or how it was refused or failed."""
        ...

    def append_acknowledged(self, events: int, seconds: float) -> None:
        """An append was acknowledged after `seconds` (`events` new events; 0 if replayed)."""
        ...


class NoInstruments:
    def command_handled(self, command: str, outcome: str) -> None:
        pass

    def append_acknowledged(self, events: int, seconds: float) -> None:
        pass


NO_INSTRUMENTS: Instruments = NoInstruments()
