"""Who a log line or a span is about: the request and the tenant being served, in context
variables, so that code far from the HTTP layer (a repository, a store adapter) logs with them
without passing them along.

A context variable follows the task that set it and the tasks it starts, never a concurrent
request: each request runs in its own task.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace

from application.tracing import TENANT as TENANT_ATTRIBUTE

request_id: ContextVar[str | None] = ContextVar("mercato_request_id", default=None)
tenant: ContextVar[str | None] = ContextVar("mercato_tenant", default=None)


@contextmanager
def bound_request_id(value: str | None) -> Iterator[None]:
    """Make `value` the current request id for the duration of the block."""
    token = request_id.set(value)
    try:
        yield
    finally:
        request_id.reset(token)


@contextmanager
def request_scope(request_id_value: str | None) -> Iterator[None]:
    """One request's context: its id for the block, and the tenant `bind_tenant` names during
    it unbound at its end, whatever task the block runs in (a server may serve the next
    request in the same task)."""
    tenant_token = tenant.set(None)
    try:
        with bound_request_id(request_id_value):
            yield
    finally:
        tenant.reset(tenant_token)


def bind_tenant(value: str) -> None:
    """Name the tenant being served, in the logs and on the current span, from here to the end
    of the task. Not a context manager: the tenant is known mid-request (once the token is read)
    and holds until the request ends."""
    tenant.set(value)
    trace.get_current_span().set_attribute(TENANT_ATTRIBUTE, value)
