"""Who may send a command: checked from the actor of the `CommandContext` (from the JWT).

Ownership (the product's creator, the order's buyer) is the domain's to check; these guards
check what the actor is: an account with a role, or the system itself.
"""

from __future__ import annotations

from uuid import UUID

from application.context import Actor
from domain.account import Role
from domain.errors import Forbidden, MissingRole

SYSTEM_ROLE = "system"


def is_system(actor: Actor) -> bool:
    return SYSTEM_ROLE in actor.roles


def require_account(actor: Actor) -> UUID:
    """The actor's account id; a system actor has none."""
    if actor.account_id is None:
        raise Forbidden("this command must be sent by an account")
    return actor.account_id


def require_role(actor: Actor, role: Role) -> UUID:
    """The actor's account id, if the account has `role`."""
    account_id = require_account(actor)
    if role not in actor.roles:
        raise MissingRole(account_id, role)
    return account_id


def require_system(actor: Actor) -> None:
    if not is_system(actor):
        raise Forbidden("only the system may send this command")
