"""How the domain's value types are written into event payloads and snapshots, and read back.

eventsourcing's `JSONTranscoder` only asks a `Transcoding` about objects that `json` cannot
encode by itself. Tuples, frozensets' elements, `StrEnum` members (they are `str`s) and dicts
keyed by UUIDs never reach it: `json` would write them as lists, plain strings, or fail. Read
back, a `ProductKind` would come back as `"track"` and a tuple as a list, so a reloaded
aggregate would differ from the one that was saved. `TaggingJSONTranscoder` therefore walks the
object first and tags every value that has a registered transcoding, whatever its type.

Every tagged value is `{"_type_": name, "_data_": ...}`; names are part of the stored format:
never rename one, add a new transcoding instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from enum import Enum
from typing import Any

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoding,
    UUIDAsHex,
)

from application.saga_statuses import CheckoutStatus, EscrowSagaStatus
from domain.account import Role
from domain.dispute import Resolution
from domain.escrow import EscrowStatus, Settlement
from domain.money import Money
from domain.order import OrderLine, OrderStatus
from domain.payment import PaymentStatus
from domain.product import ProductKind, Reservation, ReservationStatus
from domain.wallet import CreditReason, Movement, MovementKind, WalletKind

DOMAIN_ENUMS: tuple[type[Enum], ...] = (
    ProductKind,
    ReservationStatus,
    OrderStatus,
    Resolution,
    EscrowStatus,
    PaymentStatus,
    WalletKind,
    CreditReason,
    MovementKind,
    Role,
    CheckoutStatus,
    EscrowSagaStatus,
)
"""Every enum stored in an event or a snapshot (the sagas' statuses included)."""

DOMAIN_VALUE_OBJECTS: tuple[type[Any], ...] = (Money, OrderLine, Reservation, Settlement, Movement)
"""Every frozen dataclass stored in an event or a snapshot."""


class TupleAsList(Transcoding):
    type = tuple
    name = "tuple"

    def encode(self, obj: tuple[Any, ...]) -> list[Any]:
        return list(obj)

    def decode(self, data: list[Any]) -> tuple[Any, ...]:
        return tuple(data)


class FrozensetAsList(Transcoding):
    type = frozenset
    name = "frozenset"

    def encode(self, obj: frozenset[Any]) -> list[Any]:
        # Sorted so that equal sets are always written alike.
        return sorted(obj, key=repr)

    def decode(self, data: list[Any]) -> frozenset[Any]:
        return frozenset(data)


class DictAsPairs(Transcoding):
    """A dict whose keys are not all strings (JSON objects only have string keys)."""

    type = dict
    name = "dict_pairs"

    def encode(self, obj: dict[Any, Any]) -> list[list[Any]]:
        return [[key, value] for key, value in obj.items()]

    def decode(self, data: list[list[Any]]) -> dict[Any, Any]:
        return {key: value for key, value in data}


class EnumAsValue(Transcoding):
    def __init__(self, enum_type: type[Enum]) -> None:
        self.type = enum_type
        self.name = f"enum:{enum_type.__name__}"

    def encode(self, obj: Enum) -> Any:
        return obj.value

    def decode(self, data: Any) -> Enum:
        return self.type(data)  # type: ignore[no-any-return]


class DataclassAsDict(Transcoding):
    """A frozen dataclass as its fields; decoding calls the class, so its checks run again."""

    def __init__(self, dataclass_type: type[Any]) -> None:
        if not dataclasses.is_dataclass(dataclass_type):
            raise TypeError(f"{dataclass_type.__name__} is not a dataclass")
        self.type = dataclass_type
        self.name = f"value:{dataclass_type.__name__}"

    def encode(self, obj: Any) -> dict[str, Any]:
        return {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


class TaggingJSONTranscoder(JSONTranscoder):
    """A `JSONTranscoder` that tags registered types before `json` sees them (module docstring)."""

    def register(self, transcoding: Transcoding) -> None:
        earlier = self.names.get(transcoding.name)
        if earlier is not None and earlier.type is not transcoding.type:
            raise ValueError(f"two transcodings are named {transcoding.name!r}")
        super().register(transcoding)

    def encode(self, obj: Any) -> bytes:
        return super().encode(self._tagged(obj))

    def _tagged(self, obj: Any) -> Any:
        if type(obj) is dict:
            if all(type(key) is str for key in obj):
                return {key: self._tagged(value) for key, value in obj.items()}
            return self._tag(self.names[DictAsPairs.name], obj)
        if type(obj) is list:
            return [self._tagged(item) for item in obj]
        transcoding = self._transcoding_for(type(obj))
        if transcoding is None:
            return obj  # json's own types; anything else fails in JSONTranscoder, loudly
        return self._tag(transcoding, obj)

    def _transcoding_for(self, value_type: type) -> Transcoding | None:
        # By the class's ancestry, so a subclass is written as its registered base: asyncpg
        # hands out its own `UUID` subclass, which must be stored as a plain UUID.
        for cls in value_type.__mro__[:-1]:
            transcoding = self.types.get(cls)
            if transcoding is not None:
                return transcoding
        return None

    def _tag(self, transcoding: Transcoding, obj: Any) -> dict[str, Any]:
        return {"_type_": transcoding.name, "_data_": self._tagged(transcoding.encode(obj))}


def domain_transcodings() -> list[Transcoding]:
    """The transcodings of every type Mercato stores, besides eventsourcing's defaults."""
    return [
        TupleAsList(),
        FrozensetAsList(),
        DictAsPairs(),
        *(EnumAsValue(enum_type) for enum_type in DOMAIN_ENUMS),
        *(DataclassAsDict(value_type) for value_type in DOMAIN_VALUE_OBJECTS),
    ]


def domain_transcoder(extra: Iterable[Transcoding] = ()) -> TaggingJSONTranscoder:
    transcoder = TaggingJSONTranscoder()
    for transcoding in (
        UUIDAsHex(),
        DecimalAsStr(),
        DatetimeAsISO(),
        *domain_transcodings(),
        *extra,
    ):
        transcoder.register(transcoding)
    return transcoder
