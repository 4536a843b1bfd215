"""The command bus: idempotency, bounded retries on version conflicts, then the handler.

Each command is one span, `command <Type>`, whose `mercato.outcome` says how it ended
(`command_outcome`); the appends it makes are its children.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from opentelemetry import trace

from application.backoff import Backoff
from application.commerce.commands import Command
from application.commerce.registry import HANDLERS, RETRY_ON_CONFLICT, Handler
from application.commerce.results import CommandResult
from application.commerce.services import Services
from application.context import CommandContext
from application.errors import AggregateNotFoundError
from application.ports.event_store import ConcurrencyError, IdempotencyKeyReusedError, NewEvent
from application.ports.instruments import NO_INSTRUMENTS, Instruments
from application.tracing import (
    COMMAND,
    EVENT_COUNT,
    OUTCOME,
    POSITION,
    STREAM,
    TENANT,
    record_failure,
    traced,
)
from domain.errors import DomainError

DEFAULT_ATTEMPTS = 10
_IMPOSSIBLE_VERSION = 1 << 62
_KEY_PROBE = NewEvent(type="mercato.IdempotencyKeyProbe", payload=b"{}")
# Exponential with full jitter, so contenders on one hot stream spread out: up to 4 ms after
# the first conflict, doubling to at most 100 ms.
_CONFLICT_BACKOFF = Backoff(first=0.004, cap=0.1, jitter=True)

tracer = trace.get_tracer("mercato.commands")


class CommandBus:
    def __init__(
        self,
        services: Services,
        *,
        handlers: Mapping[type[Command], Handler] = HANDLERS,
        retry_on_conflict: frozenset[type[Command]] = RETRY_ON_CONFLICT,
        attempts: int = DEFAULT_ATTEMPTS,
        instruments: Instruments = NO_INSTRUMENTS,
    ) -> None:
        if attempts < 1:
            raise ValueError("a command needs at least one attempt")
        self.services = services
        self._handlers = handlers
        self._retry_on_conflict = retry_on_conflict
        self._attempts = attempts
        self._instruments = instruments

    async def dispatch(self, command: Command, context: CommandContext) -> CommandResult:
        """Run the command's handler once, or return the first result of its idempotency key.

        Raises the domain's errors (nothing recorded), `AggregateNotFoundError`, and
        `ConcurrencyError` once the retries (if any) are spent.
        """
        name = type(command).__name__
        attributes = {
            COMMAND: name,
            TENANT: context.tenant_id,
            "mercato.idempotent": context.idempotency_key is not None,
        }
        with traced(
            tracer,
            f"command {name}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await self._dispatch(command, context)
            except BaseException as error:
                outcome = command_outcome(error)
                self._instruments.command_handled(name, outcome)
                span.set_attribute(OUTCOME, outcome)
                if outcome == "error":
                    record_failure(span, error)
                else:  # the caller's doing (or its cancellation), not a fault of ours
                    span.set_attribute("mercato.refusal", type(error).__name__)
                raise
            self._instruments.command_handled(name, "replayed" if result.replayed else "ok")
            span.set_attributes(
                {
                    OUTCOME: "replayed" if result.replayed else "ok",
                    STREAM: result.stream_id,
                    POSITION: result.position,
                    EVENT_COUNT: result.appended,
                }
            )
            return result

    async def _dispatch(self, command: Command, context: CommandContext) -> CommandResult:
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no handler is registered for {type(command).__name__}")
        # Checked first: a retried command must get its first result even though the state it
        # changed has moved on since (re-running the domain would now refuse it).
        earlier = await self._earlier_result(command, context)
        if earlier is not None:
            return earlier
        try:
            return await self._run(handler, command, context)
        except (DomainError, AggregateNotFoundError, ConcurrencyError):
            # A twin of this command with the same key may have won a race with it.
            earlier = await self._earlier_result(command, context)
            if earlier is None:
                raise
            return earlier

    async def _run(
        self, handler: Handler, command: Command, context: CommandContext
    ) -> CommandResult:
        attempts = self._attempts if self._retries(command) else 1
        for attempt in range(1, attempts + 1):
            try:
                return await handler(command, context, self.services)
            except ConcurrencyError:
                if attempt == attempts:
                    raise
                trace.get_current_span().add_event("retry after a conflict", {"attempt": attempt})
                await asyncio.sleep(_CONFLICT_BACKOFF.delay(attempt))
        raise AssertionError("unreachable")

    def _retries(self, command: Command) -> bool:
        return (
            type(command) in self._retry_on_conflict
            and getattr(command, "expected_version", None) is None
        )

    async def _earlier_result(
        self, command: Command, context: CommandContext
    ) -> CommandResult | None:
        """The result of the command that first used this idempotency key, if any; raises
        `IdempotencyKeyReusedError` when that was another command."""
        idempotency = context.idempotency_for(command)
        if idempotency is None:
            return None
        store = self.services.store
        earlier = await store.find_idempotent_result(context.tenant_id, idempotency.key)
        if earlier is None:
            return None
        # `find_idempotent_result` does not tell which request the key stood for. An append
        # under the key does (the store checks the key first: the same fingerprint gets the
        # first result, another one `IdempotencyKeyReusedError`), and one that expects an
        # impossible version can never store anything (event store contract).
        try:
            confirmed = await store.append(
                earlier.stream_id,
                [_KEY_PROBE],
                _IMPOSSIBLE_VERSION,
                metadata=context.metadata(),
                idempotency=idempotency,
            )
        except ConcurrencyError:
            return None  # the key is gone: this is a first attempt after all
        return CommandResult.of_append(confirmed)


def command_outcome(error: BaseException) -> str:
    """How a command that raised ended, in a word: `refused` (a domain rule), `not_found`,
    `conflict` (a version clash), `key_reused` (an idempotency key sent with another command),
    `cancelled`, or `error` (anything unexpected). A command that returned is `ok`, or
    `replayed` when its idempotency key gave back an earlier result."""
    if isinstance(error, DomainError):
        return "refused"
    if isinstance(error, AggregateNotFoundError):
        return "not_found"
    if isinstance(error, ConcurrencyError):
        return "conflict"
    if isinstance(error, IdempotencyKeyReusedError):
        return "key_reused"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return "error"
