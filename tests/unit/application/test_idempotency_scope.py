"""Idempotency keys are stored in the scope of their caller: account, anonymous, or system."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from application.commerce.commands import OrderLineRequest, PlaceOrder
from application.commerce.services import new_id
from application.context import Actor, CommandContext, scoped_idempotency_key

pytestmark = pytest.mark.unit

TENANT = "acme"
BUYER = Actor(account_id=UUID(int=1), tenant_id=TENANT, roles=frozenset({"buyer"}))
OTHER_BUYER = Actor(account_id=UUID(int=2), tenant_id=TENANT, roles=frozenset({"buyer"}))
ANONYMOUS = Actor(account_id=None, tenant_id=TENANT)
SYSTEM = Actor.system(TENANT)
HOSTILE_KEYS = [
    "k",
    "sys/PlaceOrder/k",
    "/sys/PlaceOrder/k",
    "anon/PlaceOrder/k",
    "u/00000000-0000-0000-0000-000000000002/PlaceOrder/k",
    "saga:5d0e6c1a-0000-0000-0000-000000000000:reserve:abc:0123456789abcdef",
    "../../sys/x",
    "PlaceOrder/sys/PlaceOrder/k",
]


def test_a_signed_in_callers_key_names_the_account_and_the_command_type() -> None:
    key = scoped_idempotency_key(BUYER, "PlaceOrder", "order-1")

    assert key == f"u/{BUYER.account_id}/PlaceOrder/order-1"


def test_an_anonymous_callers_key_and_a_system_key_have_scopes_of_their_own() -> None:
    assert scoped_idempotency_key(ANONYMOUS, "RegisterAccount", "r") == "anon/RegisterAccount/r"
    assert scoped_idempotency_key(SYSTEM, "ReserveStock", "saga:1") == "sys/ReserveStock/saga:1"


def test_an_account_with_the_system_role_is_still_scoped_to_its_account() -> None:
    impostor = Actor(account_id=UUID(int=3), tenant_id=TENANT, roles=frozenset({"system"}))

    assert scoped_idempotency_key(impostor, "PlaceOrder", "k").startswith(f"u/{UUID(int=3)}/")


@pytest.mark.parametrize("client_key", HOSTILE_KEYS)
@pytest.mark.parametrize("caller", [BUYER, OTHER_BUYER, ANONYMOUS], ids=["buyer", "other", "anon"])
def test_no_key_a_caller_sends_lands_in_another_scope(caller: Actor, client_key: str) -> None:
    scoped = scoped_idempotency_key(caller, "PlaceOrder", client_key)

    assert not scoped.startswith("sys/")
    other_scopes = {
        scoped_idempotency_key(actor, command, key)
        for actor in (BUYER, OTHER_BUYER, ANONYMOUS, SYSTEM)
        if actor != caller
        for command in ("PlaceOrder", "RequestPayout", "ReserveStock")
        for key in HOSTILE_KEYS
    }
    assert scoped not in other_scopes


def test_the_same_key_for_two_command_types_is_two_keys() -> None:
    assert scoped_idempotency_key(BUYER, "PlaceOrder", "k") != scoped_idempotency_key(
        BUYER, "RequestPayout", "k"
    )


def test_a_command_type_with_a_separator_is_refused() -> None:
    with pytest.raises(ValueError):
        scoped_idempotency_key(BUYER, "Place/Order", "k")


def test_the_stored_idempotency_of_a_command_is_the_scoped_key() -> None:
    command = PlaceOrder(lines=(OrderLineRequest(product_id=uuid4(), quantity=1),))
    idempotency = CommandContext(BUYER, "order-1").idempotency_for(command)

    assert idempotency is not None
    assert idempotency.key == f"u/{BUYER.account_id}/PlaceOrder/order-1"


def test_two_buyers_with_the_same_key_get_different_order_ids() -> None:
    first = new_id(CommandContext(BUYER, "order-1"), "order")
    second = new_id(CommandContext(OTHER_BUYER, "order-1"), "order")

    assert first != second
    assert first == new_id(CommandContext(BUYER, "order-1"), "order")  # a retry: the same id
