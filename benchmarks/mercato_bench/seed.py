"""A large, valid event store, fast: a simulated marketplace written straight into Postgres.

`generate(spec)` plays a coherent marketplace in simulated time: one tenant, an admin, sellers,
buyers, published products, and orders going through their whole life — placed, stock reserved,
payment requested, then captured, held in escrow, delivered and completed (or disputed and
released or refunded; or cancelled: payment failed, the buyer cancelled, sold out) — followed by
the sellers' payouts. Who sells what, who buys what and how each order ends comes from the demo's
own plan (`interfaces.demo.plan.make_plan`, the same mix as `mercato demo seed`).

Every event is produced by the real domain aggregates (`domain/`, plus the email claims of
`application.accounts`) through their own methods, in the order the checkout and escrow sagas
would produce them, and serialised by Mercato's `EventSerializer`: nothing is written by hand,
so every event decodes and every projection accepts it. What is *not* produced: the sagas' own
streams and login sessions (no projection reads them), and orders refused when placed (they
record nothing). Event timestamps (and `recorded_at`) are the simulated time, spread over
`spec.days` days from `spec.start`; ids, payment intents, salts and times are drawn from one
`random.Random(spec.seed)`, so the same spec gives byte-identical payloads.

`seed_event_store(dsn, spec)` migrates the event store schema, then loads the events with COPY
(`asyncpg.copy_records_to_table`) in chunks of `chunk_events`, one transaction per chunk, while
a worker thread generates the next chunk. Positions follow the store's own rule
(`pg_current_xact_id() << 20 | ordinal`, see `infrastructure/eventstore/postgres_sql.py`): each
chunk's transaction reads its id and numbers its rows, so positions grow in log order and every
event is final (readable) once its chunk commits.

Command side it is not: the real commands cost ~23 appends per order (`mercato demo seed`), which
would take hours for a million events.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import argon2
import asyncpg
from eventsourcing.domain import Aggregate

from application.accounts.email_claims import EmailClaim, email_claim_id
from application.serialization import EventSerializer
from domain.account import Account, Role
from domain.dispute import Resolution
from domain.errors import DomainError
from domain.escrow import Escrow
from domain.ids import escrow_id_for, payment_id_for, platform_wallet_id_for, wallet_id_for
from domain.money import Money
from domain.order import Order, OrderLine
from domain.payment import Payment
from domain.product import Product
from domain.tenant import Tenant
from domain.wallet import CreditReason, Wallet, WalletKind
from infrastructure.eventstore.postgres_migrations import migrate
from infrastructure.eventstore.postgres_sql import MAX_EVENTS_PER_TRANSACTION, ORDINAL_BITS
from interfaces.demo.plan import Fate, Plan, PlannedOrder, WorkloadSpec, make_plan
from mercato_bench import report

TENANT = "bench"
PASSWORD = "mercato-bench-password"
"""Every seeded account's password (hashed with the cheap argon2 settings of the benchmarks)."""
EMAIL_DOMAIN = "bench.mercato.test"
ADMIN_EMAIL = f"admin@{EMAIL_DOMAIN}"
PLATFORM_FEE_BPS = 1000
EVENTS_PER_ORDER = 15.2
"""Events per planned order, all included (accounts, products, payouts), measured on the mix;
used only to size a plan for a wanted number of events."""
ORDERS_PER_SELLER = 300
ORDERS_PER_BUYER = 6
HASH_TIME_COST = 1
HASH_MEMORY_KIB = 8
HASH_PARALLELISM = 1
"""The argon2 parameters `mercato_bench.processes.BenchEnvironment` gives every process, so a
login neither pays a real hash nor rehashes."""

COLUMNS = (
    "stream_id",
    "stream_version",
    "position",
    "event_id",
    "type",
    "schema_version",
    "tenant_id",
    "recorded_at",
    "correlation_id",
    "causation_id",
    "traceparent",
    "payload",
)

Row = tuple[str, int, UUID, str, int, str, datetime, UUID | None, None, None, bytes]
"""An event as generated: the stored columns but the position (given at load time)."""


