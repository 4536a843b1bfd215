"""Products: what creators sell, with per-order stock reservations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import checks
from domain.errors import (
    CurrencyMismatchError,
    IdempotencyMismatch,
    IllegalTransition,
    InsufficientStock,
    InvariantViolation,
    NotOwner,
)
from domain.money import Money

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 5000
MAX_TAGS = 20
TAG_MAX_LENGTH = 40


class ProductKind(StrEnum):
    TRACK = "track"
    SAMPLE_PACK = "sample_pack"
    LICENCE = "licence"
    OTHER = "other"


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    RELEASED = "released"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class Reservation:
    quantity: int
    status: ReservationStatus


def normalise_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Trimmed, lower-cased, deduplicated (first occurrence kept), at most `MAX_TAGS`."""
    if isinstance(tags, str):
        raise InvariantViolation("tags must be a collection of tags, not one string", field="tags")
    unique: dict[str, None] = {}
    for tag in tags:
        unique[checks.text(tag, field="tags", max_length=TAG_MAX_LENGTH).lower()] = None
    if len(unique) > MAX_TAGS:
        raise InvariantViolation(
            f"a product has at most {MAX_TAGS} tags, got {len(unique)}", field="tags"
        )
    return tuple(unique)


def _title(title: str) -> str:
    return checks.text(title, field="title", max_length=TITLE_MAX_LENGTH)


def _description(description: str) -> str:
    return checks.text(
        description, field="description", max_length=DESCRIPTION_MAX_LENGTH, allow_empty=True
    )


