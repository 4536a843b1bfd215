"""Session fixtures shared by every layer of tests.

Each test run gets its own run id; integration fixtures derive a fresh Postgres database, Kafka
topic prefix, Elasticsearch index prefix and Redis key prefix from it, so runs never see each
other's data. The services themselves are started by `make test` (deploy/local/services.sh).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from infrastructure.postgres_databases import throwaway_database

pytest.register_assert_rewrite("tests.contract")

RUN_ID = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run, for naming databases, topics, indexes and keys."""
    return RUN_ID


@pytest.fixture(scope="session")
def kafka_topic_prefix(run_id: str) -> str:
    """Prefix of every Kafka topic this run creates."""
    return f"mercato-test-{run_id}-"


@pytest.fixture(scope="session")
def elasticsearch_index_prefix(run_id: str) -> str:
    """Prefix of every Elasticsearch index and alias this run creates."""
    return f"mercato-test-{run_id}-"


@pytest.fixture(scope="session")
def redis_key_prefix(run_id: str) -> str:
    """Prefix of every Redis key this run writes."""
    return f"mercato-test:{run_id}:"


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> str:
    return os.environ.get("MERCATO_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
async def postgres_dsn(postgres_admin_dsn: str, run_id: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test run, dropped afterwards."""
    async with throwaway_database(postgres_admin_dsn, f"mercato_test_{run_id}") as dsn:
        yield dsn


@pytest.fixture
async def fresh_postgres_dsn(postgres_admin_dsn: str, run_id: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test (for tests that need the whole log to themselves)."""
    name = f"mercato_test_{run_id}_{uuid.uuid4().hex[:8]}"
    async with throwaway_database(postgres_admin_dsn, name) as dsn:
        yield dsn
