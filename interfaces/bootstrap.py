"""The composition root: the one place that turns settings into adapters.

Every entry point (HTTP app, CLI, workers, tests) calls `bootstrap(settings)` and gets a
`Container`; nothing connects at import time. `Container.start()` opens the adapters of the
profile and `close()` closes them, in reverse order.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from application.accounts.service import Accounts
from application.marketplace import Marketplace
from application.ports.clock import Clock, SystemClock
from application.ports.dead_letters import DeadLetterStore
from application.ports.event_feed import EventFeed
from application.ports.event_store import EventStore
from application.ports.payment_gateway import PaymentGateway
from application.ports.read_model_sink import ReadModelSink
from application.ports.saga_store import SagaStore
from application.repository import Repository
from application.sagas.cancellation import cancel_and_wait
from application.sagas.failures import TRANSIENT_FAILURES
from application.sagas.policy import SagaPolicy
from application.serialization import EventSerializer
from application.tenants.service import Tenants
from infrastructure import health
from infrastructure.auth.passwords import Argon2PasswordHasher
from infrastructure.auth.tokens import JwtTokenCodec
from infrastructure.payments.simulator import PaymentSimulator
from infrastructure.rate_limits import RateLimiter, rate_limiter
from infrastructure.sagas.outages import STORE_OUTAGES
from infrastructure.settings import Profile, Settings
from infrastructure.telemetry.metrics import PrometheusInstruments, PrometheusOutageReport
from projections.applier import ProjectionApplier
from projections.catalog import core_projections
from projections.definition import Projection
from projections.store_feed import StoreFeed, resume_position
from projections.targets import EMBEDDED, Partitioning, ensure_live_target
from projections.worker import ProjectionWorker

Closer = Callable[[], Awaitable[None]]
CLOSE_WITHIN = 15.0
"""Seconds one adapter may take to close (flush, disconnect) before shutdown moves on without
it: a broker that stopped answering must not hold the process for ever."""
_log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    probes: list[health.Probe]
    clock: Clock = field(default_factory=SystemClock)
    _event_store: EventStore | None = None
    _accounts: Accounts | None = None
    _tenants: Tenants | None = None
    _marketplace: Marketplace | None = None
    _payment_simulator: PaymentSimulator | None = None
    _rate_limiter: RateLimiter | None = None
    _closers: list[Closer] = field(default_factory=list)
    projections: list[Projection] = field(default_factory=list)
    _sinks: dict[str, ReadModelSink] = field(default_factory=dict)
    _dead_letters: DeadLetterStore | None = None
    serializer: EventSerializer = field(default_factory=EventSerializer)

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
    def tenants(self) -> Tenants:
        if self._tenants is None:
            raise RuntimeError("the container is not started: call `await container.start()`")
        return self._tenants

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

    @property
    def rate_limiter(self) -> RateLimiter:
        """The HTTP rate limits: in this process (embedded) or shared through Redis."""
        if self._rate_limiter is None:
            raise RuntimeError("the container is not started: call `await container.start()`")
        return self._rate_limiter

    @property
    def partitioning(self) -> Partitioning:
        """Where projections' events come from: the store itself (embedded) or Kafka."""
        if self.settings.profile is Profile.EMBEDDED:
            return EMBEDDED
        return Partitioning(self.settings.kafka_topic_prefix, self.settings.kafka_partitions)

    def projection(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        known = ", ".join(p.name for p in self.projections)
        raise LookupError(f"no projection named {name!r} (known: {known})")

    def projections_named(self, name: str) -> list[Projection]:
        """`name` is a projection's name, or a sink's (`views`, `search`, `analytics`): then
        every projection that writes to that sink, as one worker process runs them."""
        if name in SINK_NAMES:
            return [p for p in self.projections if p.sink == name]
        return [self.projection(name)]

    async def sink(self, name: str) -> ReadModelSink:
        """The read-model store called `name` (`views`, …), opened on first use."""
        if name not in self._sinks:
            sink = await _open_sink(self.settings, name)
            self._sinks[name] = sink
            self._closers.append(sink.close)
        return self._sinks[name]

    async def dead_letters(self) -> DeadLetterStore:
        if self._dead_letters is None:
            self._dead_letters = await _open_dead_letters(self.settings)
            self._closers.append(self._dead_letters.close)
        return self._dead_letters

    async def applier(self, projection: Projection) -> ProjectionApplier:
        return ProjectionApplier(
            projection,
            await self.sink(projection.sink),
            await self.dead_letters(),
            self.serializer,
            outages=PrometheusOutageReport(),
        )

    async def projector_feed(self, projection: Projection) -> EventFeed:
        """Live events for one projection's worker: Kafka (services) or the store (embedded),
        resuming after what the live target already holds."""
        if self.settings.profile is Profile.EMBEDDED:
            sink = await self.sink(projection.sink)
            target = await ensure_live_target(sink, projection)
            checkpoints = await sink.checkpoints(projection.name, target)
            return StoreFeed(self.event_store, from_position=resume_position(checkpoints))
        from infrastructure.kafka.feed import KafkaEventFeed
        from infrastructure.kafka.topics import ensure_topics

        # A live (empty) target from the start, so queries answer "nothing yet" rather than
        # 503 "not built" until the projection's first event arrives.
        await ensure_live_target(await self.sink(projection.sink), projection)

        topics = self.partitioning.topics_of(projection)
        # A consumer subscribed to a missing topic only notices it at the next metadata
        # refresh (minutes): create the topics first, as the relay would.
        await ensure_topics(
            self.settings.kafka_bootstrap, topics, partitions=self.settings.kafka_partitions
        )
        return await KafkaEventFeed.start(
            self.settings.kafka_bootstrap,
            group_id=f"{self.settings.kafka_topic_prefix}projector.{projection.name}",
            topics=topics,
        )

    async def start(self, *, background: bool = True) -> None:
        """Open the adapters. On the embedded profile, `background` also runs the sagas and the
        projections in this process (the API does; one-off CLI commands do not)."""
        self._event_store = await _open_event_store(self.settings)
        self._closers.append(self._event_store.close)
        await self._start_marketplace(self._event_store, background=background)
        self._tenants = Tenants(self.marketplace.repository, self._event_store)
        self._accounts = _accounts(
            self.settings, self.marketplace.repository, self._event_store, self._tenants, self.clock
        )
        self._rate_limiter = _rate_limiter(self.settings)
        self._closers.append(self._rate_limiter.close)
        in_process = self.in_process_projections() if background else []
        if in_process:
            self._closers.append(await self._run_projections(in_process))

    @property
    def analytics_in_process(self) -> bool:
        """True when the analytics engine is chdb: it lives inside one process (it locks its
        folder), so the process that answers analytics queries also runs their projections."""
        return self.settings.clickhouse_target.startswith("chdb://")

    def in_process_projections(self) -> list[Projection]:
        """The projections a serving process runs itself. Embedded: all of them, fed by the
        store's subscription. Services: each runs in `mercato worker projector NAME`, fed by
        Kafka — except the analytics ones when the engine is chdb."""
        if self.settings.profile is Profile.EMBEDDED:
            return list(self.projections)
        if self.analytics_in_process:
            return [p for p in self.projections if p.sink == "analytics"]
        return []

    async def _run_projections(self, projections: list[Projection]) -> Closer:
        stop = asyncio.Event()
        workers = [
            ProjectionWorker(await self.applier(p), await self.projector_feed(p))
            for p in projections
        ]
        tasks = [asyncio.create_task(w.run(stop), name=f"projection {w.name}") for w in workers]

        async def stop_workers() -> None:
            stop.set()
            await asyncio.wait(tasks, timeout=5)
            for task in tasks:
                await cancel_and_wait(task)

        return stop_workers

    async def _start_marketplace(self, store: EventStore, *, background: bool) -> None:
        saga_store = await _open_saga_store(self.settings)
        self._closers.append(saga_store.close)
        payments = PaymentSimulator(self.clock, secret=_webhook_secret(self.settings))
        self._marketplace = _marketplace(self.settings, store, saga_store, payments, self.clock)
        payments.connect(self._marketplace.webhooks.handle)
        await payments.start()
        self._closers.append(payments.close)
        self._payment_simulator = payments
        if background and self.settings.profile is Profile.EMBEDDED:
            # Embedded: the sagas run in this process. Services: in `mercato worker sagas`.
            self._closers.append(_in_background(self._marketplace.saga_runner().run()))

    async def close(self) -> None:
        while self._closers:
            await _close_within(self._closers.pop(), CLOSE_WITHIN)
        self._event_store = None
        self._accounts = None
        self._tenants = None
        self._marketplace = None
        self._payment_simulator = None
        self._rate_limiter = None
        self._sinks = {}
        self._dead_letters = None


def bootstrap(settings: Settings, *, clock: Clock | None = None) -> Container:
    """Wire the adapters of `settings.profile`; opens nothing until `start()`."""
    return Container(
        settings=settings,
        probes=_probes(settings),
        clock=clock or SystemClock(),
        projections=core_projections() + _extra_projections(settings),
    )


def _extra_projections(settings: Settings) -> list[Projection]:
    extras = []
    for reference in settings.extra_projections:
        module_name, _, attribute = reference.partition(":")
        found = getattr(importlib.import_module(module_name), attribute)
        projection = found() if callable(found) else found
        if not isinstance(projection, Projection):
            raise TypeError(f"{reference} is not a Projection")
        extras.append(projection)
    return extras


SINK_NAMES = ("views", "search", "analytics")
"""The read-model stores a projection can name as its `sink`."""


async def _open_sink(settings: Settings, name: str) -> ReadModelSink:
    embedded = settings.profile is Profile.EMBEDDED
    if embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if name == "views":
        if embedded:
            from infrastructure.read_models.sqlite_documents import SqliteDocumentSink

            return await SqliteDocumentSink.open(settings.data_dir / "views.sqlite3")
        from infrastructure.read_models.redis_documents import RedisDocumentSink

        return await RedisDocumentSink.connect(
            settings.redis_url,
            key_prefix=settings.redis_key_prefix,
            call_timeout=settings.read_store_timeout,
        )
    if name == "search":
        if embedded:
            from infrastructure.read_models.sqlite_search import SqliteSearchSink

            return await SqliteSearchSink.open(settings.data_dir / "search.sqlite3")
        from infrastructure.read_models.elasticsearch_search import ElasticsearchSearchSink

        return await ElasticsearchSearchSink.connect(
            settings.elasticsearch_url,
            index_prefix=settings.elasticsearch_index_prefix,
            call_timeout=settings.read_store_timeout,
        )
    if name == "analytics":
        # The same adapter on both profiles: a ClickHouse server by URL, or the chdb engine in
        # this process (see `analytics_in_process`).
        from infrastructure.read_models.clickhouse_rows import ClickHouseRowSink

        return await ClickHouseRowSink.connect(
            settings.clickhouse_target, database=settings.clickhouse_database
        )
    known = ", ".join(SINK_NAMES)
    raise LookupError(f"no read-model sink named {name!r} (known: {known})")


async def _open_dead_letters(settings: Settings) -> DeadLetterStore:
    if settings.profile is Profile.EMBEDDED:
        from infrastructure.projections.dead_letters_sqlite import SqliteDeadLetterStore

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return await SqliteDeadLetterStore.open(settings.data_dir / "dead_letters.sqlite3")
    from infrastructure.projections.dead_letters_postgres import PostgresDeadLetterStore

    return await PostgresDeadLetterStore.connect(settings.postgres_dsn)


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
        instruments=PrometheusInstruments(),
        transient_failures=TRANSIENT_FAILURES + STORE_OUTAGES,
    )


def _accounts(
    settings: Settings, repository: Repository, store: EventStore, tenants: Tenants, clock: Clock
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
    return Accounts(repository, store, hasher, tokens, tenants)


def _rate_limiter(settings: Settings) -> RateLimiter:
    # Redis is connected lazily, at the first check; until then this opens nothing.
    shared = settings.profile is Profile.SERVICES
    return rate_limiter(
        settings.effective_rate_limits,
        redis_url=settings.redis_url if shared else None,
        key_prefix=f"{settings.redis_key_prefix}ratelimit",
    )


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


async def _close_within(closer: Closer, seconds: float) -> None:
    task = asyncio.ensure_future(closer())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        task.result()  # raise what the closer raised
        return
    _log.warning(
        "shutdown: %s did not close within %.0f s; moving on",
        getattr(closer, "__qualname__", closer),
        seconds,
    )
    task.cancel()


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