@dataclass(frozen=True)
class SeedSpec:
    events: int = 1_000_000
    """Roughly how many events to generate (the plan is sized for it; the count is ±2 %)."""
    seed: int = 0
    tenant_id: str = TENANT
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    days: int = 180
    chunk_events: int = 50_000
    """Events per COPY (and per transaction); at most 2^20 - 1."""

    def __post_init__(self) -> None:
        if self.events < 500:
            raise ValueError("seed at least 500 events")
        if self.days < 10:
            raise ValueError("the simulated period is at least 10 days")
        if not 1 <= self.chunk_events <= MAX_EVENTS_PER_TRANSACTION:
            raise ValueError(f"chunks hold 1 to {MAX_EVENTS_PER_TRANSACTION} events")

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def workload(self) -> WorkloadSpec:
        orders = max(30, round(self.events / EVENTS_PER_ORDER))
        return WorkloadSpec(
            sellers=max(3, orders // ORDERS_PER_SELLER),
            buyers=max(10, orders // ORDERS_PER_BUYER),
            orders=orders,
            seed=self.seed,
        )


@dataclass
class SeededMarketplace:
    """What the generator made, for the scenarios that query it (ids are strings)."""

    tenant_id: str
    password: str
    admin_email: str
    admin_id: str = ""
    period_start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    period_end: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    buyer_emails: dict[str, str] = field(default_factory=dict)
    """Buyer id → email."""
    seller_ids: list[str] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)
    """Published products (in the search index)."""
    order_ids: list[str] = field(default_factory=list)
    """Every placed order."""
    orders_by_buyer: Counter[str] = field(default_factory=Counter)
    order_statuses: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)
    events: int = 0

    def busiest_buyer(self) -> tuple[str, str]:
        """(id, email) of the buyer with the most orders."""
        [(buyer_id, _)] = self.orders_by_buyer.most_common(1)
        return buyer_id, self.buyer_emails[buyer_id]

    def summary(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "events": self.events,
            "accounts": len(self.buyer_emails) + len(self.seller_ids) + 1,
            "sellers": len(self.seller_ids),
            "buyers": len(self.buyer_emails),
            "published_products": len(self.product_ids),
            "orders": len(self.order_ids),
            "order_statuses": dict(sorted(self.order_statuses.items())),
            "period": [self.period_start.isoformat(), self.period_end.isoformat()],
            "event_types": dict(self.event_types.most_common()),
        }


