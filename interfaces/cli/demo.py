"""`mercato demo …`: a music marketplace's life, driven through the real command side, so that
every read model has data; and `mercato serve --demo`, which seeds a small one on first start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Annotated, Any
from uuid import UUID

import typer
from fastapi import FastAPI
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from application.ports.payment_gateway import NotificationKind
from application.sagas.cancellation import cancel_and_wait
from domain.errors import InvariantViolation
from domain.tenant import validate_tenant_id
from infrastructure.payments.simulator import IntentScript, PaymentSimulator
from infrastructure.settings import Profile, Settings
from interfaces.bootstrap import Container, bootstrap
from interfaces.cli.errors import err_console, refuse
from interfaces.cli.settings import settings_or_exit
from interfaces.demo.plan import (
    ADMIN_EMAIL,
    PASSWORD,
    Fate,
    Plan,
    WorkloadSpec,
    make_plan,
)
from interfaces.demo.watch import DemoStuckError
from interfaces.demo.workload import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PATIENCE,
    DemoDriver,
    DemoError,
    DemoReport,
    PaymentScripts,
    ProgressListener,
    leading_sagas,
)

logger = logging.getLogger("mercato.demo")

app = typer.Typer(
    help=(
        "The demo workload: sellers list tracks, sample packs and licences, buyers order them, "
        "and the sagas take every order to its end, so every read model has data."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


DEFAULT_TENANT = "demo"
SERVE_DEMO = WorkloadSpec(sellers=5, buyers=30, orders=300, seed=1)
"""What `mercato serve --demo` seeds on first start: a minute's work, data everywhere."""
CHEAP_PASSWORD_HASHING: Mapping[str, Any] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}
"""The demo's password is published, so a slow hash protects nothing; each account's hash is
upgraded to the deployment's settings at its first login (`Accounts.login` rehashes)."""

SEED_HELP = (
    "Seed a tenant (created unless it exists) with a music marketplace's life through the "
    "real command side: accounts "
    "registered (an admin, sellers, buyers), products created and published (some with "
    "limited stock, some unpublished later), orders placed, and the sagas doing the rest "
    "(stock, payment through the payment simulator, escrow, delivery, release to wallets), "
    "with payment failures, buyer cancellations, sold-out orders, disputes an admin resolves "
    "(release and refund) and seller payouts. Waits until every order is completed, "
    "cancelled or refunded and every saga is done, then prints a summary; exits 1 if an "
    "order ended otherwise than planned."
    "\n\n"
    "The same --seed gives the same plan: who buys what, and how each order ends."
    "\n\n"
    "--run-sagas (the default) runs a saga runner in this process and waits until it leads "
    "the saga group: the demo scripts the payment failures with the payment simulator of the "
    "process whose sagas request the payments, so it needs the lead. Stop a running "
    "`mercato serve` (embedded) or `mercato worker sagas` (services) first, or use "
    "--no-run-sagas to let them run the sagas (then without payment failures and buyer "
    "cancellations). Every account's password is 'mercato-demo-password'."
)


class SimulatorScripts:
    """`PaymentScripts` on the built-in payment simulator, one order's intent at a time."""

    def __init__(self, simulator: PaymentSimulator) -> None:
        self._simulator = simulator

    def decline(self, tenant_id: str, order_id: UUID, reason: str) -> None:
        script = IntentScript(outcomes=(NotificationKind.FAILED,), failure_reason=reason)
        self._simulator.script_order(tenant_id, order_id, script)

    def never_pay(self, tenant_id: str, order_id: UUID) -> None:
        self._simulator.script_order(tenant_id, order_id, IntentScript(outcomes=()))


