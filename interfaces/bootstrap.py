"""The composition root: the one place that turns settings into adapters.

Every entry point (HTTP app, CLI, workers, tests) calls `bootstrap(settings)` and gets a
`Container`; nothing connects at import time. `Container.start()` opens the adapters of the
profile and `close()` closes them, in reverse order.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from application.accounts.service import Accounts
from application.commerce.marketplace import Marketplace
from application.ports.clock import Clock, SystemClock
from application.ports.event_store import EventStore
from application.ports.payment_gateway import PaymentGateway
from application.ports.saga_store import SagaStore
from application.repository import Repository
from application.sagas.cancellation import cancel_and_wait
from application.sagas.policy import SagaPolicy
from infrastructure import health
from infrastructure.auth.passwords import Argon2PasswordHasher
from infrastructure.auth.tokens import JwtTokenCodec
from infrastructure.payments.simulator import PaymentSimulator
from infrastructure.settings import Profile, Settings

Closer = Callable[[], Awaitable[None]]


@dataclass
class Container:
    settings: Settings
    probes: list[health.Probe]
    clock: Clock = field(default_factory=SystemClock)
    _event_store: EventStore | None = None
    _accounts: Accounts | None = None
    _marketplace: Marketplace | None = None
    _payment_simulator: PaymentSimulator | None = None
    _closers: list[Closer] = field(default_factory=list)

    @property
    def event_store(self) -> EventStore:
        if self._event_store is None:
            raise RuntimeError("the container is not started: call `await container.start()`")
        return self._event_store

    @property
    def accounts(self) -> Accounts:
        if self._accounts is None:
            raise RuntimeError("the container is not started: call `await container.start()`")
        return self._accounts

    @property
    def marketplace(self) -> Marketplace:
        """The commerce write side: `dispatch`, the payment `webhooks`, `saga_runner()`."""
        if self._marketplace is None:
            raise RuntimeError("the container is not started: call `await container.start()`")
        return self._marketplace

    @property
    def payment_simulator(self) -> PaymentSimulator:
        """The built-in payment provider (the only one until a real provider's adapter)."""
        if self._payment_simulator is None:
            raise RuntimeError("the container is not started: call `await container.start()`")
        return self._payment_simulator

    async def start(self) -> None:
        self._event_store = await _open_event_store(self.settings)
        self._closers.append(self._event_store.close)
        await self._start_marketplace(self._event_store)
        self._accounts = _accounts(
            self.settings, self.marketplace.repository, self._event_store, self.clock
        )

    async def _start_marketplace(self, store: EventStore) -> None:
        saga_store = await _open_saga_store(self.settings)
        self._closers.append(saga_store.close)
        payments = PaymentSimulator(self.clock, secret=_webhook_secret(self.settings))
        self._marketplace = _marketplace(self.settings, store, saga_store, payments, self.clock)
        payments.connect(self._marketplace.webhooks.handle)
        await payments.start()
        self._closers.append(payments.close)
        self._payment_simulator = payments
        if self.settings.profile is Profile.EMBEDDED:
            # Embedded: the sagas run in this process. Services: in `mercato worker sagas`.
            self._closers.append(_in_background(self._marketplace.saga_runner().run()))

    async def close(self) -> None:
        while self._closers:
            await self._closers.pop()()
        self._event_store = None
        self._accounts = None
        self._marketplace = None
        self._payment_simulator = None


def bootstrap(settings: Settings, *, clock: Clock | None = None) -> Container:
    """Wire the adapters of `settings.profile`; opens nothing until `start()`."""
    return Container(settings=settings, probes=_probes(settings), clock=clock or SystemClock())


def _saga_policy(settings: Settings) -> SagaPolicy:
    return SagaPolicy(
        payment_timeout=settings.payment_timeout, dispute_window=settings.dispute_window
    )


def _marketplace(
    settings: Settings,
    store: EventStore,
    saga_store: SagaStore,
    payments: PaymentGateway,
    clock: Clock,
) -> Marketplace:
    return Marketplace(
        store,
        saga_store,
        payments,
        clock,
        policy=_saga_policy(settings),
        platform_fee_bps=settings.platform_fee_bps,
    )


def _accounts(
    settings: Settings, repository: Repository, store: EventStore, clock: Clock
) -> Accounts:
    hasher = Argon2PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
        concurrency=settings.password_hash_concurrency,
    )
    tokens = JwtTokenCodec(
        secret=settings.jwt_secret.get_secret_value(),
        clock=clock,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )
    return Accounts(repository, store, hasher, tokens)


async def _open_event_store(settings: Settings) -> EventStore:
    if settings.profile is Profile.EMBEDDED:
        from infrastructure.eventstore.sqlite import SqliteEventStore

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return await SqliteEventStore.open(settings.data_dir / "events.sqlite3")
    from infrastructure.eventstore.postgres import PostgresEventStore

    return await PostgresEventStore.connect(
        settings.postgres_dsn,
        min_size=settings.postgres_pool_min,
        max_size=settings.postgres_pool_max,
    )


async def _open_saga_store(settings: Settings) -> SagaStore:
    if settings.profile is Profile.EMBEDDED:
        from infrastructure.sagas.sqlite import SqliteSagaStore

        return await SqliteSagaStore.open(settings.data_dir / "sagas.sqlite3")
    from infrastructure.sagas.postgres import PostgresSagaStore

    return await PostgresSagaStore.connect(settings.postgres_dsn)


def _webhook_secret(settings: Settings) -> bytes:
    """The simulator's webhook signing key, the same in every process of a deployment (the
    API verifies webhooks for intents a saga worker created): MERCATO_PAYMENT_WEBHOOK_SECRET,
    or, when that is empty, derived from the JWT secret with its own label, so neither key
    reveals the other."""
    configured = settings.payment_webhook_secret.get_secret_value()
    if configured:
        return configured.encode()
    jwt_secret = settings.jwt_secret.get_secret_value().encode()
    return hmac.new(jwt_secret, b"mercato payment simulator webhooks", hashlib.sha256).digest()


def _in_background(work: Coroutine[Any, Any, None]) -> Closer:
    """Run `work` as a task until the returned closer cancels it."""
    task = asyncio.create_task(work)

    async def cancel() -> None:
        await cancel_and_wait(task)

    return cancel


def _probes(settings: Settings) -> list[health.Probe]:
    if settings.profile is Profile.EMBEDDED:
        return [health.data_dir_probe(settings.data_dir)]
    return [
        health.postgres_probe(settings.postgres_dsn),
        health.kafka_probe(settings.kafka_bootstrap),
        health.elasticsearch_probe(settings.elasticsearch_url),
        health.redis_probe(settings.redis_url),
        health.clickhouse_probe(settings.clickhouse_target),
    ]
