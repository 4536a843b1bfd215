"""Helpers for the HTTP end-to-end tests: an app on a fresh data dir, and the usual calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from application.accounts.commands import ChangeRoles
from application.context import Actor, CommandContext
from application.errors import AggregateNotFoundError
from application.ports.clock import Clock
from application.saga_statuses import CheckoutStatus, EscrowSagaStatus
from application.sagas.cancellation import cancel_and_wait
from application.sagas.checkout import CheckoutSaga, checkout_saga_id
from application.sagas.escrow import EscrowSaga, escrow_saga_id
from domain.account import Role
from infrastructure.kafka.relay import Relay
from infrastructure.settings import Settings, load_settings
from interfaces.bootstrap import Container
from interfaces.http.app import create_app
from projections.worker import ProjectionWorker
from tests.conftest import RUN_TOPIC_PREFIX

PASSWORD = "correct horse battery staple"
CHEAP_ARGON2: dict[str, Any] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 8,
    "password_hash_parallelism": 1,
}
T = TypeVar("T")


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(profile="embedded", data_dir=data_dir, **(CHEAP_ARGON2 | overrides))


@contextmanager
def running(
    settings: Settings,
    *,
    clock: Clock | None = None,
    prepare: Callable[[FastAPI], None] | None = None,
) -> Iterator[TestClient]:
    app = create_app(settings, clock=clock)
    if prepare is not None:
        prepare(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@contextmanager
def sagas_running(client: TestClient) -> Iterator[None]:
    """A saga runner on the app's loop, as `mercato worker sagas` runs beside a services API.
    Stopped with `cancel_and_wait`: a plain cancel can be swallowed in Python 3.11, and the
    teardown would then wait for ever."""
    runner = container_of(client).marketplace.saga_runner()

    async def start() -> asyncio.Task[None]:
        return asyncio.create_task(runner.run())

    task = call(client, start)
    try:
        yield
    finally:
        call(client, cancel_and_wait, task)


def container_of(client: TestClient) -> Container:
    container: Container = client.app.state.container  # type: ignore[attr-defined]
    return container


def call(client: TestClient, function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a coroutine function on the app's event loop (where its adapters live)."""
    assert client.portal is not None
    return client.portal.call(function, *args)


def head_position(client: TestClient) -> int:
    return call(client, container_of(client).event_store.head_position)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class User:
    account_id: UUID
    tenant: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def provisioned(client: TestClient, *tenants: str) -> None:
    """Create the tenants that do not exist yet, as `mercato tenants create` would: accounts
    register only into provisioned tenants."""
    for tenant in tenants:
        call(client, container_of(client).tenants.ensure, tenant)


def register(
    client: TestClient,
    email: str,
    *,
    tenant: str = "acme",
    roles: tuple[str, ...] = ("buyer",),
    password: str = PASSWORD,
) -> UUID:
    provisioned(client, tenant)
    response = client.post(
        "/auth/register",
        json={
            "email": email,
            "password": password,
            "display_name": email.split("@")[0],
            "roles": list(roles),
        },
        headers={"X-Tenant-ID": tenant},
    )
    assert response.status_code == 201, response.text
    return UUID(response.json()["account_id"])


