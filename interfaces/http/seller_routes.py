"""Sellers' dashboards: sales, earnings and money in escrow."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, HTTPException, status

from application.context import Actor
from domain.account import Role
from interfaces.http.dependencies import CurrentActor
from interfaces.http.read_models import ReadModelsDep
from interfaces.http.schemas import error_responses
from interfaces.http.views import SellerDashboardView, view_document
from projections.seller_dashboard import SELLER_DASHBOARD, seller_dashboard_doc

router = APIRouter(prefix="/sellers", tags=["sellers"])


@router.get(
    "/{seller_id}/dashboard",
    response_model=SellerDashboardView,
    responses=error_responses(401, 404, 503),
)
async def seller_dashboard(
    seller_id: UUID, actor: CurrentActor, read_models: ReadModelsDep
) -> SellerDashboardView:
    """A seller's sales, earnings and pending escrow by currency (that seller and admins only;
    404 until their first sale is paid for)."""
    not_found = HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard for seller {seller_id}")
    if not _may_read(actor, seller_id):
        # Others get the answer a seller without sales gets: whether one exists is not theirs.
        raise not_found
    live = await read_models.live(SELLER_DASHBOARD.name)
    fields = await view_document(live, seller_dashboard_doc(actor.tenant_id, str(seller_id)))
    if fields is None or "seller_id" not in fields:
        raise not_found
    return SellerDashboardView.from_document(fields)


def _may_read(actor: Actor, seller_id: UUID) -> bool:
    return actor.account_id == seller_id or actor.has_role(Role.ADMIN)
