"""Buyers' orders: place, cancel, confirm receipt, dispute; and reading one, from its view or
as of a past moment."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from application.commerce.commands import (
    CancelOrder,
    ConfirmReceipt,
    OpenDispute,
    OrderLineRequest,
    PlaceOrder,
    Reason,
)
from application.commerce.results import CommandResult
from application.context import Actor
from application.errors import AggregateNotFoundError
from application.integers import INT64_MAX
from application.marketplace import Marketplace
from domain.account import Role
from domain.order import MAX_LINES, Order
from interfaces.http.dependencies import (
    CommandContextDep,
    CurrentActor,
    IdempotentCommandContextDep,
    MarketplaceDep,
)
from interfaces.http.read_models import ReadModelsDep
from interfaces.http.schemas import CommandAccepted, RequestBody, error_responses
from interfaces.http.views import OrderView, view_document
from projections.order_views import ORDER_VIEWS, order_doc

router = APIRouter(prefix="/orders", tags=["orders"])

ERRORS = error_responses(401, 403, 404, 409)
REPLAYED_HEADER = "Idempotent-Replayed"


class PlaceOrderRequest(RequestBody):
    lines: Annotated[list[OrderLineRequest], Field(min_length=1, max_length=MAX_LINES)]


class CancelRequest(RequestBody):
    reason: Reason = "cancelled by the buyer"


class DisputeRequest(RequestBody):
    reason: Reason


class OrderAccepted(CommandAccepted):
    order_id: UUID


@router.post(
    "", response_model=OrderAccepted, status_code=status.HTTP_201_CREATED, responses=ERRORS
)
async def place_order(
    body: PlaceOrderRequest,
    marketplace: MarketplaceDep,
    context: IdempotentCommandContextDep,
    response: Response,
) -> OrderAccepted:
    """Order one seller's products at current prices; a retried `Idempotency-Key` orders once."""
    result = await marketplace.dispatch(PlaceOrder(lines=tuple(body.lines)), context)
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return _accepted(result)


@router.get("/{order_id}", response_model=OrderView, responses=error_responses(401, 404, 503))
async def get_order(
    order_id: UUID,
    actor: CurrentActor,
    marketplace: MarketplaceDep,
    read_models: ReadModelsDep,
    as_of: Annotated[
        str | None,
        Query(
            max_length=40,
            description="A global position (digits) or an ISO 8601 time with a UTC offset: "
            "the order as it stood then, rebuilt from its stream.",
        ),
    ] = None,
) -> OrderView:
    """An order, from its view (its buyer, its seller and admins only)."""
    if as_of is not None:
        return await _order_as_of(order_id, as_of, actor, marketplace)
    live = await read_models.live(ORDER_VIEWS.name)
    fields = await view_document(live, order_doc(actor.tenant_id, str(order_id)))
    if fields is None or "id" not in fields:
        raise AggregateNotFoundError(Order, str(order_id))
    if not _may_read(actor, UUID(fields["buyer_id"]), UUID(fields["seller_id"])):
        raise AggregateNotFoundError(Order, str(order_id))
    return OrderView.from_document(fields)


async def _order_as_of(
    order_id: UUID, as_of: str, actor: Actor, marketplace: Marketplace
) -> OrderView:
    """The order as it stood at a position or a time: a temporal read from its stream."""
    position, moment = _as_of(as_of)
    order = await marketplace.repository.get_as_of(
        Order, order_id, tenant_id=actor.tenant_id, as_of_position=position, as_of_time=moment
    )
    if not _may_read(actor, order.buyer_id, order.seller_id):
        raise AggregateNotFoundError(Order, str(order_id))
    return OrderView.of(order)


@router.post("/{order_id}/cancel", response_model=OrderAccepted, responses=ERRORS)
async def cancel_order(
    order_id: UUID,
    marketplace: MarketplaceDep,
    context: CommandContextDep,
    body: CancelRequest | None = None,
) -> OrderAccepted:
    """Cancel an order before it is paid (its buyer only); reservations are released."""
    reason = (body or CancelRequest()).reason
    return _accepted(
        await marketplace.dispatch(CancelOrder(order_id=order_id, reason=reason), context)
    )


@router.post("/{order_id}/confirm-receipt", response_model=OrderAccepted, responses=ERRORS)
async def confirm_receipt(
    order_id: UUID, marketplace: MarketplaceDep, context: CommandContextDep
) -> OrderAccepted:
    """The buyer got what was ordered: the order completes and the seller is paid."""
    return _accepted(await marketplace.dispatch(ConfirmReceipt(order_id=order_id), context))


@router.post("/{order_id}/dispute", response_model=OrderAccepted, responses=ERRORS)
async def open_dispute(
    order_id: UUID, body: DisputeRequest, marketplace: MarketplaceDep, context: CommandContextDep
) -> OrderAccepted:
    """Dispute a delivered order (its buyer only): the escrow is frozen until an admin decides."""
    command = OpenDispute(order_id=order_id, reason=body.reason)
    return _accepted(await marketplace.dispatch(command, context))


def _accepted(result: CommandResult) -> OrderAccepted:
    return OrderAccepted(
        order_id=UUID(result.stream_id), version=result.stream_version, position=result.position
    )


def _may_read(actor: Actor, buyer_id: UUID, seller_id: UUID) -> bool:
    return actor.account_id in (buyer_id, seller_id) or actor.has_role(Role.ADMIN)


def _as_of(value: str) -> tuple[int | None, datetime | None]:
    if re.fullmatch(r"[0-9]+", value):
        if int(value) > INT64_MAX:
            raise _invalid_as_of(value, f"an as_of position is at most {INT64_MAX}")
        return int(value), None
    try:
        moment = datetime.fromisoformat(value)
        if moment.utcoffset() is None:
            raise ValueError("no UTC offset")
        # In UTC: a time at the edge of the calendar (year 1 at +14:00) has no UTC equivalent.
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid_as_of(
            value, "as_of must be a position or an ISO 8601 time with a UTC offset"
        ) from None
    return None, moment


def _invalid_as_of(value: str, reason: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", "as_of"), "msg": reason, "input": value}]
    )
