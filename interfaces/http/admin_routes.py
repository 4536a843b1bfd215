"""Operator endpoints (admin role): where each projection stands."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from interfaces.http.dependencies import AdminActor, ContainerDep
from interfaces.http.schemas import error_responses
from interfaces.projection_metrics import record_status
from projections.status import projection_status

router = APIRouter(prefix="/admin", tags=["admin"])


class ProjectionStatusView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    version: int
    live_target: str | None
    building: str | None
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float
    parked_streams: int
    state: str


@router.get(
    "/projections",
    response_model=list[ProjectionStatusView],
    responses=error_responses(401, 403),
)
async def projections_status(
    container: ContainerDep, actor: AdminActor
) -> list[ProjectionStatusView]:
    """Every projection's checkpoint, head, lag (events and seconds) and state. The same
    figures go to the projection gauges of `/metrics`."""
    del actor
    now = datetime.now(UTC)
    views = []
    for projection in container.projections:
        status = await projection_status(
            projection,
            await container.sink(projection.sink),
            container.event_store,
            await container.dead_letters(),
            container.partitioning,
            now,
        )
        record_status(status)
        views.append(ProjectionStatusView.model_validate(status))
    return views
