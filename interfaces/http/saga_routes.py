"""Operator endpoints (admin role) for the parked sagas of the admin's own tenant: list them,
read one's letters, retry it or skip its poison letter (as `mercato sagas …` does)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from application.errors import AggregateNotFoundError
from application.ports.event_store import RecordedEvent
from application.ports.saga_store import ParkedSaga, SagaLetter
from application.sagas.dead_letters import ParkedSagas
from interfaces.http.dependencies import AdminActor, MarketplaceDep
from interfaces.http.schemas import error_responses

router = APIRouter(prefix="/admin/sagas", tags=["admin"])

SagaId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]*$",
        description="The parked saga's id, as `GET /admin/sagas` lists it.",
    ),
]


class ParkedSagaView(BaseModel):
    saga_id: str
    saga_type: str
    tenant_id: str
    error: str
    letters: int
    parked_at: datetime

    @classmethod
    def of(cls, parked: ParkedSaga) -> ParkedSagaView:
        return cls(
            saga_id=parked.saga_id,
            saga_type=parked.saga_type,
            tenant_id=parked.tenant_id,
            error=parked.error,
            letters=parked.letters,
            parked_at=parked.parked_at,
        )


class SagaLetterView(BaseModel):
    key: str
    kind: str
    """`event` (of the log) or `timer` (a deadline that came due)."""
    event_type: str | None
    position: int | None
    timer: str | None
    error: str | None

    @classmethod
    def of(cls, letter: SagaLetter) -> SagaLetterView:
        record = letter.input
        if isinstance(record, RecordedEvent):
            return cls(
                key=letter.key,
                kind="event",
                event_type=record.type,
                position=record.position,
                timer=None,
                error=letter.error,
            )
        return cls(
            key=letter.key,
            kind="timer",
            event_type=None,
            position=None,
            timer=record.name,
            error=letter.error,
        )


class ParkedSagaDetail(ParkedSagaView):
    dead_letters: list[SagaLetterView]


class RetryView(BaseModel):
    saga_id: str
    fed: int
    skipped: bool
    resumed: bool
    error: str | None


@router.get("", response_model=list[ParkedSagaView], responses=error_responses(401, 403))
async def parked_sagas(marketplace: MarketplaceDep, actor: AdminActor) -> list[ParkedSagaView]:
    """The tenant's parked sagas, oldest first, with the error that parked each."""
    parked = await marketplace.parked_sagas().parked(tenant_id=actor.tenant_id)
    return [ParkedSagaView.of(saga) for saga in parked]


@router.get("/{saga_id}", response_model=ParkedSagaDetail, responses=error_responses(401, 403, 404))
async def parked_saga(
    saga_id: SagaId, marketplace: MarketplaceDep, actor: AdminActor
) -> ParkedSagaDetail:
    """One parked saga of the tenant and its letters, in the order a retry feeds them."""
    sagas = marketplace.parked_sagas()
    parked = await _own(sagas, saga_id, actor.tenant_id)
    letters = [SagaLetterView.of(letter) for letter in await sagas.letters(saga_id)]
    return ParkedSagaDetail(**ParkedSagaView.of(parked).model_dump(), dead_letters=letters)


@router.post("/{saga_id}/retry", response_model=RetryView, responses=error_responses(401, 403, 404))
async def retry_saga(saga_id: SagaId, marketplace: MarketplaceDep, actor: AdminActor) -> RetryView:
    """Feed the saga's letters again, in order (after the cause was removed); `resumed` says
    whether it is un-parked, `error` why a letter failed again."""
    return await _retry(marketplace.parked_sagas(), saga_id, actor.tenant_id, skip_first=False)


@router.post("/{saga_id}/skip", response_model=RetryView, responses=error_responses(401, 403, 404))
async def skip_saga(saga_id: SagaId, marketplace: MarketplaceDep, actor: AdminActor) -> RetryView:
    """Drop the saga's first (poison) letter unfed, then retry the letters after it."""
    return await _retry(marketplace.parked_sagas(), saga_id, actor.tenant_id, skip_first=True)


async def _own(sagas: ParkedSagas, saga_id: str, tenant_id: str) -> ParkedSaga:
    """The tenant's parked saga; another tenant's is as unknown as one that is not parked."""
    parked = await sagas.find(saga_id, tenant_id=tenant_id)
    if parked is None:
        raise AggregateNotFoundError(ParkedSaga, saga_id)
    return parked


async def _retry(
    sagas: ParkedSagas, saga_id: str, tenant_id: str, *, skip_first: bool
) -> RetryView:
    await _own(sagas, saga_id, tenant_id)
    try:
        outcome = await sagas.retry(saga_id, skip_first=skip_first)
    except LookupError:  # another retry emptied it meanwhile
        raise AggregateNotFoundError(ParkedSaga, saga_id) from None
    return RetryView(
        saga_id=saga_id,
        fed=outcome.fed,
        skipped=outcome.skipped,
        resumed=outcome.resumed,
        error=outcome.error,
    )
