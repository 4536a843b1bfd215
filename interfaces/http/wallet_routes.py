"""Sellers' wallets: balances and movements (from their views), and payouts to the bank."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, status

from application.commerce.commands import Currency, Price, RequestPayout
from application.commerce.guards import require_account
from application.errors import AggregateNotFoundError
from domain.ids import wallet_id_for
from domain.wallet import Wallet
from interfaces.http.dependencies import (
    CurrentActor,
    IdempotentCommandContextDep,
    MarketplaceDep,
)
from interfaces.http.read_models import ReadModelsDep
from interfaces.http.schemas import CommandAccepted, RequestBody, error_responses
from interfaces.http.views import MyWallets, WalletView, view_document, view_documents
from projections.wallet_views import WALLET_VIEWS, account_wallets_doc, wallet_doc

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


@router.get("/me", response_model=MyWallets, responses=error_responses(401, 403, 503))
async def my_wallets(actor: CurrentActor, read_models: ReadModelsDep) -> MyWallets:
    """Every wallet of the caller: balance, credited, paid out and the latest movements."""
    owner_id = require_account(actor)
    live = await read_models.live(WALLET_VIEWS.name)
    listed = await view_document(live, account_wallets_doc(actor.tenant_id, str(owner_id)))
    by_currency = sorted((listed or {}).items())
    found = await view_documents(
        live, [wallet_doc(actor.tenant_id, str(wallet_id)) for _, wallet_id in by_currency]
    )
    return MyWallets(
        wallets=[WalletView.from_document(f) for f in found if f is not None and "id" in f]
    )


@router.get("/{currency}", response_model=WalletView, responses=error_responses(401, 404, 503))
async def get_wallet(
    currency: Annotated[Currency, Path(description="An ISO 4217 code, e.g. EUR.")],
    actor: CurrentActor,
    read_models: ReadModelsDep,
) -> WalletView:
    """The caller's wallet in one currency (404 until its first credit)."""
    wallet_id = wallet_id_for(require_account(actor), currency)
    live = await read_models.live(WALLET_VIEWS.name)
    fields = await view_document(live, wallet_doc(actor.tenant_id, str(wallet_id)))
    if fields is None or "id" not in fields:
        raise AggregateNotFoundError(Wallet, str(wallet_id))
    return WalletView.from_document(fields)
