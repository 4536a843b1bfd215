"""Bad input, table-driven: each request gets the right 4xx and leaves no event behind."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from fastapi.testclient import TestClient

from infrastructure.auth.tokens import derive_key
from infrastructure.settings import (
    DEVELOPMENT_JWT_SECRET,
    PRODUCTION_RATE_LIMITS,
    RATE_LIMIT_OFF,
)
from interfaces.http.read_models import MIN_POSITION_HEADER
from tests.e2e.http_support import (
    PASSWORD,
    User,
    create_product,
    embedded_settings,
    head_position,
    place_order,
    promoted_to_admin,
    running,
    signed_up,
    until_sagas_rest,
)

pytestmark = pytest.mark.e2e

BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class World:
    """What the bad requests aim at: users of two tenants, and tokens gone wrong."""

    buyer: User
    creator: User
    admin: User
    stranger: User
    """An admin (and creator) of another tenant."""
    product_id: UUID
    order_id: UUID
    """The buyer's order of the creator's product, delivered and waiting for confirmation."""
    stranger_product_id: UUID

    def token(self, kind: str) -> str | None:
        now = int(time.time())
        claims = {
            "sub": str(self.buyer.account_id),
            "tenant": self.buyer.tenant,
            "typ": "access",
            "jti": uuid4().hex,
            "iat": now,
            "exp": now + 600,
            "roles": ["admin"],
            "tv": 1,
        }
        access_key = derive_key(DEVELOPMENT_JWT_SECRET, "access")
        tokens: dict[str, Callable[[], str | None]] = {
            "none": lambda: None,
            "buyer": lambda: self.buyer.access_token,
            "admin": lambda: self.admin.access_token,
            "creator": lambda: self.creator.access_token,
            "stranger": lambda: self.stranger.access_token,
            "garbage": lambda: "not-a-token",
            "forged": lambda: jwt.encode(claims, b"x" * 32, algorithm="HS256"),
            "raw secret": lambda: jwt.encode(claims, DEVELOPMENT_JWT_SECRET, algorithm="HS256"),
            "alg none": lambda: _unsigned({"alg": "none", "typ": "JWT"}, claims),
            "expired": lambda: jwt.encode(
                claims | {"iat": now - 3600, "exp": now - 1800}, access_key, algorithm="HS256"
            ),
            "unknown account": lambda: jwt.encode(
                claims | {"sub": str(uuid4())}, access_key, algorithm="HS256"
            ),
            "other tenant claim": lambda: jwt.encode(
                claims | {"tenant": self.stranger.tenant}, access_key, algorithm="HS256"
            ),
            "old version": lambda: jwt.encode(claims | {"tv": 0}, access_key, algorithm="HS256"),
            "refresh": lambda: self.buyer.refresh_token,
        }
        return tokens[kind]()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    json: Any = None
    content: bytes | Callable[[], Iterator[bytes]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token: str = "buyer"
    names: tuple[str, ...] = ()
    """Words the error body must contain (the field at fault)."""


def register_body(**overrides: Any) -> dict[str, Any]:
    body = {"email": "new@example.org", "password": PASSWORD, "display_name": "New"}
    return {key: value for key, value in (body | overrides).items() if value is not None}


TENANT = {"X-Tenant-ID": "acme"}
KEY = {"Idempotency-Key": "bad-input"}


def product_body(**overrides: Any) -> dict[str, Any]:
    body = {"title": "Track", "kind": "track", "price": {"amount": 990, "currency": "EUR"}}
    return {key: value for key, value in (body | overrides).items() if value is not None}


def order_body(product_id: str, quantity: Any = 1) -> dict[str, Any]:
    return {"lines": [{"product_id": product_id, "quantity": quantity}]}


JSON = {"Content-Type": "application/json"}
NOT_STORABLE = [
    ("NaN", b"NaN"),
    ("Infinity", b"Infinity"),
    ("-Infinity", b"-Infinity"),
    ("a number beyond the float range", b"1e400"),
    ("an integer beyond 64 bits", b"18446744073709551616"),
    ("an integer of 5000 digits", b"9" * 5000),
    ("an unpaired surrogate", b'"\\ud800"'),
    ("a NUL character", b'"a\\u0000b"'),
]
BODIES = [
    # (where, path, a body with @ where the value goes, headers, token)
    ("register", "/auth/register", b'{"email": @, "password": "p"}', TENANT, "none"),
    (
        "product",
        "/products",
        b'{"title": "t", "kind": "track", "price": {"amount": @, "currency": "EUR"}}',
        {},
        "creator",
    ),
    (
        "order",
        "/orders",
        b'{"lines": [{"product_id": "' + str(uuid4()).encode() + b'", "quantity": @}]}',
        KEY,
        "buyer",
    ),
    ("an unknown field of a", "/orders/{order}/dispute", b'{"reason": "r", "x": [@]}', {}, "buyer"),
]


WEBHOOK_SECRET = "a webhook secret for the bad-input tests"


def signed(body: bytes, *, timestamp: int) -> str:
    """A `Payment-Signature` that checks out for `body` (timestamp aside)."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(WEBHOOK_SECRET.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def search_cursor(sort: str, value: Any) -> str:
    """A cursor as the search answers them (base64 of JSON), with a sort value of our own."""
    text = json.dumps({"s": sort, "k": [value, str(uuid4())]})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def streamed_megabyte() -> Iterator[bytes]:
    yield b'{"email": "x@example.org", "display_name": "'
    for _ in range(64):
        yield b"x" * 16 * 1024
    yield b'"}'


