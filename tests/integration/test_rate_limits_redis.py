"""The rate limiter on the real Redis: limiters of different processes spend one budget, and
a Redis that does not answer leaves each process its own budget, never an error."""

from __future__ import annotations

import os
import uuid

import pytest

from infrastructure.rate_limits import RateLimited, Rule, rate_limiter
from infrastructure.telemetry.metrics import REGISTRY

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("MERCATO_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMITS = {"login_account": "5/minute"}


async def test_limiters_on_one_redis_spend_one_budget(redis_key_prefix: str) -> None:
    prefix = f"{redis_key_prefix}{uuid.uuid4().hex[:8]}:ratelimit"
    first = rate_limiter(LIMITS, redis_url=REDIS_URL, key_prefix=prefix)
    second = rate_limiter(LIMITS, redis_url=REDIS_URL, key_prefix=prefix)
    try:
        for limiter in (first, second, first, second, first):
            await limiter.spend(Rule.LOGIN_ACCOUNT, "acme", "ada@example.org")
        with pytest.raises(RateLimited) as refused:
            await second.spend(Rule.LOGIN_ACCOUNT, "acme", "ada@example.org")
        assert 1 <= refused.value.verdict.reset_after <= 60
    finally:
        await first.close()
        await second.close()


async def test_without_redis_each_process_keeps_its_own_budget_and_counts_the_outage() -> None:
    limiter = rate_limiter(LIMITS, redis_url="redis://127.0.0.1:1/0", key_prefix="unreachable")
    errors_before = storage_errors()
    try:
        for _ in range(5):
            await limiter.spend(Rule.LOGIN_ACCOUNT, "acme", "ada@example.org")
        with pytest.raises(RateLimited):
            await limiter.spend(Rule.LOGIN_ACCOUNT, "acme", "ada@example.org")
    finally:
        await limiter.close()
    assert storage_errors() > errors_before


def storage_errors() -> float:
    return REGISTRY.get_sample_value("mercato_rate_limit_storage_errors_total") or 0.0
