# The two commands of the README:
#   make run    start Mercato on the embedded profile (no services needed), with demo data
#   make test   install everything, start the real services, lint, run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, or else the uv module of python3 (installed on first use by ensure-uv).
UV := $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
SERVICES := deploy/local/services.sh
PYTEST_ARGS ?=
# The whole pytest run may take this long before it is interrupted (SIGINT, so pytest still
# prints its summary), then killed two minutes later: CI stops at 90 minutes, and a hang must
# leave a report rather than nothing.
PYTEST_WALL ?= 70m

.PHONY: help ensure-uv run install services-up services-down services-status lint test test-unit

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

ensure-uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --user uv

install: ensure-uv ## Create .venv with every dependency (pinned by uv.lock)
	$(UV) sync --frozen

run: install ## Start Mercato (embedded) at http://127.0.0.1:8000 with demo data (docs at /docs)
	$(UV) run --frozen mercato serve --demo

services-up: ## Install (first time) and start Postgres, Redis, Kafka and Elasticsearch locally
	$(SERVICES) up

services-down: ## Stop the local services started by services-up
	$(SERVICES) down

services-status: ## Show the local services and whether each is healthy
	$(SERVICES) status

lint: install ## ruff, mypy, import-linter, the Kubernetes manifests, docker compose config
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports
	deploy/local/kubeconform.sh
	deploy/local/compose.sh

test-unit: install ## Only the tests that need no service
	$(UV) run --frozen pytest -m unit $(PYTEST_ARGS)

test: install services-up lint ## Everything CI runs: install, start services, lint, all tests
	timeout --signal=INT --kill-after=120 $(PYTEST_WALL) $(UV) run --frozen pytest $(PYTEST_ARGS)
	$(UV) run --frozen mercato bench --quick