CASES = [
    # malformed input: the field is named
    Case(
        "wrong type",
        "POST",
        "/auth/register",
        422,
        register_body(email=123),
        headers=TENANT,
        names=("email",),
    ),
    Case(
        "missing field",
        "POST",
        "/auth/register",
        422,
        register_body(password=None),
        headers=TENANT,
        names=("password",),
    ),
    Case(
        "string too long",
        "POST",
        "/auth/register",
        422,
        register_body(display_name="x" * 101),
        headers=TENANT,
        names=("display_name",),
    ),
    Case(
        "password too short",
        "POST",
        "/auth/register",
        422,
        register_body(password="short"),
        headers=TENANT,
        names=("password",),
    ),
    Case(
        "unknown role",
        "POST",
        "/auth/register",
        422,
        register_body(roles=["king"]),
        headers=TENANT,
        names=("roles",),
    ),
    Case(
        "a tenant in the body",
        "POST",
        "/auth/register",
        422,
        register_body(tenant="globex"),
        headers=TENANT,
        names=("tenant",),
    ),
    Case(
        "no tenant header", "POST", "/auth/register", 422, register_body(), names=("x-tenant-id",)
    ),
    Case(
        "a malformed tenant header",
        "POST",
        "/auth/register",
        422,
        register_body(),
        headers={"X-Tenant-ID": "../etc"},
        names=("x-tenant-id",),
    ),
    Case(
        "not JSON",
        "POST",
        "/auth/register",
        422,
        content=b"{nope",
        headers=TENANT | {"Content-Type": "application/json"},
    ),
    Case("a JSON list", "POST", "/auth/login", 422, [1, 2], headers=TENANT),
    Case(
        "a domain rule on a field",
        "POST",
        "/auth/register",
        422,
        register_body(email="no-at-sign"),
        headers=TENANT,
        names=("email",),
    ),
    Case(
        "an unknown id",
        "PUT",
        f"/accounts/{uuid4()}/roles",
        404,
        {"roles": ["buyer"]},
        token="admin",
    ),
    Case(
        "a malformed id",
        "PUT",
        "/accounts/42/roles",
        422,
        {"roles": ["buyer"]},
        token="admin",
        names=("account_id",),
    ),
    # huge bodies, announced and streamed
    Case(
        "a huge body",
        "POST",
        "/auth/register",
        413,
        register_body(display_name="x" * BODY_LIMIT),
        headers=TENANT,
    ),
    Case(
        "a huge streamed body",
        "POST",
        "/auth/register",
        413,
        content=streamed_megabyte,
        headers=TENANT | {"Content-Type": "application/json"},
    ),
    # credentials
    Case(
        "a wrong password",
        "POST",
        "/auth/login",
        401,
        {"email": "buyer@example.org", "password": "wrong password"},
        headers=TENANT,
    ),
    Case("a refresh with a forged token", "POST", "/auth/refresh", 401, {"refresh_token": "x.y.z"}),
    Case("a logout with a garbage token", "POST", "/auth/logout", 401, {"refresh_token": "x"}),
    *(
        Case(f"a request with {kind} token", "POST", "/auth/logout-everywhere", 401, token=kind)
        for kind in (
            "none",
            "garbage",
            "forged",
            "raw secret",
            "alg none",
            "expired",
            "unknown account",
            "other tenant claim",
            "old version",
            "refresh",
        )
    ),
    Case(
        "a basic-auth header",
        "POST",
        "/auth/logout-everywhere",
        401,
        token="none",
        headers={"Authorization": "Basic YWRhOnB3"},
    ),
    # permissions and tenancy
    Case("a buyer acting as admin", "PUT", "/accounts/{buyer}/roles", 403, {"roles": ["admin"]}),
    Case(
        "an admin of another tenant",
        "PUT",
        "/accounts/{buyer}/roles",
        404,
        {"roles": ["admin"]},
        token="stranger",
    ),
    # products
    Case(
        "a price as a string",
        "POST",
        "/products",
        422,
        product_body(price={"amount": "990", "currency": "EUR"}),
        token="creator",
        names=("amount",),
    ),
    Case(
        "a price as a float",
        "POST",
        "/products",
        422,
        product_body(price={"amount": 9.9, "currency": "EUR"}),
        token="creator",
        names=("amount",),
    ),
    Case(
        "a lower-case currency",
        "POST",
        "/products",
        422,
        product_body(price={"amount": 990, "currency": "eur"}),
        token="creator",
        names=("currency",),
    ),
    Case(
        "a missing kind",
        "POST",
        "/products",
        422,
        product_body(kind=None),
        token="creator",
        names=("kind",),
    ),
    Case(
        "an unknown kind",
        "POST",
        "/products",
        422,
        product_body(kind="vinyl"),
        token="creator",
        names=("kind",),
    ),
    Case(
        "a title too long",
        "POST",
        "/products",
        422,
        product_body(title="t" * 201),
        token="creator",
        names=("title",),
    ),
    Case(
        "too many tags",
        "POST",
        "/products",
        422,
        product_body(tags=[f"tag{i}" for i in range(21)]),
        token="creator",
        names=("tags",),
    ),
    Case(
        "a negative stock",
        "POST",
        "/products",
        422,
        product_body(stock=-1),
        token="creator",
        names=("stock",),
    ),
    Case(
        "a product with a tenant",
        "POST",
        "/products",
        422,
        product_body(tenant_id="globex"),
        token="creator",
        names=("tenant_id",),
    ),
    Case("a product by a buyer", "POST", "/products", 403, product_body()),
    Case("a product with a forged token", "POST", "/products", 401, product_body(), token="forged"),
    Case(
        "a huge product",
        "POST",
        "/products",
        413,
        product_body(description="d" * BODY_LIMIT),
        token="creator",
    ),
    Case(
        "an edit of an unknown product",
        "PATCH",
        f"/products/{uuid4()}",
        404,
        {"title": "x"},
        token="creator",
    ),
    Case(
        "an edit with a malformed If-Match",
        "PATCH",
        "/products/{product}",
        422,
        {"title": "x"},
        token="creator",
        headers={"If-Match": "W/3"},
        names=("if-match",),
    ),
    Case(
        "an edit with a stale If-Match",
        "PATCH",
        "/products/{product}",
        409,
        {"title": "x"},
        token="creator",
        headers={"If-Match": '"1"'},
    ),
    Case(
        "an edit by another tenant",
        "PATCH",
        "/products/{product}",
        404,
        {"title": "x"},
        token="stranger",
    ),
    Case(
        "a publish of another tenant's product",
        "POST",
        "/products/{stranger_product}/publish",
        404,
        token="creator",
    ),
    Case("an unpublish by a buyer", "POST", "/products/{product}/unpublish", 403),
    Case(
        "a price of zero",
        "PUT",
        "/products/{product}/price",
        422,
        {"price": {"amount": 0, "currency": "EUR"}},
        token="creator",
        names=("amount",),
    ),
    # orders
    Case(
        "an order without a key",
        "POST",
        "/orders",
        422,
        order_body("{product}"),
        names=("idempotency-key",),
    ),
    Case(
        "an order with a key too long",
        "POST",
        "/orders",
        422,
        order_body("{product}"),
        headers={"Idempotency-Key": "k" * 201},
        names=("idempotency-key",),
    ),
    Case(
        "an order without lines",
        "POST",
        "/orders",
        422,
        {"lines": []},
        headers=KEY,
        names=("lines",),
    ),
    Case(
        "an order of zero",
        "POST",
        "/orders",
        422,
        order_body("{product}", quantity=0),
        headers=KEY,
        names=("quantity",),
    ),
    Case(
        "an order of a quantity as text",
        "POST",
        "/orders",
        422,
        order_body("{product}", quantity="1"),
        headers=KEY,
        names=("quantity",),
    ),
    Case(
        "an order of a malformed id",
        "POST",
        "/orders",
        422,
        order_body("nope"),
        headers=KEY,
        names=("product_id",),
    ),
    Case(
        "an order of an unknown product",
        "POST",
        "/orders",
        404,
        order_body(str(uuid4())),
        headers=KEY,
    ),
    Case(
        "an order of another tenant's product",
        "POST",
        "/orders",
        404,
        order_body("{stranger_product}"),
        headers=KEY,
    ),
    Case(
        "an order by a creator only",
        "POST",
        "/orders",
        403,
        order_body("{product}"),
        headers=KEY,
        token="creator",
    ),
    Case(
        "an order of every product at once",
        "POST",
        "/orders",
        413,
        {"lines": [{"product_id": str(uuid4()), "quantity": 1}] * 2000},
        headers=KEY,
    ),
    Case(
        "an order with a tenant",
        "POST",
        "/orders",
        422,
        order_body("{product}") | {"tenant_id": "globex"},
        headers=KEY,
        names=("tenant_id",),
    ),
    Case("an unknown order", "GET", f"/orders/{uuid4()}", 404),
    Case("another tenant's order", "GET", "/orders/{order}", 404, token="stranger"),
    Case("an order with an expired token", "GET", "/orders/{order}", 401, token="expired"),
    Case("an order as of nonsense", "GET", "/orders/{order}?as_of=soon", 422, names=("as_of",)),
    Case("a cancel of an unknown order", "POST", f"/orders/{uuid4()}/cancel", 404),
    Case("a cancel of a delivered order", "POST", "/orders/{order}/cancel", 409),
    Case(
        "a cancel with an empty reason",
        "POST",
        "/orders/{order}/cancel",
        422,
        {"reason": "  "},
        names=("reason",),
    ),
    Case("a cancel by another tenant", "POST", "/orders/{order}/cancel", 404, token="stranger"),
    Case(
        "a confirmation by the seller",
        "POST",
        "/orders/{order}/confirm-receipt",
        403,
        token="creator",
    ),
    Case(
        "a dispute without a reason", "POST", "/orders/{order}/dispute", 422, {}, names=("reason",)
    ),
    Case(
        "a dispute with a reason too long",
        "POST",
        "/orders/{order}/dispute",
        422,
        {"reason": "r" * 501},
        names=("reason",),
    ),
    # disputes
    Case(
        "an unknown resolution",
        "POST",
        "/disputes/{order}/resolve",
        422,
        {"resolution": "maybe"},
        token="admin",
        names=("resolution",),
    ),
    Case(
        "a resolution by the buyer",
        "POST",
        "/disputes/{order}/resolve",
        403,
        {"resolution": "refund"},
    ),
    Case(
        "a resolution of an undisputed order",
        "POST",
        "/disputes/{order}/resolve",
        409,
        {"resolution": "refund"},
        token="admin",
    ),
    Case(
        "a resolution by another tenant's admin",
        "POST",
        "/disputes/{order}/resolve",
        404,
        {"resolution": "refund"},
        token="stranger",
    ),
    # webhooks
    Case(
        "a webhook with a bad signature",
        "POST",
        "/payments/webhook",
        400,
        content=b'{"id": "evt_1"}',
        token="none",
        headers={"Payment-Signature": "t=1,v1=" + "0" * 64},
    ),
    Case(
        "a webhook without a signature",
        "POST",
        "/payments/webhook",
        422,
        content=b'{"id": "evt_1"}',
        token="none",
        names=("payment-signature",),
    ),
    Case(
        "a huge webhook",
        "POST",
        "/payments/webhook",
        413,
        content=b"x" * (BODY_LIMIT + 1),
        token="none",
        headers={"Payment-Signature": "t=1,v1=00"},
    ),
    # wallets
    Case(
        "a payout of nothing",
        "POST",
        "/wallets/payouts",
        422,
        {"amount": {"amount": 0, "currency": "EUR"}},
        headers=KEY,
        names=("amount",),
    ),
    Case(
        "a payout without a key",
        "POST",
        "/wallets/payouts",
        422,
        {"amount": {"amount": 1, "currency": "EUR"}},
        names=("idempotency-key",),
    ),
    Case(
        "a payout without a wallet",
        "POST",
        "/wallets/payouts",
        404,
        {"amount": {"amount": 1, "currency": "EUR"}},
        headers=KEY,
    ),
    Case("a wallet in a malformed currency", "GET", "/wallets/euro", 422, names=("currency",)),
    # numbers no store holds, and strings none encodes: refused where the body is parsed
    *(
        Case(
            f"{what} in a {where} body",
            "POST",
            path,
            422,
            content=template.replace(b"@", value),
            headers=headers | JSON,
            token=token,
            names=("json_invalid",),
        )
        for what, value in NOT_STORABLE
        for where, path, template, headers, token in BODIES
    ),
    # integers beyond 64 bits (or their domain) wherever they come from
    Case(
        "an as_of position beyond 64 bits",
        "GET",
        "/orders/{order}?as_of=9999999999999999999",
        422,
        names=("as_of",),
    ),
    Case(
        "an as_of position of 40 digits",
        "GET",
        "/orders/{order}?as_of=" + "9" * 40,
        422,
        names=("as_of",),
    ),
    Case(
        "an as_of time with no UTC equivalent",
        "GET",
        "/orders/{order}?as_of=0001-01-01T00:00:00%2B14:00",
        422,
        names=("as_of",),
    ),
    *(
        Case(
            f"a {sort} search cursor holding {value!r}",
            "GET",
            f"/products/search?q=night&sort={sort}&cursor={search_cursor(sort, value)}",
            422,
            names=("cursor",),
        )
        for sort in ("relevance", "price_asc", "price_desc", "newest", "best_selling")
        for value in (2**63, -(2**63) - 1, 2**200, float("nan"), float("inf"))
    ),
    Case(
        "a min_position beyond 64 bits",
        "GET",
        "/orders/{order}?min_position=9223372036854775808",
        422,
        names=("min_position",),
    ),
    Case(
        "a min_position header beyond 64 bits",
        "GET",
        "/orders/{order}",
        422,
        headers={"Mercato-Min-Position": "99999999999999999999"},
        names=("mercato-min-position",),
    ),
    Case(
        "a limit beyond 64 bits",
        "GET",
        "/me/orders?limit=99999999999999999999",
        422,
        names=("limit",),
    ),
    Case(
        "an If-Match beyond 64 bits",
        "PATCH",
        "/products/{product}",
        422,
        {"title": "x"},
        token="creator",
        headers={"If-Match": '"99999999999999999999"'},
        names=("if-match",),
    ),
    Case(
        "a webhook signed in the year 33658",
        "POST",
        "/payments/webhook",
        400,
        content=b"{}",
        token="none",
        headers={"Payment-Signature": signed(b"{}", timestamp=999_999_999_999)},
        names=("unix seconds",),
    ),
]


