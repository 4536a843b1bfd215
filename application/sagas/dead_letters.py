"""The operator's side of parked sagas: list them, read their letters, retry or skip.

A retry feeds the saga's letters to the driver again, in the order they came, deleting each
one that goes through. When one fails again, its error is kept and the saga stays parked. When
none is left the saga is un-parked, atomically with the runner's `hold_back` (an input that
arrives meanwhile is either among the letters this retry feeds, or flows normally after it).

A retry may run in any process (the CLI, the API): the driver is safe beside a runner, since
a saga's stream version keeps two writers of one saga apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from application.ports.event_store import RecordedEvent
from application.ports.saga_store import ParkedSaga, SagaLetter, SagaStore
from application.sagas.driver import SagaDriver
from application.sagas.failures import describe
from application.sagas.router import Router

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryOutcome:
    fed: int
    """Letters fed to the saga with success (and deleted)."""
    skipped: bool
    """Whether the first letter was dropped unseen (`skip`)."""
    resumed: bool
    """True when no letter is left and the saga is un-parked; False when one failed again."""
    error: str | None = None
    """Why a letter failed again (the saga stays parked)."""


class ParkedSagas:
    def __init__(
        self, saga_store: SagaStore, driver: SagaDriver, router: Router, *, group: str
    ) -> None:
        self._saga_store = saga_store
        self._driver = driver
        self._router = router
        self._group = group

    async def parked(self, *, tenant_id: str | None = None) -> list[ParkedSaga]:
        """The parked sagas (of one tenant, or all), oldest first."""
        return await self._saga_store.parked(self._group, tenant_id=tenant_id)

    async def find(self, saga_id: str, *, tenant_id: str | None = None) -> ParkedSaga | None:
        """The parked saga (of that tenant, when given), or None."""
        parked = await self._saga_store.parked(self._group, tenant_id=tenant_id)
        return next((saga for saga in parked if saga.saga_id == saga_id), None)

    async def letters(self, saga_id: str) -> list[SagaLetter]:
        return await self._saga_store.letters(self._group, saga_id)

    async def retry(self, saga_id: str, *, skip_first: bool = False) -> RetryOutcome:
        """Feed the parked saga's letters again (after dropping the first, with `skip_first`).
        Raises `LookupError` when the saga is not parked."""
        letters = await self.letters(saga_id)
        if not letters:
            raise LookupError(f"saga {saga_id} is not parked")
        if skip_first:
            await self._saga_store.drop_letter(self._group, saga_id, letters[0].key)
            logger.warning("saga %s: letter %s skipped by an operator", saga_id, letters[0].key)
        fed = 0
        while True:
            letters = await self.letters(saga_id)
            if not letters:
                if await self._saga_store.unpark_if_empty(self._group, saga_id):
                    logger.info("saga %s resumed after %d letters", saga_id, fed)
                    return RetryOutcome(fed, skip_first, resumed=True)
                continue  # the runner held an input back meanwhile: feed it too
            for letter in letters:
                try:
                    await self._feed(letter)
                except Exception as failure:
                    error = describe(failure)
                    logger.warning(
                        "saga %s: letter %s failed again: %s", saga_id, letter.key, error
                    )
                    await self._saga_store.record_failure(self._group, saga_id, letter.key, error)
                    return RetryOutcome(fed, skip_first, resumed=False, error=error)
                await self._saga_store.drop_letter(self._group, saga_id, letter.key)
                fed += 1

    async def _feed(self, letter: SagaLetter) -> None:
        if not isinstance(letter.input, RecordedEvent):
            await self._driver.fire(letter.input)
            return
        saga_input = await self._router.route(letter.input)
        if saga_input is not None:
            await self._driver.receive(saga_input)
