"""Administration of accounts."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from pydantic import Field

from application.accounts.commands import ChangeRoles
from domain.account import Role
from interfaces.http.dependencies import AccountsDep, AdminActor, CommandContextDep
from interfaces.http.schemas import CommandAccepted, RequestBody, error_responses

router = APIRouter(prefix="/accounts", tags=["accounts"])


class RolesRequest(RequestBody):
    roles: list[Role] = Field(min_length=1, max_length=len(Role))


@router.put(
    "/{account_id}/roles",
    response_model=CommandAccepted,
    responses=error_responses(401, 403, 404),
)
async def change_roles(
    account_id: UUID,
    body: RolesRequest,
    _admin: AdminActor,
    accounts: AccountsDep,
    context: CommandContextDep,
) -> CommandAccepted:
    """Replace an account's roles (admin only); the account's tokens stop working."""
    command = ChangeRoles(account_id=account_id, roles=frozenset(body.roles))
    recorded = await accounts.change_roles(command, context)
    return CommandAccepted(version=recorded.version, position=recorded.position)
