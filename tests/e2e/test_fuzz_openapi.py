"""A fuzz pass over every operation of the OpenAPI document (schemathesis): no input, valid or
not, gets a 5xx or a body with a traceback in it.

Cases are generated from the app's own schema, both ones that follow it and ones that break it,
and sent in-process to an app on the embedded profile, each twice: as a buyer who is also a
creator, and as an admin, both of one tenant (whose name goes in every `X-Tenant-ID`), so that
the fuzzer gets past authentication into the routes. Hypothesis is derandomized and the examples
per operation bounded: the pass is the same on every run and takes about a minute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode

from infrastructure.settings import PRODUCTION_RATE_LIMITS, RATE_LIMIT_OFF, load_settings
from interfaces.http.app import create_app
from tests.e2e.http_support import (
    User,
    create_product,
    embedded_settings,
    login,
    promoted_to_admin,
    running,
    signed_up,
)

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 10
TENANT = "fuzz"
TRACEBACK_MARKS = ("Traceback", 'File "')
TestFunction = Callable[..., None]
REVOKING = {("POST", "/auth/logout-everywhere"), ("POST", "/auth/logout")}
"""Operations after which the caller logs in again (its tokens may be gone)."""


@dataclass
class Callers:
    """Whom the cases are sent as; each logs in again after an operation that revokes."""

    client: TestClient
    users: list[User] = field(default_factory=list)

    def relogin(self) -> None:
        self.users = [login(self.client, user.email, tenant=TENANT) for user in self.users]


@pytest.fixture(scope="module")
def callers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callers]:
    no_limits = {rule: RATE_LIMIT_OFF for rule in PRODUCTION_RATE_LIMITS}
    data_dir = tmp_path_factory.mktemp("fuzz")
    with running(embedded_settings(data_dir, rate_limits=no_limits)) as client:
        someone = signed_up(
            client, "someone@example.org", tenant=TENANT, roles=("buyer", "creator")
        )
        admin = promoted_to_admin(client, signed_up(client, "admin@example.org", tenant=TENANT))
        create_product(client, someone)  # a catalog to search
        yield Callers(client, [someone, admin])


def _schema() -> Any:
    """The app's OpenAPI document, read from an app that never starts (no I/O at collection)."""
    app = create_app(load_settings(profile="embedded"))
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES_PER_OPERATION,
        deterministic=True,
    )
    return loaded


schema = _schema()
every_operation = cast(Callable[[TestFunction], TestFunction], schema.parametrize())


@every_operation
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_server_error_or_a_traceback(case: Case[Any], callers: Callers) -> None:
    for user in list(callers.users):
        response = _send(callers.client, case, user)
        assert response.status_code < 500, _described(case, response)
        assert not any(mark in response.text for mark in TRACEBACK_MARKS), _described(
            case, response
        )
        if (case.method.upper(), case.path) in REVOKING:
            callers.relogin()


def _send(client: TestClient, case: Case[Any], user: User) -> httpx.Response:
    request = case.as_transport_kwargs(base_url=str(client.base_url))
    headers: dict[str, Any] = {
        key: value
        for key, value in (request.get("headers") or {}).items()
        if key.lower() not in ("authorization", "x-tenant-id")
    }
    headers["Authorization"] = f"Bearer {user.access_token}"
    if any(key.lower() == "x-tenant-id" for key in request.get("headers") or {}):
        headers["X-Tenant-ID"] = TENANT
    response: httpx.Response = client.request(
        request["method"],
        request["url"],
        params=request.get("params"),
        # As bytes: a fuzzed header may hold characters beyond ASCII, which httpx refuses to
        # encode but a client can send.
        headers={key: str(value).encode() for key, value in headers.items()},
        # A JSON `null` body is still a body (httpx would send none for `json=None`).
        content=b"null" if request.get("json", ...) is None else request.get("data"),
        json=request.get("json"),
    )
    return response


def _described(case: Case[Any], response: httpx.Response) -> str:
    return (
        f"{case.method} {case.path} answered {response.status_code}: {response.text[:500]}\n"
        f"reproduce with: {case.as_curl_command()}"
    )
