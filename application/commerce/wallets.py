"""Handlers of the wallet commands: crediting sale proceeds and fees, and sellers' payouts."""

from __future__ import annotations

from application.commerce.commands import RequestPayout
from application.commerce.guards import require_account, require_system
from application.commerce.process_commands import CreditWallet
from application.commerce.results import CommandResult
from application.commerce.services import Services, new_id
from application.context import CommandContext
from domain.ids import platform_wallet_id_for, wallet_id_for
from domain.wallet import Wallet, WalletKind


async def credit_wallet(
    command: CreditWallet, context: CommandContext, services: Services
) -> CommandResult:
    require_system(context.actor)
    wallet = await _wallet_or_new(command, context, services)
    wallet.credit(
        amount=command.amount.to_money(), reason=command.reason, reference=command.reference
    )
    return await services.save(wallet, context, command)


async def request_payout(
    command: RequestPayout, context: CommandContext, services: Services
) -> CommandResult:
    owner_id = require_account(context.actor)
    amount = command.amount.to_money()
    wallet = await services.load(Wallet, wallet_id_for(owner_id, amount.currency), context)
    payout_id = command.payout_id or new_id(context, "payout")
    wallet.debit(amount=amount, reference=f"payout:{payout_id}")
    return await services.save(wallet, context, command)


async def _wallet_or_new(
    command: CreditWallet, context: CommandContext, services: Services
) -> Wallet:
    """The wallet to credit, opened on its first credit."""
    currency = command.amount.currency
    if command.owner_id is None:
        wallet_id = platform_wallet_id_for(context.tenant_id, currency)
    else:
        wallet_id = wallet_id_for(command.owner_id, currency)
    return await services.find(Wallet, wallet_id, context) or Wallet.open(
        id=wallet_id,
        tenant_id=context.tenant_id,
        kind=WalletKind.ACCOUNT if command.owner_id else WalletKind.PLATFORM,
        owner_id=command.owner_id,
        currency=currency,
    )
