"""The HTTP app on the services profile, against the real services `make test` starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infrastructure.settings import load_settings
from interfaces.http.app import create_app

pytestmark = pytest.mark.e2e


def test_readyz_is_ready_when_every_service_answers(postgres_dsn: str, tmp_path: Path) -> None:
    settings = load_settings(profile="services", data_dir=tmp_path, postgres_dsn=postgres_dsn)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert {d["name"] for d in response.json()["dependencies"]} == {
        "postgres",
        "kafka",
        "elasticsearch",
        "redis",
        "clickhouse",
    }


def test_readyz_answers_503_naming_the_services_that_do_not_answer(
    postgres_dsn: str, tmp_path: Path
) -> None:
    settings = load_settings(
        profile="services",
        data_dir=tmp_path,
        postgres_dsn=postgres_dsn,
        redis_url="redis://127.0.0.1:1/0",
        elasticsearch_url="http://127.0.0.1:1",
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["elasticsearch", "redis"]
