from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from domain.account import Account, Role
from domain.errors import Forbidden, InvariantViolation, MissingRole
from tests.unit.domain.support import assert_replays_identically, recorded

pytestmark = pytest.mark.unit

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def register(**overrides: Any) -> Account:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "tenant_id": "acme",
        "email": "ada@example.org",
        "display_name": "Ada",
        "roles": [Role.BUYER],
        "password_hash": HASH,
    }
    return Account.register(**(fields | overrides))


def test_registering_records_the_account_with_a_lower_cased_email() -> None:
    account = register(email="  Ada.Lovelace@Example.ORG ", display_name=" Ada ")

    assert recorded(account) == ["Registered"]
    assert account.email == "ada.lovelace@example.org"
    assert account.display_name == "Ada"
    assert account.tenant_id == "acme"
    assert account.password_hash == HASH
    assert account.token_version == 1


def test_roles_are_recorded_once_each_in_a_stable_order() -> None:
    account = register(roles=["creator", Role.BUYER, "creator"])

    [registered] = account.collect_events()
    assert registered.roles == (Role.BUYER, Role.CREATOR)  # type: ignore[attr-defined]
    assert account.roles == {Role.BUYER, Role.CREATOR}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-address"),
        ("email", "ada@localhost"),
        ("email", "ada@@example.org"),
        ("email", "ada lovelace@example.org"),
        ("email", "@example.org"),
        ("email", "a" * 250 + "@example.org"),
        ("display_name", "   "),
        ("display_name", "x" * 101),
        ("roles", []),
        ("roles", ["superuser"]),
        ("roles", "buyer"),
        ("password_hash", ""),
        ("tenant_id", ""),
    ],
)
def test_registering_refuses_invalid_details_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvariantViolation) as raised:
        register(**{field: value})
    assert raised.value.field == field


def test_changing_roles_revokes_every_token() -> None:
    account = register()
    account.collect_events()

    account.change_roles([Role.BUYER, Role.CREATOR])

    assert recorded(account) == ["RolesChanged"]
    assert account.roles == {Role.BUYER, Role.CREATOR}
    assert account.token_version == 2


def test_changing_to_the_same_roles_records_nothing() -> None:
    account = register(roles=[Role.BUYER, Role.CREATOR])
    account.collect_events()

    account.change_roles([Role.CREATOR, Role.BUYER])

    assert recorded(account) == []
    assert account.token_version == 1


def test_an_account_always_keeps_at_least_one_role() -> None:
    account = register()
    with pytest.raises(InvariantViolation, match="at least one role"):
        account.change_roles([])


def test_revoking_all_sessions_bumps_the_token_version_every_time() -> None:
    account = register()
    account.collect_events()

    account.revoke_all_sessions()
    account.revoke_all_sessions()

    assert recorded(account) == ["SessionsRevoked", "SessionsRevoked"]
    assert account.token_version == 3


def test_a_new_password_hash_is_stored_without_revoking_sessions() -> None:
    account = register()
    account.collect_events()

    account.change_password_hash("$argon2id$v=19$new")

    assert recorded(account) == ["PasswordHashChanged"]
    assert account.password_hash == "$argon2id$v=19$new"
    assert account.token_version == 1


def test_the_same_password_hash_again_records_nothing() -> None:
    account = register()
    account.collect_events()

    account.change_password_hash(HASH)

    assert recorded(account) == []


def test_an_account_without_a_role_is_forbidden_what_needs_it() -> None:
    account = register(roles=[Role.BUYER])

    account.ensure_has_role(Role.BUYER)
    with pytest.raises(MissingRole, match="does not have the admin role") as raised:
        account.ensure_has_role(Role.ADMIN)
    assert isinstance(raised.value, Forbidden)


def test_replaying_an_accounts_events_rebuilds_the_same_account() -> None:
    account = register()
    account.change_roles([Role.ADMIN])
    account.revoke_all_sessions()
    account.change_password_hash("$argon2id$v=19$other")

    assert_replays_identically(account, account.collect_events())
