"""Rate limits over HTTP on the embedded profile (budgets in the API process's memory), with
the real login and registration figures: floods of logins, registrations, commands and plain
requests end in 429 with `Retry-After` and the IETF `RateLimit` headers, before they cost the
server a password hash, and each refusal is counted in `/metrics`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from infrastructure.auth.passwords import Argon2PasswordHasher
from interfaces.http.app import create_app
from tests.e2e.http_support import (
    PASSWORD,
    User,
    create_product,
    embedded_settings,
    register,
    signed_up,
)

pytestmark = pytest.mark.e2e

PROXY = "10.9.0.1"
"""The test client's address: a trusted proxy, so each request names its client address in
`X-Forwarded-For`, as a load balancer would."""
WRONG = "not the password at all"

Api = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Api:
    """An API with the given settings; rate limits are the defaults unless `rate_limits` says
    otherwise (the test session loosens them for every other test)."""
    monkeypatch.delenv("MERCATO_RATE_LIMITS")

    @contextmanager
    def start(**overrides: Any) -> Iterator[TestClient]:
        settings = embedded_settings(tmp_path / "state", **({"trusted_proxies": PROXY} | overrides))
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False, client=(PROXY, 50000)) as client:
            yield client

    return start


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The password checks argon2 ran, as they happen."""
    runs: list[str] = []
    verify, verify_nothing = Argon2PasswordHasher.verify, Argon2PasswordHasher.verify_nothing

    async def counted_verify(self: Argon2PasswordHasher, password_hash: str, password: str) -> bool:
        runs.append("verify")
        return await verify(self, password_hash, password)

    async def counted_verify_nothing(self: Argon2PasswordHasher, password: str) -> None:
        runs.append("verify_nothing")
        await verify_nothing(self, password)

    monkeypatch.setattr(Argon2PasswordHasher, "verify", counted_verify)
    monkeypatch.setattr(Argon2PasswordHasher, "verify_nothing", counted_verify_nothing)
    return runs


def log_in(
    client: TestClient, email: str, *, address: str, password: str = PASSWORD
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/auth/login",
        json={"email": email, "password": password},
        headers={"X-Tenant-ID": "acme", "X-Forwarded-For": address},
    )
    return response


def sign_up(client: TestClient, email: str, *, address: str) -> httpx.Response:
    response: httpx.Response = client.post(
        "/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Someone"},
        headers={"X-Tenant-ID": "acme", "X-Forwarded-For": address},
    )
    return response


