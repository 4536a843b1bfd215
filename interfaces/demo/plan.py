"""The demo's plan: who sells what, who buys what, and how each order ends, from a seed.

`make_plan(spec)` draws everything from one `random.Random(spec.seed)`, so the same spec gives
the same plan, down to each order's lines and fate. The plan speaks in indices; the driver
derives the ids (`demo_id`) with the tenant, so two tenants seeded alike never share a stream.

How each order ends is exact, not left to races between concurrent orders:

- The first wave holds every order but the sold-out ones. Orders that release their stock
  (payment failures, buyer cancellations) only buy unlimited products, and a limited
  product's stock covers every first-wave unit ordered of it plus a little slack: no
  first-wave order can find a product sold out, whatever the order in which they reserve.
- After the first wave has settled, some unlimited products are unpublished, and the second
  wave places the sold-out orders (each asks for more units than the slack left) and tries
  orders of the unpublished products (refused when placed: those are not orders).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID, uuid5

from domain.currencies import ISO_4217_CODES
from domain.ids import MERCATO_NAMESPACE
from domain.order import MAX_QUANTITY, OrderStatus
from domain.product import ProductKind
from interfaces.demo import catalogue

EMAIL_DOMAIN = "demo.mercato.test"
"""`.test` is reserved (RFC 2606): no mail to a demo account can reach anyone."""
PASSWORD = "mercato-demo-password"
"""Every demo account's password, published in the README so a newcomer can log in."""
ADMIN_EMAIL = f"admin@{EMAIL_DOMAIN}"
SMALL_WORKLOAD = 20
"""From this many orders, a plan has at least one order of every fate its mix asks for."""
LINE_COUNTS = ((1, 80), (2, 15), (3, 5))
"""How many lines an order has (all from one seller), with weights."""
PAYOUT_PERCENTS = ((0, 2), (25, 1), (50, 1), (100, 1))
"""Which share of their balance sellers withdraw once the orders are settled, with weights."""
MAX_SLACK = 3
"""A limited product's stock exceeds what the first wave orders of it by 0 to this many units."""


class Fate(StrEnum):
    """How a planned order ends, and who makes it end so."""

    COMPLETED = "completed"
    """Paid, delivered, and the buyer confirms receipt: the seller is paid."""
    PAYMENT_FAILED = "payment_failed"
    """The payment provider declines; the checkout saga cancels the order."""
    BUYER_CANCELLED = "buyer_cancelled"
    """The buyer never pays and cancels the order while the payment is requested."""
    DISPUTE_RELEASED = "dispute_released"
    """Delivered, disputed by the buyer; an admin releases the money to the seller."""
    DISPUTE_REFUNDED = "dispute_refunded"
    """Delivered, disputed by the buyer; an admin refunds the buyer."""
    SOLD_OUT = "sold_out"
    """Asks for more units than are left; the checkout saga cancels it."""
    UNPUBLISHED = "unpublished"
    """Tries to buy a product its creator unpublished: refused when placed (no order)."""


EXPECTED_STATUS: dict[Fate, OrderStatus | None] = {
    Fate.COMPLETED: OrderStatus.COMPLETED,
    Fate.PAYMENT_FAILED: OrderStatus.CANCELLED,
    Fate.BUYER_CANCELLED: OrderStatus.CANCELLED,
    Fate.DISPUTE_RELEASED: OrderStatus.COMPLETED,
    Fate.DISPUTE_REFUNDED: OrderStatus.REFUNDED,
    Fate.SOLD_OUT: OrderStatus.CANCELLED,
    Fate.UNPUBLISHED: None,
}
"""The status each fate leaves its order in (`None`: the order is never placed)."""

COMMITS_STOCK = frozenset({Fate.COMPLETED, Fate.DISPUTE_RELEASED, Fate.DISPUTE_REFUNDED})
"""Fates whose order is paid, so its units are sold (a refund does not return them)."""
NEEDS_SCRIPTED_PAYMENT = frozenset({Fate.PAYMENT_FAILED, Fate.BUYER_CANCELLED})
"""Fates that need the payment provider told what to do with the order's intent."""


