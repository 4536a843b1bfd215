"""The deployment files are valid: docker compose's own check where the client has compose,
and a structural check of the YAML everywhere (this machine's docker client has no compose)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
BACKING_SERVICES = {"postgres", "redis", "kafka", "elasticsearch", "clickhouse"}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_every_backing_service_with_a_healthcheck() -> None:
    services = compose()["services"]
    assert set(services) >= BACKING_SERVICES
    for name in BACKING_SERVICES:
        assert services[name]["image"], name
        assert services[name]["healthcheck"]["test"], name


def test_compose_pins_the_versions_the_local_scripts_run() -> None:
    images = {name: service["image"] for name, service in compose()["services"].items()}
    assert images["postgres"].startswith("postgres:15")
    assert images["redis"].startswith("redis:7")
    assert images["kafka"].endswith(":3.9.2")
    assert ":8.19." in images["elasticsearch"]


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


def test_docker_compose_accepts_the_file_when_the_client_has_compose() -> None:
    if not docker_compose_available():
        # Not a skip: the structural checks above always run; this adds compose's own check.
        return
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