def assert_refused_by(response: httpx.Response, rule: str, quota: int, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limited"
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= window
    assert response.headers["RateLimit-Policy"] == f'"{rule}";q={quota};w={window}'
    assert response.headers["RateLimit"] == f'"{rule}";r=0;t={wait}'


def refusals(client: TestClient, rule: str) -> float:
    """`mercato_rate_limited_total` of `rule` in `/metrics` (0 before the first refusal)."""
    text = client.get("/metrics").text
    found = re.search(rf'^mercato_rate_limited_total\{{rule="{rule}"\}} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


def test_the_sixth_login_within_a_minute_is_refused_with_429_before_any_password_is_hashed(
    api: Api, hashes: list[str]
) -> None:
    with api() as client:
        register(client, "ada@example.org")
        register(client, "bob@example.org")
        before = refusals(client, "login_ip")
        for _ in range(5):
            assert (
                log_in(client, "ada@example.org", address="203.0.113.7", password=WRONG).status_code
                == 401
            )
        hashed = len(hashes)
        refused = log_in(client, "ada@example.org", address="203.0.113.7")
        assert_refused_by(refused, "login_ip", quota=5, window=60)
        assert len(hashes) == hashed, "the refused login ran argon2"
        assert refusals(client, "login_ip") == before + 1
        # Another account from another address is untouched by the flood.
        assert log_in(client, "bob@example.org", address="198.51.100.20").status_code == 200


def test_a_flood_at_one_account_from_many_addresses_is_cut_off_at_five_a_minute(
    api: Api, hashes: list[str]
) -> None:
    with api() as client:
        register(client, "ada@example.org")
        register(client, "bob@example.org")
        for n in range(5):
            wrong = log_in(client, "ada@example.org", address=f"203.0.113.{n}", password=WRONG)
            assert wrong.status_code == 401
        hashed = len(hashes)
        assert_refused_by(
            log_in(client, "ada@example.org", address="203.0.113.99"), "login_account", 5, 60
        )
        # The same account written otherwise is the same account, and the same budget.
        assert_refused_by(
            log_in(client, " ADA@Example.org", address="203.0.113.98"), "login_account", 5, 60
        )
        assert len(hashes) == hashed
        assert log_in(client, "bob@example.org", address="198.51.100.20").status_code == 200


def test_one_address_trying_many_accounts_is_cut_off_at_five_a_minute(api: Api) -> None:
    with api() as client:
        register(client, "ada@example.org")
        for n in range(5):
            guess = log_in(client, f"user{n}@example.org", address="203.0.113.7", password=WRONG)
            assert guess.status_code == 401
        assert_refused_by(
            log_in(client, "ada@example.org", address="203.0.113.7"), "login_ip", 5, 60
        )
        assert log_in(client, "ada@example.org", address="198.51.100.20").status_code == 200


def test_x_forwarded_for_opens_no_new_budget_unless_the_proxy_is_trusted(api: Api) -> None:
    with api(trusted_proxies="") as client:
        register(client, "ada@example.org")
        for n in range(5):
            wrong = log_in(client, f"user{n}@example.org", address=f"203.0.113.{n}", password=WRONG)
            assert wrong.status_code == 401
        assert_refused_by(
            log_in(client, "ada@example.org", address="198.51.100.20"), "login_ip", 5, 60
        )


def test_registration_in_production_allows_three_an_hour_per_address(api: Api) -> None:
    with api(environment="production", jwt_secret="s" * 40) as client:
        register(client, "first@example.org")  # from the proxy's own address; provisions acme
        for n in range(3):
            assert sign_up(client, f"user{n}@example.org", address="203.0.113.7").status_code == 201
        assert_refused_by(
            sign_up(client, "user3@example.org", address="203.0.113.7"), "register_ip", 3, 3600
        )
        assert sign_up(client, "user3@example.org", address="198.51.100.20").status_code == 201


def test_commands_are_limited_per_account_and_per_tenant(api: Api) -> None:
    limits = {"command_principal": "3/minute", "command_tenant": "5/minute"}
    with api(rate_limits=limits) as client:
        ada = signed_up(client, "ada@example.org", roles=("creator",))
        bob = signed_up(client, "bob@example.org", roles=("creator",))
        for _ in range(3):
            create_product(client, ada, publish=False)
        assert_refused_by(new_product(client, ada), "command_principal", 3, 60)
        for _ in range(2):
            create_product(client, bob, publish=False)
        # Bob has spent two of his three, but the tenant's five are gone.
        assert_refused_by(new_product(client, bob), "command_tenant", 5, 60)


def new_product(client: TestClient, creator: User) -> httpx.Response:
    response: httpx.Response = client.post(
        "/products",
        json={
            "title": "Night drive",
            "description": "A synthwave track",
            "tags": [],
            "kind": "track",
            "price": {"amount": 1_000, "currency": "EUR"},
            "stock": None,
        },
        headers=creator.headers,
    )
    return response


def test_every_request_spends_the_per_address_budget_but_probes_and_metrics_do_not(
    api: Api,
) -> None:
    with api(rate_limits={"requests_ip": "3/minute"}) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
        before = refusals(client, "requests_ip")
        for _ in range(3):
            assert client.get("/auth/me").status_code == 401
        assert_refused_by(client.get("/auth/me"), "requests_ip", 3, 60)
        assert_refused_by(client.post("/auth/login", content=b"{"), "requests_ip", 3, 60)
        assert refusals(client, "requests_ip") == before + 2