@dataclass(frozen=True)
class Mix:
    """Shares of the orders (and of the products) that take each road; the rest complete."""

    payment_failures: float = 0.04
    buyer_cancellations: float = 0.03
    disputes_released: float = 0.015
    disputes_refunded: float = 0.015
    sold_out: float = 0.02
    unpublished_attempts: float = 0.01
    """Orders tried on unpublished products, as a share of the orders placed."""
    limited_products: float = 0.2
    unpublished_products: float = 0.1

    def __post_init__(self) -> None:
        shares = vars(self)
        wrong = [name for name, share in shares.items() if not 0 <= share <= 1]
        if wrong:
            raise ValueError(f"shares must be between 0 and 1: {', '.join(wrong)}")
        placed = (
            self.payment_failures
            + self.buyer_cancellations
            + self.disputes_released
            + self.disputes_refunded
            + self.sold_out
        )
        if placed > 0.9:
            raise ValueError("at most 90 % of the orders may end otherwise than completed")


@dataclass(frozen=True)
class WorkloadSpec:
    sellers: int
    buyers: int
    orders: int
    """Orders placed (both waves); the refused attempts come on top."""
    seed: int = 0
    products_per_seller: int = 6
    currencies: tuple[str, ...] = ("EUR",)
    """Each seller sells in one of these (the first is the most common)."""
    scripted_payments: bool = True
    """Whether the payment provider can be told to fail or stall an order's payment. Without
    it there are no payment failures and no buyer cancellations."""
    mix: Mix = field(default_factory=Mix)

    def __post_init__(self) -> None:
        if self.sellers < 1 or self.buyers < 1:
            raise ValueError("a demo needs at least one seller and one buyer")
        if self.orders < 0:
            raise ValueError("the number of orders cannot be negative")
        if self.products_per_seller < 1:
            raise ValueError("every seller needs at least one product")
        if not self.currencies or not all(c in ISO_4217_CODES for c in self.currencies):
            raise ValueError("currencies are ISO 4217 codes such as EUR")


@dataclass(frozen=True)
class PlannedSeller:
    index: int
    email: str
    display_name: str
    currency: str
    payout_percent: int


@dataclass(frozen=True)
class PlannedBuyer:
    index: int
    email: str
    display_name: str


@dataclass(frozen=True)
class PlannedProduct:
    index: int
    seller: int
    kind: ProductKind
    title: str
    description: str
    tags: tuple[str, ...]
    price: int
    currency: str
    stock: int | None
    """`None`: unlimited."""
    unpublished_after_first_wave: bool


@dataclass(frozen=True)
class PlannedLine:
    product: int
    quantity: int


@dataclass(frozen=True)
class PlannedOrder:
    index: int
    buyer: int
    seller: int
    lines: tuple[PlannedLine, ...]
    fate: Fate
    reason: str | None = None
    """Why the payment fails, the buyer cancels or disputes (for those fates)."""

    @property
    def first_wave(self) -> bool:
        return self.fate not in (Fate.SOLD_OUT, Fate.UNPUBLISHED)

    @property
    def expected_status(self) -> OrderStatus | None:
        return EXPECTED_STATUS[self.fate]


@dataclass(frozen=True)
class Plan:
    spec: WorkloadSpec
    sellers: tuple[PlannedSeller, ...]
    buyers: tuple[PlannedBuyer, ...]
    products: tuple[PlannedProduct, ...]
    orders: tuple[PlannedOrder, ...]
    """Every order, in index order: the first wave, then the sold-out orders, then the
    attempts on unpublished products."""

    @property
    def first_wave(self) -> tuple[PlannedOrder, ...]:
        return tuple(order for order in self.orders if order.first_wave)

    @property
    def second_wave(self) -> tuple[PlannedOrder, ...]:
        return tuple(order for order in self.orders if not order.first_wave)

    @property
    def placed(self) -> tuple[PlannedOrder, ...]:
        """The orders that are placed (all but the refused attempts)."""
        return tuple(order for order in self.orders if order.fate is not Fate.UNPUBLISHED)

    def fates(self) -> Counter[Fate]:
        return Counter(order.fate for order in self.orders)

    def expected_statuses(self) -> Counter[OrderStatus]:
        """How many placed orders end in each status."""
        return Counter(
            status for order in self.orders if (status := order.expected_status) is not None
        )


def demo_id(tenant_id: str, seed: int, kind: str, index: int) -> UUID:
    """The id of the demo's `index`th `kind` (product, order, payout) in a tenant."""
    return uuid5(MERCATO_NAMESPACE, f"demo:{tenant_id}:{seed}:{kind}:{index}")


