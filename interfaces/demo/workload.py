"""The demo's driver: turns a plan into the commands people would send, and waits for the sagas.

The tenant is provisioned (unless it exists), accounts registered through the accounts
service, products created and published by their sellers, orders placed by their buyers; from
there the sagas do the rest (reservations, payment through the provider, escrow, delivery,
release to wallets) while the driver plays the people again where the plan says so: a buyer
cancels, confirms receipt or disputes, an admin resolves a dispute, sellers withdraw their
earnings.

Stages, each finished before the next starts (so every order ends as its plan says, see
`interfaces.demo.plan`): accounts → products → first wave of orders → unpublish → second
wave → payouts. Orders run concurrently, at most `concurrency` in flight, each from placing to
settled (the order in a final status and its sagas done).

The payment failures and stalled payments are scripted per order with the payment provider
(`PaymentScripts`). That works only if the provider is the one the sagas call, that is when
the saga runner following the log runs in this process: `leading_sagas` starts one and waits
until it leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from uuid import UUID

from application.accounts.commands import RegisterAccount
from application.accounts.errors import EmailAlreadyRegistered
from application.accounts.service import Accounts
from application.commerce.commands import (
    CancelOrder,
    Command,
    ConfirmReceipt,
    CreateProduct,
    OpenDispute,
    OrderLineRequest,
    PlaceOrder,
    Price,
    PublishProduct,
    RequestPayout,
    ResolveDispute,
    UnpublishProduct,
)
from application.commerce.results import CommandResult
from application.context import Actor, CommandContext
from application.errors import AggregateNotFoundError
from application.marketplace import Marketplace
from application.sagas.cancellation import cancel_and_wait
from application.sagas.runner import SagaRunner
from application.tenants.service import Tenants
from domain.account import Role
from domain.dispute import Resolution
from domain.errors import DomainError, IllegalTransition
from domain.ids import wallet_id_for
from domain.order import OrderStatus
from domain.wallet import Wallet
from interfaces.demo.plan import (
    ADMIN_EMAIL,
    PASSWORD,
    Fate,
    Plan,
    PlannedOrder,
    PlannedProduct,
    demo_id,
)
from interfaces.demo.watch import OrderTrack, OrderWatch

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
DEFAULT_REGISTRATIONS = 8
DEFAULT_PATIENCE = 120.0
"""Seconds an order may take to reach the next point the demo waits for."""
DEFAULT_LEAD_WITHIN = 30.0
"""Seconds to wait for the lead of the saga group: a crashed leader's lease (15 s) must end."""


class DemoError(Exception):
    """The demo cannot run as asked (the tenant already has it, another runner leads …)."""


class PaymentScripts(Protocol):
    """Tells the payment provider what to do with one order's payment when it is requested."""

    def decline(self, tenant_id: str, order_id: UUID, reason: str) -> None: ...

    def never_pay(self, tenant_id: str, order_id: UUID) -> None:
        """The payer never pays: the intent stays pending (until the buyer cancels)."""
        ...


class ProgressListener(Protocol):
    """Where the driver reports progress (rich bars on a terminal, log lines in a server)."""

    def stage(self, name: str, total: int) -> None: ...

    def advance(self, name: str, amount: int = 1) -> None: ...


class QuietProgress:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, name: str, amount: int = 1) -> None:
        pass


@dataclass(frozen=True)
class People:
    """The accounts the demo registered, by plan index."""

    admin: UUID
    sellers: tuple[UUID, ...]
    buyers: tuple[UUID, ...]