@pytest.fixture(scope="module")
def world_and_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[World, TestClient]]:
    data_dir = tmp_path_factory.mktemp("bad-input")
    # Without rate limits: the table sends more than a client would in a minute.
    no_limits = {rule: RATE_LIMIT_OFF for rule in PRODUCTION_RATE_LIMITS}
    settings = embedded_settings(
        data_dir, payment_webhook_secret=WEBHOOK_SECRET, rate_limits=no_limits
    )
    with running(settings) as client:
        buyer = signed_up(client, "buyer@example.org")
        creator = signed_up(client, "creator@example.org", roles=("creator",))
        admin = promoted_to_admin(client, signed_up(client, "admin@example.org"))
        stranger = promoted_to_admin(
            client, signed_up(client, "stranger@example.org", tenant="globex")
        )
        product_id = create_product(client, creator)
        stranger_creator = signed_up(
            client, "creator@example.org", tenant="globex", roles=("creator",)
        )
        stranger_product_id = create_product(client, stranger_creator)
        order_id = place_order(client, buyer, product_id)
        until_sagas_rest(client, buyer, order_id)
        world = World(
            buyer=buyer,
            creator=creator,
            admin=admin,
            stranger=stranger,
            product_id=product_id,
            order_id=order_id,
            stranger_product_id=stranger_product_id,
        )
        yield world, client


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_the_right_4xx_and_leaves_no_event(
    world_and_client: tuple[World, TestClient], case: Case
) -> None:
    world, client = world_and_client
    headers = dict(case.headers)
    token = world.token(case.token)
    if token is not None and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {token}"
    path = case.path.format(
        buyer=world.buyer.account_id,
        product=world.product_id,
        order=world.order_id,
        stranger_product=world.stranger_product_id,
    )
    body = json.loads(
        json.dumps(case.json)
        .replace("{product}", str(world.product_id))
        .replace("{stranger_product}", str(world.stranger_product_id))
    )
    content = case.content() if callable(case.content) else case.content
    before = head_position(client)

    response = client.request(case.method, path, json=body, content=content, headers=headers)

    assert response.status_code == case.status, response.text
    assert head_position(client) == before
    for name in case.names:
        assert name in response.text.lower()
    if case.status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["X-Request-ID"]
    assert response.headers["content-type"] == "application/json"


