"""Session fixtures shared by every layer of tests.

Each test run gets its own run id; integration fixtures derive a fresh Postgres database, Kafka
topic prefix, Elasticsearch index prefix and Redis key prefix from it, so runs never see each
other's data. The services themselves are started by `make test` (deploy/local/services.sh).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from infrastructure.postgres_databases import throwaway_database
from infrastructure.settings import PRODUCTION_RATE_LIMITS

pytest.register_assert_rewrite("tests.contract")

RUN_ID = uuid.uuid4().hex[:10]
RUN_TOPIC_PREFIX = f"mercato-test-{RUN_ID}-"
"""Every Kafka topic a test creates starts with this, so the run can delete them all at the end:
left behind, topics pile up in the local broker until it runs out of file descriptors (each
partition holds its segment files open)."""
PROCESS_CHDB_URL = f"chdb://{tempfile.mkdtemp(prefix='mercato-chdb-')}"
"""The one chdb folder of this pytest process: chdb opens one folder per process, so every
in-process container of the run shares it, each test with its own database."""
_TEST_NUMBER = itertools.count(1)
LOOSE_RATE_LIMITS = {rule: "100000/minute" for rule in PRODUCTION_RATE_LIMITS}
# Settings loaded outside a test function (module- and session-scoped fixtures) use the folder
# too; the autouse fixture below then gives each test its own database within it.
os.environ["MERCATO_CLICKHOUSE_URL"] = PROCESS_CHDB_URL
os.environ["MERCATO_CLICKHOUSE_DATABASE"] = f"test_{RUN_ID}_shared"


@pytest.fixture(autouse=True)
def read_model_namespaces(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings loaded during a test put its read models apart from every other test's: its own
    ClickHouse database (in the process's chdb folder), Redis key prefix and Elasticsearch index
    prefix. Explicit settings still win; subprocesses that inherit this environment must not
    open the analytics engine (the folder is this process's)."""
    number = next(_TEST_NUMBER)
    monkeypatch.setenv("MERCATO_CLICKHOUSE_URL", PROCESS_CHDB_URL)
    monkeypatch.setenv("MERCATO_CLICKHOUSE_DATABASE", f"test_{RUN_ID}_{number}")
    monkeypatch.setenv("MERCATO_REDIS_KEY_PREFIX", f"mercato-test:{RUN_ID}:{number}:")
    monkeypatch.setenv("MERCATO_ELASTICSEARCH_INDEX_PREFIX", f"mercato-test-{RUN_ID}-{number}-")
    monkeypatch.setenv("MERCATO_KAFKA_TOPIC_PREFIX", f"{RUN_TOPIC_PREFIX}{number}.")
    # Tests sign up and log in many users from one client address; the rate-limit tests
    # delete this to get the real figures.
    monkeypatch.setenv("MERCATO_RATE_LIMITS", json.dumps(LOOSE_RATE_LIMITS))
    yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the Kafka topics, Elasticsearch indexes and Redis keys this run created (when the
    services are up; a unit-test run without them skips this quietly)."""
    from mercato_bench.cleanup import Prefixes, ServiceUrls, delete_prefixed

    defaults = ServiceUrls()
    urls = ServiceUrls(
        kafka_bootstrap=os.environ.get("MERCATO_KAFKA_BOOTSTRAP", defaults.kafka_bootstrap),
        redis_url=os.environ.get("MERCATO_REDIS_URL", defaults.redis_url),
        elasticsearch_url=os.environ.get("MERCATO_ELASTICSEARCH_URL", defaults.elasticsearch_url),
    )
    prefixes = Prefixes(
        kafka_topics=RUN_TOPIC_PREFIX,
        redis_keys=f"mercato-test:{RUN_ID}:",
        elasticsearch_indexes=f"mercato-test-{RUN_ID}-",
    )
    asyncio.run(delete_prefixed(prefixes, urls, within=120, log_failures=False))


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run, for naming databases, topics, indexes and keys."""
    return RUN_ID


@pytest.fixture(scope="session")
def kafka_topic_prefix(run_id: str) -> str:
    """Prefix of every Kafka topic this run creates."""
    return RUN_TOPIC_PREFIX


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