@dataclass(frozen=True)
class DemoReport:
    tenant_id: str
    seed: int
    people: People
    products: int
    unpublished: int
    orders_by_status: dict[str, int]
    """Placed orders by final status, as the log tells it."""
    outcomes: dict[Fate, dict[str, int]]
    """For each fate of the plan, the final statuses its orders reached (`refused` for an
    order refused when placed)."""
    unexpected: tuple[str, ...]
    """Orders that ended otherwise than the plan says (empty when all went to plan)."""
    payouts: int
    paid_out: dict[str, int]
    """Minor units paid out to sellers, by currency."""
    events_appended: int
    seconds: float
    order_seconds: float
    """Time from the first order placed to the last settled (both waves)."""

    @property
    def accounts(self) -> int:
        return 1 + len(self.people.sellers) + len(self.people.buyers)

    @property
    def orders(self) -> int:
        return sum(self.orders_by_status.values())

    @property
    def orders_per_second(self) -> float:
        return self.orders / self.order_seconds if self.order_seconds > 0 else 0.0


class DemoDriver:
    def __init__(
        self,
        marketplace: Marketplace,
        accounts: Accounts,
        tenants: Tenants,
        *,
        tenant_id: str,
        payments: PaymentScripts | None,
        progress: ProgressListener | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        registrations: int = DEFAULT_REGISTRATIONS,
        patience: float = DEFAULT_PATIENCE,
    ) -> None:
        """`payments`: the provider the running sagas call (`None` when it cannot be scripted,
        and then the plan must not need it); `concurrency`: orders (and product commands) in
        flight; `registrations`: accounts registered at once (argon2 is slow by design);
        `patience`: seconds an order may take to reach the next point the demo waits for."""
        if concurrency < 1 or registrations < 1:
            raise ValueError("concurrency and registrations must be at least 1")
        self.marketplace = marketplace
        self.accounts = accounts
        self.tenants = tenants
        self.tenant_id = tenant_id
        self.payments = payments
        self.progress = progress or QuietProgress()
        self.concurrency = concurrency
        self.registrations = registrations
        self.patience = patience

    async def run(self, plan: Plan) -> DemoReport:
        if plan.spec.scripted_payments and self.payments is None:
            raise ValueError("the plan scripts payments, but no payment provider was given")
        store = self.marketplace.store
        started = time.monotonic()
        start_position = await store.head_position()
        watch = OrderWatch(store, self.marketplace.serializer, self.tenant_id)
        run = _Run(self, plan, watch)
        async with watch.following(start_position):
            people = await run.register()
            await run.list_products()
            orders_started = time.monotonic()
            self.progress.stage("orders", len(plan.orders))
            await run.place(plan.first_wave)
            await run.unpublish()
            await run.place(plan.second_wave)
            order_seconds = time.monotonic() - orders_started
            paid_out = await run.pay_out()
        end_position = await store.head_position()
        statuses = Counter(str(t.status) for t in watch.tracks if t.status is not None)
        return DemoReport(
            tenant_id=self.tenant_id,
            seed=plan.spec.seed,
            people=people,
            products=len(plan.products),
            unpublished=sum(p.unpublished_after_first_wave for p in plan.products),
            orders_by_status=dict(statuses),
            outcomes={fate: dict(counts) for fate, counts in run.outcomes.items()},
            unexpected=tuple(run.unexpected),
            payouts=len(paid_out),
            paid_out=_totals(paid_out),
            events_appended=await store.count_between(start_position, end_position),
            seconds=time.monotonic() - started,
            order_seconds=order_seconds,
        )