def login(
    client: TestClient, email: str, *, tenant: str = "acme", password: str = PASSWORD
) -> User:
    response = client.post(
        "/auth/login",
        json={"email": email, "password": password},
        headers={"X-Tenant-ID": tenant},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return User(
        account_id=UUID(body["account_id"]),
        tenant=tenant,
        email=email,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


def signed_up(
    client: TestClient, email: str, *, tenant: str = "acme", roles: tuple[str, ...] = ("buyer",)
) -> User:
    register(client, email, tenant=tenant, roles=roles)
    return login(client, email, tenant=tenant)


def promoted_to_admin(client: TestClient, user: User) -> User:
    """Grant the admin role as the system would (an operator's command), then log in again:
    the role change revoked the user's earlier tokens."""
    command = ChangeRoles(account_id=user.account_id, roles=frozenset({Role.ADMIN}))
    call(client, container_of(client).accounts.change_roles, command, system(user.tenant))
    return login(client, user.email, tenant=user.tenant)


def system(tenant: str) -> CommandContext:
    return CommandContext(actor=Actor.system(tenant))


PATIENCE = 20.0
"""Seconds a test waits for the sagas before it fails."""


def eventually(check: Callable[[], T | None], *, what: str, timeout: float = PATIENCE) -> T:
    """Poll `check` until it returns something (not None), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if outcome is not None:
            return outcome
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def create_product(
    client: TestClient,
    creator: User,
    *,
    price: int = 1_000,
    currency: str = "EUR",
    stock: int | None = None,
    publish: bool = True,
) -> UUID:
    response = client.post(
        "/products",
        json={
            "title": "Night drive",
            "description": "A synthwave track",
            "tags": ["synthwave"],
            "kind": "track",
            "price": {"amount": price, "currency": currency},
            "stock": stock,
        },
        headers=creator.headers,
    )
    assert response.status_code == 201, response.text
    product_id = UUID(response.json()["product_id"])
    if publish:
        published = client.post(f"/products/{product_id}/publish", headers=creator.headers)
        assert published.status_code == 200, published.text
    return product_id


def placed_order(
    client: TestClient, buyer: User, product_id: UUID, *, quantity: int = 1, key: str | None = None
) -> tuple[UUID, int]:
    """Place an order; its id and the position the command answered (the consistency token)."""
    response = client.post(
        "/orders",
        json={"lines": [{"product_id": str(product_id), "quantity": quantity}]},
        headers=buyer.headers | {"Idempotency-Key": key or uuid4().hex},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return UUID(body["order_id"]), int(body["position"])


def place_order(
    client: TestClient, buyer: User, product_id: UUID, *, quantity: int = 1, key: str | None = None
) -> UUID:
    order_id, _ = placed_order(client, buyer, product_id, quantity=quantity, key=key)
    return order_id


def position_of(response: httpx.Response) -> int:
    """The consistency token of a command's answer."""
    assert response.status_code in (200, 201), response.text
    position: int = response.json()["position"]
    return position


def order_status(
    client: TestClient, user: User, order_id: UUID, *, min_position: int | None = None
) -> str:
    """The order's status from its view; with `min_position`, a view that reflects it."""
    params = {} if min_position is None else {"min_position": min_position}
    response = client.get(f"/orders/{order_id}", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def until_order_is(client: TestClient, user: User, order_id: UUID, *statuses: str) -> str:
    """Poll the order's view until its status is one of `statuses`. Until the view has the
    order it answers 404, and 503 until its projector has written anything at all."""

    def reached() -> str | None:
        response = client.get(f"/orders/{order_id}", headers=user.headers)
        if response.status_code in (404, 503):
            return None
        assert response.status_code == 200, response.text
        status: str = response.json()["status"]
        return status if status in statuses else None

    return eventually(reached, what=f"order {order_id} is {'/'.join(statuses)}")


def caused_by(client: TestClient, request_id: UUID, *, after: int) -> list[str]:
    """The types of the events after `after` that the request with this id appended (its
    request id is their correlation id); the sagas' own events, running meanwhile, are not."""
    events = call(client, container_of(client).event_store.read_all, after, 10_000)
    return [event.type for event in events if event.correlation_id == request_id]


def until_sagas_rest(client: TestClient, user: User, order_id: UUID) -> None:
    """Wait until checkout is done and the escrow waits for the buyer: the log stays still."""
    repository = container_of(client).marketplace.repository

    async def resting() -> bool:
        try:
            checkout = await repository.get(
                CheckoutSaga, checkout_saga_id(order_id), tenant_id=user.tenant
            )
            escrow = await repository.get(
                EscrowSaga, escrow_saga_id(order_id), tenant_id=user.tenant
            )
        except AggregateNotFoundError:
            return False
        return (
            checkout.status == CheckoutStatus.COMPLETED
            and escrow.status == EscrowSagaStatus.AWAITING_CONFIRMATION
        )

    eventually(lambda: call(client, resting) or None, what=f"the sagas of {order_id} rest")


@contextmanager
def views_projected(client: TestClient) -> Iterator[None]:
    """On the services profile, run beside the app what a deployment runs beside the API for
    the hot views: the relay and one projector per `views` projection (as `mercato worker
    relay` and `mercato worker projector NAME` do), as tasks on the app's event loop. Give the
    settings a Kafka topic prefix of the test's own (`unique_topic_prefix`)."""
    container = container_of(client)
    settings = container.settings
    projections = [p for p in container.projections if p.sink == "views"]

    async def start() -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
        stop = asyncio.Event()
        relay = Relay(
            container.event_store,
            settings.postgres_dsn,
            settings.kafka_bootstrap,
            topic_prefix=settings.kafka_topic_prefix,
            partitions=settings.kafka_partitions,
            categories=set().union(*(p.categories for p in projections)),
        )
        workers = [
            ProjectionWorker(await container.applier(p), await container.projector_feed(p))
            for p in projections
        ]
        tasks = [asyncio.create_task(relay.run(stop))]
        tasks += [asyncio.create_task(worker.run(stop)) for worker in workers]
        return stop, tasks

    async def finish(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

    stop, tasks = call(client, start)
    try:
        yield
    finally:
        call(client, finish, stop, tasks)


def unique_topic_prefix() -> str:
    """Kafka topics (and so consumer groups) no other test shares."""
    return f"{RUN_TOPIC_PREFIX}e2e-{uuid4().hex[:10]}."


def webhooks_over_http(client: TestClient) -> list[int]:
    """Make the payment simulator deliver its webhooks to `POST /payments/webhook`, signed,
    instead of in-process; returns the statuses the endpoint answered, in order."""
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://api")
    statuses: list[int] = []

    async def post(body: bytes, signature: str) -> None:
        response = await http.post(
            "/payments/webhook", content=body, headers={"Payment-Signature": signature}
        )
        statuses.append(response.status_code)
        response.raise_for_status()  # the simulator retries what was not accepted

    container_of(client).payment_simulator.connect(post)
    return statuses


def assert_the_capture_came_over_http(statuses: list[int]) -> None:
    """The endpoint accepted the capture once. Before that it may have answered 404: the
    provider can report on an intent before the saga has recorded the payment it opened, and,
    like a real provider, the simulator delivers again until the webhook is accepted."""
    assert statuses[-1] == 200, statuses
    assert set(statuses[:-1]) <= {404}, statuses
