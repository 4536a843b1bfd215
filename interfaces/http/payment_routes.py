"""The payment provider's webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from interfaces.http.dependencies import MarketplaceDep
from interfaces.http.schemas import CommandAccepted, error_responses

router = APIRouter(prefix="/payments", tags=["payments"])

SIGNATURE_HEADER = "Payment-Signature"


class WebhookAccepted(CommandAccepted):
    replayed: bool


@router.post(
    "/webhook",
    response_model=WebhookAccepted,
    responses=error_responses(400, 404, 409),
)
async def payment_webhook(
    request: Request,
    marketplace: MarketplaceDep,
    signature: Annotated[str, Header(alias=SIGNATURE_HEADER, max_length=512)],
) -> WebhookAccepted:
    """A signed notification from the payment provider; a redelivery records nothing new."""
    # The signature covers the raw bytes and a timestamp, so the body is read as bytes and
    # checked before anything in it is parsed: an altered body, another key, or an old
    # webhook replayed beyond the tolerance is refused (400).
    body = await request.body()
    result = await marketplace.webhooks.handle(body, signature)
    return WebhookAccepted(
        version=result.stream_version, position=result.position, replayed=result.replayed
    )
