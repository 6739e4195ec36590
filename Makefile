# Keel — the README's commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV_PY := .venv/bin/python
# pytest-xdist workers for `make test` (0: no workers, one process); tests/conftest.py
# keeps each app's integration and e2e tests on one worker (`--dist loadgroup`).
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadgroup --durations=30

.DEFAULT_GOAL := help
.PHONY: help install demo test lint format bench kafka-start kafka-stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: ## set up .venv (uv, locked), Kafka jars, headless Chromium; quick when nothing changed
	@bash scripts/install

demo: install ## start Kafka, train/load demo models, start the three apps, print the URL
	@.venv/bin/keel-demo

test: install lint ## lint, then every test (unit, integration on a real broker, e2e in Chromium)
	@$(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: ## ruff (lint + format check) and mypy on packages/core
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy

format: ## apply ruff's formatter and autofixes
	@.venv/bin/ruff format .
	@.venv/bin/ruff check --fix .

bench: install ## run every benchmark suite on ../shared/data and write docs/benchmarks.md
	@$(VENV_PY) -m bench all $(BENCH_ARGS)

kafka-start: ## start the local Kafka broker (var/kafka) and print its address
	@scripts/kafka-local start

kafka-stop: ## stop the local Kafka broker
	@scripts/kafka-local stop

clean: ## remove local state (var/), caches; keeps .venv and the Kafka jar cache
	@scripts/kafka-local stop >/dev/null 2>&1 || true
	rm -rf var .pytest_cache .ruff_cache .mypy_cache