def make_plan(spec: WorkloadSpec) -> Plan:
    rng = random.Random(spec.seed)
    sellers = _sellers(rng, spec)
    buyers = _buyers(rng, spec)
    listings = [
        (seller, catalogue.listing(rng)) for seller in sellers for _ in _products_of(rng, spec)
    ]
    limited = _limited(rng, len(listings), spec.mix.limited_products)
    unpublished = _unpublished(rng, len(listings), limited, spec.mix.unpublished_products)
    draw = _Draw(rng, [seller.index for seller, _ in listings], limited, len(buyers))

    counts = _fate_counts(spec, sold_out_possible=bool(limited))
    first_fates = [
        fate for fate, count in counts.items() if fate is not Fate.SOLD_OUT for _ in range(count)
    ]
    completed = spec.orders - counts[Fate.SOLD_OUT] - len(first_fates)
    if completed < 0:
        raise ValueError(f"the mix asks for more than {spec.orders} orders")
    first_fates += [Fate.COMPLETED] * completed
    rng.shuffle(first_fates)
    orders = [draw.order(index, fate) for index, fate in enumerate(first_fates)]

    # Enough stock for every first-wave unit at once, plus the slack the sold-out orders exceed.
    ordered = Counter[int]()
    for order in orders:
        for line in order.lines:
            ordered[line.product] += line.quantity
    slack = {product: rng.randrange(MAX_SLACK + 1) for product in sorted(limited)}
    products = tuple(
        PlannedProduct(
            index=index,
            seller=seller.index,
            kind=item.kind,
            title=item.title,
            description=item.description,
            tags=item.tags,
            price=item.price,
            currency=seller.currency,
            stock=ordered[index] + slack[index] if index in limited else None,
            unpublished_after_first_wave=index in unpublished,
        )
        for index, (seller, item) in enumerate(listings)
    )

    def more_than_left(product: int) -> int:
        return min(MAX_QUANTITY, slack[product] + rng.randint(1, 2))

    for _ in range(counts[Fate.SOLD_OUT]):
        orders.append(draw.single(len(orders), Fate.SOLD_OUT, sorted(limited), more_than_left))
    for _ in range(_share(spec.orders, spec.mix.unpublished_attempts) if unpublished else 0):
        orders.append(draw.single(len(orders), Fate.UNPUBLISHED, sorted(unpublished), _one))
    return Plan(spec, sellers, buyers, products, tuple(orders))


def _one(product: int) -> int:
    return 1


def _sellers(rng: random.Random, spec: WorkloadSpec) -> tuple[PlannedSeller, ...]:
    currency_weights = [3] + [1] * (len(spec.currencies) - 1)
    names: Counter[str] = Counter()
    sellers = []
    for index in range(spec.sellers):
        name = catalogue.artist_name(rng)
        names[name] += 1
        [currency] = rng.choices(spec.currencies, weights=currency_weights)
        sellers.append(
            PlannedSeller(
                index=index,
                email=f"seller{index + 1:03d}@{EMAIL_DOMAIN}",
                display_name=name if names[name] == 1 else f"{name} {names[name]}",
                currency=currency,
                payout_percent=_weighted(rng, PAYOUT_PERCENTS),
            )
        )
    return tuple(sellers)


def _buyers(rng: random.Random, spec: WorkloadSpec) -> tuple[PlannedBuyer, ...]:
    return tuple(
        PlannedBuyer(
            index=index,
            email=f"buyer{index + 1:04d}@{EMAIL_DOMAIN}",
            display_name=catalogue.buyer_name(rng),
        )
        for index in range(spec.buyers)
    )


