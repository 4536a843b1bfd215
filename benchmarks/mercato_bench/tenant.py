"""A tenant ready for load: an admin, a seller with many published products in (practically)
unlimited stock, and buyers, each with a bearer token.

It is prepared through the real command side — `Accounts` and the `Marketplace` of a
`Container` — in a process of its own (`python -m mercato_bench.tenant`, a `TenantSpec` as
JSON on stdin, the `PreparedTenant` as JSON on stdout), started with the scenario's settings
*before* the API: so the tokens are signed with the very settings the API verifies them with,
no SQLite file has two writers, and the chdb folder stays free for the API (the container is
started with `background=False`, which opens no read-model sink). The API's projections then
catch up with these events like any other.

Only a system actor may grant the admin role, which is why this is not done over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from application.accounts.commands import Login, RegisterAccount
from application.commerce.commands import MAX_STOCK, CreateProduct, Price, PublishProduct
from application.context import Actor, CommandContext
from domain.account import Role
from domain.product import ProductKind
from mercato_bench.processes import BenchEnvironment

T = TypeVar("T")

PASSWORD = "mercato-bench-password"
TOKEN_LIFETIME_SECONDS = 4 * 3600
"""Access tokens outlive the longest run (the default is 15 minutes)."""


@dataclass(frozen=True)
class TenantSpec:
    tenant: str = "bench"
    buyers: int = 50
    products: int = 200
    stock: int = MAX_STOCK
    price: int = 1_000
    currency: str = "EUR"
    concurrency: int = 16
    """Commands in flight while preparing."""


@dataclass(frozen=True)
class PreparedTenant:
    tenant: str
    admin_id: str
    admin_token: str
    seller_id: str
    seller_token: str
    product_ids: list[str]
    buyer_ids: list[str]
    buyer_tokens: list[str] = field(repr=False)
    head_position: int
    """The event store's head once everything was prepared."""
    seconds: float

    def order_bodies(self, quantity: int = 1) -> list[dict[str, Any]]:
        """One `POST /orders` body per product: one line, `quantity` units."""
        return [
            {"lines": [{"product_id": product_id, "quantity": quantity}]}
            for product_id in self.product_ids
        ]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreparedTenant:
        return cls(**data)

    def summary(self) -> dict[str, Any]:
        """What a result records (no tokens)."""
        return {
            "tenant": self.tenant,
            "buyers": len(self.buyer_ids),
            "products": len(self.product_ids),
            "events_position": self.head_position,
            "prepared_in_seconds": round(self.seconds, 2),
        }


async def prepare(container: Any, spec: TenantSpec) -> PreparedTenant:
    """Provision the tenant (unless it exists), register, grant, list and log in, through a
    started `interfaces.bootstrap.Container`."""
    started = time.monotonic()
    accounts = container.accounts
    marketplace = container.marketplace
    system = CommandContext(actor=Actor.system(spec.tenant))
    slots = asyncio.Semaphore(spec.concurrency)

    async def bounded(work: Awaitable[T]) -> T:
        async with slots:
            return await work

    async def register(email: str, role: Role) -> str:
        command = RegisterAccount(
            email=email,
            password=PASSWORD,
            display_name=email.split("@")[0],
            roles=frozenset({role}),
        )
        recorded = await accounts.register(command, system)
        return str(recorded.stream_id)

    async def token(email: str) -> str:
        anonymous = CommandContext(actor=Actor(account_id=None, tenant_id=spec.tenant))
        tokens = await accounts.login(Login(email=email, password=PASSWORD), anonymous)
        return str(tokens.access.value)

    async def gathered(works: Iterable[Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*(bounded(work) for work in works)))

    admin_email = f"admin@{spec.tenant}.bench.test"
    seller_email = f"seller@{spec.tenant}.bench.test"
    buyer_emails = [f"buyer{index:05d}@{spec.tenant}.bench.test" for index in range(spec.buyers)]
    await container.tenants.ensure(spec.tenant)
    admin_id = await register(admin_email, Role.ADMIN)
    seller_id = await register(seller_email, Role.CREATOR)
    buyer_ids = await gathered(register(email, Role.BUYER) for email in buyer_emails)

    seller = CommandContext(
        actor=Actor(
            account_id=uuid.UUID(seller_id),
            tenant_id=spec.tenant,
            roles=frozenset({Role.CREATOR}),
        )
    )

    async def listed(index: int) -> str:
        product_id = uuid.uuid4()
        create = CreateProduct(
            product_id=product_id,
            title=f"Bench track {index:05d}",
            description="A track listed for load tests",
            tags=("bench",),
            kind=ProductKind.TRACK,
            price=Price(amount=spec.price, currency=spec.currency),
            stock=spec.stock,
        )
        await marketplace.dispatch(create, seller)
        await marketplace.dispatch(PublishProduct(product_id=product_id), seller)
        return str(product_id)

    product_ids = await gathered(listed(index) for index in range(spec.products))
    admin_token = await token(admin_email)
    seller_token = await token(seller_email)
    buyer_tokens = await gathered(token(email) for email in buyer_emails)
    return PreparedTenant(
        tenant=spec.tenant,
        admin_id=admin_id,
        admin_token=admin_token,
        seller_id=seller_id,
        seller_token=seller_token,
        product_ids=product_ids,
        buyer_ids=buyer_ids,
        buyer_tokens=buyer_tokens,
        head_position=await container.event_store.head_position(),
        seconds=time.monotonic() - started,
    )


async def _prepare_here(spec: TenantSpec) -> PreparedTenant:
    from infrastructure.settings import load_settings
    from interfaces.bootstrap import bootstrap

    container = bootstrap(load_settings())
    await container.start(background=False)
    try:
        return await prepare(container, spec)
    finally:
        await container.close()


def main() -> int:
    """`python -m mercato_bench.tenant`: a `TenantSpec` on stdin, the result on stdout."""
    spec = TenantSpec(**json.loads(sys.stdin.read() or "{}"))
    prepared = asyncio.run(_prepare_here(spec))
    sys.stdout.write(json.dumps(prepared.as_json()))
    return 0


async def prepare_tenant(
    environment: BenchEnvironment, spec: TenantSpec, *, within: float = 300.0
) -> PreparedTenant:
    """Prepare the tenant in a process of its own with the scenario's settings (run it before
    the API starts: see the module's docstring)."""
    environment.run_dir.mkdir(parents=True, exist_ok=True)
    log = environment.run_dir / "tenant.log"
    with log.open("ab") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "mercato_bench.tenant"),
            env=environment.environ(ACCESS_TOKEN_TTL=str(TOKEN_LIFETIME_SECONDS)),
            cwd=environment.run_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
        try:
            output, _ = await asyncio.wait_for(
                process.communicate(json.dumps(asdict(spec)).encode()), within
            )
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"preparing the tenant failed (exit {process.returncode}):\n{tail}")
    return PreparedTenant.from_json(json.loads(output))


__all__ = ["PreparedTenant", "TenantSpec", "prepare", "prepare_tenant"]


if __name__ == "__main__":
    raise SystemExit(main())
