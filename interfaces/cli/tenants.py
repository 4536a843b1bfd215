"""`mercato tenants …`: tenants are provisioned by an operator, never by whoever registers.

`create` makes a tenant and, with `--admin-email`, its first admin (only a system actor may
grant the admin role, so the first admin cannot come through `POST /auth/register`);
`create-admin` adds an admin to a tenant that exists; `list` shows every tenant.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from application.accounts.commands import RegisterAccount
from application.accounts.errors import EmailAlreadyRegistered
from application.context import Actor, CommandContext
from application.tenants.commands import CreateTenant
from application.tenants.errors import TenantAlreadyExists, UnknownTenant
from domain import checks
from domain.account import DISPLAY_NAME_MAX_LENGTH, Role, normalise_email
from domain.errors import InvariantViolation
from interfaces.bootstrap import Container, bootstrap
from interfaces.cli.errors import err_console, refuse
from interfaces.cli.settings import settings_or_exit

T = TypeVar("T")

app = typer.Typer(
    help="Tenants: create them (with their first admin) and list them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TenantArgument = Annotated[
    str, typer.Argument(help="The tenant id clients send as X-Tenant-ID, e.g. `acme`.")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        help="Read the password from the first line of standard input (for scripts); "
        "otherwise it is asked for, twice, without echo."
    ),
]


@app.command("create")
def create(
    tenant: TenantArgument,
    admin_email: Annotated[
        str | None, typer.Option(help="Also register the tenant's first admin with this email.")
    ] = None,
    admin_name: Annotated[str, typer.Option(help="The admin's display name.")] = "Admin",
    admin_password_stdin: PasswordStdin = False,
) -> None:
    """Create a tenant, and with --admin-email its first admin; exits 1 if it exists."""
    command = _valid(lambda: CreateTenant(tenant_id=tenant))
    admin = None
    if admin_email is not None:
        admin = _admin_registration(admin_email, admin_name, admin_password_stdin)
    elif admin_password_stdin:
        refuse("--admin-password-stdin needs --admin-email")

    async def work(container: Container) -> None:
        position = await container.tenants.create(command)
        err_console.print(f"tenant {tenant!r} created (position {position})", highlight=False)
        if admin is not None:
            await _register_admin(container, tenant, admin)

    _run(work)


@app.command("create-admin")
def create_admin(
    tenant: TenantArgument,
    email: Annotated[str, typer.Option(help="The admin's email address.")],
    name: Annotated[str, typer.Option(help="The admin's display name.")] = "Admin",
    password_stdin: PasswordStdin = False,
) -> None:
    """Register an admin in a tenant that exists (the first one, or another)."""
    admin = _admin_registration(email, name, password_stdin)

    async def work(container: Container) -> None:
        await container.tenants.require(tenant)
        await _register_admin(container, tenant, admin)

    _run(work)


@app.command("list")
def list_tenants() -> None:
    """Every tenant, in the order they were created."""
    found = _run(lambda container: container.tenants.all())
    table = Table("tenant", "created at", "position", title=f"{len(found)} tenant(s)")
    for tenant in found:
        table.add_row(tenant.tenant_id, tenant.created_at.isoformat(), str(tenant.position))
    Console().print(table)


def _admin_registration(email: str, name: str, password_from_stdin: bool) -> RegisterAccount:
    """The admin's registration, checked before anything is written."""
    if password_from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("admin password", hide_input=True, confirmation_prompt=True)
    admin = _valid(
        lambda: RegisterAccount.model_validate(
            {"email": email, "password": password, "display_name": name, "roles": [Role.ADMIN]}
        )
    )
    try:  # what the domain checks too, before the tenant is created without its admin
        normalise_email(admin.email)
        checks.text(admin.display_name, field="display_name", max_length=DISPLAY_NAME_MAX_LENGTH)
    except InvariantViolation as error:
        refuse(str(error))
    return admin


async def _register_admin(container: Container, tenant: str, admin: RegisterAccount) -> None:
    system = CommandContext(actor=Actor.system(tenant))
    recorded = await container.accounts.register(admin, system)
    err_console.print(
        f"admin {admin.email} registered in tenant {tenant!r} (account {recorded.stream_id})",
        highlight=False,
    )


def _valid(build: Callable[[], T]) -> T:
    """The command `build` makes, or exit 2 with what is wrong, one line per problem."""
    try:
        return build()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        refuse(problems)


def _run(work: Callable[[Container], Awaitable[T]]) -> T:
    """Run `work` with a started container (no background workers); a refusal is one line."""
    settings = settings_or_exit()

    async def main() -> T:
        container = bootstrap(settings)
        await container.start(background=False)
        try:
            return await work(container)
        finally:
            await container.close()

    try:
        return asyncio.run(main())
    except (TenantAlreadyExists, EmailAlreadyRegistered, UnknownTenant) as error:
        refuse(str(error), code=1)
    except InvariantViolation as error:
        refuse(str(error))
