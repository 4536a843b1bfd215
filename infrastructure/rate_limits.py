"""Rate limits on the `limits` library: one moving window per rule and identifier (a client
address, an account, a tenant), kept in Redis on the services profile, so every API process
spends one budget, and in this process's memory on the embedded profile.

A moving window (the timestamps of the last `amount` hits) has no window edge at which a
client could spend twice its budget in a moment, and tells exactly when the oldest hit
leaves it: that is the `Retry-After`.

When Redis does not answer, a check is judged by a per-process in-memory budget of the same
rule instead: never unlimited (a brute force stays bounded by the number of processes), never
refused for an outage of the limiter's store. Redis is then left alone for a few seconds, so a
silent partition does not cost every request a timeout.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from infrastructure.telemetry.metrics import RATE_LIMIT_STORAGE_ERRORS, RATE_LIMITED

STORAGE_TIMEOUT = 0.5
"""Seconds a check may wait for Redis before the in-memory budget judges it."""
REDIS_PAUSE_AFTER_FAILURE = 5.0
"""Seconds the in-memory budget judges alone after Redis failed to answer."""
_log = logging.getLogger(__name__)


class Rule(StrEnum):
    """What is counted; the keys of `MERCATO_RATE_LIMITS`."""

    REQUESTS_IP = "requests_ip"
    LOGIN_IP = "login_ip"
    LOGIN_ACCOUNT = "login_account"
    REGISTER_IP = "register_ip"
    COMMAND_PRINCIPAL = "command_principal"
    COMMAND_TENANT = "command_tenant"


@dataclass(frozen=True)
class Verdict:
    """A rule's refusal of one request: its quota and window, and the budget left."""

    rule: Rule
    quota: int
    window_seconds: int
    remaining: int
    reset_after: int
    """Whole seconds (at least 1) until one more request would be allowed."""


class RateLimited(Exception):
    """A request over one rule's budget (HTTP 429 with `Retry-After`)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(
            f"too many requests ({verdict.rule.value}: {verdict.quota} per "
            f"{verdict.window_seconds} s); retry in {verdict.reset_after} s"
        )
        self.verdict = verdict


class RateLimiter:
    """Counts hits per rule and identifier; `spend` raises `RateLimited` past a budget."""

    def __init__(self, limits: Mapping[Rule, str | None], storage: Storage | None = None) -> None:
        self._items: dict[Rule, RateLimitItem] = {
            rule: parse(limit) for rule, limit in limits.items() if limit is not None
        }
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared = MovingWindowRateLimiter(storage) if storage is not None else None
        self._storage = storage
        self._shared_paused_until = 0.0

    def limit_of(self, rule: Rule) -> RateLimitItem | None:
        return self._items.get(rule)

    async def spend(self, rule: Rule, *identifiers: str) -> None:
        """Count one hit of `rule` for `identifiers`, or raise `RateLimited` if that would
        pass its budget (a refused hit is not counted). Nothing for a rule turned off."""
        item = self._items.get(rule)
        if item is None:
            return
        # Identifiers are hashed: keys of one shape and length whatever a client sends, and no
        # email address in Redis.
        key = hashlib.sha256("\x1f".join(identifiers).encode()).hexdigest()[:32]
        refusal = await self._hit(rule, item, key)
        if refusal is not None:
            RATE_LIMITED.labels(rule=rule.value).inc()
            raise RateLimited(refusal)

    async def _hit(self, rule: Rule, item: RateLimitItem, key: str) -> Verdict | None:
        if self._shared is not None and time.monotonic() >= self._shared_paused_until:
            try:
                return await _judged(self._shared, rule, item, key)
            except (StorageError, OSError, TimeoutError) as error:
                RATE_LIMIT_STORAGE_ERRORS.inc()
                self._shared_paused_until = time.monotonic() + REDIS_PAUSE_AFTER_FAILURE
                _log.warning(
                    "rate limits: the shared store did not answer (%s); this process's own "
                    "budget judges for the next %.0f s",
                    error,
                    REDIS_PAUSE_AFTER_FAILURE,
                )
        return await _judged(self._local, rule, item, key)

    async def close(self) -> None:
        # `limits` offers no close: its redis-py client lives on the storage's bridge.
        if isinstance(self._storage, RedisStorage) and isinstance(
            self._storage.bridge, RedispyBridge
        ):
            await self._storage.bridge.storage.aclose()


async def _judged(
    limiter: MovingWindowRateLimiter, rule: Rule, item: RateLimitItem, key: str
) -> Verdict | None:
    """None when the hit is allowed (and counted); else the refusal, with its wait."""
    if await limiter.hit(item, rule.value, key):
        return None
    # The window starts at its oldest hit: one more is allowed once that one leaves it.
    reset_at, remaining = await limiter.get_window_stats(item, rule.value, key)
    return Verdict(
        rule=rule,
        quota=item.amount,
        window_seconds=item.get_expiry(),
        remaining=max(0, remaining),
        reset_after=max(1, math.ceil(reset_at - time.time())),
    )


def redis_storage(redis_url: str, *, key_prefix: str) -> RedisStorage:
    """A `limits` store on Redis through redis-py's asyncio client (limits defaults to coredis,
    which is not installed), each call bounded by `STORAGE_TIMEOUT`."""
    scheme, _, rest = redis_url.partition("://")
    uri = f"async+redis+unix://{rest}" if scheme == "unix" else f"async+{redis_url}"
    return RedisStorage(
        uri,
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=key_prefix,
        socket_timeout=STORAGE_TIMEOUT,
        socket_connect_timeout=STORAGE_TIMEOUT,
    )


def rate_limiter(
    limits: Mapping[str, str | None], *, redis_url: str | None, key_prefix: str
) -> RateLimiter:
    """The limiter of a deployment: shared through Redis when `redis_url` is given."""
    storage = redis_storage(redis_url, key_prefix=key_prefix) if redis_url else None
    return RateLimiter({Rule(rule): limit for rule, limit in limits.items()}, storage)
