"""Read-your-writes: a query that passes back a command's `position` (as `?min_position=` or the
`Mercato-Min-Position` header) answers from a read model that reflects the command, on the
first try, or says it cannot — 503 with `Retry-After` and the lag — never stale data.

On both profiles: embedded (the projections run inside the API process, fed by the store), and
services (Postgres → `mercato worker relay` → Kafka → `mercato worker projector order_views` →
Redis, the workers as real processes beside the API)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from application.sagas.cancellation import cancel_and_wait
from infrastructure.settings import Settings, load_settings
from interfaces.http.read_models import MIN_POSITION_HEADER
from tests.e2e.http_support import (
    CHEAP_ARGON2,
    User,
    call,
    create_product,
    embedded_settings,
    eventually,
    head_position,
    placed_order,
    running,
    signed_up,
    unique_topic_prefix,
)

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
STOP_WITHIN = 15.0


@dataclass
class Deployment:
    """A running Mercato: the HTTP client, and a way to stop the order views' projector."""

    client: TestClient
    stop_projector: Callable[[], None]


Deploy = Callable[..., AbstractContextManager[Deployment]]


@pytest.fixture(params=["embedded", "services"])
def deploy(request: pytest.FixtureRequest, tmp_path: Path) -> Deploy:
    """Start a Mercato of the profile, with `read_your_writes_wait` and other settings given."""
    if request.param == "embedded":
        return lambda **overrides: embedded(embedded_settings(tmp_path / "state", **overrides))
    dsn = request.getfixturevalue("fresh_postgres_dsn")

    def services_deployment(**overrides: Any) -> AbstractContextManager[Deployment]:
        settings = load_settings(
            profile="services",
            data_dir=tmp_path,
            postgres_dsn=dsn,
            kafka_topic_prefix=unique_topic_prefix(),
            **(CHEAP_ARGON2 | overrides),
        )
        return services(settings, tmp_path)

    return services_deployment


@contextmanager
def embedded(settings: Settings) -> Iterator[Deployment]:
    with running(settings) as client:
        yield Deployment(client, lambda: call(client, _cancel_projection_task, "order_views"))


async def _cancel_projection_task(name: str) -> None:
    """Stop an embedded projector as a crash would: its task (`projection NAME`) is cancelled."""
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == f"projection {name}"]
    await cancel_and_wait(task)


@contextmanager
def services(settings: Settings, folder: Path) -> Iterator[Deployment]:
    """The API in this process; the relay and the order views' projector as worker processes."""
    environment = {name: v for name, v in os.environ.items() if not name.startswith("MERCATO_")}
    environment |= {
        "MERCATO_PROFILE": "services",
        "MERCATO_DATA_DIR": str(folder),
        "MERCATO_POSTGRES_DSN": settings.postgres_dsn,
        "MERCATO_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MERCATO_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "PYTHONPATH": str(REPOSITORY),
    }
    with ExitStack() as stack:
        client = stack.enter_context(running(settings))
        stack.enter_context(worker(["relay"], environment, folder / "relay.log"))
        projector = stack.enter_context(
            worker(["projector", "order_views"], environment, folder / "projector.log")
        )

        def stop_projector() -> None:
            projector.send_signal(signal.SIGTERM)
            assert projector.wait(timeout=STOP_WITHIN) == 0

        yield Deployment(client, stop_projector)


@contextmanager
def worker(command: list[str], environment: dict[str, str], log: Path) -> Iterator[Any]:
    """`mercato worker COMMAND…` as a process of its own, killed at the end if still running."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "worker", *command],
            env=environment,
            cwd=log.parent,  # a folder without a .env file
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@dataclass
class Shop:
    buyer: User
    product_id: UUID


def a_shop(client: TestClient) -> Shop:
    creator = signed_up(client, "creator@example.org", roles=("creator",))
    buyer = signed_up(client, "buyer@example.org")
    return Shop(buyer, create_product(client, creator))


def reflected(client: TestClient, shop: Shop, order_id: UUID, position: int) -> None:
    """Wait until the order views reflect `position`: the projector is at work (a worker that
    has just started first joins its consumer group)."""
    path = f"/orders/{order_id}"

    def read() -> bool | None:
        response = client.get(path, params={"min_position": position}, headers=shop.buyer.headers)
        assert response.status_code in (200, 503), response.text
        return response.status_code == 200 or None

    eventually(read, what="the order views' projector is at work", timeout=60)


@pytest.mark.parametrize("passed_as", ["query", "header"])
def test_a_new_order_is_in_its_view_on_the_first_read_given_the_position_placing_answered(
    deploy: Deploy, passed_as: str
) -> None:
    with deploy() as mercato:
        client = mercato.client
        shop = a_shop(client)
        reflected(client, shop, *placed_order(client, shop.buyer, shop.product_id))
        order_id, position = placed_order(client, shop.buyer, shop.product_id)

        if passed_as == "query":
            response = client.get(
                f"/orders/{order_id}",
                params={"min_position": position},
                headers=shop.buyer.headers,
            )
        else:
            response = client.get(
                f"/orders/{order_id}",
                headers=shop.buyer.headers | {MIN_POSITION_HEADER: str(position)},
            )

    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(order_id)
    assert response.json()["timeline"][0]["status"] == "placed"


def test_with_the_projector_stopped_a_read_at_a_newer_position_is_503_with_the_lag(
    deploy: Deploy,
) -> None:
    with deploy(read_your_writes_wait=0.3) as mercato:
        client = mercato.client
        shop = a_shop(client)
        seen, seen_at = placed_order(client, shop.buyer, shop.product_id)
        reflected(client, shop, seen, seen_at)
        mercato.stop_projector()
        order_id, position = placed_order(client, shop.buyer, shop.product_id)

        behind = client.get(
            f"/orders/{order_id}", params={"min_position": position}, headers=shop.buyer.headers
        )
        in_header = client.get(
            f"/orders/{order_id}",
            headers=shop.buyer.headers | {MIN_POSITION_HEADER: str(position)},
        )
        older = client.get(
            f"/orders/{seen}", params={"min_position": seen_at}, headers=shop.buyer.headers
        )

    assert behind.status_code == in_header.status_code == 503, behind.text
    assert behind.headers["Retry-After"] == in_header.headers["Retry-After"] == "1"
    body = behind.json()
    assert body["code"] == "read_model_behind_error"
    assert (body["projection"], body["min_position"]) == ("order_views", position)
    assert seen_at <= body["position"] < position
    assert body["lag_events"] >= 1
    # What the read model already reflects, it still answers.
    assert older.status_code == 200 and older.json()["id"] == str(seen)


def test_a_min_position_no_command_could_have_answered_is_refused_at_once(deploy: Deploy) -> None:
    with deploy() as mercato:
        client = mercato.client
        shop = a_shop(client)
        order_id, position = placed_order(client, shop.buyer, shop.product_id)
        # Far beyond the head: the sagas (embedded) may still be appending meanwhile.
        beyond = head_position(client) + 1_000_000
        started = time.monotonic()

        refused = client.get(
            f"/orders/{order_id}", params={"min_position": beyond}, headers=shop.buyer.headers
        )

        assert time.monotonic() - started < 1.0  # not the wait for a read model that is behind
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["query", "min_position"]
        reflected(client, shop, order_id, position)  # the position the command answered
