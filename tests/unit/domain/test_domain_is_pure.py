"""The domain stays free of frameworks and I/O, and its events stay plain data."""

from __future__ import annotations

import ast
import dataclasses
import enum
import sys
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate, DomainEvent

from domain.account import Account
from domain.escrow import Escrow
from domain.money import Money
from domain.order import Order, OrderLine
from domain.payment import Payment
from domain.product import Product
from domain.wallet import Wallet

pytestmark = pytest.mark.unit

DOMAIN = Path(__file__).resolve().parents[3] / "domain"
AGGREGATES: list[type[Aggregate]] = [Account, Product, Order, Escrow, Wallet, Payment]
EVENT_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top == "domain" or module == "eventsourcing.domain"


@pytest.mark.parametrize("path", sorted(DOMAIN.glob("*.py")), ids=lambda path: path.name)
def test_a_domain_module_imports_only_the_standard_library_and_eventsourcing_domain(
    path: Path,
) -> None:
    assert [module for module in imported_modules(path) if not allowed(module)] == []


def plain(hint: Any) -> bool:
    """Can a codec driven by type hints serialise a field of this type?"""
    if hint in (str, int, bool, UUID, datetime, type(None)) or hint in (Money, OrderLine):
        return True
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return plain(args[0])
    if origin in (types.UnionType, typing.Union):
        return all(plain(arg) for arg in args)
    return False


def event_fields(aggregate: type[Aggregate]) -> list[tuple[str, str, Any]]:
    fields: list[tuple[str, str, Any]] = []
    for name, value in vars(aggregate).items():
        if isinstance(value, type) and issubclass(value, DomainEvent):
            hints = typing.get_type_hints(value)
            fields.extend(
                (name, field.name, hints[field.name])
                for field in dataclasses.fields(value)
                if field.name not in EVENT_BASE_FIELDS
            )
    return fields


@pytest.mark.parametrize("aggregate", AGGREGATES, ids=lambda cls: cls.__name__)
def test_every_event_field_is_plain_data_a_codec_can_serialise(
    aggregate: type[Aggregate],
) -> None:
    fields = event_fields(aggregate)
    assert fields, f"{aggregate.__name__} defines no events"
    assert [(event, field, hint) for event, field, hint in fields if not plain(hint)] == []


@pytest.mark.parametrize("value_object", [Money, OrderLine])
def test_value_objects_in_events_are_frozen_dataclasses_of_plain_data(
    value_object: type[Any],
) -> None:
    assert value_object.__dataclass_params__.frozen
    hints = typing.get_type_hints(value_object)
    assert all(plain(hints[field.name]) for field in dataclasses.fields(value_object))