def _products_of(rng: random.Random, spec: WorkloadSpec) -> range:
    """A seller lists from half to one and a half times the usual number of products."""
    usual = spec.products_per_seller
    return range(max(1, rng.randint(usual - usual // 2, usual + usual // 2)))


def _limited(rng: random.Random, products: int, share: float) -> frozenset[int]:
    """Products with limited stock; at least one product stays unlimited (the orders that
    release their stock buy only those)."""
    count = min(round(products * share), products - 1)
    return frozenset(rng.sample(range(products), count))


def _unpublished(
    rng: random.Random, products: int, limited: frozenset[int], share: float
) -> frozenset[int]:
    """Unlimited products unpublished after the first wave (the sold-out orders need the
    limited ones published, so that what refuses them is the stock)."""
    candidates = [index for index in range(products) if index not in limited]
    count = min(round(products * share), len(candidates) - 1)
    return frozenset(rng.sample(candidates, count)) if count > 0 else frozenset()


def _share(total: int, share: float) -> int:
    """`share` of `total`, rounded; at least one when the workload is not small."""
    count = round(total * share)
    if share > 0 and total >= SMALL_WORKLOAD:
        count = max(count, 1)
    return count


def _fate_counts(spec: WorkloadSpec, *, sold_out_possible: bool) -> Counter[Fate]:
    mix, total = spec.mix, spec.orders
    scripted = spec.scripted_payments
    return Counter(
        {
            Fate.PAYMENT_FAILED: _share(total, mix.payment_failures) if scripted else 0,
            Fate.BUYER_CANCELLED: _share(total, mix.buyer_cancellations) if scripted else 0,
            Fate.DISPUTE_RELEASED: _share(total, mix.disputes_released),
            Fate.DISPUTE_REFUNDED: _share(total, mix.disputes_refunded),
            Fate.SOLD_OUT: _share(total, mix.sold_out) if sold_out_possible else 0,
        }
    )


def _weighted(rng: random.Random, choices: Sequence[tuple[int, int]]) -> int:
    [value] = rng.choices([value for value, _ in choices], weights=[w for _, w in choices])
    return value


class _Draw:
    """Draws orders: popular products and busy buyers more often (a long tail of both)."""

    def __init__(
        self, rng: random.Random, seller_of: list[int], limited: frozenset[int], buyers: int
    ) -> None:
        self._rng = rng
        self._seller_of = seller_of
        popularity = _long_tail(rng, len(seller_of), exponent=0.8)
        self._popularity = popularity
        self._buyers = range(buyers)
        self._buyer_weights = list(itertools.accumulate(_long_tail(rng, buyers, exponent=0.6)))
        everything = range(len(seller_of))
        unlimited = [product for product in everything if product not in limited]
        self._among = {
            True: _Choice(list(everything), popularity),
            False: _Choice(unlimited, popularity),
        }
        self._by_seller: dict[tuple[bool, int], list[int]] = {}
        for commits, choice in self._among.items():
            for product in choice.products:
                self._by_seller.setdefault((commits, seller_of[product]), []).append(product)

    def order(self, index: int, fate: Fate) -> PlannedOrder:
        rng = self._rng
        commits = fate in COMMITS_STOCK
        first = self._among[commits].draw(rng)
        seller = self._seller_of[first]
        others = [p for p in self._by_seller[(commits, seller)] if p != first]
        lines = _weighted(rng, LINE_COUNTS)
        products = [first, *rng.sample(others, min(lines - 1, len(others)))]
        return PlannedOrder(
            index=index,
            buyer=self._buyer(),
            seller=seller,
            lines=tuple(PlannedLine(p, self._quantity()) for p in products),
            fate=fate,
            reason=self._reason(fate),
        )

    def single(
        self, index: int, fate: Fate, among: Sequence[int], quantity: Callable[[int], int]
    ) -> PlannedOrder:
        """An order of one line, of a product drawn `among` these, for `quantity(product)`."""
        product = _Choice(list(among), self._popularity).draw(self._rng)
        return PlannedOrder(
            index=index,
            buyer=self._buyer(),
            seller=self._seller_of[product],
            lines=(PlannedLine(product, quantity(product)),),
            fate=fate,
        )

    def _buyer(self) -> int:
        [buyer] = self._rng.choices(self._buyers, cum_weights=self._buyer_weights)
        return buyer

    def _quantity(self) -> int:
        return 1 if self._rng.random() < 0.9 else self._rng.randint(2, 3)

    def _reason(self, fate: Fate) -> str | None:
        reasons = {
            Fate.PAYMENT_FAILED: catalogue.PAYMENT_FAILURES,
            Fate.BUYER_CANCELLED: catalogue.CANCELLATIONS,
            Fate.DISPUTE_RELEASED: catalogue.DISPUTES,
            Fate.DISPUTE_REFUNDED: catalogue.DISPUTES,
        }.get(fate)
        return None if reasons is None else self._rng.choice(reasons)


class _Choice:
    """Products to draw from by popularity (cumulative weights, computed once)."""

    def __init__(self, products: list[int], popularity: list[float]) -> None:
        self.products = products
        self._cumulative = list(itertools.accumulate(popularity[p] for p in products))

    def draw(self, rng: random.Random) -> int:
        [product] = rng.choices(self.products, cum_weights=self._cumulative)
        return product


def _long_tail(rng: random.Random, count: int, *, exponent: float) -> list[float]:
    """Weights 1, 1/2^e, 1/3^e, … dealt out in a random order."""
    ranks = list(range(count))
    rng.shuffle(ranks)
    return [1 / (rank + 1) ** exponent for rank in ranks]
