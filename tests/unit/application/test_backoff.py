"""The one backoff formula every retry loop uses (`application.backoff`)."""

from __future__ import annotations

import pytest

from application.backoff import Backoff

pytestmark = pytest.mark.unit


def test_waits_first_then_doubles_up_to_the_cap() -> None:
    backoff = Backoff(first=0.1, cap=1.0)

    assert [backoff.delay(attempt) for attempt in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_full_jitter_draws_between_nothing_and_the_capped_wait() -> None:
    backoff = Backoff(first=0.004, cap=0.1, jitter=True)

    for attempt in range(1, 10):
        ceiling = min(0.1, 0.004 * 2 ** (attempt - 1))
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(0 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1
