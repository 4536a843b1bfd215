"""Which handler runs each command, and which commands are retried on a version conflict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from application.commerce import commands as c
from application.commerce import (
    escrows,
    order_progress,
    orders,
    payment_intents,
    products,
    stock,
    wallets,
)
from application.commerce import process_commands as p
from application.commerce.results import CommandResult
from application.commerce.services import Services
from application.context import CommandContext

Handler = Callable[[Any, CommandContext, Services], Awaitable[CommandResult]]

HANDLERS: Mapping[type[c.Command], Handler] = {
    # creators
    c.CreateProduct: products.create_product,
    c.UpdateProduct: products.update_product,
    c.PublishProduct: products.publish_product,
    c.UnpublishProduct: products.unpublish_product,
    c.ChangePrice: products.change_price,
    # buyers
    c.PlaceOrder: orders.place_order,
    c.CancelOrder: orders.cancel_order,
    c.ConfirmReceipt: orders.confirm_receipt,
    c.OpenDispute: orders.open_dispute,
    # admins
    c.ResolveDispute: escrows.resolve_dispute,
    # sellers
    c.RequestPayout: wallets.request_payout,
    # the checkout saga
    p.ReserveStock: stock.reserve_stock,
    p.ReleaseStock: stock.release_stock,
    p.CommitStock: stock.commit_stock,
    p.MarkStockReserved: order_progress.mark_stock_reserved,
    p.RequestPayment: payment_intents.request_payment,
    p.MarkPaymentRequested: order_progress.mark_payment_requested,
    p.MarkOrderPaid: order_progress.mark_order_paid,
    p.HoldFunds: escrows.hold_funds,
    p.ConfirmOrder: order_progress.confirm_order,
    p.DeliverOrder: order_progress.deliver_order,
    p.RefundPayment: payment_intents.refund_payment,
    # the payment webhook
    p.RecordPaymentOutcome: payment_intents.record_payment_outcome,
    # the escrow saga
    p.CompleteOrder: order_progress.complete_order,
    p.DisputeEscrow: escrows.dispute_escrow,
    p.ReleaseEscrow: escrows.release_escrow,
    p.CloseDispute: order_progress.close_dispute,
    p.CreditWallet: wallets.credit_wallet,
}

RETRY_ON_CONFLICT: frozenset[type[c.Command]] = frozenset(
    {
        # Hot streams: one product, one platform wallet, shared by many orders at once.
        p.ReserveStock,
        p.ReleaseStock,
        p.CommitStock,
        p.CreditWallet,
        c.RequestPayout,
        # An order's own commands race with its saga; reloading lets the domain decide again.
        c.CancelOrder,
        c.ConfirmReceipt,
        c.OpenDispute,
    }
)
"""Commands a version conflict may re-run: reload, then ask the domain again. Never the ones
with an `expected_version` (`If-Match`), whose point is to fail when someone else got there
first, nor creations (a conflict means the aggregate exists: that is the answer)."""
