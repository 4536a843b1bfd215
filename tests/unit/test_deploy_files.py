"""The deployment files are valid and consistent with the code: docker compose's own check (with
the compose that deploy/local/compose.sh installs) and structural checks of the YAML. The
Kubernetes manifests are also checked against the API's schemas by deploy/local/kubeconform.sh;
the checks here are the ones a schema cannot make (probes, limits, names that must match each
other and the settings)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infrastructure.settings import (
    DEVELOPMENT_JWT_SECRET,
    Environment,
    Settings,
    SettingsError,
    load_settings,
)

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_SCRIPT = DEPLOY / "local" / "compose.sh"
DOCKERFILE = DEPLOY / "Dockerfile"
COLLECTOR = DEPLOY / "otel-collector.yaml"
K8S = DEPLOY / "k8s"
SECRETS_EXAMPLE = K8S / "mercato-secrets.env.example"
A_SECRET = "0123456789abcdef0123456789abcdef"
BACKING_SERVICES = {"postgres", "redis", "kafka", "elasticsearch", "clickhouse"}
WORKERS = {"relay", "projector-views", "projector-search", "projector-analytics", "sagas"}
APP_SERVICES = {"migrate", "api"} | WORKERS
OBSERVABILITY = {"otel-collector", "jaeger"}
SETTING_NAMES = {f"MERCATO_{name.upper()}" for name in Settings.model_fields}


@cache  # parsed once: the tests only read it
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


# --- docker compose -----------------------------------------------------------------------


def test_compose_runs_every_backing_service_with_a_healthcheck() -> None:
    for name in BACKING_SERVICES:
        assert services()[name]["image"], name
        assert services()[name]["healthcheck"]["test"], name


def test_compose_pins_the_versions_the_local_scripts_run() -> None:
    images = {name: service["image"] for name, service in services().items()}
    assert images["postgres"].startswith("postgres:15")
    assert images["redis"].startswith("redis:7")
    assert images["kafka"].endswith(":3.9.2")
    assert ":8.19." in images["elasticsearch"]


def test_compose_pins_every_image_it_pulls() -> None:
    for name, service in services().items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, (name, image)
        assert tag != "latest" and re.search(r"\d", tag), (name, image)


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_runs_every_mercato_process_from_the_one_image() -> None:
    assert set(services()) == BACKING_SERVICES | APP_SERVICES | OBSERVABILITY
    for name in APP_SERVICES:
        service = services()[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert service["image"] == services()["api"]["image"], name
        assert service.get("read_only") is True, name


def test_compose_commands_are_the_mercato_commands_of_each_process() -> None:
    commands = {name: services()[name]["command"] for name in APP_SERVICES}
    assert commands["migrate"] == ["migrate"]
    assert commands["api"][0] == "serve"
    assert commands["relay"][:2] == ["worker", "relay"]
    assert commands["sagas"][:2] == ["worker", "sagas"]
    for read_model in ("views", "search", "analytics"):
        assert commands[f"projector-{read_model}"][:3] == ["worker", "projector", read_model]
    for worker in WORKERS:
        command = commands[worker]
        port = command[command.index("--metrics-port") + 1]
        assert f":{port}/metrics" in " ".join(services()[worker]["healthcheck"]["test"]), worker


def test_every_mercato_process_is_health_checked_and_waits_for_what_it_needs() -> None:
    for name in APP_SERVICES - {"migrate"}:
        service = services()[name]
        assert service["healthcheck"]["test"], name
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name
        assert service["restart"] == "unless-stopped", name
    migrate = services()["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {
        name: {"condition": "service_healthy"} for name in BACKING_SERVICES
    }


def test_every_depends_on_condition_can_be_met() -> None:
    for name, service in services().items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services(), (name, dependency)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services()[dependency], (name, dependency)


def test_every_mercato_process_shares_settings_mercato_knows() -> None:
    environments = [services()[name]["environment"] for name in APP_SERVICES]
    shared = {key: value for key, value in environments[0].items() if key != "OTEL_SERVICE_NAME"}
    for environment in environments:
        assert {k: v for k, v in environment.items() if k != "OTEL_SERVICE_NAME"} == shared
    names = {environment["OTEL_SERVICE_NAME"] for environment in environments}
    assert len(names) == len(APP_SERVICES)
    unknown = {key for key in shared if key.startswith("MERCATO_")} - SETTING_NAMES
    assert not unknown
    assert shared["MERCATO_PROFILE"] == "services"


def test_compose_runs_in_production_and_has_no_default_jwt_secret() -> None:
    environment = services()["api"]["environment"]
    assert environment["MERCATO_ENVIRONMENT"] == Environment.PRODUCTION.value
    secret = environment["MERCATO_JWT_SECRET"]
    assert secret.startswith("${MERCATO_JWT_SECRET:?"), secret
    assert DEVELOPMENT_JWT_SECRET not in COMPOSE.read_text()


def test_the_observability_profile_is_optional_and_its_config_is_mounted() -> None:
    for name in OBSERVABILITY:
        assert services()[name]["profiles"] == ["observability"], name
    for name in set(services()) - OBSERVABILITY:
        assert "profiles" not in services()[name], name
    mounts = services()["otel-collector"]["volumes"]
    assert any(mount.startswith("./otel-collector.yaml:") for mount in mounts)


def test_the_collector_pipelines_use_only_components_it_defines() -> None:
    config = yaml.safe_load(COLLECTOR.read_text())
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    for pipeline in config["service"]["pipelines"].values():
        for section in ("receivers", "processors", "exporters"):
            assert set(pipeline[section]) <= set(config[section]), section
    assert config["exporters"]["otlp/jaeger"]["endpoint"].startswith("jaeger:")


def compose_command() -> list[str]:
    """docker compose as deploy/local/compose.sh installs it (`make lint` runs the script): the
    docker client's plugin, or else the script's binary, standalone."""
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    installed = subprocess.run(
        [str(COMPOSE_SCRIPT), "--path"], capture_output=True, text=True, check=False
    )
    if installed.returncode != 0:
        pytest.fail(
            "docker compose is not installed: run deploy/local/compose.sh (make lint does)\n"
            + installed.stderr
        )
    return [installed.stdout.strip()]


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [([], set(services()) - OBSERVABILITY), (["--profile", "observability"], set(services()))],
    ids=["default", "observability"],
)
def test_docker_compose_accepts_the_file(profiles: list[str], expected: set[str]) -> None:
    environment = compose_environment() | {"MERCATO_JWT_SECRET": A_SECRET}
    command = [*compose_command(), "-f", str(COMPOSE), *profiles, "config"]
    checked = subprocess.run(
        [*command, "--quiet"], capture_output=True, text=True, check=False, env=environment
    )
    assert checked.returncode == 0, checked.stderr
    listed = subprocess.run(
        [*command, "--services"], capture_output=True, text=True, check=False, env=environment
    )
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == expected


def test_docker_compose_refuses_to_run_without_a_jwt_secret() -> None:
    checked = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env=compose_environment(),
    )
    assert checked.returncode != 0
    assert "MERCATO_JWT_SECRET" in checked.stderr


def compose_environment() -> dict[str, str]:
    """The caller's environment without what would change the check: COMPOSE_PROFILES would
    add profiles to the default run, and a MERCATO_JWT_SECRET of the caller's would hide that
    the file demands one."""
    ignored = {"COMPOSE_PROFILES", "MERCATO_JWT_SECRET"}
    return {key: value for key, value in os.environ.items() if key not in ignored}


# --- the Dockerfile -----------------------------------------------------------------------


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped), by stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    found: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            found.append([])
        if line and not line.startswith("#") and found:
            found[-1].append(line)
    return found


def test_the_image_builds_in_stages_and_runs_without_root() -> None:
    builder = next(stage for stage in stages() if stage[0].endswith(" AS builder"))
    runtime = stages()[-1]
    syncs = [line for line in builder if "uv sync --frozen" in line]
    assert syncs and all("--no-default-groups" in line for line in syncs), syncs
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
    assert runtime[0] == "FROM ${PYTHON_IMAGE} AS runtime"
    assert any(line.startswith("COPY --from=builder /app/.venv") for line in runtime)
    (user,) = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert user.split(":")[0] not in {"0", "root"}
    assert 'ENTRYPOINT ["mercato"]' in runtime
    (healthcheck,) = [line for line in runtime if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in healthcheck


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    allowed = {
        line.removeprefix("!").removesuffix("/**")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for stage in stages():
        for line in stage:
            if line.startswith("COPY ") and "--from=" not in line:
                *sources, _target = line.split()[1:]
                assert set(sources) <= allowed, line


def test_the_image_carries_neither_the_benchmark_harness_nor_its_libraries() -> None:
    allowed = {
        line.removeprefix("!").split("/")[0]
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert "benchmarks" not in allowed
    builder = next(stage for stage in stages() if stage[0].endswith(" AS builder"))
    # No dependency group (dev tools, the `bench` harness) is installed in the image.
    assert all("--group" not in line for line in builder if "uv sync" in line)


def test_the_product_wheel_holds_neither_the_harness_nor_its_libraries() -> None:
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    runtime = " ".join(project["project"]["dependencies"])
    for library in ("matplotlib", "psycopg"):
        assert library not in runtime
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(package.startswith(("benchmarks", "mercato_bench")) for package in packages)
    assert "bench" in project["tool"]["uv"]["default-groups"]


# --- Kubernetes ---------------------------------------------------------------------------


@cache
def manifests() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return found


def test_the_kustomization_names_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert {doc["metadata"].get("namespace", "mercato") for doc in manifests()} == {"mercato"}


def test_every_mercato_process_has_a_deployment_or_a_job() -> None:
    deployments = of_kind("Deployment")
    assert set(deployments) == {
        "mercato-api",
        "mercato-relay",
        "mercato-projector-views",
        "mercato-projector-search",
        "mercato-projector-analytics",
        "mercato-sagas",
    }
    assert deployments["mercato-relay"]["spec"]["replicas"] == 1
    (job,) = of_kind("Job").values()
    assert containers(job)[0]["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_the_api_is_probed_for_readiness_and_liveness() -> None:
    (api,) = containers(of_kind("Deployment")["mercato-api"])
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["args"][0] == "serve"


def test_every_workload_runs_unprivileged_with_resources_and_a_liveness_probe() -> None:
    workloads = [*of_kind("Deployment").values(), *of_kind("Job").values()]
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in containers(workload):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["image"] == "mercato", name
            if workload["kind"] == "Deployment":
                assert "livenessProbe" in container, name


def test_workers_serve_metrics_where_their_probe_and_service_look() -> None:
    for name, deployment in of_kind("Deployment").items():
        if name == "mercato-api":
            continue
        (worker,) = containers(deployment)
        port = worker["args"][worker["args"].index("--metrics-port") + 1]
        assert {"name": "metrics", "containerPort": int(port), "protocol": "TCP"} in worker["ports"]
        assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_every_service_selects_pods_that_exist() -> None:
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in manifests()
        if "template" in d.get("spec", {})
    ]
    for name, service in of_kind("Service").items():
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), name


def test_deployment_selectors_match_their_pods() -> None:
    for name, deployment in of_kind("Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


def secret_example() -> dict[str, str]:
    """The keys and values of mercato-secrets.env.example, as kustomize reads an env file."""
    pairs = {}
    for line in SECRETS_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_settings_come_from_the_configmap_and_the_secret_and_mercato_knows_them() -> None:
    (config,) = of_kind("ConfigMap").values()
    (generated,) = kustomization()["secretGenerator"]
    assert generated["envs"] == ["mercato-secrets.env"]
    for workload in [*of_kind("Deployment").values(), *of_kind("Job").values()]:
        sources = {
            next(iter(source.values()))["name"] for source in containers(workload)[0]["envFrom"]
        }
        assert sources == {config["metadata"]["name"], generated["name"]}
    secret_keys = set(secret_example())
    keys = set(config["data"]) | secret_keys
    assert not config["data"].keys() & secret_keys
    assert {key for key in keys if key.startswith("MERCATO_")} <= SETTING_NAMES
    assert config["data"]["MERCATO_PROFILE"] == "services"
    assert config["data"]["MERCATO_ENVIRONMENT"] == Environment.PRODUCTION.value


def test_no_secret_is_committed_with_the_manifests() -> None:
    assert of_kind("Secret") == {}
    assert secret_example()["MERCATO_JWT_SECRET"] == ""
    ignored = (DEPLOY.parent / ".gitignore").read_text().splitlines()
    assert "deploy/k8s/mercato-secrets.env" in ignored
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".yml", ".example", ".env"}:
            assert DEVELOPMENT_JWT_SECRET not in path.read_text(), path


@pytest.mark.parametrize(
    "secret",
    ["", DEVELOPMENT_JWT_SECRET, "x" * 31, secret_example()["MERCATO_JWT_SECRET"]],
    ids=["empty", "the development secret", "31 characters", "the example's"],
)
def test_a_missing_development_or_short_jwt_secret_cannot_reach_production(secret: str) -> None:
    with pytest.raises(SettingsError, match="MERCATO_JWT_SECRET"):
        load_settings(environment="production", jwt_secret=secret)


def kustomize_build(folder: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    return subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False
    )


def test_kustomize_refuses_to_build_without_the_secrets_file(tmp_path: Path) -> None:
    copy = shutil.copytree(K8S, tmp_path / "k8s", ignore=shutil.ignore_patterns("*.env"))

    built = kustomize_build(copy)

    assert built.returncode != 0
    assert "mercato-secrets.env" in built.stderr


def test_kustomize_builds_a_secret_from_the_file_and_every_workload_uses_it(
    tmp_path: Path,
) -> None:
    copy = shutil.copytree(K8S, tmp_path / "k8s", ignore=shutil.ignore_patterns("*.env"))
    (copy / "mercato-secrets.env").write_text(f"MERCATO_JWT_SECRET={A_SECRET}\n")

    built = kustomize_build(copy)

    assert built.returncode == 0, built.stderr
    documents = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    [secret] = [doc for doc in documents if doc["kind"] == "Secret"]
    name = secret["metadata"]["name"]
    assert name.startswith("mercato-secrets-")
    for workload in (doc for doc in documents if doc["kind"] in {"Deployment", "Job"}):
        sources = containers(workload)[0]["envFrom"]
        assert {"secretRef": {"name": name}} in sources, workload["metadata"]["name"]