class Product(Aggregate):
    """A creator's digital product.

    Create with `Product.create` (it validates and normalises). A new product is unpublished;
    only a published product can be reserved. `stock` is `None` for unlimited, else the units
    left to sell; `available` is `stock` minus the units reserved by orders in flight.

    Idempotent choices (a repeat records nothing): publishing a published product,
    unpublishing an unpublished one, setting the price or details they already have,
    reserving again for the same order and quantity, releasing a released (or never made)
    reservation, committing a committed one.

    Reservations are remembered per order after they end, so that a late or repeated command
    for that order is recognised rather than treated as new.
    """

    @classmethod
    def create(
        cls,
        *,
        id: UUID,
        tenant_id: str,
        creator_id: UUID,
        title: str,
        description: str,
        tags: Iterable[str],
        kind: ProductKind | str,
        price: Money,
        stock: int | None,
    ) -> Product:
        try:
            product_kind = ProductKind(kind)
        except ValueError:
            known = ", ".join(ProductKind)
            raise InvariantViolation(
                f"unknown kind {kind!r}; kinds are {known}", field="kind"
            ) from None
        return cls(
            id=id,
            tenant_id=checks.tenant_id(tenant_id),
            creator_id=creator_id,
            title=_title(title),
            description=_description(description),
            tags=normalise_tags(tags),
            kind=product_kind,
            price=checks.positive(price, field="price"),
            stock=None if stock is None else checks.whole_number(stock, field="stock", minimum=0),
        )

    @event("Created")
    def __init__(
        self,
        id: UUID,
        tenant_id: str,
        creator_id: UUID,
        title: str,
        description: str,
        tags: tuple[str, ...],
        kind: ProductKind,
        price: Money,
        stock: int | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.creator_id = creator_id
        self.title = title
        self.description = description
        self.tags = tags
        self.kind = kind
        self.price = price
        self.stock = stock
        self.published = False
        self.sold = 0
        self.reservations: dict[UUID, Reservation] = {}

    @property
    def reserved(self) -> int:
        return sum(
            reservation.quantity
            for reservation in self.reservations.values()
            if reservation.status is ReservationStatus.RESERVED
        )

    @property
    def available(self) -> int | None:
        """Units that can still be reserved; `None` when stock is unlimited."""
        return None if self.stock is None else self.stock - self.reserved

    def ensure_owned_by(self, account_id: UUID) -> None:
        """Raise `NotOwner` unless `account_id` created this product (records nothing)."""
        if account_id != self.creator_id:
            raise NotOwner("Product", self.id, account_id)

    def update_details(self, *, title: str, description: str, tags: Iterable[str]) -> None:
        new_title = _title(title)
        new_description = _description(description)
        new_tags = normalise_tags(tags)
        if (new_title, new_description, new_tags) == (self.title, self.description, self.tags):
            return
        self._update_details(title=new_title, description=new_description, tags=new_tags)

    @event("DetailsUpdated")
    def _update_details(self, title: str, description: str, tags: tuple[str, ...]) -> None:
        self.title = title
        self.description = description
        self.tags = tags

    def publish(self) -> None:
        if not self.published:
            self._publish()

    @event("Published")
    def _publish(self) -> None:
        self.published = True

    def unpublish(self) -> None:
        """Stop new reservations; reservations already made can still be committed."""
        if self.published:
            self._unpublish()

    @event("Unpublished")
    def _unpublish(self) -> None:
        self.published = False

    def change_price(self, price: Money) -> None:
        """A new price for future orders (orders keep the price they were placed at).

        The currency is fixed when the product is created.
        """
        checks.positive(price, field="price")
        if price.currency != self.price.currency:
            raise CurrencyMismatchError(self.price.currency, price.currency, field="price")
        if price != self.price:
            self._change_price(price=price)

    @event("PriceChanged")
    def _change_price(self, price: Money) -> None:
        self.price = price

    def reserve(self, order_id: UUID, quantity: int) -> None:
        """Hold `quantity` units for `order_id` until the order commits or releases them.

        A repeat for the same order and quantity records nothing, even if the product has
        since been unpublished or sold out (the units are already held or sold). A repeat with
        another quantity is `IdempotencyMismatch`; a reservation after the order's release is
        `IllegalTransition` (the order is over).
        """
        checks.whole_number(quantity, field="quantity", minimum=1)
        existing = self.reservations.get(order_id)
        if existing is not None:
            if existing.status is ReservationStatus.RELEASED:
                raise IllegalTransition(
                    "Product",
                    self.id,
                    f"the reservation for order {order_id} is released",
                    "reserve",
                )
            if existing.quantity != quantity:
                raise IdempotencyMismatch(
                    "Product",
                    self.id,
                    f"a reservation for order {order_id}",
                    f"{existing.quantity} unit(s), not {quantity}",
                )
            return
        if not self.published:
            raise IllegalTransition("Product", self.id, "unpublished", "reserve")
        available = self.available
        if available is not None and quantity > available:
            raise InsufficientStock(self.id, requested=quantity, available=available)
        self._reserve(order_id=order_id, quantity=quantity)

    @event("StockReserved")
    def _reserve(self, order_id: UUID, quantity: int) -> None:
        self.reservations[order_id] = Reservation(quantity, ReservationStatus.RESERVED)

    def release(self, order_id: UUID) -> int:
        """Give back the units held for `order_id`; returns how many (0 if nothing was held).

        Releasing what was never reserved, or already released, records nothing: compensation
        may release every line of an order without knowing which reservations succeeded.
        Releasing a committed (sold) reservation is `IllegalTransition`.
        """
        existing = self.reservations.get(order_id)
        if existing is None or existing.status is ReservationStatus.RELEASED:
            return 0
        if existing.status is ReservationStatus.COMMITTED:
            raise IllegalTransition(
                "Product", self.id, f"the reservation for order {order_id} is committed", "release"
            )
        self._release(order_id=order_id, quantity=existing.quantity)
        return existing.quantity

    @event("StockReleased")
    def _release(self, order_id: UUID, quantity: int) -> None:
        self.reservations[order_id] = Reservation(quantity, ReservationStatus.RELEASED)

    def commit(self, order_id: UUID) -> None:
        """Turn the reservation for `order_id` into a sale; a repeat records nothing."""
        existing = self.reservations.get(order_id)
        if existing is not None and existing.status is ReservationStatus.COMMITTED:
            return
        if existing is None or existing.status is ReservationStatus.RELEASED:
            state = "no reservation" if existing is None else "a released reservation"
            raise IllegalTransition("Product", self.id, f"order {order_id} has {state}", "commit")
        self._commit(order_id=order_id, quantity=existing.quantity)

    @event("StockCommitted")
    def _commit(self, order_id: UUID, quantity: int) -> None:
        self.reservations[order_id] = Reservation(quantity, ReservationStatus.COMMITTED)
        self.sold += quantity
        if self.stock is not None:
            self.stock -= quantity
