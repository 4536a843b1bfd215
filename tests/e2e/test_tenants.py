"""Tenants are provisioned by an operator (`mercato tenants …`), never by registering, on the
embedded profile: the CLI and the API share one data dir, as they would on one machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from interfaces.cli.main import app as mercato
from tests.e2e.http_support import (
    CHEAP_ARGON2,
    PASSWORD,
    embedded_settings,
    head_position,
    login,
    running,
)

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "root@initech.example"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The settings the CLI reads from the environment, the same as the app's."""
    folder = tmp_path / "state"
    monkeypatch.setenv("MERCATO_PROFILE", "embedded")
    monkeypatch.setenv("MERCATO_DATA_DIR", str(folder))
    for name, value in CHEAP_ARGON2.items():
        monkeypatch.setenv(f"MERCATO_{name.upper()}", str(value))
    return folder


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with running(embedded_settings(data_dir)) as client:
        yield client


def cli(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(mercato, list(args), input=stdin)


def register_in(client: TestClient, tenant: str, email: str = "ada@example.org") -> int:
    response = client.post(
        "/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Ada"},
        headers={"X-Tenant-ID": tenant},
    )
    status: int = response.status_code
    return status


def test_registering_into_a_tenant_nobody_created_is_refused_and_records_nothing(
    client: TestClient,
) -> None:
    position = head_position(client)

    response = client.post(
        "/auth/register",
        json={"email": "ada@example.org", "password": PASSWORD, "display_name": "Ada"},
        headers={"X-Tenant-ID": "initech"},
    )

    assert response.status_code == 404
    assert response.json() == {
        "detail": "there is no tenant 'initech'; tenants are created by an operator",
        "code": "unknown_tenant",
    }
    assert head_position(client) == position


def test_logging_into_a_tenant_nobody_created_is_refused_like_registering(
    client: TestClient,
) -> None:
    response = client.post(
        "/auth/login",
        json={"email": "ada@example.org", "password": PASSWORD},
        headers={"X-Tenant-ID": "initech"},
    )

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_tenant"


def test_the_cli_creates_a_tenant_and_its_first_admin_who_can_use_admin_routes(
    data_dir: Path,
) -> None:
    created = cli(
        "tenants",
        "create",
        "initech",
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.exit_code == 0, created.output
    assert "tenant 'initech' created" in created.output
    assert f"admin {ADMIN_EMAIL} registered" in created.output

    with running(embedded_settings(data_dir)) as client:
        admin = login(client, ADMIN_EMAIL, tenant="initech")
        assert client.get("/auth/me", headers=admin.headers).json()["roles"] == ["admin"]
        assert client.get("/admin/projections", headers=admin.headers).status_code == 200
        assert register_in(client, "initech") == 201


def test_tenants_list_shows_every_tenant_created(data_dir: Path) -> None:
    assert cli("tenants", "create", "initech").exit_code == 0
    assert cli("tenants", "create", "globex").exit_code == 0

    listed = cli("tenants", "list")

    assert listed.exit_code == 0, listed.output
    assert "2 tenant(s)" in listed.output
    assert listed.output.index("initech") < listed.output.index("globex")


def test_creating_a_tenant_twice_says_so_in_one_line(data_dir: Path) -> None:
    assert cli("tenants", "create", "initech").exit_code == 0

    again = cli("tenants", "create", "initech")

    assert again.exit_code == 1
    assert "tenant 'initech' already exists" in again.output
    assert "Traceback" not in again.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("create", "../etc"), "tenant_id"),
        (("create", "initech", "--admin-email", "root", "--admin-password-stdin"), "email"),
        (("create", "initech", "--admin-email", ADMIN_EMAIL, "--admin-password-stdin"), "password"),
        (("create", "initech", "--admin-password-stdin"), "needs --admin-email"),
        (("create-admin", "nowhere", "--email", ADMIN_EMAIL, "--password-stdin"), "no tenant"),
    ],
    ids=["bad tenant id", "bad email", "short password", "password alone", "unknown tenant"],
)
def test_the_cli_refuses_bad_input_in_one_line_and_creates_nothing(
    data_dir: Path, args: tuple[str, ...], says: str
) -> None:
    password = "short" if says == "password" else PASSWORD

    refused = cli("tenants", *args, stdin=password + "\n")

    assert refused.exit_code in (1, 2), refused.output
    assert says in refused.output
    assert "Traceback" not in refused.output
    assert "0 tenant(s)" in cli("tenants", "list").output


def test_a_tenant_created_by_another_process_is_seen_by_the_running_api_at_once(
    client: TestClient,
) -> None:
    assert register_in(client, "initech") == 404

    assert cli("tenants", "create", "initech").exit_code == 0

    assert register_in(client, "initech") == 201


def test_an_admin_can_be_added_to_a_tenant_that_exists(data_dir: Path) -> None:
    assert cli("tenants", "create", "initech").exit_code == 0

    added = cli(
        "tenants",
        "create-admin",
        "initech",
        "--email",
        ADMIN_EMAIL,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    again = cli(
        "tenants",
        "create-admin",
        "initech",
        "--email",
        ADMIN_EMAIL,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )

    assert added.exit_code == 0, added.output
    assert again.exit_code == 1
    assert "already registered" in again.output