@app.command("seed", help=SEED_HELP, short_help="Seed a tenant with a demo workload.")
def seed(
    sellers: Annotated[int, typer.Option(help="Creators who sell.", min=1)] = 5,
    buyers: Annotated[int, typer.Option(help="Buyers who order.", min=1)] = 30,
    orders: Annotated[int, typer.Option(help="Orders placed.", min=0)] = 300,
    seed_: Annotated[int, typer.Option("--seed", help="Seed of the plan.")] = 1,
    tenant: Annotated[str, typer.Option(help="Tenant to seed (must not have the demo).")] = (
        DEFAULT_TENANT
    ),
    products_per_seller: Annotated[
        int, typer.Option(help="Usual number of products per seller.", min=1)
    ] = 6,
    currencies: Annotated[
        str, typer.Option(help="Comma-separated currencies the sellers sell in.")
    ] = "EUR",
    run_sagas: Annotated[
        bool, typer.Option(help="Run a saga runner in this process (see above).")
    ] = True,
    concurrency: Annotated[
        int, typer.Option(help="Orders in flight at once.", min=1, max=1024)
    ] = DEFAULT_CONCURRENCY,
    patience: Annotated[
        float, typer.Option(help="Seconds an order may take to reach its next step.", min=1)
    ] = DEFAULT_PATIENCE,
    cheap_hashing: Annotated[
        bool,
        typer.Option(
            help="Hash the (public) demo password with cheap argon2 settings; the hash is "
            "upgraded at each account's first login."
        ),
    ] = True,
) -> None:
    settings = settings_or_exit()
    if cheap_hashing:
        settings = settings.model_copy(update=CHEAP_PASSWORD_HASHING)
    try:
        spec = WorkloadSpec(
            sellers=sellers,
            buyers=buyers,
            orders=orders,
            seed=seed_,
            products_per_seller=products_per_seller,
            currencies=tuple(c.strip().upper() for c in currencies.split(",") if c.strip()),
            scripted_payments=run_sagas,
        )
    except ValueError as error:
        refuse(str(error))
    try:
        validate_tenant_id(tenant)
    except InvariantViolation as error:
        refuse(str(error))
    plan = make_plan(spec)
    try:
        report = asyncio.run(
            _seed(settings, plan, tenant, concurrency=concurrency, patience=patience)
        )
    except (DemoError, DemoStuckError) as error:
        refuse(str(error), code=1)
    _print_report(report, plan)
    if report.unexpected:
        raise typer.Exit(code=1)


async def _seed(
    settings: Settings, plan: Plan, tenant: str, *, concurrency: int, patience: float
) -> DemoReport:
    container = bootstrap(settings)
    await container.start(background=False)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if plan.spec.scripted_payments:
                err_console.print("waiting for the lead of the saga group…", highlight=False)
                await stack.enter_async_context(leading_sagas(container.marketplace))
            with _bars() as progress:
                driver = _driver(container, tenant, plan.spec, progress, concurrency, patience)
                return await driver.run(plan)
    finally:
        await container.close()


def _driver(
    container: Container,
    tenant: str,
    spec: WorkloadSpec,
    progress: ProgressListener,
    concurrency: int = DEFAULT_CONCURRENCY,
    patience: float = DEFAULT_PATIENCE,
) -> DemoDriver:
    payments: PaymentScripts | None = None
    if spec.scripted_payments:
        payments = SimulatorScripts(container.payment_simulator)
    return DemoDriver(
        container.marketplace,
        container.accounts,
        container.tenants,
        tenant_id=tenant,
        payments=payments,
        progress=progress,
        concurrency=concurrency,
        patience=patience,
    )


# -- progress --------------------------------------------------------------------------------


