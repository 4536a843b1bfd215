"""Admins settle disputes. A dispute is named by its order's id."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from application.commerce.commands import ResolveDispute
from domain.dispute import Resolution
from interfaces.http.dependencies import AdminActor, CommandContextDep, MarketplaceDep
from interfaces.http.schemas import CommandAccepted, RequestBody, error_responses

router = APIRouter(prefix="/disputes", tags=["disputes"])


class ResolveRequest(RequestBody):
    resolution: Resolution


@router.post(
    "/{order_id}/resolve",
    response_model=CommandAccepted,
    responses=error_responses(401, 403, 404, 409),
)
async def resolve_dispute(
    order_id: UUID,
    body: ResolveRequest,
    _admin: AdminActor,
    marketplace: MarketplaceDep,
    context: CommandContextDep,
) -> CommandAccepted:
    """Release the disputed order's escrow to the seller, or refund the buyer (admins only)."""
    command = ResolveDispute(order_id=order_id, resolution=body.resolution)
    result = await marketplace.dispatch(command, context)
    return CommandAccepted(version=result.stream_version, position=result.position)
