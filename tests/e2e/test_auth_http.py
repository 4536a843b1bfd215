"""Accounts and authentication over HTTP, on the embedded profile."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from application.accounts.commands import RegisterAccount
from application.accounts.email_claims import EmailClaim, email_claim_id
from application.accounts.errors import EmailAlreadyRegistered
from application.context import Actor, CommandContext
from application.ports.clock import ManualClock
from application.ports.event_store import EventMetadata
from tests.e2e.http_support import (
    PASSWORD,
    bearer,
    call,
    container_of,
    embedded_settings,
    head_position,
    login,
    promoted_to_admin,
    provisioned,
    register,
    running,
    signed_up,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    with running(embedded_settings(tmp_path / "state"), clock=clock) as client:
        provisioned(client, "acme", "globex")
        yield client


def event_types(client: TestClient, stream_id: UUID | str) -> list[str]:
    events = call(client, container_of(client).event_store.read_stream, str(stream_id))
    return [event.type.rsplit(".", 1)[-1] for event in events]


# -- registration ---------------------------------------------------------------------------


def test_registering_answers_the_new_account_with_its_version_and_position(
    client: TestClient,
) -> None:
    response = client.post(
        "/auth/register",
        json={"email": "Ada@Example.org", "password": PASSWORD, "display_name": "Ada"},
        headers={"X-Tenant-ID": "acme"},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    assert body["position"] == head_position(client)
    assert event_types(client, body["account_id"]) == ["Registered"]


def test_me_shows_the_account_behind_the_token(client: TestClient) -> None:
    register(client, " Ada@Example.ORG ", roles=("buyer", "creator"))
    user = login(client, "ada@example.org")

    response = client.get("/auth/me", headers=user.headers)

    assert response.status_code == 200
    assert response.json() == {
        "id": str(user.account_id),
        "tenant_id": "acme",
        "email": "ada@example.org",
        "display_name": "Ada",
        "roles": ["buyer", "creator"],
        "version": 1,
    }


def test_an_email_is_registered_once_per_tenant_whatever_its_case(client: TestClient) -> None:
    register(client, "ada@example.org")
    position = head_position(client)

    response = client.post(
        "/auth/register",
        json={"email": "ADA@example.org", "password": PASSWORD, "display_name": "Other"},
        headers={"X-Tenant-ID": "acme"},
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": "this email address is already registered",
        "code": "email_already_registered",
    }
    assert head_position(client) == position


def test_the_same_email_may_register_in_another_tenant(client: TestClient) -> None:
    first = register(client, "ada@example.org", tenant="acme")
    second = register(client, "ada@example.org", tenant="globex")

    assert first != second
    assert login(client, "ada@example.org", tenant="globex").account_id == second


def test_of_concurrent_registrations_with_one_email_exactly_one_succeeds(
    client: TestClient,
) -> None:
    accounts = container_of(client).accounts
    context = CommandContext(actor=Actor(account_id=None, tenant_id="acme"))

    async def register_ten_times() -> list[object]:
        command = RegisterAccount.model_validate(
            {"email": "ada@example.org", "password": PASSWORD, "display_name": "Ada"}
        )
        return await asyncio.gather(
            *(accounts.register(command, context) for _ in range(10)), return_exceptions=True
        )

    outcomes = call(client, register_ten_times)

    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert all(
        isinstance(outcome, EmailAlreadyRegistered)
        for outcome in outcomes
        if isinstance(outcome, Exception)
    )


def test_an_email_claimed_by_a_registration_that_crashed_can_still_register(
    client: TestClient,
) -> None:
    repository = container_of(client).marketplace.repository
    orphan_account_id = uuid4()
    claim = EmailClaim(id=email_claim_id("acme", "ada@example.org"), account_id=orphan_account_id)

    async def claim_without_registering() -> None:
        await repository.save(claim, metadata=EventMetadata(tenant_id="acme"))

    call(client, claim_without_registering)

    assert register(client, "ada@example.org") == orphan_account_id
    assert login(client, "ada@example.org").account_id == orphan_account_id


def test_nobody_can_make_themselves_admin_by_registering(client: TestClient) -> None:
    position = head_position(client)

    response = client.post(
        "/auth/register",
        json={
            "email": "mallory@example.org",
            "password": PASSWORD,
            "display_name": "Mallory",
            "roles": ["buyer", "admin"],
        },
        headers={"X-Tenant-ID": "acme"},
    )

    assert response.status_code == 403
    assert head_position(client) == position


def test_a_domain_rule_on_a_field_is_a_422_naming_the_field(client: TestClient) -> None:
    response = client.post(
        "/auth/register",
        json={"email": "not-an-address", "password": PASSWORD, "display_name": "Ada"},
        headers={"X-Tenant-ID": "acme"},
    )

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "email"]
    assert problem["type"] == "invariant_violation"


def test_a_validation_error_never_echoes_the_password(client: TestClient) -> None:
    secret = "my very secret password"
    response = client.post(
        "/auth/register",
        json={"email": "ada@example.org", "password": secret},
        headers={"X-Tenant-ID": "acme"},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "display_name"]
    assert secret not in response.text


# -- login ----------------------------------------------------------------------------------


def test_a_login_answers_a_bearer_token_pair(client: TestClient) -> None:
    register(client, "ada@example.org")

    response = client.post(
        "/auth/login",
        json={"email": "ada@example.org", "password": PASSWORD},
        headers={"X-Tenant-ID": "acme"},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["position"] == head_position(client)
    assert body["version"] == 1  # the session's first event


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.org", "a wrong password"), ("nobody@example.org", PASSWORD)],
    ids=["wrong password", "unknown email"],
)
def test_a_failed_login_says_nothing_about_which_part_was_wrong(
    client: TestClient, email: str, password: str
) -> None:
    register(client, "ada@example.org")
    position = head_position(client)

    response = client.post(
        "/auth/login",
        json={"email": email, "password": password},
        headers={"X-Tenant-ID": "acme"},
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {
        "detail": "the email address or the password is wrong",
        "code": "invalid_credentials",
    }
    assert head_position(client) == position


def test_an_account_of_one_tenant_cannot_log_in_to_another(client: TestClient) -> None:
    register(client, "ada@example.org", tenant="acme")

    response = client.post(
        "/auth/login",
        json={"email": "ada@example.org", "password": PASSWORD},
        headers={"X-Tenant-ID": "globex"},
    )

    assert response.status_code == 401


def test_a_login_upgrades_a_hash_made_with_weaker_parameters(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    with running(embedded_settings(data_dir)) as client:
        account_id = register(client, "ada@example.org")

    with running(embedded_settings(data_dir, password_hash_time_cost=2)) as client:
        login(client, "ada@example.org")
        login(client, "ada@example.org")

        assert event_types(client, account_id) == ["Registered", "PasswordHashChanged"]


# -- tokens ---------------------------------------------------------------------------------


def test_an_access_token_expires_after_fifteen_minutes(
    client: TestClient, clock: ManualClock
) -> None:
    user = signed_up(client, "ada@example.org")

    clock.advance(timedelta(minutes=15))
    response = client.get("/auth/me", headers=user.headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["detail"] == "invalid token: expired"


def test_a_refresh_rotates_the_refresh_token(client: TestClient) -> None:
    user = signed_up(client, "ada@example.org")

    first = client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert first.status_code == 200
    second = client.post("/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})

    assert second.status_code == 200
    assert second.json()["version"] == 3  # started, rotated, rotated
    assert client.get("/auth/me", headers=bearer(second.json()["access_token"])).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(client: TestClient) -> None:
    user = signed_up(client, "ada@example.org")
    rotated = client.post("/auth/refresh", json={"refresh_token": user.refresh_token}).json()

    replay = client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    after = client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json()["detail"] == (
        "invalid token: refresh token already used; the session is revoked"
    )
    assert after.status_code == 401
    assert after.json()["detail"] == "invalid token: the session was revoked"


def test_a_refresh_token_expires_after_seven_days(client: TestClient, clock: ManualClock) -> None:
    user = signed_up(client, "ada@example.org")

    clock.advance(timedelta(days=7))

    response = client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert response.status_code == 401


def test_a_refresh_token_is_not_accepted_as_an_access_token(client: TestClient) -> None:
    user = signed_up(client, "ada@example.org")

    assert client.get("/auth/me", headers=bearer(user.refresh_token)).status_code == 401
    assert (
        client.post("/auth/refresh", json={"refresh_token": user.access_token}).status_code == 401
    )


def test_logging_out_ends_the_session_and_may_be_repeated(client: TestClient) -> None:
    user = signed_up(client, "ada@example.org")
    other_session = login(client, "ada@example.org")

    first = client.post("/auth/logout", json={"refresh_token": user.refresh_token})
    again = client.post("/auth/logout", json={"refresh_token": user.refresh_token})

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    refused = client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refused.status_code == 401
    still_fine = client.post("/auth/refresh", json={"refresh_token": other_session.refresh_token})
    assert still_fine.status_code == 200


def test_logging_out_everywhere_revokes_every_access_and_refresh_token(
    client: TestClient,
) -> None:
    user = signed_up(client, "ada@example.org")
    other = login(client, "ada@example.org")

    response = client.post("/auth/logout-everywhere", headers=user.headers)

    assert response.status_code == 200
    assert response.json()["version"] == 2
    for token in (user.access_token, other.access_token):
        assert client.get("/auth/me", headers=bearer(token)).status_code == 401
    for token in (user.refresh_token, other.refresh_token):
        assert client.post("/auth/refresh", json={"refresh_token": token}).status_code == 401
    assert client.get("/auth/me", headers=login(client, user.email).headers).status_code == 200


# -- roles ----------------------------------------------------------------------------------


def test_an_admin_changes_roles_and_the_old_tokens_stop_working(client: TestClient) -> None:
    admin = promoted_to_admin(client, signed_up(client, "root@example.org"))
    ada = signed_up(client, "ada@example.org")

    response = client.put(
        f"/accounts/{ada.account_id}/roles",
        json={"roles": ["buyer", "creator"]},
        headers=admin.headers,
    )

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert client.get("/auth/me", headers=ada.headers).status_code == 401
    me = client.get("/auth/me", headers=login(client, ada.email).headers).json()
    assert me["roles"] == ["buyer", "creator"]


def test_only_an_admin_changes_roles(client: TestClient) -> None:
    ada = signed_up(client, "ada@example.org")
    position = head_position(client)

    response = client.put(
        f"/accounts/{ada.account_id}/roles", json={"roles": ["admin"]}, headers=ada.headers
    )

    assert response.status_code == 403
    assert head_position(client) == position


def test_an_admin_cannot_reach_an_account_of_another_tenant(client: TestClient) -> None:
    admin = promoted_to_admin(client, signed_up(client, "root@example.org", tenant="acme"))
    stranger = signed_up(client, "eve@example.org", tenant="globex")

    response = client.put(
        f"/accounts/{stranger.account_id}/roles", json={"roles": ["admin"]}, headers=admin.headers
    )

    assert response.status_code == 404


# -- the HTTP plumbing ----------------------------------------------------------------------


def test_a_request_id_is_echoed_or_made_up(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    made_up = client.get("/healthz")
    refused = client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})

    assert given.headers["X-Request-ID"] == "abc-123"
    assert len(made_up.headers["X-Request-ID"]) == 32
    assert refused.headers["X-Request-ID"] != "bad id\twith tab"


def test_an_unexpected_error_is_a_500_that_reveals_only_the_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def add_a_failing_route(app: FastAPI) -> None:
        async def fail() -> None:
            raise RuntimeError("database password is hunter2")

        app.add_api_route("/fail", fail)

    with running(embedded_settings(tmp_path), prepare=add_a_failing_route) as client:
        response = client.get("/fail", headers={"X-Request-ID": "req-42"})

    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal server error",
        "code": "internal_error",
        "request_id": "req-42",
    }
    assert response.headers["X-Request-ID"] == "req-42"
    assert "hunter2" not in response.text
    assert "req-42" in caplog.text
    assert "hunter2" in caplog.text  # the log has the whole story


def test_every_route_documents_its_response_and_purpose(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("description"), f"{method.upper()} {path} has no docstring"
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert success, f"{method.upper()} {path} documents no success response"
            assert "content" in operation["responses"][success[0]], f"{method.upper()} {path}"