class _Run:
    """One run of a plan: its stages, what they learn for the next (account ids), and how
    each order ended."""

    def __init__(self, driver: DemoDriver, plan: Plan, watch: OrderWatch) -> None:
        self._driver = driver
        self._progress = driver.progress
        self._plan = plan
        self._watch = watch
        self._seed = plan.spec.seed
        self._tenant = driver.tenant_id
        self._people: People | None = None
        self.outcomes: dict[Fate, Counter[str]] = {}
        self.unexpected: list[str] = []

    # -- accounts ----------------------------------------------------------------------------

    async def register(self) -> People:
        plan = self._plan
        await self._driver.tenants.ensure(self._tenant)
        self._progress.stage("accounts", 1 + len(plan.sellers) + len(plan.buyers))
        try:
            admin = await self._register(ADMIN_EMAIL, "Demo admin", Role.ADMIN)
        except EmailAlreadyRegistered:
            raise DemoError(
                f"tenant {self._tenant!r} already has the demo's accounts ({ADMIN_EMAIL}): "
                "seed another tenant, or start from an empty store"
            ) from None
        slots = asyncio.Semaphore(self._driver.registrations)

        async def register(email: str, name: str, role: Role) -> UUID:
            async with slots:
                return await self._register(email, name, role)

        sellers = [register(s.email, s.display_name, Role.CREATOR) for s in plan.sellers]
        buyers = [register(b.email, b.display_name, Role.BUYER) for b in plan.buyers]
        everyone = await asyncio.gather(*sellers, *buyers)
        self._people = People(
            admin, tuple(everyone[: len(sellers)]), tuple(everyone[len(sellers) :])
        )
        return self._people

    async def _register(self, email: str, name: str, role: Role) -> UUID:
        command = RegisterAccount(
            email=email, password=PASSWORD, display_name=name, roles=frozenset({role})
        )
        recorded = await self._driver.accounts.register(
            command, CommandContext(actor=Actor.system(self._tenant))
        )
        self._progress.advance("accounts")
        return UUID(recorded.stream_id)

    # -- products ----------------------------------------------------------------------------

    async def list_products(self) -> None:
        self._progress.stage("products", len(self._plan.products))
        await self._bounded(self._list(product) for product in self._plan.products)

    async def _list(self, product: PlannedProduct) -> None:
        seller = self._seller(product.seller)
        product_id = self._id("product", product.index)
        create = CreateProduct(
            product_id=product_id,
            title=product.title,
            description=product.description,
            tags=product.tags,
            kind=product.kind,
            price=Price(amount=product.price, currency=product.currency),
            stock=product.stock,
        )
        await self._send(create, seller, f"product:{product.index}:create")
        publish = PublishProduct(product_id=product_id)
        await self._send(publish, seller, f"product:{product.index}:publish")
        self._progress.advance("products")

    async def unpublish(self) -> None:
        for product in self._plan.products:
            if product.unpublished_after_first_wave:
                await self._send(
                    UnpublishProduct(product_id=self._id("product", product.index)),
                    self._seller(product.seller),
                    f"product:{product.index}:unpublish",
                )

    # -- orders ------------------------------------------------------------------------------

    async def place(self, orders: Iterable[PlannedOrder]) -> None:
        await self._bounded(self._order(order) for order in orders)

    async def _order(self, order: PlannedOrder) -> None:
        """Place the order, play the buyer (and admin) as the plan says, wait until settled."""
        order_id = self._id("order", order.index)
        buyer = self._buyer(order.buyer)
        place = PlaceOrder(
            order_id=order_id,
            lines=tuple(
                OrderLineRequest(
                    product_id=self._id("product", line.product), quantity=line.quantity
                )
                for line in order.lines
            ),
        )
        if order.fate is Fate.UNPUBLISHED:
            await self._attempt(order, place, buyer)
            return
        track = self._watch.expect(order_id)
        self._script_payment(order, order_id)
        await self._send(place, buyer, f"order:{order.index}:place")
        if order.fate is Fate.BUYER_CANCELLED:
            await self._until(track, _payment_requested, "awaits its payment")
            if not track.final:
                cancel = CancelOrder(order_id=order_id, reason=order.reason or "changed my mind")
                await self._act(cancel, buyer, f"order:{order.index}:cancel")
        await self._until(track, _delivered_or_settled, "is delivered or settles")
        if track.status is OrderStatus.DELIVERED:
            # Also where an order meant to fail was paid after all (the provider was not
            # scripted): the buyer confirms it, and the tally reports the surprise.
            await self._receive(order, order_id, track, buyer)
        await self._until(track, _settled, "settles (final status, sagas done)")
        expected = order.expected_status
        self._record(order, str(track.status), str(expected), track.describe())

    async def _receive(
        self, order: PlannedOrder, order_id: UUID, track: OrderTrack, buyer: Actor
    ) -> None:
        resolution = {
            Fate.DISPUTE_RELEASED: Resolution.RELEASE,
            Fate.DISPUTE_REFUNDED: Resolution.REFUND,
        }.get(order.fate)
        if resolution is None:
            confirm = ConfirmReceipt(order_id=order_id)
            await self._act(confirm, buyer, f"order:{order.index}:confirm")
            return
        dispute = OpenDispute(order_id=order_id, reason=order.reason or "not as described")
        await self._act(dispute, buyer, f"order:{order.index}:dispute")
        # An admin can resolve the dispute once the escrow saga has frozen the escrow.
        await self._until(track, _escrow_frozen, "has its escrow frozen by the dispute")
        if not track.final:
            resolve = ResolveDispute(order_id=order_id, resolution=resolution)
            await self._act(resolve, self._admin(), f"order:{order.index}:resolve")

    async def _attempt(self, order: PlannedOrder, place: PlaceOrder, buyer: Actor) -> None:
        """An order the plan expects refused when placed (its product is unpublished)."""
        try:
            await self._send(place, buyer, f"order:{order.index}:place")
        except IllegalTransition as refusal:
            self._record(order, "refused", "refused", str(refusal))
        else:
            self._record(order, "placed", "refused", "its product was still published")

    def _script_payment(self, order: PlannedOrder, order_id: UUID) -> None:
        payments = self._driver.payments
        if payments is None:
            return
        if order.fate is Fate.PAYMENT_FAILED:
            payments.decline(self._tenant, order_id, order.reason or "card declined")
        elif order.fate is Fate.BUYER_CANCELLED:
            payments.never_pay(self._tenant, order_id)

    def _record(self, order: PlannedOrder, outcome: str, expected: str, detail: str) -> None:
        self.outcomes.setdefault(order.fate, Counter())[outcome] += 1
        if outcome != expected:
            self.unexpected.append(
                f"order #{order.index} ({order.fate}) ended {outcome}, not {expected}: {detail}"
            )
        self._progress.advance("orders")

    # -- payouts -----------------------------------------------------------------------------

    async def pay_out(self) -> list[tuple[str, int]]:
        """Each seller withdraws their planned share of what they earned: (currency, amount)."""
        sellers = [seller for seller in self._plan.sellers if seller.payout_percent > 0]
        self._progress.stage("payouts", len(sellers))
        paid: list[tuple[str, int]] = []
        for seller in sellers:
            wallet_id = wallet_id_for(self._people_().sellers[seller.index], seller.currency)
            try:
                wallet = await self._driver.marketplace.repository.get(
                    Wallet, wallet_id, tenant_id=self._tenant
                )
            except AggregateNotFoundError:
                wallet = None  # the seller sold nothing
            amount = 0 if wallet is None else wallet.balance.amount * seller.payout_percent // 100
            if amount > 0:
                payout = RequestPayout(
                    amount=Price(amount=amount, currency=seller.currency),
                    payout_id=self._id("payout", seller.index),
                )
                await self._send(payout, self._seller(seller.index), f"payout:{seller.index}")
                paid.append((seller.currency, amount))
            self._progress.advance("payouts")
        return paid

    # -- sending and waiting -----------------------------------------------------------------

    async def _send(self, command: Command, actor: Actor, key: str) -> CommandResult:
        """Dispatch with an idempotency key unique to the seed and step (keys are scoped to the
        caller and the command type)."""
        context = CommandContext(actor=actor, idempotency_key=f"demo:{self._seed}:{key}")
        return await self._driver.marketplace.dispatch(command, context)

    async def _act(self, command: Command, actor: Actor, key: str) -> None:
        """A person's move on an order the sagas may have moved on meanwhile (say, a short
        dispute window closed it): a refusal is logged, and the order's end tells the rest."""
        try:
            await self._send(command, actor, key)
        except DomainError as refusal:
            logger.warning("demo: %s was refused: %s", type(command).__name__, refusal)

    async def _until(
        self, track: OrderTrack, condition: Callable[[OrderTrack], bool], what: str
    ) -> None:
        await self._watch.until(track, condition, what=what, within=self._driver.patience)

    async def _bounded(self, jobs: Iterator[Coroutine[Any, Any, None]]) -> None:
        """Run the jobs, at most `concurrency` at once (a job is created only when a slot is
        free); the first failure cancels the others and is raised."""
        slots = asyncio.Semaphore(self._driver.concurrency)

        async def one(job: Coroutine[Any, Any, None]) -> None:
            try:
                await job
            finally:
                slots.release()

        try:
            async with asyncio.TaskGroup() as tasks:
                while True:
                    await slots.acquire()
                    job = next(jobs, None)
                    if job is None:
                        break
                    tasks.create_task(one(job))
        except BaseExceptionGroup as failures:
            raise _first_leaf(failures) from None

    # -- who is who --------------------------------------------------------------------------

    def _id(self, kind: str, index: int) -> UUID:
        return demo_id(self._tenant, self._seed, kind, index)

    def _people_(self) -> People:
        if self._people is None:
            raise RuntimeError("the accounts are registered first")
        return self._people

    def _actor(self, account_id: UUID, role: Role) -> Actor:
        return Actor(account_id=account_id, tenant_id=self._tenant, roles=frozenset({role}))

    def _seller(self, index: int) -> Actor:
        return self._actor(self._people_().sellers[index], Role.CREATOR)

    def _buyer(self, index: int) -> Actor:
        return self._actor(self._people_().buyers[index], Role.BUYER)

    def _admin(self) -> Actor:
        return self._actor(self._people_().admin, Role.ADMIN)