class _Simulation:
    """Plays the plan in simulated time; `emit` turns an aggregate's new events into rows."""

    def __init__(self, spec: SeedSpec, plan: Plan) -> None:
        self.spec = spec
        self.plan = plan
        self.rng = random.Random(f"mercato-bench-seed:{spec.seed}")
        self.serializer = EventSerializer()
        self.tenant = spec.tenant_id
        self.now = spec.start
        self.rows: list[Row] = []
        self.out = SeededMarketplace(
            tenant_id=spec.tenant_id,
            password=PASSWORD,
            admin_email=ADMIN_EMAIL,
            period_start=spec.start,
            period_end=spec.end,
        )
        self._sequence = 0
        self._queue: list[tuple[datetime, int, Iterator[float]]] = []
        self.admin_id = self.uuid()
        self.seller_ids = [self.uuid() for _ in plan.sellers]
        self.buyer_ids = [self.uuid() for _ in plan.buyers]
        self.products: list[Product] = []
        self.wallets: dict[UUID, Wallet] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def uuid(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def emit(self, aggregate: Aggregate, correlation_id: UUID | None = None) -> None:
        """Store the aggregate's pending events as rows stamped with the simulated time."""
        for domain_event in aggregate.collect_events():
            # The simulated clock stands in for the event's creation time.
            object.__setattr__(domain_event, "timestamp", self.now)
            new = self.serializer.to_new_event(domain_event)
            self.rows.append(
                (
                    str(domain_event.originator_id),
                    domain_event.originator_version,
                    self.uuid(),
                    new.type,
                    new.schema_version,
                    self.tenant,
                    self.now,
                    correlation_id,
                    None,
                    None,
                    new.payload,
                )
            )
            self.out.event_types[new.type.rsplit(":", 1)[-1]] += 1

    def at(self, moment: datetime, life: Iterator[float]) -> None:
        """Run `life` from `moment`: each value it yields is the delay (s) to its next step."""
        self._sequence += 1
        heapq.heappush(self._queue, (moment, self._sequence, life))

    def run(self) -> Iterator[list[Row]]:
        """Play every scheduled life in time order, yielding rows in chunks."""
        chunk = self.spec.chunk_events
        while self._queue:
            moment, _, life = heapq.heappop(self._queue)
            self.now = max(self.now, moment)
            delay = next(life, None)
            if delay is not None:
                self.at(self.now + timedelta(seconds=delay), life)
            if len(self.rows) >= chunk:
                yield self.rows[:chunk]
                del self.rows[:chunk]

    # -- the marketplace --------------------------------------------------------------------

    def password_hash(self) -> str:
        salt = self.rng.randbytes(16)
        raw = argon2.low_level.hash_secret(
            PASSWORD.encode(),
            salt,
            time_cost=HASH_TIME_COST,
            memory_cost=HASH_MEMORY_KIB,
            parallelism=HASH_PARALLELISM,
            hash_len=32,
            type=argon2.low_level.Type.ID,
        )
        return raw.decode()

    def register(
        self, account_id: UUID, email: str, name: str, roles: Sequence[Role], password_hash: str
    ) -> None:
        claim = EmailClaim(id=email_claim_id(self.tenant, email), account_id=account_id)
        self.emit(claim)
        self.emit(
            Account.register(
                id=account_id,
                tenant_id=self.tenant,
                email=email,
                display_name=name,
                roles=roles,
                password_hash=password_hash,
            )
        )

    def setup(self) -> Iterator[float]:
        """The tenant, its admin, sellers, buyers and products, over the first day."""
        self.emit(Tenant.provision(tenant_id=self.tenant))  # logins need a provisioned tenant
        hashed = self.password_hash()
        plan = self.plan
        self.register(self.admin_id, ADMIN_EMAIL, "Bench Admin", [Role.ADMIN], hashed)
        self.out.admin_id = str(self.admin_id)
        step = 36_000 / max(1, len(plan.sellers) + len(plan.buyers) + len(plan.products))
        for seller, seller_id in zip(plan.sellers, self.seller_ids, strict=True):
            yield step
            email = f"seller{seller.index + 1:05d}@{EMAIL_DOMAIN}"
            self.register(seller_id, email, seller.display_name, [Role.CREATOR], hashed)
            self.out.seller_ids.append(str(seller_id))
        for buyer, buyer_id in zip(plan.buyers, self.buyer_ids, strict=True):
            yield step
            email = f"buyer{buyer.index + 1:06d}@{EMAIL_DOMAIN}"
            self.register(buyer_id, email, buyer.display_name, [Role.BUYER], hashed)
            self.out.buyer_emails[str(buyer_id)] = email
        for planned in plan.products:
            yield step
            product = Product.create(
                id=self.uuid(),
                tenant_id=self.tenant,
                creator_id=self.seller_ids[planned.seller],
                title=planned.title,
                description=planned.description,
                tags=planned.tags,
                kind=planned.kind,
                price=Money(planned.price, planned.currency),
                stock=planned.stock,
            )
            product.publish()
            self.emit(product)
            self.products.append(product)
            self.out.product_ids.append(str(product.id))

    def order_life(self, planned: PlannedOrder) -> Iterator[float]:
        """One order from placing to its end, step by step as the sagas drive it."""
        placed: list[Order] = []
        yield from self._order_steps(planned, placed)
        self.out.order_statuses[placed[0].status.value] += 1

    def _order_steps(self, planned: PlannedOrder, placed: list[Order]) -> Iterator[float]:
        rng = self.rng
        products = [self.products[line.product] for line in planned.lines]
        order = Order.place(
            id=self.uuid(),
            tenant_id=self.tenant,
            buyer_id=self.buyer_ids[planned.buyer],
            lines=[
                OrderLine(
                    product_id=product.id,
                    seller_id=product.creator_id,
                    title=product.title,
                    unit_price=product.price,
                    quantity=line.quantity,
                )
                for product, line in zip(products, planned.lines, strict=True)
            ],
            at=self.now,
        )
        placed.append(order)
        correlation = self.uuid()
        self.emit(order, correlation)
        self.out.order_ids.append(str(order.id))
        self.out.orders_by_buyer[str(order.buyer_id)] += 1
        yield 0.05
        # Reserving: a refused reservation (sold out) cancels the order.
        for product, line in zip(products, planned.lines, strict=True):
            try:
                product.reserve(order.id, line.quantity)
            except DomainError as refused:
                yield from self.compensate(order, products, str(refused), correlation)
                return
            self.emit(product, correlation)
            yield 0.02
        order.mark_stock_reserved(at=self.now)
        self.emit(order, correlation)
        yield 0.05
        payment = Payment.create_intent(
            id=payment_id_for(order.id),
            tenant_id=self.tenant,
            order_id=order.id,
            provider_intent_id=f"sim_{rng.getrandbits(64):016x}",
            amount=order.total,
        )
        self.emit(payment, correlation)
        order.request_payment(payment_intent_id=payment.provider_intent_id, at=self.now)
        self.emit(order, correlation)
        if planned.fate is Fate.PAYMENT_FAILED:
            yield rng.uniform(5, 120)
            reason = planned.reason or "card declined"
            payment.fail(reason=reason)
            self.emit(payment, correlation)
            yield 0.05
            yield from self.compensate(order, products, f"payment failed: {reason}", correlation)
            return
        if planned.fate is Fate.BUYER_CANCELLED:
            yield rng.uniform(30, 600)
            order.cancel(reason=planned.reason or "changed my mind", at=self.now)
            self.emit(order, correlation)
            yield 0.05
            yield from self.release(order, products, correlation)
            return
        yield rng.uniform(5, 180)
        payment.capture()
        self.emit(payment, correlation)
        yield 0.05
        order.mark_paid(at=self.now)
        self.emit(order, correlation)
        escrow = Escrow.hold(
            id=escrow_id_for(order.id),
            tenant_id=self.tenant,
            order_id=order.id,
            buyer_id=order.buyer_id,
            seller_id=order.seller_id,
            amount=order.total,
            platform_fee_bps=PLATFORM_FEE_BPS,
        )
        self.emit(escrow, correlation)
        yield 0.02
        order.confirm(at=self.now)
        self.emit(order, correlation)
        for product in products:
            yield 0.02
            product.commit(order.id)
            self.emit(product, correlation)
        yield 0.05
        order.deliver(at=self.now)
        self.emit(order, correlation)
        if planned.fate is Fate.COMPLETED:
            # The buyer confirms receipt, or the 72-hour dispute window closes the order.
            yield rng.uniform(600, 72 * 3600) if rng.random() < 0.6 else 72 * 3600.0
            order.complete(at=self.now)
            self.emit(order, correlation)
            yield 0.1
            escrow.release()
            self.emit(escrow, correlation)
            yield from self.settle(escrow, correlation)
            return
        yield rng.uniform(3600, 48 * 3600)
        order.dispute(reason=planned.reason or "not as described", at=self.now)
        self.emit(order, correlation)
        yield 0.1
        escrow.dispute(reason=planned.reason or "not as described")
        self.emit(escrow, correlation)
        yield rng.uniform(3600, 72 * 3600)
        releasing = planned.fate is Fate.DISPUTE_RELEASED
        resolution = Resolution.RELEASE if releasing else Resolution.REFUND
        escrow.resolve(resolution=resolution, resolved_by=self.admin_id)
        self.emit(escrow, correlation)
        yield 0.1
        if releasing:
            yield from self.settle(escrow, correlation)
        else:
            payment.refund()
            self.emit(payment, correlation)
            yield 0.05
        order.resolve_dispute(resolution=resolution, at=self.now)
        self.emit(order, correlation)

    def release(
        self, order: Order, products: Sequence[Product], correlation: UUID
    ) -> Iterator[float]:
        for product in products:
            if product.release(order.id):
                self.emit(product, correlation)
                yield 0.02

    def compensate(
        self, order: Order, products: Sequence[Product], reason: str, correlation: UUID
    ) -> Iterator[float]:
        yield from self.release(order, products, correlation)
        order.cancel(reason=reason[:500], at=self.now)
        self.emit(order, correlation)

    def settle(self, escrow: Escrow, correlation: UUID) -> Iterator[float]:
        """Credit the seller's net and the platform's fee (the escrow saga's settling)."""
        assert escrow.settlement is not None
        reference = f"escrow:{escrow.id}"
        settlement = escrow.settlement
        credits: list[tuple[UUID | None, Money, CreditReason]] = [
            (escrow.seller_id, settlement.seller_net, CreditReason.SALE),
            (None, settlement.platform_fee, CreditReason.PLATFORM_FEE),
        ]
        for owner, amount, reason in credits:
            if not amount.is_positive:
                continue
            yield 0.05
            wallet = self.wallet(owner, amount.currency)
            wallet.credit(amount=amount, reason=reason, reference=f"{reference}:{reason}")
            self.emit(wallet, correlation)

    def wallet(self, owner: UUID | None, currency: str) -> Wallet:
        wallet_id = (
            platform_wallet_id_for(self.tenant, currency)
            if owner is None
            else wallet_id_for(owner, currency)
        )
        wallet = self.wallets.get(wallet_id)
        if wallet is None:
            wallet = Wallet.open(
                id=wallet_id,
                tenant_id=self.tenant,
                kind=WalletKind.PLATFORM if owner is None else WalletKind.ACCOUNT,
                owner_id=owner,
                currency=currency,
            )
            self.wallets[wallet_id] = wallet
        return wallet

    def second_wave(self, orders: Sequence[PlannedOrder], span: float) -> Iterator[float]:
        """After the first wave: some products are unpublished, then the sold-out orders."""
        for listing in self.plan.products:
            if listing.unpublished_after_first_wave:
                product = self.products[listing.index]
                product.unpublish()
                self.emit(product)
                self.out.product_ids.remove(str(product.id))
                yield 1.0
        for planned in orders:
            if planned.fate is Fate.SOLD_OUT:
                self.at(self.now, self.order_life(planned))
            yield span / max(1, len(orders))

    def payouts(self) -> Iterator[float]:
        """Sellers withdraw a share of their balance, as the demo's sellers do."""
        for seller, seller_id in zip(self.plan.sellers, self.seller_ids, strict=True):
            wallet = self.wallets.get(wallet_id_for(seller_id, seller.currency))
            if wallet is None or not seller.payout_percent:
                continue
            amount = wallet.balance.amount * seller.payout_percent // 100
            if amount > 0:
                wallet.debit(
                    amount=Money(amount, seller.currency), reference=f"payout:{self.uuid()}"
                )
                self.emit(wallet)
            yield 30.0


def generate(spec: SeedSpec) -> tuple[Iterator[list[Row]], SeededMarketplace]:
    """The event rows in log order, in chunks of `spec.chunk_events` (the last one shorter),
    and the marketplace they describe (filled in as the chunks are drawn)."""
    plan = make_plan(spec.workload())
    simulation = _Simulation(spec, plan)
    day = 86_400.0
    start = spec.start
    orders_from = start + timedelta(days=1)
    first_wave_days = spec.days - 6
    second_wave_at = start + timedelta(days=spec.days - 2)
    payouts_at = start + timedelta(days=spec.days - 0.5)
    first_wave = plan.first_wave
    times = sorted(simulation.rng.uniform(0, first_wave_days * day) for _ in first_wave)
    simulation.at(start, simulation.setup())
    for moment, planned in zip(times, first_wave, strict=True):
        simulation.at(orders_from + timedelta(seconds=moment), simulation.order_life(planned))
    simulation.at(second_wave_at, simulation.second_wave(plan.second_wave, day))
    simulation.at(payouts_at, simulation.payouts())

    def chunks() -> Iterator[list[Row]]:
        yield from simulation.run()
        if simulation.rows:
            yield simulation.rows
            simulation.rows = []
        simulation.out.events = sum(simulation.out.event_types.values())

    return chunks(), simulation.out


# -- loading ------------------------------------------------------------------------------------


@dataclass
class SeedReport:
    marketplace: SeededMarketplace
    events: int
    chunks: int
    wall_seconds: float
    generate_seconds: float
    """Time spent generating (in the worker thread, overlapping the COPYs)."""
    copy_seconds: float
    """Time spent in COPY + commit (overlapping the generation)."""
    vacuum_seconds: float
    table_mib: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "chunks": self.chunks,
            "wall_seconds": round(self.wall_seconds, 2),
            "events_per_second": _rate(self.events, self.wall_seconds),
            "generate_seconds": round(self.generate_seconds, 2),
            "generate_events_per_second": _rate(self.events, self.generate_seconds),
            "copy_seconds": round(self.copy_seconds, 2),
            "copy_events_per_second": _rate(self.events, self.copy_seconds),
            "vacuum_analyze_seconds": round(self.vacuum_seconds, 2),
            "table_mib": round(self.table_mib, 1),
            "marketplace": self.marketplace.summary(),
        }


