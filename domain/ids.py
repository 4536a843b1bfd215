"""Deterministic ids for the aggregates that exist once per something else.

Every aggregate takes its id from the caller. Where there is one aggregate per order (escrow,
payment) or per owner and currency (wallets), the caller derives the id with these functions,
so that a retried or replayed command addresses the same stream instead of creating a twin.
"""

from __future__ import annotations

from uuid import UUID, uuid5

MERCATO_NAMESPACE = UUID("17e9a41c-4f5e-4282-af39-f6a3ae599ab1")
"""Fixed forever: changing it would orphan every derived stream."""


def escrow_id_for(order_id: UUID) -> UUID:
    return uuid5(MERCATO_NAMESPACE, f"escrow:{order_id}")


def payment_id_for(order_id: UUID) -> UUID:
    return uuid5(MERCATO_NAMESPACE, f"payment:{order_id}")


def wallet_id_for(owner_id: UUID, currency: str) -> UUID:
    """An account's wallet in one currency (a wallet holds a single currency)."""
    return uuid5(MERCATO_NAMESPACE, f"wallet:{owner_id}:{currency}")


def platform_wallet_id_for(tenant_id: str, currency: str) -> UUID:
    """The tenant's platform wallet in one currency, which collects the platform fees."""
    return uuid5(MERCATO_NAMESPACE, f"platform-wallet:{tenant_id}:{currency}")


def tenant_id_for(tenant_id: str) -> UUID:
    """The stream of the tenant named `tenant_id` (one per tenant, see `domain.tenant`)."""
    return uuid5(MERCATO_NAMESPACE, f"tenant:{tenant_id}")
