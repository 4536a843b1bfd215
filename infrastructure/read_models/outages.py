"""Turning a store client's connection and timeout errors into the port's
`ReadStoreUnavailableError`, on every public coroutine method of an adapter at once.

A method added later is covered without anyone remembering to: the HTTP layer maps the port's
error to 503, and a client error slipping through would be a 500.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from application.ports.read_model_sink import ReadStoreUnavailableError

Adapter = TypeVar("Adapter", bound=type)


def unavailable_on(store: str, *outages: type[BaseException]) -> Callable[[Adapter], Adapter]:
    """A class decorator: each public `async def` (class methods such as `connect` included)
    raises `ReadStoreUnavailableError(store, …)` in place of any of `outages`."""

    def decorate(adapter: Adapter) -> Adapter:
        for name, member in list(vars(adapter).items()):
            if name.startswith("_"):
                continue
            if isinstance(member, classmethod) and inspect.iscoroutinefunction(member.__func__):
                setattr(adapter, name, classmethod(_translating(member.__func__, store, outages)))
            elif inspect.iscoroutinefunction(member):
                setattr(adapter, name, _translating(member, store, outages))
        return adapter

    return decorate


def _translating(
    method: Callable[..., Coroutine[Any, Any, Any]],
    store: str,
    outages: tuple[type[BaseException], ...],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(method)
    async def translated(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except outages as error:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise ReadStoreUnavailableError(store, reason) from error

    return translated
