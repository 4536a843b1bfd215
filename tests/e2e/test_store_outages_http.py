"""A query whose read store is down or silent answers 503 with `Retry-After`, within a bounded
time and without an unexpected error in the log; once the store is back, it answers again.

The services-profile API reaches the real Redis (order views) and the real Elasticsearch
(search) through an `OutageProxy` that refuses connections, goes silent, and heals."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from infrastructure.settings import Settings, load_settings
from projections.targets import ensure_live_target
from tests.e2e.http_support import (
    CHEAP_ARGON2,
    call,
    container_of,
    create_product,
    eventually,
    placed_order,
    running,
    signed_up,
    unique_topic_prefix,
    views_projected,
)
from tests.outage_proxy import OutageProxy

pytestmark = pytest.mark.e2e

STORE_TIMEOUT = 0.5
ANSWER_WITHIN = 3.0
"""A call times out after `STORE_TIMEOUT`, once retried: well under this, with room to spare."""


@pytest.fixture
def redis_proxy() -> Iterator[OutageProxy]:
    with OutageProxy("127.0.0.1", 6379) as proxy:
        yield proxy


@pytest.fixture
def elasticsearch_proxy() -> Iterator[OutageProxy]:
    upstream = urlsplit(load_settings().elasticsearch_url)
    with OutageProxy(upstream.hostname or "127.0.0.1", upstream.port or 9200) as proxy:
        yield proxy


def services_settings(tmp_path: Path, dsn: str, **overrides: object) -> Settings:
    return load_settings(
        profile="services",
        data_dir=tmp_path,
        postgres_dsn=dsn,
        kafka_topic_prefix=unique_topic_prefix(),
        read_store_timeout=STORE_TIMEOUT,
        **(CHEAP_ARGON2 | overrides),
    )


def timed_get(client: TestClient, path: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get(path, **kwargs)
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, took: float, store: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "read_store_unavailable_error", response.text
    assert store in response.json()["detail"]
    assert "Traceback" not in response.text
    assert took < ANSWER_WITHIN, f"answered after {took:.1f}s"


def unexpected_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "unexpected error" in r.getMessage()]


def test_an_order_read_while_redis_refuses_or_is_silent_is_503_and_200_once_it_is_back(
    fresh_postgres_dsn: str,
    tmp_path: Path,
    redis_proxy: OutageProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    settings = services_settings(tmp_path, fresh_postgres_dsn, redis_url=redis_proxy.url("redis"))
    with running(settings) as client, views_projected(client):
        creator = signed_up(client, "creator@example.org", roles=("creator",))
        buyer = signed_up(client, "buyer@example.org")
        order_id, position = placed_order(client, buyer, create_product(client, creator))
        path = f"/orders/{order_id}"

        def projected() -> bool | None:
            response = client.get(path, params={"min_position": position}, headers=buyer.headers)
            return response.status_code == 200 or None

        eventually(projected, what="the order in its view", timeout=60)

        for outage in (redis_proxy.refuse, redis_proxy.silence):
            outage()
            for params in ({}, {"min_position": position}):
                response, took = timed_get(client, path, params=params, headers=buyer.headers)
                assert_unavailable(response, took, "Redis")
            redis_proxy.heal()
            response = client.get(path, headers=buyer.headers)
            assert response.status_code == 200, response.text
            assert response.json()["id"] == str(order_id)

    assert unexpected_errors(caplog) == []


def test_a_search_while_elasticsearch_refuses_or_is_silent_is_503_and_200_once_it_is_back(
    fresh_postgres_dsn: str,
    tmp_path: Path,
    elasticsearch_proxy: OutageProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    settings = services_settings(
        tmp_path, fresh_postgres_dsn, elasticsearch_url=elasticsearch_proxy.url("http")
    )
    with running(settings) as client:
        buyer = signed_up(client, "buyer@example.org")
        container = container_of(client)

        async def search_index_live() -> None:
            await ensure_live_target(
                await container.sink("search"), container.projection("catalog_search")
            )

        call(client, search_index_live)
        assert client.get("/products/search", headers=buyer.headers).status_code == 200

        for outage in (elasticsearch_proxy.refuse, elasticsearch_proxy.silence):
            outage()
            response, took = timed_get(
                client, "/products/search", params={"q": "x"}, headers=buyer.headers
            )
            assert_unavailable(response, took, "Elasticsearch")
            elasticsearch_proxy.heal()
            response = client.get("/products/search", params={"q": "x"}, headers=buyer.headers)
            assert response.status_code == 200, response.text

    assert unexpected_errors(caplog) == []