def _payment_requested(track: OrderTrack) -> bool:
    return OrderStatus.PAYMENT_REQUESTED in track.seen or track.final


def _delivered_or_settled(track: OrderTrack) -> bool:
    return track.status is OrderStatus.DELIVERED or track.settled


def _escrow_frozen(track: OrderTrack) -> bool:
    return track.escrow_frozen or track.final


def _settled(track: OrderTrack) -> bool:
    return track.settled


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _totals(amounts: list[tuple[str, int]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for currency, amount in amounts:
        totals[currency] += amount
    return dict(totals)


# -- the sagas -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def leading_sagas(
    marketplace: Marketplace,
    *,
    within: float = DEFAULT_LEAD_WITHIN,
    poll_interval: float = 0.2,
) -> AsyncIterator[SagaRunner]:
    """Run a saga runner in this process while the context is open, once it leads the group.

    Beside other runners this is safe (see `application.sagas.runner`): one leader follows
    the log, each due timer is claimed by one runner, and a saga's stream version settles any
    race. But only the leader requests payments, through its own process's provider; the demo
    scripts that provider, so it needs the lead. `DemoError` when another runner keeps it.
    """
    runner = marketplace.saga_runner(poll_interval=poll_interval)
    task = asyncio.create_task(runner.run(), name=f"demo-saga-runner-{runner.owner}")
    try:
        deadline = time.monotonic() + within
        while not runner.leading:
            if task.done():
                task.result()  # raises what stopped it
                raise DemoError("the saga runner stopped before it led")
            if time.monotonic() > deadline:
                raise DemoError(
                    f"another saga runner leads the group {runner.group!r} (a `mercato serve` "
                    "on the embedded profile, or a `mercato worker sagas`): it would request "
                    "the demo's payments from its own payment simulator, where the demo cannot "
                    f"script failures. Waited {timedelta(seconds=within)}. Stop it, or seed "
                    "with --no-run-sagas (then without payment failures or cancellations)."
                )
            await asyncio.sleep(0.05)
        yield runner
    finally:
        await cancel_and_wait(task)
