"""Waiting out a failing store (`projections.outages`) and turning a client's outage errors into
the port's `ReadStoreUnavailableError` (`infrastructure.read_models.outages`), without I/O."""

from __future__ import annotations

import asyncio

import pytest

from application.ports.read_model_sink import ReadStoreUnavailableError
from infrastructure.read_models.outages import unavailable_on
from projections.outages import Backoff, GaveUp, until_done

pytestmark = pytest.mark.unit

NO_WAIT = Backoff(first=0.001, cap=0.001)


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def failed(self, projection: str, error: Exception) -> None:
        self.events.append(f"failed {projection}: {error}")

    def resumed(self, projection: str) -> None:
        self.events.append(f"resumed {projection}")


class Flaky:
    """Fails `failures` times with `error`, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


async def test_a_failing_call_is_tried_until_it_goes_through_and_each_failure_is_reported() -> None:
    report = Recorder()
    call = Flaky(3, ReadStoreUnavailableError("Redis", "refused"))

    result = await until_done(call, projection="p", what="w", backoff=NO_WAIT, report=report)

    assert result == "done"
    assert call.calls == 4
    assert [event.split(":")[0] for event in report.events] == ["failed p"] * 3 + ["resumed p"]


async def test_a_call_that_never_failed_reports_nothing() -> None:
    report = Recorder()
    await until_done(
        Flaky(0, RuntimeError()), projection="p", what="w", backoff=NO_WAIT, report=report
    )
    assert report.events == []


async def test_a_stop_while_waiting_gives_up_instead_of_trying_again() -> None:
    stop = asyncio.Event()
    stop.set()
    call = Flaky(5, ReadStoreUnavailableError("Redis", "silent"))

    with pytest.raises(GaveUp):
        await until_done(call, projection="p", what="w", backoff=Backoff(first=60), stop=stop)
    assert call.calls == 1


class ClientOutage(Exception):
    """Stands for a client library's connection error."""


@unavailable_on("Thing", ClientOutage)
class ThingStore:
    @classmethod
    async def connect(cls) -> ThingStore:
        raise ClientOutage("refused")

    async def read(self) -> str:
        raise ClientOutage("timed out")

    async def refuse(self) -> str:
        raise LookupError("no such target")

    async def _private(self) -> str:
        raise ClientOutage("untouched")


async def test_every_public_coroutine_of_an_adapter_raises_the_ports_error_for_an_outage() -> None:
    with pytest.raises(ReadStoreUnavailableError, match="Thing read-model store is unavailable"):
        await ThingStore.connect()
    with pytest.raises(ReadStoreUnavailableError, match="timed out") as raised:
        await ThingStore().read()
    assert raised.value.store == "Thing"
    assert isinstance(raised.value.__cause__, ClientOutage)


async def test_other_errors_and_private_methods_are_left_as_they_are() -> None:
    with pytest.raises(LookupError):
        await ThingStore().refuse()
    with pytest.raises(ClientOutage):
        await ThingStore()._private()
