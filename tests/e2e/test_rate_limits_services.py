"""Rate limits on the services profile: two `mercato serve` processes spend one budget in
Redis, so a client cannot multiply its logins by the number of API replicas."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from mercato_bench.processes import free_port
from tests.e2e.test_rate_limits_http import WRONG, assert_refused_by

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
READY_WITHIN = 90.0


@contextmanager
def api_process(environment: dict[str, str], folder: Path) -> Iterator[httpx.Client]:
    """`mercato serve` in a process of its own, with its own data folder (chdb locks one per
    process); a client on it once `/healthz` answers."""
    folder.mkdir(parents=True)
    port = free_port()
    with (folder / "api.log").open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port)],
            env=environment | {"MERCATO_DATA_DIR": str(folder)},
            cwd=folder,  # a folder without a .env file
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            _wait_until_healthy(client, process, folder / "api.log")
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the API exited: {log.read_text()[-3000:]}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the API did not start: {log.read_text()[-3000:]}")


@pytest.fixture
def two_apis(
    fresh_postgres_dsn: str, redis_key_prefix: str, tmp_path: Path
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two API processes on one database and one Redis key prefix, with the default limits."""
    environment = {name: v for name, v in os.environ.items() if not name.startswith("MERCATO_")}
    environment |= {
        "MERCATO_PROFILE": "services",
        "MERCATO_POSTGRES_DSN": fresh_postgres_dsn,
        "MERCATO_REDIS_KEY_PREFIX": f"{redis_key_prefix}{tmp_path.name}:",
        "MERCATO_KAFKA_TOPIC_PREFIX": os.environ["MERCATO_KAFKA_TOPIC_PREFIX"],
        "MERCATO_ELASTICSEARCH_INDEX_PREFIX": os.environ["MERCATO_ELASTICSEARCH_INDEX_PREFIX"],
        "MERCATO_LOG_LEVEL": "WARNING",
        "OTEL_SDK_DISABLED": "true",
        "PYTHONPATH": str(REPOSITORY),
    }
    with ExitStack() as stack:
        # One after the other: the first creates the schema the second then finds.
        first = stack.enter_context(api_process(environment, tmp_path / "a"))
        second = stack.enter_context(api_process(environment, tmp_path / "b"))
        yield first, second


def log_in(api: httpx.Client) -> httpx.Response:
    return api.post(
        "/auth/login",
        json={"email": "ada@example.org", "password": WRONG},
        headers={"X-Tenant-ID": "acme"},
    )


def test_two_api_processes_share_one_login_budget_in_redis(
    two_apis: tuple[httpx.Client, httpx.Client],
) -> None:
    first, second = two_apis
    answers = [log_in(first).status_code for _ in range(3)]
    answers += [log_in(second).status_code for _ in range(2)]
    assert 429 not in answers, answers  # 401 (no such account) or 404 (no such tenant)
    refused = log_in(second)
    assert_refused_by(refused, "login_ip", quota=5, window=60)
    assert_refused_by(log_in(first), "login_ip", quota=5, window=60)
    metrics = second.get("/metrics").text
    assert 'mercato_rate_limited_total{rule="login_ip"} 1.0' in metrics
