"""A test aggregate at class version 2, and its `Created` event as version 1 stored it.

Shared by the serializer's unit tests and the repository's tests of upcasting.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from application.ports.event_store import NewEvent


class Track(Aggregate):
    """Version 2: tracks gained a currency; version 1 prices were all in euros."""

    class_version = 2

    def __init__(self, title: str, price_cents: int, currency: str) -> None:
        self.title = title
        self.price_cents = price_cents
        self.currency = currency

    class Created(Aggregate.Created):
        class_version = 2
        title: str
        price_cents: int
        currency: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["currency"] = "EUR"

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["currency"] = "EUR"

    @event("Repriced")
    def reprice(self, price_cents: int) -> None:
        self.price_cents = price_cents


def v1_track_created() -> NewEvent:
    """A `Track.Created` as version 1 of the class stored it: no currency, no class_version."""
    payload = (
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-01-02T03:04:05+00:00"},'
        f'"originator_topic":"{get_topic(Track)}","title":"Loops","price_cents":900}}'
    )
    return NewEvent(type=get_topic(Track.Created), payload=payload.encode(), schema_version=1)