class RichProgress:
    """One rich bar per stage."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._tasks: dict[str, Any] = {}

    def stage(self, name: str, total: int) -> None:
        self._tasks[name] = self._bars.add_task(name, total=total)

    def advance(self, name: str, amount: int = 1) -> None:
        self._bars.advance(self._tasks[name], amount)


@contextlib.contextmanager
def _bars() -> Iterator[RichProgress]:
    columns = (
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console) as bars:
        yield RichProgress(bars)


class LoggedProgress:
    """Progress as log lines: each stage's start, every tenth of it, and its end."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._stages: dict[str, tuple[int, int]] = {}

    def stage(self, name: str, total: int) -> None:
        self._stages[name] = (0, total)
        self._log.info("demo: %s: 0/%d", name, total)

    def advance(self, name: str, amount: int = 1) -> None:
        done, total = self._stages[name]
        now = done + amount
        self._stages[name] = (now, total)
        step = max(1, total // 10)
        if now == total or now // step > done // step:
            self._log.info("demo: %s: %d/%d", name, now, total)


# -- the summary -----------------------------------------------------------------------------


def _print_report(report: DemoReport, plan: Plan) -> None:
    console = Console()
    summary = Table("", "", title=f"Demo seeded in tenant {report.tenant_id!r}", show_header=False)
    people = report.people
    summary.add_row(
        "accounts",
        f"{report.accounts} (1 admin, {len(people.sellers)} sellers, {len(people.buyers)} buyers)",
    )
    summary.add_row("products", f"{report.products} ({report.unpublished} unpublished later)")
    for status, count in sorted(report.orders_by_status.items()):
        summary.add_row(f"orders {status}", str(count))
    refused = report.outcomes.get(Fate.UNPUBLISHED, {}).get("refused", 0)
    summary.add_row("orders refused", f"{refused} (their product was unpublished)")
    paid_out = ", ".join(f"{amount / 100:,.2f} {c}" for c, amount in report.paid_out.items())
    summary.add_row("payouts", f"{report.payouts}" + (f" ({paid_out})" if paid_out else ""))
    summary.add_row("events appended", f"{report.events_appended:,}")
    summary.add_row("seconds", f"{report.seconds:.1f} ({report.order_seconds:.1f} for the orders)")
    summary.add_row("orders per second", f"{report.orders_per_second:.1f}")
    console.print(summary)

    fates = Table("fate", "planned", "outcome", title=f"Plan (seed {report.seed}) and outcome")
    for fate, planned in sorted(plan.fates().items()):
        outcome = ", ".join(f"{n} {s}" for s, n in sorted(report.outcomes.get(fate, {}).items()))
        fates.add_row(str(fate), str(planned), outcome)
    console.print(fates)
    for surprise in report.unexpected[:20]:
        err_console.print(f"[bold red]unexpected:[/] {surprise}", highlight=False)
    console.print(
        f"Log in with X-Tenant-ID: {report.tenant_id}, e.g. as buyer0001@{_domain()} or "
        f"{ADMIN_EMAIL}, password {PASSWORD!r}.",
        highlight=False,
    )


def _domain() -> str:
    return ADMIN_EMAIL.split("@", 1)[1]


# -- mercato serve --demo --------------------------------------------------------------------


def seed_on_first_start(
    api: FastAPI, *, spec: WorkloadSpec = SERVE_DEMO, tenant: str = DEFAULT_TENANT
) -> None:
    """Make the app seed `spec` in the background once it has started, if its event store is
    empty (the first start); progress and the outcome go to the `mercato.demo` log."""
    started = api.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with started(app) as state:
            container: Container = app.state.container
            seeding = asyncio.create_task(_seed_in_background(container, spec, tenant))
            try:
                yield state
            finally:
                await cancel_and_wait(seeding)

    api.router.lifespan_context = lifespan


async def _seed_in_background(container: Container, spec: WorkloadSpec, tenant: str) -> None:
    try:
        if await container.event_store.head_position() > 0:
            logger.info("demo: the event store already has events; no demo seeded")
            return
        async with contextlib.AsyncExitStack() as stack:
            if container.settings.profile is not Profile.EMBEDDED:
                # The embedded container runs the sagas in this process; here the demo needs
                # a runner of its own that leads, or else the workers' runner without scripts.
                try:
                    await stack.enter_async_context(leading_sagas(container.marketplace))
                except DemoError as error:
                    logger.warning("demo: %s Seeding without payment failures.", error)
                    spec = dataclasses.replace(spec, scripted_payments=False)
            logger.info(
                "demo: seeding tenant %r: %d sellers, %d buyers, %d orders (seed %d)",
                tenant,
                spec.sellers,
                spec.buyers,
                spec.orders,
                spec.seed,
            )
            driver = _driver(container, tenant, spec, LoggedProgress(logger))
            report = await driver.run(make_plan(spec))
        logger.info(
            "demo: seeded tenant %r in %.1f s: %s; %d events; log in as %s, password %r",
            tenant,
            report.seconds,
            ", ".join(f"{n} {s}" for s, n in sorted(report.orders_by_status.items())),
            report.events_appended,
            f"buyer0001@{_domain()}",
            PASSWORD,
        )
        for surprise in report.unexpected:
            logger.warning("demo: unexpected: %s", surprise)
    except Exception:
        logger.exception("demo: seeding failed")
