"""Sellers' wallets: the balance, and payouts to the bank."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, status

from application.commerce.commands import Currency, Price, RequestPayout
from application.commerce.guards import require_account
from domain.ids import wallet_id_for
from domain.wallet import Wallet
from interfaces.http.dependencies import (
    CurrentActor,
    IdempotentCommandContextDep,
    MarketplaceDep,
)
from interfaces.http.schemas import CommandAccepted, RequestBody, error_responses
from interfaces.http.views import WalletView

router = APIRouter(prefix="/wallets", tags=["wallets"])


class PayoutRequest(RequestBody):
    amount: Price


class PayoutAccepted(CommandAccepted):
    wallet_id: UUID


@router.post(
    "/payouts",
    response_model=PayoutAccepted,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 404, 409),
)
async def request_payout(
    body: PayoutRequest, marketplace: MarketplaceDep, context: IdempotentCommandContextDep
) -> PayoutAccepted:
    """Pay out part of the caller's balance (409 beyond it); needs an `Idempotency-Key`."""
    result = await marketplace.dispatch(RequestPayout(amount=body.amount), context)
    return PayoutAccepted(
        wallet_id=UUID(result.stream_id), version=result.stream_version, position=result.position
    )


@router.get("/{currency}", response_model=WalletView, responses=error_responses(401, 404))
async def get_wallet(
    currency: Annotated[Currency, Path(description="An ISO 4217 code, e.g. EUR.")],
    actor: CurrentActor,
    marketplace: MarketplaceDep,
) -> WalletView:
    """The caller's wallet in one currency (404 until its first credit)."""
    wallet_id = wallet_id_for(require_account(actor), currency)
    wallet = await marketplace.repository.get(Wallet, wallet_id, tenant_id=actor.tenant_id)
    return WalletView.of(wallet)