def test_a_min_position_beyond_the_log_is_refused_at_once(
    world_and_client: tuple[World, TestClient],
) -> None:
    world, client = world_and_client
    head = head_position(client)
    path = f"/orders/{world.order_id}"
    started = time.monotonic()

    by_query = client.get(path, params={"min_position": head + 1}, headers=world.buyer.headers)
    by_header = client.get(
        path, headers=world.buyer.headers | {MIN_POSITION_HEADER: str(head + 1_000)}
    )

    assert time.monotonic() - started < 1.0  # not the wait for a read model that is behind
    for response in (by_query, by_header):
        assert response.status_code == 422, response.text
        assert "beyond the end of the event log" in response.json()["detail"][0]["msg"]
    at_head = client.get(path, params={"min_position": head}, headers=world.buyer.headers)
    assert at_head.status_code == 200, at_head.text


def test_the_world_is_what_the_table_assumes(world_and_client: tuple[World, TestClient]) -> None:
    world, client = world_and_client
    for user, roles in ((world.buyer, ["buyer"]), (world.admin, ["admin"])):
        me = client.get("/auth/me", headers=user.headers)
        assert me.status_code == 200
        assert me.json()["roles"] == roles
    assert UUID(client.get("/auth/me", headers=world.stranger.headers).json()["id"])
