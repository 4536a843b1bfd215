"""The caller's own things: their orders, newest first."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from application.commerce.guards import require_account
from interfaces.http.dependencies import CurrentActor
from interfaces.http.read_models import ReadModelsDep
from interfaces.http.schemas import error_responses
from interfaces.http.views import OrderPage, OrderSummary, view_document, view_documents
from projections.order_views import ORDER_VIEWS, buyer_orders_doc, order_doc

router = APIRouter(prefix="/me", tags=["me"])

MAX_PAGE = 100
SortKey = tuple[datetime, str]
"""(placed_at, order id): newest first, the id breaking ties so every order has one place."""


@router.get("/orders", response_model=OrderPage, responses=error_responses(401, 403, 503))
async def my_orders(
    actor: CurrentActor,
    read_models: ReadModelsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Orders per page.")] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="The `next_cursor` of the page before."),
    ] = None,
) -> OrderPage:
    """The orders the caller placed, newest first, each with its current status."""
    buyer_id = require_account(actor)
    after = None if cursor is None else _decode(cursor)
    live = await read_models.live(ORDER_VIEWS.name)
    listed = await view_document(live, buyer_orders_doc(actor.tenant_id, str(buyer_id)))
    entries = sorted(
        (entry for entry in (listed or {}).values() if isinstance(entry, dict)),
        key=_sort_key,
        reverse=True,
    )
    if after is not None:
        entries = [entry for entry in entries if _sort_key(entry) < after]
    page = entries[:limit]
    orders = await view_documents(live, [order_doc(actor.tenant_id, e["id"]) for e in page])
    more = len(entries) > limit
    return OrderPage(
        orders=[OrderSummary.from_documents(e, o) for e, o in zip(page, orders, strict=True)],
        next_cursor=_encode(_sort_key(page[-1])) if more else None,
    )


def _sort_key(entry: dict[str, Any]) -> SortKey:
    return datetime.fromisoformat(entry["placed_at"]), str(entry["id"])


def _encode(key: SortKey) -> str:
    text = json.dumps([key[0].isoformat(), key[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> SortKey:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        placed_at, order_id = json.loads(text)
        key = datetime.fromisoformat(placed_at), str(UUID(order_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        key = None
    if key is None or key[0].utcoffset() is None:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "cursor must be a next_cursor this endpoint answered",
                    "input": cursor,
                }
            ]
        )
    return key
