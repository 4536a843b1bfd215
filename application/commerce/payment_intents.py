"""Handlers of the payment commands: opening an intent, recording the provider's verdict, refunds.

The provider is called before anything is stored, and is idempotent per order (intents) and per
intent (refunds): a step retried after a crash between the call and the append asks the
provider again and gets the same intent, or a refund that does nothing the second time.
"""

from __future__ import annotations

import logging

from application.commerce.guards import require_system
from application.commerce.process_commands import (
    PaymentOutcome,
    RecordPaymentOutcome,
    RefundPayment,
    RequestPayment,
)
from application.commerce.results import CommandResult
from application.commerce.services import Services
from application.context import CommandContext
from domain.errors import Conflict, IllegalTransition
from domain.ids import payment_id_for
from domain.order import Order, OrderStatus
from domain.payment import Outcome, Payment

logger = logging.getLogger(__name__)


async def request_payment(
    command: RequestPayment, context: CommandContext, services: Services
) -> CommandResult:
    require_system(context.actor)
    order = await services.load(Order, command.order_id, context)
    payment = await services.find(Payment, payment_id_for(order.id), context)
    if payment is None:
        if order.status is not OrderStatus.STOCK_RESERVED:
            # Say, cancelled by the buyer a moment ago: never ask anyone to pay for it.
            raise IllegalTransition("Order", order.id, order.status, "request payment")
        intent_id = await services.gateway.create_intent(
            tenant_id=context.tenant_id, order_id=order.id, amount=order.total
        )
        payment = Payment.create_intent(
            id=payment_id_for(order.id),
            tenant_id=context.tenant_id,
            order_id=order.id,
            provider_intent_id=intent_id,
            amount=order.total,
        )
    return await services.save(payment, context, command)


async def record_payment_outcome(
    command: RecordPaymentOutcome, context: CommandContext, services: Services
) -> CommandResult:
    require_system(context.actor)
    payment = await services.load(Payment, payment_id_for(command.order_id), context)
    if payment.provider_intent_id != command.intent_id:
        raise Conflict(f"payment {payment.id} is for another intent than {command.intent_id}")
    if command.outcome is PaymentOutcome.CAPTURED:
        outcome = payment.capture()
    else:
        outcome = payment.fail(reason=command.reason or "the provider gave no reason")
    if outcome is Outcome.IGNORED:
        logger.warning("ignored a stale %s notice for payment %s", command.outcome, payment.id)
    return await services.save(payment, context, command)


async def refund_payment(
    command: RefundPayment, context: CommandContext, services: Services
) -> CommandResult:
    require_system(context.actor)
    payment = await services.load(Payment, payment_id_for(command.order_id), context)
    if payment.refund() is Outcome.RECORDED:
        await services.gateway.refund(payment.provider_intent_id)
    return await services.save(payment, context, command)