def _rate(events: int, seconds: float) -> float | None:
    return round(events / seconds) if seconds > 0 else None


async def seed_event_store(
    dsn: str, spec: SeedSpec, *, on_chunk: Callable[[int], None] | None = None
) -> SeedReport:
    """Generate `spec` into the (fresh) event store at `dsn` with COPY; see the module doc."""
    started = time.perf_counter()
    chunks, marketplace = generate(spec)
    generate_seconds = 0.0
    copy_seconds = 0.0
    events = count = 0

    def draw() -> list[Row] | None:
        nonlocal generate_seconds
        began = time.perf_counter()
        try:
            return next(chunks, None)
        finally:
            generate_seconds += time.perf_counter() - began

    connection = await asyncpg.connect(dsn)
    try:
        await migrate(connection)
        if await connection.fetchval("SELECT EXISTS (SELECT 1 FROM mercato_events)"):
            raise RuntimeError("the event store is not empty: seed a fresh database")
        pending = asyncio.ensure_future(asyncio.to_thread(draw))
        while (rows := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(draw))
            began = time.perf_counter()
            await _copy(connection, rows)
            copy_seconds += time.perf_counter() - began
            events += len(rows)
            count += 1
            if on_chunk is not None:
                on_chunk(events)
        began = time.perf_counter()
        await connection.execute("VACUUM (ANALYZE) mercato_events")
        vacuum_seconds = time.perf_counter() - began
        size = await connection.fetchval("SELECT pg_total_relation_size('mercato_events')")
    finally:
        await connection.close()
    return SeedReport(
        marketplace=marketplace,
        events=events,
        chunks=count,
        wall_seconds=time.perf_counter() - started,
        generate_seconds=generate_seconds,
        copy_seconds=copy_seconds,
        vacuum_seconds=vacuum_seconds,
        table_mib=size / 1024 / 1024,
    )


async def _copy(connection: asyncpg.Connection, rows: list[Row]) -> None:
    async with connection.transaction():
        xid = await connection.fetchval("SELECT pg_current_xact_id()::text::bigint")
        base = xid << ORDINAL_BITS
        records = [
            (stream, version, base + ordinal, *rest)
            for ordinal, (stream, version, *rest) in enumerate(rows, start=1)
        ]
        await connection.copy_records_to_table("mercato_events", records=records, columns=COLUMNS)


def progress_printer(total: int) -> Callable[[int], None]:
    """An `on_chunk` that prints a line about every tenth of `total`."""
    step = max(1, total // 10)
    state = {"next": step, "started": time.perf_counter()}

    def show(events: int) -> None:
        if events >= state["next"]:
            state["next"] += step
            elapsed = time.perf_counter() - state["started"]
            report.progress(f"seeded {events:,} events ({events / elapsed:,.0f}/s)")

    return show
